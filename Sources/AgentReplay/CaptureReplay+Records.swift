import AgentRecords
extension CaptureReplay {
    /// One record, read and placed: sessions, processes, alerts, the rules, and the report.
    func record(_ view: JSONTree.View, _ h: RecordHeader, seq: UInt64, line: UnsafeRawBufferPointer, location: CaptureLocation) {
        let selected = options.selects(session: h.session, timeNs: h.timeNs)
        if selected {
            summary.selected += 1
            report.record(line)
        }
        if !h.session.isEmpty { noteSession(h.session) }
        guard let type = h.type else {
            let name = ReplayText.display(view.rawBytes(h.typeNode) ?? Array("(none)".utf8), limit: 64)
            if selected { event(.unknown, view, h, seq: seq, location: location, text: "record of unknown type \(name)") }
            return
        }
        switch type {
        case .agentStart:
            rules?.daemonStarted()
            let a = view.member(0, "agent")
            var text = "daemon started: agentwatch \(shown(view, view.member(a, "version"), limit: 64))"
            if let k = view.member(a, "kernel") { text += ", kernel \(shown(view, k, limit: 128))" }
            if let r = view.member(a, "rules"), let n = view.int(view.member(r, "count")) { text += ", \(n) rules" }
            if selected { event(.agent, view, h, seq: seq, location: location, text: text) }
        case .agentStop:
            let a = view.member(0, "agent")
            let text = "daemon stopped after \(view.uint(view.member(a, "records")) ?? 0) records, kernel dropped \(view.uint(view.member(a, "kernel_dropped")) ?? 0)"
            if selected { event(.agent, view, h, seq: seq, location: location, text: text) }
        case .agentReload:
            let a = view.member(0, "agent")
            var text: String
            if view.bool(view.member(a, "ok")) == true {
                text = "rules reloaded: \(view.int(view.at("agent", "rules", "count")) ?? 0) rules (from here on the live rules differ from before)"
            } else {
                text = "rules reload refused, the running rules kept"
                if let e = view.member(a, "error") { text += ": \(shown(view, e, limit: 512))" }
            }
            if selected { event(.agent, view, h, seq: seq, location: location, text: text) }
        case .agentHeartbeat:
            break
        case .agentLoss:
            loss(view, h, seq: seq, location: location)
        case .sessionStart:
            sessionStart(view, h, seq: seq, selected: selected, location: location)
        case .sessionEnd:
            sessionEnd(view, h, seq: seq, selected: selected, location: location)
        case .processExec, .processExit, .fileOpen, .netConnect, .netFlow, .netSend, .netDNS:
            processRecord(view, h, type: type, seq: seq, selected: selected, location: location)
        case .alert:
            liveAlert(view, h, seq: seq, selected: selected, location: location)
        }
    }

    /// A value shown: its original bytes, escaped for display.
    func shown(_ view: JSONTree.View, _ node: Int?, limit: Int = ReplayText.maxBytes) -> String {
        guard let node else { return "-" }
        switch view.kind(node) {
        case .string?: return ReplayText.display(view.rawBytes(node) ?? [], limit: limit)
        case .number?, .bool?, .null?: return ReplayText.display(view.source(node), limit: limit)
        default: return "(\(view.kind(node) == .object ? "object" : "array"))"
        }
    }

    /// `comm[pid]` of the record's process.
    func processLabel(_ view: JSONTree.View) -> String {
        let p = view.member(0, "process")
        guard p != nil else { return "" }
        let comm = shown(view, view.member(p, "comm"), limit: 64)
        return "\(comm)[\(view.int(view.member(p, "pid")).map(String.init) ?? "?")]"
    }

    func makeEvent(_ kind: ReplayEvent.Kind, _ view: JSONTree.View, _ h: RecordHeader, seq: UInt64, location: CaptureLocation, text: String,
                   severity: String = "") -> ReplayEvent {
        ReplayEvent(kind: kind, seq: seq, timeNs: h.timeNs, session: h.session, process: processLabel(view),
                    entityID: view.string(view.at("process", "entity_id")) ?? "", text: text, severity: severity, location: location)
    }

    /// A record's timeline event (other than a process's activity: `processRecord`); an alert
    /// is also listed under its process.
    func event(_ kind: ReplayEvent.Kind, _ view: JSONTree.View, _ h: RecordHeader, seq: UInt64, location: CaptureLocation, text: String,
               severity: String = "") {
        let e = makeEvent(kind, view, h, seq: seq, location: location, text: text, severity: severity)
        if report.wantsEvents { report.event(e) } else { report.eventNotShown() }
        if kind == .alert || kind == .replayedAlert, report.keepsProcesses, !e.entityID.isEmpty,
           let s = sessions[h.session], let p = s.processes[e.entityID] {
            list(e, under: p, notable: true)
        }
    }

    /// Whether a record of process `p` is listed under it; when not, it is counted. Notable
    /// records (alerts, connects, a socket's last flow) are listed whatever the limit, up to 64;
    /// routine loads (`open` given: a file.open) are counted; the rest up to the limits.
    func listing(_ p: ReplayProcess, notable: Bool, _ open: JSONTree.View?) -> Bool {
        guard report.keepsProcesses else { return false }
        if notable {
            if p.alertEvents < 64 { return true }
            p.droppedEvents += 1
            return false
        }
        if let open, Self.isRoutine(open) {
            p.routineOpens += 1
            return false
        }
        if p.events.count - p.alertEvents < options.limits.eventsPerProcess && heldEvents < options.limits.processEvents { return true }
        p.droppedEvents += 1
        return false
    }

    /// Lists an event under its process (`listing` said so, or an alert).
    func list(_ e: ReplayEvent, under p: ReplayProcess, notable: Bool) {
        if notable {
            guard p.alertEvents < 64 else { return }
            p.alertEvents += 1
        }
        p.events.append(e)
        heldEvents += 1
    }

    func noteSession(_ id: String) {
        // Records of one session come in runs: the set is asked once per run.
        guard id != lastNoted else { return }
        lastNoted = id
        if sessionsSeen.count < 1_000_000 { sessionsSeen.insert(id) }
    }

    /// The session held for `id` (made on its first record), or nil when the report needs no
    /// sessions, the selection leaves it out, or the limit is reached.
    func session(_ id: String) -> ReplaySession? {
        guard report.keepsProcesses, !id.isEmpty, options.sessions.isEmpty || options.sessions.contains(id) else { return nil }
        if let s = sessions[id] { return s }
        guard sessions.count < options.limits.sessions else {
            droppedSessions += 1
            return nil
        }
        let s = ReplaySession(id: id)
        sessions[id] = s
        sessionOrder.append(s)
        return s
    }

    /// A session is done with: its report part is written (tree) and it is let go, or kept (html).
    func close(_ s: ReplaySession) {
        s.ended = true
        guard report.closes(s) else { return }
        sessions[s.id] = nil
        if let i = sessionOrder.firstIndex(where: { $0 === s }) { sessionOrder.remove(at: i) }
        heldProcesses -= s.order.count
        heldEvents -= s.order.reduce(0) { $0 + $1.events.count }
    }

    func sessionStart(_ view: JSONTree.View, _ h: RecordHeader, seq: UInt64, selected: Bool, location: CaptureLocation) {
        let so = view.member(0, "session")
        let homes = view.elements(view.member(so, "homes")).compactMap { view.string($0) }
        let uid = view.int(view.member(so, "uid"))
        rules?.sessionStarted(h.session, homes: homes, uid: uid.map { Int($0) })
        var labels: [String] = []
        view.forEachMember(view.member(so, "labels")) { k, v in
            if labels.count < 64 { labels.append("\(shown(view, k, limit: 256))=\(shown(view, v, limit: 1024))") }
        }
        let adopted = view.bool(view.member(so, "adopted")) == true
        if let s = session(h.session) {
            s.starts += 1
            s.ended = false
            s.cgroup = shown(view, view.member(so, "cgroup"))
            s.uid = uid
            s.labels = labels.joined(separator: " ")
            s.homes = homes.map { ReplayText.display($0) }
            s.adopted = s.adopted || adopted
            if s.startNs == nil { s.startNs = h.timeNs }
            track(s, h.timeNs)
        }
        var text = "session \(ReplayText.display(h.session, limit: 128)) started"
        if adopted { text += " (found running at daemon start)" }
        if let uid { text += ", uid \(uid)" }
        text += ", cgroup \(shown(view, view.member(so, "cgroup"), limit: 512))"
        if !labels.isEmpty { text += ", labels " + labels.joined(separator: " ") }
        if !homes.isEmpty { text += ", home " + homes.map { ReplayText.display($0) }.joined(separator: " ") }
        if selected { event(.sessionStart, view, h, seq: seq, location: location, text: text) }
    }

    func sessionEnd(_ view: JSONTree.View, _ h: RecordHeader, seq: UInt64, selected: Bool, location: CaptureLocation) {
        // The daemon settles what the rules owe the session before writing its end.
        rules?.sessionEnded(h.session, timeNs: h.timeNs) { alert in
            replayed(alert, view, h, trigger: nil, location: location)
        }
        let so = view.member(0, "session")
        var counts: [(String, Int64)] = []
        view.forEachMember(view.member(so, "counts")) { k, v in
            if counts.count < 32 { counts.append((shown(view, k, limit: 64), view.int(v) ?? 0)) }
        }
        var text = "session \(ReplayText.display(h.session, limit: 128)) ended"
        if !counts.isEmpty { text += ": " + counts.map { "\($0.1) \($0.0)" }.joined(separator: ", ") }
        if selected { event(.sessionEnd, view, h, seq: seq, location: location, text: text) }
        if let s = session(h.session) {
            s.endNs = h.timeNs
            s.declaredCounts = counts.map { (type: $0.0, count: $0.1) }
            track(s, h.timeNs)
            close(s)
        }
    }

    func track(_ s: ReplaySession, _ time: Int64?) {
        guard let time else { return }
        if s.firstNs == nil || time < s.firstNs! { s.firstNs = time }
        if s.lastNs == nil || time > s.lastNs! { s.lastNs = time }
    }

    func loss(_ view: JSONTree.View, _ h: RecordHeader, seq: UInt64, location: CaptureLocation) {
        let l = view.member(0, "loss")
        let total = view.uint(view.member(l, "kernel_dropped_total")) ?? 0
        let queued = view.uint(view.member(l, "queue_dropped")) ?? 0
        summary.lossMarkers += 1
        summary.kernelDropped &+= total
        summary.queueDropped &+= queued
        var parts: [String] = []
        if total > 0 {
            var kinds: [String] = []
            view.forEachMember(view.member(l, "kernel_dropped")) { k, v in
                if kinds.count < 16 { kinds.append("\(shown(view, k, limit: 32)) \(view.uint(v) ?? 0)") }
            }
            let atShutdown = view.stringEquals(view.member(l, "reported_by"), "daemon")
            parts.append(atShutdown
                ? "kernel ring buffer was full: \(total) records lost, counted at daemon shutdown (\(kinds.joined(separator: ", ")))"
                : "kernel ring buffer full: \(total) records lost here, never numbered (\(kinds.joined(separator: ", ")))")
        }
        if queued > 0 {
            let sink = view.member(l, "sink").map { shown(view, $0, limit: 128) } ?? "an output"
            var text = "sink \(sink) dropped \(queued) records"
            if let first = view.uint(view.member(l, "first_seq")), let last = view.uint(view.member(l, "last_seq")) {
                text = "sink \(sink) dropped \(queued) records between seq \(first) and \(last): its queue and spool were full"
                if let gap = recentGaps.last(where: { $0.first <= last && $0.last >= first }) {
                    text += " (the gap at \(gap.location))"
                }
            }
            parts.append(text)
        }
        if parts.isEmpty { parts.append("loss marker with nothing lost") }
        let text = parts.joined(separator: "; ")
        finding(.loss, "\(location): seq \(seq): \(text)", text: text, seq: seq, time: h.timeNs, location: location)
    }
}
