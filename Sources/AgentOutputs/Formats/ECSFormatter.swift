/// Renders native v1 records as Elastic Common Schema documents (the ECS 9.4 field set, which
/// ECS 8.x shares for every field used here). Every record type is rendered; fields ECS has no
/// place for go under `agentwatch.*`. docs/formats.md has the mapping table.
///
/// Keeps, per session, the first process seen, for `process.entry_leader` (forgotten at the
/// session's `session.end`).
import AgentRecords

package struct ECSFormatter: RecordFormatter {
    /// The ECS release the field table of the tests was taken from.
    package static let ecsVersion: StaticString = "9.4.0"

    var line = FormatInput()
    var w = FormatWriter()
    var leaders = SessionLeaders()
    /// A reused buffer for derived strings (command lines, paths).
    var text: [UInt8] = []

    package init() {
        text.reserveCapacity(4096)
    }

    package mutating func render(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        guard line.read(bytes), let type = line.type else { return false }
        w.ecsRecord(type, &line, &leaders, &text)
        out.append(contentsOf: w.j.written)
        return true
    }
}

extension FormatWriter {
    fileprivate mutating func ecsRecord(_ type: RecordType, _ line: inout FormatInput, _ leaders: inout SessionLeaders, _ text: inout [UInt8]) {
        begin()
        key("@timestamp")
        j.append(line.raw(line.value(.time)))
        open("agent")
        string("type", "agentwatch")
        copyString("version", &line, .agentVersion)
        close()
        open("ecs")
        string("version", ECSFormatter.ecsVersion)
        close()
        ecsEvent(type, &line)
        open("host")
        copyString("name", &line, .hostName)
        if line.value(.hostID).end - line.value(.hostID).start > 2 { copyString("id", &line, .hostID) }
        close()
        ecsLabels(&line)
        open("user")
        if line.has(.process) {
            copyNumberString("id", line, .euid)
        } else {
            copyNumberString("id", line, .sessionUID)
        }
        close()
        if line.has(.process) { ecsProcess(type, &line, &leaders, &text) }
        if type == .sessionEnd {
            line.withString(.sessionID) { leaders.forget($0) }
        }
        if line.has(.file) { ecsFile(&line, &text) }
        if line.has(.net) { ecsNetwork(&line) }
        if line.has(.dns) { ecsDNS(&line) }
        if type == .alert {
            open("rule")
            copyString("id", &line, .ruleID)
            copyString("name", &line, .ruleTitle)
            if line.has(.ruleAuthor) {
                array("author")
                element()
                copyValue(&line, line.value(.ruleAuthor))
                arrayEnd()
            }
            text.removeAll(keepingCapacity: true)
            FormatInput.appendDecoded(line.value(.ruleSource), in: line.bytes, to: &text)
            text.withUnsafeBytes { source in
                // Rule files hold one concern each (credentials.yaml): the file is the ruleset.
                let name = FormatValues.baseName(source)
                let stem = name.lastIndex(of: UInt8(ascii: ".")).map { UnsafeRawBufferPointer(rebasing: name[..<$0]) } ?? name
                if !stem.isEmpty { string("ruleset", bytes: stem) }
            }
            close()
            copy("tags", &line, .ruleTags)
        }
        copyString("message", &line, .message)
        open("error")
        copyString("code", &line, line.has(.file) ? .fileError : .netError)
        close()
        ecsCustom(&line)
        end()
    }

    private mutating func ecsEvent(_ type: RecordType, _ line: inout FormatInput) {
        open("event")
        switch type {
        case .alert: string("kind", "alert")
        case .agentHeartbeat: string("kind", "state")
        default: string("kind", "event")
        }
        switch type {
        case .processExec:
            // A process found running when the daemon started did not start now.
            categories("process", line.equals(.processSource, "procfs") ? "info" : "start")
        case .processExit:
            categories("process", "end")
        case .fileOpen:
            // Not known (result_unseen): no creation or change claimed either.
            let ok = (line.int(.fileResult) ?? -1) >= 0
            let created = ok && line.contains(.fileFlags, "O_CREAT") && line.contains(.fileFlags, "O_EXCL")
            let truncated = ok && line.contains(.fileFlags, "O_TRUNC")
            categories("file", "access", created ? "creation" : nil, truncated ? "change" : nil)
        case .netConnect:
            categories("network", "connection", line.int(.netResult) == 0 || line.equals(.netError, "EINPROGRESS") ? "start" : nil)
        case .netFlow, .netSend:
            categories("network", "connection", line.bool(.netFinal) == true ? "end" : "info")
        case .netDNS:
            categories("network", "protocol")
        case .sessionStart:
            categories("session", "start")
        case .sessionEnd:
            categories("session", "end")
        case .alert:
            categories("intrusion_detection", "info")
        case .agentReload:
            categories("configuration", "change")
        case .agentStart, .agentStop, .agentHeartbeat, .agentLoss:
            break
        }
        string("action", type.name)
        string("module", "agentwatch")
        copy("sequence", &line, .seq)
        copyString("id", &line, .chain)
        switch type {
        case .processExec:
            string("outcome", "success")
        case .fileOpen:
            if let r = line.int(.fileResult) {
                string("outcome", r >= 0 ? "success" : "failure")
            } else {
                // Recorded at submission, its result never posted (file.result_unseen).
                string("outcome", "unknown")
            }
        case .netConnect:
            if line.int(.netResult) == 0 {
                string("outcome", "success")
            } else {
                string("outcome", line.equals(.netError, "EINPROGRESS") ? "unknown" : "failure")
            }
        case .agentReload:
            if let ok = line.bool(.agentOK) { string("outcome", ok ? "success" : "failure") }
        default:
            break
        }
        if type == .alert {
            let severity = FormatValues.severity(line)
            if severity > 0 { uint("severity", severity) }
        }
        if type == .processExit { copy("duration", &line, .durationNs) }
        if type == .netSend {
            // The aggregate's span: its first and last datagram.
            copy("start", &line, .netFirstTime)
            copy("end", &line, .netLastTime)
        }
        if line.has(.sessionStartTime) {
            copy("start", &line, .sessionStartTime)
        }
        if line.has(.sessionEndTime) {
            copy("end", &line, .sessionEndTime)
            if let s = line.unixNanoseconds(.sessionStartTime), let e = line.unixNanoseconds(.sessionEndTime), e >= s {
                int("duration", e - s)
            }
        }
        close()
    }

    /// `"category":["c"],"type":["a","b"...]`
    private mutating func categories(_ category: StaticString, _ t0: StaticString, _ t1: StaticString? = nil, _ t2: StaticString? = nil) {
        array("category")
        quoted(category)
        arrayEnd()
        array("type")
        quoted(t0)
        if let t1 { quoted(t1) }
        if let t2 { quoted(t2) }
        arrayEnd()
    }

    /// `"text"` as the next array element.
    private mutating func quoted(_ text: StaticString) {
        element()
        j.byte(UInt8(ascii: "\""))
        j.raw(text)
        j.byte(UInt8(ascii: "\""))
    }

    /// `labels.agent_session_id`, and the session's labels whose names are plain words.
    private mutating func ecsLabels(_ line: inout FormatInput) {
        open("labels")
        copyString("agent_session_id", &line, .sessionID)
        FormatInput.forEach(line.value(.sessionLabels), in: line.bytes) { key, value in
            guard let key, Self.isLabelName(key, line.bytes) else { return }
            self.key(bytes: UnsafeRawBufferPointer(rebasing: line.bytes[Int(key.start + 1)..<Int(key.end - 1)]))
            copyValue(&line, value)
        }
        close()
    }

    /// A label name ECS takes as it is: 1-64 of [A-Za-z0-9_-] (no dots, which would nest),
    /// not our own `agent_session_id`.
    fileprivate static func isLabelName(_ key: JSONSpan, _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard key.plain else { return false }
        let name = UnsafeRawBufferPointer(rebasing: bytes[Int(key.start + 1)..<Int(key.end - 1)])
        guard (1...64).contains(name.count), !name.elementsEqual("agent_session_id".utf8) else { return false }
        return name.allSatisfy { b in
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
        }
    }

    private mutating func ecsProcess(_ type: RecordType, _ line: inout FormatInput, _ leaders: inout SessionLeaders, _ text: inout [UInt8]) {
        open("process")
        ecsProcessCore(&line, &text)
        open("thread")
        copy("id", &line, .tid)
        close()
        if type == .processExit {
            copy("exit_code", &line, .exitCode)
            copy("end", &line, .time)
        }
        open("previous")
        copyString("executable", &line, .previousExe)
        close()
        // The session's first process: recorded at its first record, shown on every record.
        let session = line.value(.sessionID)
        if session.kind == .string {
            text.removeAll(keepingCapacity: true)
            FormatInput.appendDecoded(session, in: line.bytes, to: &text)
            var leader = text.withUnsafeBytes { leaders.leader($0) }
            if leader == nil {
                var lw = FormatWriter()
                lw.begin()
                var scratch: [UInt8] = []
                lw.ecsProcessCore(&line, &scratch, parentImage: false)
                lw.end()
                var entity: [UInt8] = []
                FormatInput.appendDecoded(line.value(.processEntityID), in: line.bytes, to: &entity)
                let l = SessionLeaders.Leader(session: text, entityID: entity, members: Array(lw.j.bytes.dropFirst().dropLast()))
                leaders.record(l)
                leader = l
            }
            if let leader {
                open("entry_leader")
                members(leader.members)
                var same = false
                line.withString(.processEntityID) { same = leader.entityID.elementsEqual($0) }
                bool("same_as_process", same)
                close()
            }
        }
        close()
    }

    /// The process fields shared by `process` and `process.entry_leader`.
    /// `entry_leader.parent` has ids only in ECS: `parentImage` false leaves out its executable.
    private mutating func ecsProcessCore(_ line: inout FormatInput, _ text: inout [UInt8], parentImage: Bool = true) {
        copyString("entity_id", &line, .processEntityID)
        copy("pid", &line, .pid)
        line.withString(.exe) { exe in
            guard !exe.isEmpty else { return }
            string("executable", bytes: exe)
            let name = FormatValues.baseName(exe)
            if !name.isEmpty { string("name", bytes: name) }
        }
        if line.has(.argv) {
            copy("args", &line, .argv)
            // argc counts what exec was given; argv may be cut short (and is all a process
            // found in /proc shows).
            uint("args_count", line.uint(.argc).flatMap { $0 > 0 ? $0 : nil } ?? FormatValues.argvCount(line))
            FormatValues.commandLine(line, into: &text)
            if !text.isEmpty { text.withUnsafeBytes { string("command_line", bytes: $0) } }
        }
        copyString("working_directory", &line, .cwd)
        copy("start", &line, .processStartTime)
        open("user")
        copyNumberString("id", line, .euid)
        close()
        open("real_user")
        copyNumberString("id", line, .uid)
        close()
        open("real_group")
        copyNumberString("id", line, .gid)
        close()
        open("parent")
        copyString("entity_id", &line, .parentEntityID)
        if line.has(.parentPID) { copy("pid", &line, .parentPID) } else { copy("pid", &line, .ppid) }
        line.withString(.parentExe) { exe in
            guard parentImage, !exe.isEmpty else { return }
            string("executable", bytes: exe)
            let name = FormatValues.baseName(exe)
            if !name.isEmpty { string("name", bytes: name) }
        }
        close()
    }

    private mutating func ecsFile(_ line: inout FormatInput, _ text: inout [UInt8]) {
        open("file")
        text.removeAll(keepingCapacity: true)
        FormatInput.appendDecoded(line.value(.filePath), in: line.bytes, to: &text)
        text.withUnsafeBytes { path in
            string("path", bytes: path)
            let name = FormatValues.baseName(path)
            if !name.isEmpty {
                string("name", bytes: name)
                if let ext = FormatValues.fileExtension(name) { string("extension", bytes: ext) }
            }
            if let dir = FormatValues.directory(path) { string("directory", bytes: dir) }
        }
        // ECS keywords: the inode as its decimal string, the device as MAJOR:MINOR.
        copyNumberString("inode", line, .fileInode)
        copyString("device", &line, .fileDevice)
        close()
    }

    private mutating func ecsNetwork(_ line: inout FormatInput) {
        let ip = line.equals(.netFamily, "ipv4") || line.equals(.netFamily, "ipv6")
        open("network")
        // A DNS answer came in to the session's socket; everything else is the session's going out.
        string("direction", line.equals(.dnsDirection, "answer") ? "ingress" : "egress")
        if line.equals(.netFamily, "ipv4") { string("type", "ipv4") }
        if line.equals(.netFamily, "ipv6") { string("type", "ipv6") }
        if ip, let proto = FormatValues.ipProtocol(line) {
            string("transport", proto.name)
            uintString("iana_number", proto.number)
        }
        if line.has(.dns) { string("protocol", "dns") }
        if let sent = line.uint(.netBytesSent), let received = line.uint(.netBytesReceived) {
            let (sum, overflow) = sent.addingReportingOverflow(received)
            if !overflow { uint("bytes", sum) }
        } else if let sent = line.uint(.netBytesSent) {
            // net.send: nothing is received without a connection.
            uint("bytes", sent)
        }
        copy("packets", &line, .netDatagrams)
        close()
        open("destination")
        copyString("address", &line, line.has(.netDaddr) ? .netDaddr : .netPath)
        ecsIP(&line, .netDaddr)
        copy("port", &line, .netDport)
        copyString("domain", &line, .netDname)
        copy("bytes", &line, .netBytesReceived)
        close()
        open("source")
        copyString("address", &line, .netSaddr)
        ecsIP(&line, .netSaddr)
        copy("port", &line, .netSport)
        copy("bytes", &line, .netBytesSent)
        copy("packets", &line, .netDatagrams)
        close()
    }

    /// `dns.*`: the message a session sent (query) or received (answer).
    private mutating func ecsDNS(_ line: inout FormatInput) {
        open("dns")
        copy("type", &line, .dnsDirection)
        copyNumberString("id", line, .dnsID)
        open("question")
        copyString("name", &line, .dnsName)
        copyString("type", &line, .dnsType)
        close()
        copy("header_flags", &line, .dnsFlags)
        copyString("response_code", &line, .dnsRcode)
        copy("answers", &line, .dnsAnswers)
        copy("resolved_ip", &line, .dnsResolvedIP)
        close()
    }

    /// `ip` when the native address parses as one (ECS `ip` fields reject anything else).
    private mutating func ecsIP(_ line: inout FormatInput, _ f: RecordField) {
        let valid = line.withString(f) { FormatValues.addressScope($0) != .invalid } ?? false
        if valid { copyString("ip", &line, f) }
    }

    /// `agentwatch.*`: what ECS has no field for, under its native names.
    private mutating func ecsCustom(_ line: inout FormatInput) {
        open("agentwatch")
        copy(&line, Self.customRecord)
        copy("process", &line, Self.customProcess)
        open("session")
        copy(&line, Self.customSession)
        open("labels")
        FormatInput.forEach(line.value(.sessionLabels), in: line.bytes) { key, value in
            guard let key, !Self.isLabelName(key, line.bytes) else { return }
            copyKey(&line, key)
            copyValue(&line, value)
        }
        close()
        close()
        copy("file", &line, RecordField.openDetails)
        open("net")
        // Family and transport have ECS homes for IP sockets only.
        let ip = line.equals(.netFamily, "ipv4") || line.equals(.netFamily, "ipv6")
        if !ip { copy("family", &line, .netFamily) }
        if !ip || FormatValues.ipProtocol(line) == nil { copy("transport", &line, .netTransport) }
        copy(&line, Self.customNet)
        close()
        copy("dns", &line, Self.customDNS)
        copy("rule", &line, Self.customRule)
        copy("alert", &line, RecordField.alertDetails)
        copy(&line, Self.customAgent)
        close()
    }

    private static let customRecord: [RecordField] = [.v, .seq, .chain]
    private static let customRule: [RecordField] = [.ruleSeverity, .ruleSource]
    private static let customAgent: [RecordField] = [.agent, .loss]
    private static let customProcess: [RecordField] = [
        .comm, .auid, .auditSessionID, .argvTruncated, .processSource, .filename, .signal, .coreDumped, .stdin, .stdout, .stderr,
        .exeFileless, .exeDeleted, .exeInode, .exeDevice, .exeMountID, .exeWritten, .exeWrittenBy,
    ]
    private static let customSession: [RecordField] = [.sessionCgroup, .sessionCgroupID, .sessionAdopted, .sessionHomes, .sessionCounts]
    private static let customNet: [RecordField] = [
        .netV4Mapped, .netAbstract, .netFD, .netResult, .netBytesSentDelta, .netBytesReceivedDelta, .netFinal,
        .netVia, .netDatagramsDelta, .netEvicted,
    ]
    private static let customDNS: [RecordField] = [.dnsCut, .dnsUnmatched]
}
