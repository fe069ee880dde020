import AgentDetector
import AgentRecords

extension CaptureReplay {
    /// An `alert` record: raised live.
    func liveAlert(_ view: JSONTree.View, _ h: RecordHeader, seq: UInt64, selected: Bool, location: CaptureLocation) {
        summary.liveAlerts += 1
        let r = view.member(0, "rule")
        let ruleID = view.string(view.member(r, "id")) ?? ""
        var evidence: [UInt64] = []
        view.forEachElement(view.member(0, "evidence")) { if evidence.count < 1024, let s = view.uint($0) { evidence.append(s) } }
        compare(ruleID, evidence, live: true)
        guard selected else { return }
        let alert = ReplayAlert(
            replayed: false, seq: seq, timeNs: h.timeNs, session: h.session,
            entityID: view.string(view.at("process", "entity_id")) ?? "", process: processLabel(view),
            ruleID: ReplayText.display(ruleID, limit: 256), title: shown(view, view.member(r, "title"), limit: 512),
            severity: shown(view, view.member(r, "severity"), limit: 16), message: shown(view, view.member(0, "message")),
            evidence: evidence, suppressed: view.int(view.member(0, "suppressed")) ?? 0, location: location)
        keep(alert)
        event(.alert, view, h, seq: seq, location: location, text: Self.text(alert), severity: alert.severity)
    }

    /// An alert the replay's rules raised; `view` is the record that completed the match (or
    /// the session's end, for what the rules owed the session).
    func replayed(_ a: Alert, _ view: JSONTree.View, _ h: RecordHeader, trigger: ReplayProcess?, location: CaptureLocation) {
        summary.replayedAlerts += 1
        compare(a.rule.id, a.evidence, live: false)
        let session = a.sessionID
        guard options.selects(session: session, timeNs: a.timeNs) else { return }
        let isEnd = h.type == .sessionEnd
        let alert = ReplayAlert(
            replayed: true, seq: a.triggerSeq, timeNs: a.timeNs, session: session,
            entityID: isEnd ? "" : view.string(view.at("process", "entity_id")) ?? "", process: isEnd ? "" : processLabel(view),
            ruleID: ReplayText.display(a.rule.id, limit: 256), title: ReplayText.display(a.rule.title, limit: 512),
            severity: a.rule.severity.rawValue, message: ReplayText.display(a.message),
            evidence: a.evidence, suppressed: Int64(a.suppressed), location: location)
        keep(alert)
        report.replayedAlert(Self.json(a, view, isEnd: isEnd))
        let e = ReplayEvent(kind: .replayedAlert, seq: a.triggerSeq, timeNs: a.timeNs, session: session, process: alert.process,
                            entityID: alert.entityID, text: Self.text(alert), severity: alert.severity, location: location)
        if report.wantsEvents { report.event(e) } else { report.eventNotShown() }
        if let trigger, report.keepsProcesses { list(e, under: trigger, notable: true) }
    }

    static func text(_ a: ReplayAlert) -> String {
        var text = "\(a.severity) \(a.ruleID): \(a.message) (evidence \(a.evidence.map(String.init).joined(separator: ", ")))"
        if a.suppressed > 0 { text += ", \(a.suppressed) more matches suppressed" }
        return a.replayed ? text + " [replayed]" : text
    }

    func keep(_ a: ReplayAlert) {
        guard let s = session(a.session) else { return }
        if s.alerts.count < options.limits.alertsPerSession {
            s.alerts.append(a)
        } else {
            s.droppedAlerts += 1
        }
        if !a.entityID.isEmpty, let p = s.processes[a.entityID] { p.alerts += 1 }
    }

    /// Counts alerts by rule and evidence, live against replayed.
    func compare(_ rule: String, _ evidence: [UInt64], live: Bool) {
        guard rules != nil, !comparisonFull else { return }
        let key = rule + " " + evidence.map(String.init).joined(separator: ",")
        if alertBalance[key] == nil && alertBalance.count >= options.limits.comparedAlerts {
            comparisonFull = true
            alertBalance = [:]
            return
        }
        alertBalance[key, default: 0] += live ? -1 : 1
        if alertBalance[key] == 0 { alertBalance[key] = nil }
    }

    /// A replayed alert as an NDJSON line: an `alert` record's members, marked `"replayed":true`,
    /// with no seq or chain of its own (it is not part of the captured stream): `trigger_seq`
    /// names the record that completed the match, `evidence` the original records' seq.
    static func json(_ a: Alert, _ view: JSONTree.View, isEnd: Bool) -> [UInt8] {
        var j = JSONBuffer(capacity: 1024)
        j.raw("{\"v\":1,\"type\":\"alert\",\"replayed\":true,\"time\":")
        j.timestamp(unixNanoseconds: a.timeNs)
        if let host = view.member(0, "host"), view.kind(host) == .object {
            j.raw(",\"host\":")
            j.bytes.append(contentsOf: view.source(host))
        }
        j.raw(",\"session\":{\"id\":")
        j.string(a.sessionID)
        let so = view.member(0, "session")
        if let c = view.member(so, "cgroup"), view.kind(c) == .string {
            j.raw(",\"cgroup\":")
            j.bytes.append(contentsOf: view.source(c))
        }
        if let l = view.member(so, "labels"), view.kind(l) == .object {
            j.raw(",\"labels\":")
            j.bytes.append(contentsOf: view.source(l))
        }
        j.raw("}")
        if !isEnd, let p = view.member(0, "process"), view.kind(p) == .object {
            j.raw(",\"process\":")
            j.bytes.append(contentsOf: view.source(p))
        }
        j.alertMembers(a)
        j.raw(",\"trigger_seq\":")
        j.uint(a.triggerSeq)
        j.raw("}\n")
        return j.bytes
    }
}
