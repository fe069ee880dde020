/// Runs rules again over a capture's records, in order, as the daemon ran them live: the same
/// record types (a session process's exec, exit, open, connect, flow, send and dns records), each as a
/// `CapturedRuleInput` over the line as the replay parsed it, with the session's homes from its
/// `session.start`; a session's end settles what the rules still owe (`Detector.endSession`),
/// and each daemon start (`agent.start`) begins with a fresh Detector, as the daemon did.
import AgentDetector
import AgentRecords

final class ReplayRules {
    let rules: RuleSet
    private(set) var detector: Detector
    /// Whether `detector` has evaluated a record since it was made.
    private var used = false
    /// What `~` means per session, from `session.start` (kept until `session.end`), and the
    /// session's uid, which process records do not carry but live rules read.
    private var homes: [String: [String]] = [:]
    private var uids: [String: Int] = [:]
    /// Sessions whose homes are remembered at most (a capture of endless session starts
    /// cannot grow this without end; the oldest half is forgotten).
    static let maxSessions = 100_000
    private let evaluated: Set<RecordType> = [.processExec, .processExit, .fileOpen, .netConnect, .netFlow, .netSend, .netDNS]
    private let typesWithRules: Set<RecordType>

    init(rules: RuleSet) {
        self.rules = rules
        detector = Detector(rules: rules)
        typesWithRules = Set(rules.byType.keys.compactMap { RecordType.byTypeName[$0] })
    }

    /// The record time rules run on: the Detector subtracts record times, which the daemon's
    /// clock keeps close together but a capture may set anywhere, so a time before 1970 or after
    /// 2160 (or none) is given as the nearest of those, and no difference can overflow.
    static func ruleTime(_ t: Int64?) -> Int64 {
        min(max(t ?? 0, 0), 6_000_000_000_000_000_000)
    }

    func daemonStarted() {
        // A Detector compiles its regexes: made again only when the one there has seen records.
        if used { detector = Detector(rules: rules) }
        used = false
    }

    func sessionStarted(_ id: String, homes: [String], uid: Int?) {
        if self.homes.count >= Self.maxSessions {
            for key in self.homes.keys.prefix(Self.maxSessions / 2) {
                self.homes[key] = nil
                uids[key] = nil
            }
        }
        self.homes[id] = homes
        uids[id] = uid
    }

    /// Evaluates one record; `emit` receives each alert it raises.
    func evaluate(_ view: JSONTree.View, type: RecordType, seq: UInt64, timeNs: Int64?, session: String, emit: (Alert) -> Void) {
        guard evaluated.contains(type), typesWithRules.contains(type), !session.isEmpty else { return }
        guard view.isObject else { return }
        used = true
        // The session's uid, which process records do not carry, from its session.start.
        let input = CapturedRuleInput(view, homes: homes[session] ?? [], timeNs: Self.ruleTime(timeNs), sessionUID: .given(uids[session]))
        detector.evaluate(input, emit: emit)
    }

    func sessionEnded(_ id: String, timeNs: Int64?, emit: (Alert) -> Void) {
        if used { detector.endSession(id, timeNs: Self.ruleTime(timeNs), emit: emit) }
        homes[id] = nil
        uids[id] = nil
    }
}
