/// The record types of NDJSON v1.
package enum RecordType: UInt8, CaseIterable, Sendable {
    case processExec, processExit, fileOpen, netConnect, sessionStart, sessionEnd
    case agentStart, agentStop, agentHeartbeat, agentLoss
    case netFlow, alert
    case agentReload

    package var name: StaticString {
        switch self {
        case .processExec: "process.exec"
        case .processExit: "process.exit"
        case .fileOpen: "file.open"
        case .netConnect: "net.connect"
        case .sessionStart: "session.start"
        case .sessionEnd: "session.end"
        case .agentStart: "agent.start"
        case .agentStop: "agent.stop"
        case .agentHeartbeat: "agent.heartbeat"
        case .agentLoss: "agent.loss"
        case .netFlow: "net.flow"
        case .alert: "alert"
        case .agentReload: "agent.reload"
        }
    }
}
