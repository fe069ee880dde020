@testable import AgentDetector
@testable import AgentSessions
import Testing

@Suite("Detector sequences, thresholds and suppression")
struct DetectorStatefulTests {
    let s = DT.second

    func sequenceRule(ordered: Bool = true, within: String = "2m", by: String = "", suppress: String = "0") -> String {
        """
        rules:
          - id: exfil
            title: credential then upload
            severity: critical
            types: [file.open, net.connect, net.flow]
            sequence:
              within: \(within)
              ordered: \(ordered)
              \(by)
              steps:
                - condition: file.path glob "~/.aws/*"
                - condition: net.daddr exists and not net.daddr cidr 10.0.0.0/8
                - condition: net.bytes_sent > 1MiB
            message: "{net.daddr} after credentials"
            suppress: \(suppress)
            fixtures: []
        """
    }

    var read: [String: Any] { ["file.path": "/home/dev/.aws/credentials"] }
    var connect: [String: Any] { ["net.daddr": "203.0.113.9"] }
    var upload: [String: Any] { ["net.daddr": "203.0.113.9", "net.bytes_sent": 5 << 20] }

    @Test func orderedSequenceFiresWithEvidenceOfEachStep() throws {
        let set = try DT.rules(sequenceRule())
        let alerts = DT.alerts(set, [
            DT.record("file.open", read, seq: 10, at: 0),
            DT.record("file.open", ["file.path": "/etc/hosts"], seq: 11, at: 1 * s),
            DT.record("net.connect", connect, seq: 12, at: 2 * s),
            DT.record("net.flow", upload, seq: 13, at: 3 * s),
        ])
        #expect(alerts.count == 1)
        #expect(alerts.first?.evidence == [10, 12, 13])
        #expect(alerts.first?.triggerSeq == 13)
        #expect(alerts.first?.message == "203.0.113.9 after credentials")
    }

    @Test func orderedSequenceNeedsTheOrder() throws {
        let set = try DT.rules(sequenceRule())
        let alerts = DT.alerts(set, [
            DT.record("net.connect", connect, seq: 1, at: 0),
            DT.record("net.flow", upload, seq: 2, at: 1 * s),
            DT.record("file.open", read, seq: 3, at: 2 * s),
        ])
        #expect(alerts.isEmpty)
    }

    @Test func unorderedSequenceTakesAnyOrder() throws {
        let set = try DT.rules(sequenceRule(ordered: false))
        let alerts = DT.alerts(set, [
            DT.record("net.flow", upload, seq: 1, at: 0),
            DT.record("net.connect", connect, seq: 2, at: 1 * s),
            DT.record("file.open", read, seq: 3, at: 2 * s),
        ])
        #expect(alerts.count == 1)
        // Evidence is in step order, whatever the order of the records.
        #expect(alerts.first?.evidence == [3, 2, 1])
    }

    @Test func oneRecordFillsOneStepOfAPartialMatch() throws {
        // The upload matches steps 2 and 3; alone after step 1 it must not complete the sequence.
        let set = try DT.rules(sequenceRule())
        let alerts = DT.alerts(set, [
            DT.record("file.open", read, seq: 1, at: 0),
            DT.record("net.flow", upload, seq: 2, at: 1 * s),
        ])
        #expect(alerts.isEmpty)
        let more = DT.alerts(set, [
            DT.record("file.open", read, seq: 1, at: 0),
            DT.record("net.flow", upload, seq: 2, at: 1 * s),
            DT.record("net.flow", upload, seq: 3, at: 2 * s),
        ])
        #expect(more.map(\.evidence) == [[1, 2, 3]])
    }

    @Test func sequencesExpire() throws {
        let set = try DT.rules(sequenceRule(within: "1m"))
        let late = DT.alerts(set, [
            DT.record("file.open", read, seq: 1, at: 0),
            DT.record("net.connect", connect, seq: 2, at: 30 * s),
            DT.record("net.flow", upload, seq: 3, at: 61 * s),
        ])
        #expect(late.isEmpty)
        // A new first step after expiry restarts the window; a repeat within it keeps the oldest.
        let restarted = DT.alerts(set, [
            DT.record("file.open", read, seq: 1, at: 0),
            DT.record("file.open", read, seq: 2, at: 10 * s),
            DT.record("file.open", read, seq: 3, at: 70 * s),
            DT.record("net.connect", connect, seq: 4, at: 80 * s),
            DT.record("net.flow", upload, seq: 5, at: 90 * s),
        ])
        #expect(restarted.map(\.evidence) == [[3, 4, 5]])
        let oldestKept = DT.alerts(set, [
            DT.record("file.open", read, seq: 1, at: 0),
            DT.record("file.open", read, seq: 2, at: 10 * s),
            DT.record("net.connect", connect, seq: 3, at: 20 * s),
            DT.record("net.flow", upload, seq: 4, at: 30 * s),
        ])
        #expect(oldestKept.map(\.evidence) == [[1, 3, 4]])
    }

    @Test func sequencesAreKeyedBySession() throws {
        let set = try DT.rules(sequenceRule())
        let alerts = DT.alerts(set, [
            DT.record("file.open", read, seq: 1, at: 0, session: "a"),
            DT.record("net.connect", connect, seq: 2, at: 1 * s, session: "b"),
            DT.record("net.flow", upload, seq: 3, at: 2 * s, session: "a"),
        ])
        #expect(alerts.isEmpty)
    }

    @Test func perStepByJoinsAPipe() throws {
        let yaml = """
        rules:
          - id: curl-pipe-shell
            title: download piped into a shell
            severity: high
            types: [process.exec]
            sequence:
              within: 10s
              steps:
                - condition: process.name in [curl, wget] and process.stdout.type == pipe
                  by: [process.stdout.ino]
                - condition: process.name in [sh, bash] and process.stdin.type == pipe
                  by: [process.stdin.ino]
            suppress: 0
            fixtures: []
        """
        let set = try DT.rules(yaml)
        let curl: [String: Any] = ["process.name": "curl", "process.stdout.type": "pipe", "process.stdout.ino": 777]
        let sh: (Int) -> [String: Any] = { ["process.name": "sh", "process.stdin.type": "pipe", "process.stdin.ino": $0] }
        #expect(DT.alerts(set, [DT.record("process.exec", curl, seq: 1), DT.record("process.exec", sh(777), seq: 2, at: s)]).map(\.evidence) == [[1, 2]])
        #expect(DT.alerts(set, [DT.record("process.exec", curl, seq: 1), DT.record("process.exec", sh(778), seq: 2, at: s)]).isEmpty)
    }

    func thresholdRule(_ measure: String, over: String, within: String = "60s", suppress: String = "0") -> String {
        """
        rules:
          - id: upload-large
            title: large upload
            severity: high
            types: [net.flow]
            condition: net.daddr exists
            threshold:
              by: [session.id, net.daddr]
              \(measure)
              over: \(over)
              within: \(within)
            message: "{net.daddr}"
            suppress: \(suppress)
            fixtures: []
        """
    }

    func flow(_ bytes: Int, seq: UInt64, at: Int64, to: String = "203.0.113.9") -> CapturedRuleInput {
        DT.record("net.flow", ["net.daddr": to, "net.bytes_sent_delta": bytes], seq: seq, at: at)
    }

    @Test func thresholdSumFiresWhenExceeded() throws {
        let set = try DT.rules(thresholdRule("sum: net.bytes_sent_delta", over: "10MiB"))
        let alerts = DT.alerts(set, [
            flow(4 << 20, seq: 1, at: 0),
            flow(4 << 20, seq: 2, at: 10 * s),
            flow(2 << 20, seq: 3, at: 20 * s),  // exactly 10 MiB: not over
            flow(1, seq: 4, at: 21 * s),
        ])
        #expect(alerts.map(\.evidence) == [[1, 2, 3, 4]])
        #expect(alerts.first?.triggerSeq == 4)
    }

    @Test func thresholdWindowSlidesAndRestartsAfterFiring() throws {
        let set = try DT.rules(thresholdRule("sum: net.bytes_sent_delta", over: "10MiB"))
        // The first 8 MiB leave the window before the rest arrives.
        let slid = DT.alerts(set, [
            flow(8 << 20, seq: 1, at: 0),
            flow(4 << 20, seq: 2, at: 61 * s),
            flow(4 << 20, seq: 3, at: 62 * s),
        ])
        #expect(slid.isEmpty)
        let twice = DT.alerts(set, [
            flow(11 << 20, seq: 1, at: 0),
            flow(1 << 20, seq: 2, at: 1 * s),
            flow(10 << 20, seq: 3, at: 2 * s),
        ])
        // After firing the window restarts empty: 1 + 10 MiB is over again only at seq 3.
        #expect(twice.map(\.evidence) == [[1], [2, 3]])
        // Keys are separate.
        let keyed = DT.alerts(set, [flow(6 << 20, seq: 1, at: 0), flow(6 << 20, seq: 2, at: s, to: "198.51.100.1")])
        #expect(keyed.isEmpty)
    }

    @Test func thresholdCountsRecords() throws {
        let set = try DT.rules(thresholdRule("count: true", over: "2", within: "10s"))
        #expect(DT.alerts(set, [flow(0, seq: 1, at: 0), flow(0, seq: 2, at: s), flow(0, seq: 3, at: 2 * s)]).map(\.evidence) == [[1, 2, 3]])
        #expect(DT.alerts(set, [flow(0, seq: 1, at: 0), flow(0, seq: 2, at: s), flow(0, seq: 3, at: 12 * s)]).isEmpty)
    }

    @Test func thresholdEvidenceIsAtMost64() throws {
        let set = try DT.rules(thresholdRule("count: true", over: "99", within: "1h"))
        let records = (1...100).map { flow(0, seq: UInt64($0), at: Int64($0) * 1_000_000) }
        let alerts = DT.alerts(set, records)
        #expect(alerts.count == 1)
        #expect(alerts.first?.evidence == Array(37...100).map(UInt64.init))
    }

    func simpleRule(suppress: String) -> String {
        """
        rules:
          - id: shadow
            title: shadow read
            severity: high
            types: [file.open]
            condition: file.path == /etc/shadow
            suppress: \(suppress)
            fixtures: []
        """
    }

    @Test func suppressionCountsAndReportsInTheNextAlert() throws {
        let set = try DT.rules(simpleRule(suppress: "10m"))
        let shadow = ["file.path": "/etc/shadow"]
        let alerts = DT.alerts(set, [
            DT.record("file.open", shadow, seq: 1, at: 0),
            DT.record("file.open", shadow, seq: 2, at: 60 * s),
            DT.record("file.open", shadow, seq: 3, at: 120 * s),
            DT.record("file.open", shadow, seq: 4, at: 0, session: "other"),
            DT.record("file.open", shadow, seq: 5, at: 601 * s),
        ])
        #expect(alerts.map(\.triggerSeq) == [1, 4, 5])
        #expect(alerts.map(\.suppressed) == [0, 0, 2])
        #expect(alerts.map(\.sessionID) == ["s1", "other", "s1"])
    }

    @Test func zeroSuppressNeverSuppresses() throws {
        let set = try DT.rules(simpleRule(suppress: "0"))
        let records = (1...3).map { DT.record("file.open", ["file.path": "/etc/shadow"], seq: UInt64($0), at: Int64($0)) }
        #expect(DT.alerts(set, records).count == 3)
    }

    @Test func defaultSuppressionIsAMinute() throws {
        let yaml = simpleRule(suppress: "0").replacingOccurrences("    suppress: 0\n", "")
        let set = try DT.rules(yaml)
        #expect(set.rules.first?.suppressNs == 60 * s)
        let records = [0, 59, 61].enumerated().map { DT.record("file.open", ["file.path": "/etc/shadow"], seq: UInt64($0 + 1), at: Int64($1) * s) }
        #expect(DT.alerts(set, records).map(\.suppressed) == [0, 1])
    }

    @Test func endSessionSummarisesSuppressedMatches() throws {
        let set = try DT.rules(simpleRule(suppress: "10m"))
        let d = Detector(rules: set)
        var alerts: [Alert] = []
        for i in 1...4 {
            d.evaluate(DT.record("file.open", ["file.path": "/etc/shadow"], seq: UInt64(i), at: Int64(i) * s)) { alerts.append($0) }
        }
        d.evaluate(DT.record("file.open", ["file.path": "/etc/shadow"], seq: 9, at: 0, session: "quiet")) { alerts.append($0) }
        #expect(alerts.count == 2)
        var summary: [Alert] = []
        d.endSession("s1", timeNs: DT.t0 + 100 * s) { summary.append($0) }
        #expect(summary.count == 1)
        #expect(summary.first?.suppressed == 3)
        #expect(summary.first?.evidence == [2, 3, 4])
        #expect(summary.first?.message == "3 further matches of shadow suppressed")
        #expect(summary.first?.sessionID == "s1")
        #expect(summary.first?.timeNs == DT.t0 + 100 * s)
        // Nothing was suppressed in "quiet", and s1's state is gone: its next match fires.
        var none: [Alert] = []
        d.endSession("quiet", timeNs: DT.t0) { none.append($0) }
        #expect(none.isEmpty)
        d.endSession("s1", timeNs: DT.t0) { none.append($0) }
        #expect(none.isEmpty)
        d.evaluate(DT.record("file.open", ["file.path": "/etc/shadow"], seq: 10, at: 5 * s)) { none.append($0) }
        #expect(none.map(\.suppressed) == [0])
    }

    @Test func endSessionDropsPartialSequences() throws {
        let d = Detector(rules: try DT.rules(sequenceRule()))
        var alerts: [Alert] = []
        d.evaluate(DT.record("file.open", read, seq: 1, at: 0)) { alerts.append($0) }
        d.evaluate(DT.record("net.connect", connect, seq: 2, at: s)) { alerts.append($0) }
        d.endSession("s1", timeNs: DT.t0 + 2 * s) { alerts.append($0) }
        d.evaluate(DT.record("net.flow", upload, seq: 3, at: 3 * s)) { alerts.append($0) }
        #expect(alerts.isEmpty)
    }

    @Test func replaceRulesKeepsStateOfUnchangedRules() throws {
        let d = Detector(rules: try DT.rules(simpleRule(suppress: "10m") + "\n" + sequenceRule().replacingOccurrences("rules:\n", "")))
        var alerts: [Alert] = []
        d.evaluate(DT.record("file.open", ["file.path": "/etc/shadow"], seq: 1, at: 0)) { alerts.append($0) }
        d.evaluate(DT.record("file.open", read, seq: 2, at: s)) { alerts.append($0) }
        #expect(alerts.count == 1)
        // Reload with the same rules, a changed title and one new rule: state survives.
        let reloaded = simpleRule(suppress: "10m").replacingOccurrences("title: shadow read", "title: shadow file read")
            + "\n" + sequenceRule().replacingOccurrences("rules:\n", "")
        d.replaceRules(try DT.rules(reloaded))
        d.evaluate(DT.record("file.open", ["file.path": "/etc/shadow"], seq: 3, at: 2 * s)) { alerts.append($0) }
        #expect(alerts.count == 1)
        d.evaluate(DT.record("net.connect", connect, seq: 4, at: 3 * s)) { alerts.append($0) }
        d.evaluate(DT.record("net.flow", upload, seq: 5, at: 4 * s)) { alerts.append($0) }
        #expect(alerts.map(\.evidence) == [[1], [2, 4, 5]])
        #expect(alerts.last?.rule.id == "exfil")
        // A changed condition is a new rule: its suppression starts over.
        d.replaceRules(try DT.rules(simpleRule(suppress: "10m").replacingOccurrences("== /etc/shadow", "in [/etc/shadow, /etc/gshadow]")))
        d.evaluate(DT.record("file.open", ["file.path": "/etc/shadow"], seq: 6, at: 5 * s)) { alerts.append($0) }
        #expect(alerts.map(\.triggerSeq) == [1, 5, 6])
        #expect(d.rules.rules.count == 1)
    }

    @Test func replaceRulesSeesChangedListsAsChangedRules() throws {
        let v1 = simpleRule(suppress: "10m").replacingOccurrences("== /etc/shadow", "in @secrets") + "\nlists:\n  - list: secrets\n    items: [/etc/shadow]\n"
        let v2 = v1.replacingOccurrences("items: [/etc/shadow]", "items: [/etc/shadow, /etc/sudoers]")
        let a = try DT.rules(v1), b = try DT.rules(v2), c = try DT.rules(v1)
        #expect(a.rules[0].program.definition != b.rules[0].program.definition)
        #expect(a.rules[0].program.definition == c.rules[0].program.definition)
        #expect(a.digest == c.digest)
        #expect(a.digest != b.digest)
        #expect(a.digest.count == 64)
    }
}
