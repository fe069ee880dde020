/// One line of a replay's timeline: a record of the capture (an exec, an open, a connect, an
/// alert...) or something the replay found between records (a seq gap, a chain break, a line it
/// could not read). Every string is already made safe to show (`ReplayText`).
struct ReplayEvent {
    enum Kind: UInt8 {
        case exec, exit, open, connect, flow, send, dns
        case sessionStart, sessionEnd
        case alert, replayedAlert
        case loss, gap, broken, restart, anchor, problem
        case agent, unknown

        /// A finding about the capture itself rather than about what a session did.
        var isIntegrity: Bool {
            switch self {
            case .loss, .gap, .broken, .restart, .anchor, .problem: true
            default: false
            }
        }

        var label: String {
            switch self {
            case .exec: "exec"
            case .exit: "exit"
            case .open: "open"
            case .connect: "connect"
            case .flow: "flow"
            case .send: "send"
            case .dns: "dns"
            case .sessionStart: "session"
            case .sessionEnd: "session"
            case .alert: "ALERT"
            case .replayedAlert: "ALERT"
            case .loss: "LOSS"
            case .gap: "GAP"
            case .broken: "BROKEN"
            case .restart: "restart"
            case .anchor: "anchor"
            case .problem: "SKIPPED"
            case .agent: "agent"
            case .unknown: "unknown"
            }
        }
    }

    var kind: Kind
    /// The record's seq; 0 for a finding that is not a record.
    var seq: UInt64
    /// Record time (Unix ns); nil when the record carries none readable.
    var timeNs: Int64?
    /// The session, or "" for what concerns the whole stream.
    var session: String
    /// `comm[pid]` of the process, or "".
    var process: String
    /// The process's entity id, or "".
    var entityID: String
    /// What happened, safe to show.
    var text: String
    /// For alerts: the severity.
    var severity: String = ""
    /// Where in the capture: `FILE:LINE`.
    var location: CaptureLocation
}

/// A place in the capture: `FILE:LINE` (line 0: the file as a whole).
struct CaptureLocation: CustomStringConvertible {
    let file: String
    let line: Int
    var description: String { line > 0 ? "\(file):\(line)" : file }
}
