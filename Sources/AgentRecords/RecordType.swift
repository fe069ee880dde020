/// The record types of NDJSON v1.
package enum RecordType: UInt8, CaseIterable, Sendable {
    case processExec, processExit, fileOpen, netConnect, sessionStart, sessionEnd
    case agentStart, agentStop, agentHeartbeat, agentLoss
    case netFlow, alert
    case agentReload
    case netSend, netDNS

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
        case .netSend: "net.send"
        case .netDNS: "net.dns"
        }
    }
}

/// A set of record types, as a small bit set so membership costs nothing.
package struct RecordTypeSet: OptionSet, Sendable, Hashable {
    package let rawValue: UInt32

    package init(rawValue: UInt32) { self.rawValue = rawValue }
    package init(_ types: [RecordType]) {
        rawValue = types.reduce(0) { $0 | (1 << UInt32($1.rawValue)) }
    }

    package func contains(_ type: RecordType) -> Bool { rawValue & (1 << UInt32(type.rawValue)) != 0 }

    package static let all = RecordTypeSet(RecordType.allCases)
    /// The records of a session's processes (an alert carries its trigger's process).
    package static let processRecords = RecordTypeSet([.processExec, .processExit, .fileOpen, .netConnect, .netFlow, .netSend, .netDNS, .alert])
    /// The records that belong to a session.
    package static let sessionBound = processRecords.union(RecordTypeSet([.sessionStart, .sessionEnd]))
    package static let execRecords = RecordTypeSet([.processExec, .alert])
    package static let exitRecords = RecordTypeSet([.processExit, .alert])
    package static let sessionStartEnd = RecordTypeSet([.sessionStart, .sessionEnd])
    package static let sessionStart = RecordTypeSet([.sessionStart])
    package static let sessionEnd = RecordTypeSet([.sessionEnd])
    package static let fileOpen = RecordTypeSet([.fileOpen])
    package static let net = RecordTypeSet([.netConnect, .netFlow, .netSend, .netDNS])
    package static let netConnect = RecordTypeSet([.netConnect])
    package static let netFlow = RecordTypeSet([.netFlow])
    package static let netSend = RecordTypeSet([.netSend])
    package static let netDNS = RecordTypeSet([.netDNS])
    /// Bytes sent: through a connected socket (net.flow) or without a connection (net.send).
    package static let netSent = RecordTypeSet([.netFlow, .netSend])
    /// The records of a connect: its addresses, unix paths included.
    package static let netConnected = RecordTypeSet([.netConnect, .netFlow])
    /// The records whose destination may carry the name the session resolved it from.
    package static let netNamed = RecordTypeSet([.netConnect, .netFlow, .netSend])
    package static let alert = RecordTypeSet([.alert])
    /// The daemon's own records that carry `agent`.
    package static let agent = RecordTypeSet([.agentStart, .agentStop, .agentHeartbeat, .agentReload])
    package static let agentStart = RecordTypeSet([.agentStart])
    package static let agentStop = RecordTypeSet([.agentStop])
    package static let agentStartStop = RecordTypeSet([.agentStart, .agentStop])
    package static let agentReload = RecordTypeSet([.agentReload])
    package static let agentRules = RecordTypeSet([.agentStart, .agentReload])
    package static let agentLoss = RecordTypeSet([.agentLoss])
}
