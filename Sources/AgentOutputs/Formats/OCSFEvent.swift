import AgentRecords

/// The class and activity a native record becomes.
struct OCSFEvent {
    var classUID: UInt64
    var className: StaticString
    var categoryUID: UInt64
    var categoryName: StaticString
    var activityID: UInt64
    var activityName: StaticString
    package var typeName: StaticString

    init?(_ type: RecordType, _ line: FormatInput) {
        switch type {
        case .processExec:
            self.init(1007, "Process Activity", 1, "System Activity", 1, "Launch", "Process Activity: Launch")
        case .processExit:
            self.init(1007, "Process Activity", 1, "System Activity", 2, "Terminate", "Process Activity: Terminate")
        case .fileOpen:
            self.init(1001, "File System Activity", 1, "System Activity", 14, "Open", "File System Activity: Open")
        case .netConnect:
            if line.int(.netResult) == 0 || line.equals(.netError, "EINPROGRESS") {
                self.init(4001, "Network Activity", 4, "Network Activity", 1, "Open", "Network Activity: Open")
            } else if line.equals(.netError, "ECONNREFUSED") {
                self.init(4001, "Network Activity", 4, "Network Activity", 5, "Refuse", "Network Activity: Refuse")
            } else {
                self.init(4001, "Network Activity", 4, "Network Activity", 4, "Fail", "Network Activity: Fail")
            }
        case .netFlow:
            if line.bool(.netFinal) == true {
                self.init(4001, "Network Activity", 4, "Network Activity", 2, "Close", "Network Activity: Close")
            } else {
                self.init(4001, "Network Activity", 4, "Network Activity", 6, "Traffic", "Network Activity: Traffic")
            }
        case .netSend:
            if line.bool(.netFinal) == true {
                self.init(4001, "Network Activity", 4, "Network Activity", 2, "Close", "Network Activity: Close")
            } else {
                self.init(4001, "Network Activity", 4, "Network Activity", 6, "Traffic", "Network Activity: Traffic")
            }
        case .netDNS:
            if line.equals(.dnsDirection, "answer") {
                self.init(4003, "DNS Activity", 4, "Network Activity", 2, "Response", "DNS Activity: Response")
            } else {
                self.init(4003, "DNS Activity", 4, "Network Activity", 1, "Query", "DNS Activity: Query")
            }
        case .alert:
            self.init(2004, "Detection Finding", 2, "Findings", 1, "Create", "Detection Finding: Create")
        case .agentStart:
            self.init(1008, "Event Log Activity", 1, "System Activity", 6, "Start", "Event Log Activity: Start")
        case .agentStop:
            self.init(1008, "Event Log Activity", 1, "System Activity", 7, "Stop", "Event Log Activity: Stop")
        case .sessionStart, .sessionEnd, .agentHeartbeat, .agentReload, .agentLoss:
            return nil
        }
    }

    private init(_ classUID: UInt64, _ className: StaticString, _ categoryUID: UInt64, _ categoryName: StaticString,
                 _ activityID: UInt64, _ activityName: StaticString, _ typeName: StaticString) {
        self.classUID = classUID
        self.className = className
        self.categoryUID = categoryUID
        self.categoryName = categoryName
        self.activityID = activityID
        self.activityName = activityName
        self.typeName = typeName
    }
}
