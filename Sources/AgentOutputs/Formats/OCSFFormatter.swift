/// Renders native v1 records as OCSF 1.8.0 events: `process.exec`/`process.exit` as Process
/// Activity (1007), `file.open` as File System Activity (1001), `net.connect`/`net.flow`/`net.send`
/// as Network Activity (4001), `net.dns` as DNS Activity (4003: Query or Response), `alert` as Detection Finding (2004), `agent.start`/`agent.stop` as
/// Event Log Activity (1008: agentwatch is the event logging service). Native fields OCSF has no
/// attribute for go under `unmapped`. docs/formats.md has the mapping table.
///
/// Not rendered (`render` returns false): `session.start`, `session.end`, `agent.heartbeat`,
/// `agent.reload` and `agent.loss` — no OCSF 1.8.0 class describes a watched session's cgroup
/// appearing or going, a liveness beat, a rules reload or lost records.
import AgentRecords
import AgentSupport

package struct OCSFFormatter: RecordFormatter {
    package static let schemaVersion: StaticString = "1.8.0"

    var line = FormatInput()
    var w = FormatWriter()
    var text: [UInt8] = []

    package init() {
        text.reserveCapacity(4096)
    }

    package mutating func render(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        guard line.read(bytes), let type = line.type, let event = OCSFEvent(type, line) else { return false }
        w.ocsfRecord(event, type, &line, &text)
        out.append(contentsOf: w.j.written)
        return true
    }
}

extension FormatWriter {
    fileprivate mutating func ocsfRecord(_ e: OCSFEvent, _ type: RecordType, _ line: inout FormatInput, _ text: inout [UInt8]) {
        begin()
        uint("class_uid", e.classUID)
        string("class_name", e.className)
        uint("category_uid", e.categoryUID)
        string("category_name", e.categoryName)
        uint("activity_id", e.activityID)
        string("activity_name", e.activityName)
        uint("type_uid", e.classUID * 100 + e.activityID)
        string("type_name", e.typeName)
        let severity = type == .alert ? FormatValues.severity(line) : 1
        uint("severity_id", severity)
        string("severity", Self.severityName(severity))
        if let ns = line.unixNanoseconds(.time) { int("time", Self.milliseconds(ns)) }
        ocsfStatus(type, &line)
        copyString("message", &line, .message)
        ocsfMetadata(type, &line)
        open("device")
        uint("type_id", 0)
        string("type", "Unknown")
        copyString("hostname", &line, .hostName)
        if line.value(.hostID).end - line.value(.hostID).start > 2 { copyString("uid", &line, .hostID) }
        close()
        switch type {
        case .processExec, .processExit:
            ocsfProcessActivity(type, &line, &text)
        case .fileOpen:
            open("actor")
            ocsfProcess("process", &line, &text)
            ocsfUser(&line)
            close()
            ocsfFile(&line, &text)
        case .netConnect, .netFlow, .netSend:
            open("actor")
            ocsfProcess("process", &line, &text)
            ocsfUser(&line)
            close()
            ocsfNetwork(&line)
        case .netDNS:
            open("actor")
            ocsfProcess("process", &line, &text)
            ocsfUser(&line)
            close()
            ocsfNetwork(&line)
            ocsfDNS(&line)
        case .alert:
            ocsfFinding(&line, &text)
        case .agentStart, .agentStop:
            string("log_provider", "agentwatch")
            copyString("log_name", &line, .agentOutput)
        default:
            break
        }
        ocsfUnmapped(&line)
        end()
    }

    fileprivate static func severityName(_ id: UInt64) -> StaticString {
        switch id {
        case 1: "Informational"
        case 2: "Low"
        case 3: "Medium"
        case 4: "High"
        case 5: "Critical"
        default: "Unknown"
        }
    }

    /// OCSF `timestamp_t`: milliseconds since the epoch.
    fileprivate static func milliseconds(_ ns: Int64) -> Int64 {
        ns >= 0 ? ns / 1_000_000 : (ns - 999_999) / 1_000_000
    }

    private mutating func ocsfTime(_ name: StaticString, _ line: FormatInput, _ f: RecordField) {
        if let ns = line.unixNanoseconds(f) { int(name, Self.milliseconds(ns)) }
    }

    private mutating func ocsfStatus(_ type: RecordType, _ line: inout FormatInput) {
        switch type {
        case .processExec:
            uint("status_id", 1); string("status", "Success")
        case .fileOpen:
            if !line.has(.fileResult) {
                // Recorded at submission, its result never posted (file.result_unseen).
                uint("status_id", 0); string("status", "Unknown")
            } else if (line.int(.fileResult) ?? -1) >= 0 {
                uint("status_id", 1); string("status", "Success")
            } else {
                uint("status_id", 2); string("status", "Failure")
                copyString("status_code", &line, .fileError)
            }
        case .netConnect:
            if line.int(.netResult) == 0 {
                uint("status_id", 1); string("status", "Success")
            } else if line.equals(.netError, "EINPROGRESS") {
                // Non-blocking: the connection was still being made when connect returned.
                uint("status_id", 0); string("status", "Unknown")
                copyString("status_code", &line, .netError)
            } else {
                uint("status_id", 2); string("status", "Failure")
                copyString("status_code", &line, .netError)
            }
        case .netDNS where line.has(.dnsRcode):
            if line.equals(.dnsRcode, "NOERROR") {
                uint("status_id", 1); string("status", "Success")
            } else {
                uint("status_id", 2); string("status", "Failure")
                copyString("status_code", &line, .dnsRcode)
            }
        case .alert:
            uint("status_id", 1); string("status", "New")
        default:
            break
        }
    }

    private mutating func ocsfMetadata(_ type: RecordType, _ line: inout FormatInput) {
        open("metadata")
        string("version", OCSFFormatter.schemaVersion)
        open("product")
        string("name", "agentwatch")
        string("vendor_name", "agentwatch")
        key("version")
        j.string(AgentVersion.string)
        close()
        // The network classes take actor and device from the host profile.
        if type == .netConnect || type == .netFlow || type == .netSend || type == .netDNS {
            array("profiles")
            element()
            j.raw("\"host\"")
            arrayEnd()
        }
        copyString("uid", &line, .chain)
        copy("sequence", &line, .seq)
        copyString("original_time", &line, .time)
        copyString("correlation_uid", &line, .sessionID)
        close()
    }

    private mutating func ocsfProcessActivity(_ type: RecordType, _ line: inout FormatInput, _ text: inout [UInt8]) {
        open("actor")
        if type == .processExec {
            // Who launched the program: the parent (the exec itself keeps the pid).
            ocsfParent("process", &line)
        } else {
            // A process that exits ends itself.
            open("process")
            ocsfProcessIdentity(&line)
            close()
        }
        close()
        ocsfProcess("process", &line, &text)
        if type == .processExec, line.equals(.processSource, "kernel") {
            uint("launch_type_id", 3)
            string("launch_type", "Exec")
        }
        if type == .processExit {
            copy("exit_code", &line, .exitCode)
            if let ns = line.uint(.durationNs) { uint("duration", ns / 1_000_000) }
        }
    }

    /// pid, uid (the entity id), name and path of the record's process.
    private mutating func ocsfProcessIdentity(_ line: inout FormatInput) {
        copy("pid", &line, .pid)
        copyString("uid", &line, .processEntityID)
        line.withString(.exe) { exe in
            guard !exe.isEmpty else { return }
            let name = FormatValues.baseName(exe)
            if !name.isEmpty { string("name", bytes: name) }
            string("path", bytes: exe)
        }
    }

    private mutating func ocsfParent(_ name: StaticString, _ line: inout FormatInput) {
        open(name)
        if line.has(.parentPID) { copy("pid", &line, .parentPID) } else { copy("pid", &line, .ppid) }
        copyString("uid", &line, .parentEntityID)
        line.withString(.parentExe) { exe in
            guard !exe.isEmpty else { return }
            let name = FormatValues.baseName(exe)
            if !name.isEmpty { string("name", bytes: name) }
            string("path", bytes: exe)
        }
        close()
    }

    private mutating func ocsfProcess(_ name: StaticString, _ line: inout FormatInput, _ text: inout [UInt8]) {
        open(name)
        ocsfProcessIdentity(&line)
        if line.has(.argv) {
            FormatValues.commandLine(line, into: &text)
            text.withUnsafeBytes { string("cmd_line", bytes: $0) }
        }
        ocsfTime("created_time", line, .processStartTime)
        copyString("working_directory", &line, .cwd)
        copy("ptid", &line, .tid)
        open("user")
        copyNumberString("uid", line, .euid)
        close()
        ocsfParent("parent_process", &line)
        if line.type == .processExit { ocsfTime("terminated_time", line, .time) }
        close()
    }

    private mutating func ocsfUser(_ line: inout FormatInput) {
        open("user")
        copyNumberString("uid", line, .euid)
        close()
    }

    private mutating func ocsfFile(_ line: inout FormatInput, _ text: inout [UInt8]) {
        open("file")
        text.removeAll(keepingCapacity: true)
        FormatInput.appendDecoded(line.value(.filePath), in: line.bytes, to: &text)
        let ok = (line.int(.fileResult) ?? -1) >= 0
        text.withUnsafeBytes { path in
            let name = FormatValues.baseName(path)
            // name is required: the root directory is named by its path.
            string("name", bytes: name.isEmpty ? path : name)
            string("path", bytes: path)
            if let dir = FormatValues.directory(path) { string("parent_folder", bytes: dir) }
            if let ext = FormatValues.fileExtension(name) { string("ext", bytes: ext) }
        }
        // O_DIRECTORY succeeds on directories only; otherwise the kind is not known.
        if ok && line.contains(.fileFlags, "O_DIRECTORY") {
            uint("type_id", 2); string("type", "Folder")
        } else {
            uint("type_id", 0); string("type", "Unknown")
        }
        close()
    }

    private mutating func ocsfNetwork(_ line: inout FormatInput) {
        let ip = line.equals(.netFamily, "ipv4") || line.equals(.netFamily, "ipv6")
        // The connecting end is this host.
        open("src_endpoint")
        copyString("hostname", &line, .hostName)
        ocsfIP(&line, .netSaddr)
        copy("port", &line, .netSport)
        close()
        open("dst_endpoint")
        ocsfIP(&line, .netDaddr)
        copy("port", &line, .netDport)
        // The name the session resolved the address from.
        copyString("hostname", &line, .netDname)
        // A unix socket is known by its path only.
        copyString("name", &line, .netPath)
        close()
        open("connection_info")
        let scope = line.withString(.netDaddr) { FormatValues.addressScope($0) } ?? .invalid
        switch scope {
        case _ where line.equals(.netFamily, "unix"), .loopback:
            uint("direction_id", 4); string("direction", "Local")
        case .privateNetwork:
            uint("direction_id", 3); string("direction", "Lateral")
        case .other:
            uint("direction_id", 2); string("direction", "Outbound")
        case .invalid:
            uint("direction_id", 0); string("direction", "Unknown")
        }
        if ip, let proto = FormatValues.ipProtocol(line) {
            string("protocol_name", proto.name)
            uint("protocol_num", proto.number)
        }
        if line.equals(.netFamily, "ipv4") {
            uint("protocol_ver_id", 4); string("protocol_ver", "Internet Protocol version 4 (IPv4)")
        } else if line.equals(.netFamily, "ipv6") {
            uint("protocol_ver_id", 6); string("protocol_ver", "Internet Protocol version 6 (IPv6)")
        }
        close()
        // traffic: since this socket's previous record; cumulative_traffic: since it opened.
        ocsfTraffic("traffic", line, out: .netBytesSentDelta, in: .netBytesReceivedDelta)
        ocsfTraffic("cumulative_traffic", line, out: .netBytesSent, in: .netBytesReceived)
        // net.send: to one destination, outgoing only, in datagrams too.
        ocsfSent("traffic", line, bytes: .netBytesSentDelta, packets: .netDatagramsDelta, span: false)
        ocsfSent("cumulative_traffic", line, bytes: .netBytesSent, packets: .netDatagrams, span: true)
    }

    private mutating func ocsfSent(_ name: StaticString, _ line: FormatInput, bytes: RecordField, packets: RecordField, span: Bool) {
        guard !line.has(.netBytesReceived), let b = line.uint(bytes), let p = line.uint(packets) else { return }
        open(name)
        uint("bytes_out", b)
        uint("bytes", b)
        uint("packets_out", p)
        uint("packets", p)
        if span {
            ocsfTime("start_time", line, .netFirstTime)
            ocsfTime("end_time", line, .netLastTime)
        }
        close()
    }

    /// DNS Activity: the question (its id is the packet's) and, for a response, the answers
    /// that have data and the response code.
    private mutating func ocsfDNS(_ line: inout FormatInput) {
        if line.has(.dnsName) {
            open("query")
            copyString("hostname", &line, .dnsName)
            copyString("type", &line, .dnsType)
            string("class", "IN")
            uint("opcode_id", 0)
            copy("packet_uid", &line, .dnsID)
            close()
        }
        if line.has(.dnsRcode) {
            let (rcodeID, caption) = Self.rcode(line)
            uint("rcode_id", rcodeID)
            string("rcode", caption)
            var any = false
            let id = line.value(.dnsID)
            FormatInput.forEach(line.value(.dnsAnswers), in: line.bytes) { _, answer in
                var data: JSONSpan?, type: JSONSpan?, ttl: JSONSpan?
                FormatInput.forEach(answer, in: line.bytes) { key, value in
                    guard let key else { return }
                    let k = UnsafeRawBufferPointer(rebasing: line.bytes[Int(key.start)..<Int(key.end)])
                    if k.elementsEqual("\"data\"".utf8), value.kind == .string { data = value }
                    if k.elementsEqual("\"type\"".utf8), value.kind == .string { type = value }
                    if k.elementsEqual("\"ttl\"".utf8), value.kind == .number { ttl = value }
                }
                guard let data else { return }
                if !any { array("answers"); any = true }
                elementObject()
                key("rdata"); copyValue(&line, data)
                if let type { key("type"); copyValue(&line, type) }
                if let ttl { key("ttl"); copyValue(&line, ttl) }
                string("class", "IN")
                if id.kind == .number { key("packet_uid"); copyValue(&line, id) }
                close()
            }
            if any { arrayEnd() }
        }
    }

    /// OCSF's rcode_id and its caption for the record's response code (the ids are the RFC's
    /// codes; one OCSF does not name is Other, the native name is in status_code).
    private static func rcode(_ line: FormatInput) -> (UInt64, StaticString) {
        let names: [(StaticString, UInt64, StaticString)] = [
            ("NOERROR", 0, "NoError"), ("FORMERR", 1, "FormError"), ("SERVFAIL", 2, "ServError"), ("NXDOMAIN", 3, "NXDomain"),
            ("NOTIMP", 4, "NotImp"), ("REFUSED", 5, "Refused"), ("YXDOMAIN", 6, "YXDomain"), ("YXRRSET", 7, "YXRRSet"),
            ("NXRRSET", 8, "NXRRSet"), ("NOTAUTH", 9, "NotAuth"), ("NOTZONE", 10, "NotZone"),
        ]
        for (name, id, caption) in names where line.equals(.dnsRcode, name) { return (id, caption) }
        return (99, "Other")
    }

    private mutating func ocsfTraffic(_ name: StaticString, _ line: FormatInput, out: RecordField, in: RecordField) {
        guard let o = line.uint(out), let i = line.uint(`in`) else { return }
        open(name)
        uint("bytes_out", o)
        uint("bytes_in", i)
        let (sum, overflow) = o.addingReportingOverflow(i)
        if !overflow { uint("bytes", sum) }
        close()
    }

    private mutating func ocsfIP(_ line: inout FormatInput, _ f: RecordField) {
        let valid = line.withString(f) { FormatValues.addressScope($0) != .invalid } ?? false
        if valid { copyString("ip", &line, f) }
    }

    private mutating func ocsfFinding(_ line: inout FormatInput, _ text: inout [UInt8]) {
        bool("is_alert", true)
        open("finding_info")
        copyString("uid", &line, .chain)
        copyString("title", &line, .ruleTitle)
        copyString("desc", &line, .message)
        ocsfTime("created_time", line, .time)
        var evidence: UInt64 = 0
        line.forEach(.evidence) { _, _ in evidence += 1 }
        if evidence > 0 { uint("related_events_count", evidence) }
        open("analytic")
        copyString("uid", &line, .ruleID)
        copyString("name", &line, .ruleTitle)
        uint("type_id", 1)
        string("type", "Rule")
        close()
        close()
        if line.has(.process) {
            array("evidences")
            elementObject()
            ocsfProcess("process", &line, &text)
            close()
            arrayEnd()
        }
    }

    /// `unmapped`: the native fields OCSF has no attribute for, under their native paths.
    private mutating func ocsfUnmapped(_ line: inout FormatInput) {
        open("unmapped")
        copy("process", &line, Self.unmappedProcess)
        copy("session", &line, Self.unmappedSession)
        copy("file", &line, RecordField.openDetailsAndIdentity)
        copy("net", &line, Self.unmappedNet)
        copy("dns", &line, Self.unmappedDNS)
        copy("rule", &line, Self.unmappedRule)
        copy(&line, RecordField.alertDetails)
        copy("agent", &line, .agent)
        close()
    }

    private static let unmappedProcess: [RecordField] = [
        .uid, .gid, .auid, .auditSessionID, .comm, .argv, .argvTruncated, .argc, .processSource, .previousExe, .filename,
        .signal, .coreDumped, .durationNs, .stdin, .stdout, .stderr,
        .exeFileless, .exeDeleted, .exeInode, .exeDevice, .exeMountID, .exeWritten, .exeWrittenBy,
    ]
    private static let unmappedSession: [RecordField] = [.sessionCgroup, .sessionLabels]
    private static let unmappedRule: [RecordField] = [.ruleSeverity, .ruleTags, .ruleSource, .ruleAuthor]
    private static let unmappedNet: [RecordField] = [
        .netFamily, .netV4Mapped, .netTransport, .netAbstract, .netFD, .netResult, .netFinal, .netVia, .netEvicted,
    ]
    private static let unmappedDNS: [RecordField] = [.dnsDirection, .dnsFlags, .dnsResolvedIP, .dnsCut, .dnsUnmatched]
}
