/// The field catalogue: every field of every record type of the NDJSON v1 format, once, with
/// its JSON path, its JSON type and the record types that carry it
/// (schema/agentwatch-record.schema.json, which `DetectorCatalogueTests` holds it to). The output
/// formats read records through its table (`RecordField.table`), the rule fields are made from
/// it (`RuleField` in AgentDetector), and the schema tests check it.
package enum RecordField: Int, CaseIterable, Sendable {
    case v, seq, time, type, host, chain, session, process, file, net, rule, message, evidence, suppressed
    case agent, loss, hostName, hostID, sessionID, sessionCgroup, sessionLabels, sessionCgroupID
    case sessionUID, sessionAdopted, sessionUndecoded, sessionSensor, sessionSensorTier, sessionSensorSees, sessionSensorBlind, sessionStartTime, sessionEndTime, sessionCounts, sessionHomes, tid
    case processEntityID, pid, ppid, uid, gid, euid, auid, auditSessionID, comm, exe, argv, argvTruncated
    case cwd, processStartTime, processSource, parent, argc, previousExe, filename, stdin, stdout, stderr
    case exitCode, signal, coreDumped, durationNs, stdinType, stdinIno, stdoutType, stdoutIno, stderrType
    case stderrIno, parentEntityID, parentPID, parentExe, filePath, fileRequestedPath, filePathTruncated
    case exeFileless, exeDeleted, exeInode, exeDevice, exeMountID, exeWritten, exeWrittenBy
    case stdinDevice, stdinDriver, stdinDriverPID, stdinDriverEntityID, stdinDriverExe, stdinDriverInet
    case fileDirfd, fileFlags, fileMode, fileResult, fileError, netFamily, netV4Mapped, netTransport
    case fileVia, fileIA32, fileFixedFile, fileResultUnseen, fileInode, fileDevice, fileMountID
    case netDaddr, netDport, netSaddr, netSport, netPath, netAbstract, netFD, netResult, netError
    case netBytesSent, netBytesReceived, netBytesSentDelta, netBytesReceivedDelta, netFinal, ruleID
    case ruleTitle, ruleSeverity, ruleTags, ruleSource, ruleAuthor, agentVersion, agentPID, agentKernel
    case agentOutput, agentSessionRoots, agentFeatures, agentRules, agentChainPrev, agentChainStart
    case agentSensor, agentSensorTier, agentSensorForced, agentSensorHooks, agentSensorRefused
    case agentPreviousRun, agentRecords, agentKernelDropped, agentDecodeRejected, agentSessions, agentOK
    case agentErrors, agentError, agentOutputs, agentOutputsStarted, agentOutputsStopped
    case agentRestartRequired, agentRulesCount, agentRulesDigest, previousRunEnded, previousRunLastSeq
    case previousRunLastTime, previousRunLastType, previousRunCutBytes, lossKernelDropped
    case lossKernelDroppedTotal, lossQueueDropped, lossReportedBy, lossSink, lossFirstSeq, lossLastSeq
    /// The credential catalog path of the file a `file.open` reached under another path.
    case fileKnownAs
    case netVia, netDname, netDatagrams, netDatagramsDelta, netFirstTime, netLastTime, netEvicted
    case dns, dnsDirection, dnsID, dnsName, dnsType, dnsFlags, dnsRcode, dnsAnswers, dnsResolvedIP, dnsCut, dnsUnmatched
    /// A session's pauses (`overflow: throttle`), and the daemon's at its stop.
    case sessionThrottle, sessionThrottlePauses, sessionThrottlePausedMs
    case agentThrottle, agentThrottlePauses, agentThrottlePausedMs, agentThrottleForcedResumes

    /// Where a field is and what it holds.
    package struct Spec: Sendable {
        /// The object field it is a member of; nil at the top level.
        package let parent: RecordField?
        /// Its member name.
        package let key: StaticString
        package let kind: JSONKind
        /// What an array's elements are (`absent` for other fields).
        package let element: JSONKind
        /// The record types that carry it (when they do: many fields are optional).
        package let types: RecordTypeSet
        /// An RFC 3339 time (the schema's `timestamp`).
        package let isTime: Bool

        init(_ parent: RecordField?, _ key: StaticString, _ kind: JSONKind, element: JSONKind = .absent, in types: RecordTypeSet,
             time: Bool = false) {
            self.parent = parent
            self.key = key
            self.kind = kind
            self.element = element
            self.types = types
            isTime = time
        }
    }

    package var spec: Spec { Self.specs[rawValue] }
    package var key: StaticString { spec.key }
    package var parent: RecordField? { spec.parent }
    package var kind: JSONKind { spec.kind }
    package var types: RecordTypeSet { spec.types }

    /// Its dotted name, the JSON path joined: `process.parent.exe`.
    package var name: String { Self.names[rawValue] }

    /// The member names from the top level down: `["process", "parent", "exe"]`.
    package var path: [String] { Self.paths[rawValue] }

    private static let specs: [Spec] = allCases.map(\.makeSpec)
    private static let paths: [[String]] = allCases.map { f in
        var path: [String] = []
        var at: RecordField? = f
        while let field = at {
            path.insert("\(field.makeSpec.key)", at: 0)
            at = field.makeSpec.parent
        }
        return path
    }
    private static let names: [String] = paths.map { $0.joined(separator: ".") }

    /// The table the output formats read a record line through: a slot per field, at
    /// `rawValue`.
    package static let table = JSONFieldTable(allCases.map { f in
        JSONFieldTable.Field(parent: f.spec.parent?.rawValue, key: f.spec.key, kind: f.spec.kind, element: f.spec.element,
                             isTime: f.spec.isTime)
    })

    private var makeSpec: Spec {
        switch self {
        case .v: Spec(nil, "v", .number, in: .all)
        case .seq: Spec(nil, "seq", .number, in: .all)
        case .time: Spec(nil, "time", .string, in: .all, time: true)
        case .type: Spec(nil, "type", .string, in: .all)
        case .host: Spec(nil, "host", .object, in: .all)
        case .chain: Spec(nil, "chain", .string, in: .all)
        case .session: Spec(nil, "session", .object, in: .sessionBound)
        case .process: Spec(nil, "process", .object, in: .processRecords)
        case .file: Spec(nil, "file", .object, in: .fileOpen)
        case .net: Spec(nil, "net", .object, in: .net)
        case .rule: Spec(nil, "rule", .object, in: .alert)
        case .message: Spec(nil, "message", .string, in: .alert)
        case .evidence: Spec(nil, "evidence", .array, element: .number, in: .alert)
        case .suppressed: Spec(nil, "suppressed", .number, in: .alert)
        case .agent: Spec(nil, "agent", .object, in: .agent)
        case .loss: Spec(nil, "loss", .object, in: .agentLoss)
        case .hostName: Spec(.host, "name", .string, in: .all)
        case .hostID: Spec(.host, "id", .string, in: .all)
        case .sessionID: Spec(.session, "id", .string, in: .sessionBound)
        case .sessionCgroup: Spec(.session, "cgroup", .string, in: .sessionBound)
        case .sessionLabels: Spec(.session, "labels", .object, in: .sessionBound)
        case .sessionCgroupID: Spec(.session, "cgroup_id", .number, in: .sessionStartEnd)
        case .sessionUID: Spec(.session, "uid", .number, in: .sessionStartEnd)
        case .sessionAdopted: Spec(.session, "adopted", .bool, in: .sessionStartEnd)
        case .sessionSensor: Spec(.session, "sensor", .object, in: .sessionStart)
        case .sessionSensorTier: Spec(.sessionSensor, "tier", .string, in: .sessionStart)
        case .sessionSensorSees: Spec(.sessionSensor, "sees", .array, element: .string, in: .sessionStart)
        case .sessionSensorBlind: Spec(.sessionSensor, "blind", .array, element: .string, in: .sessionStart)
        case .sessionStartTime: Spec(.session, "start_time", .string, in: .sessionStartEnd, time: true)
        case .sessionEndTime: Spec(.session, "end_time", .string, in: .sessionEnd, time: true)
        case .sessionCounts: Spec(.session, "counts", .object, in: .sessionEnd)
        case .sessionUndecoded: Spec(.session, "undecoded", .object, in: .sessionEnd)
        case .sessionHomes: Spec(.session, "homes", .array, element: .string, in: .sessionStartEnd)
        case .tid: Spec(.process, "tid", .number, in: .processRecords)
        case .processEntityID: Spec(.process, "entity_id", .string, in: .processRecords)
        case .pid: Spec(.process, "pid", .number, in: .processRecords)
        case .ppid: Spec(.process, "ppid", .number, in: .processRecords)
        case .uid: Spec(.process, "uid", .number, in: .processRecords)
        case .gid: Spec(.process, "gid", .number, in: .processRecords)
        case .euid: Spec(.process, "euid", .number, in: .processRecords)
        case .auid: Spec(.process, "auid", .number, in: .processRecords)
        case .auditSessionID: Spec(.process, "audit_session_id", .number, in: .processRecords)
        case .comm: Spec(.process, "comm", .string, in: .processRecords)
        case .exe: Spec(.process, "exe", .string, in: .processRecords)
        case .argv: Spec(.process, "argv", .array, element: .string, in: .processRecords)
        case .argvTruncated: Spec(.process, "argv_truncated", .bool, in: .processRecords)
        case .cwd: Spec(.process, "cwd", .string, in: .processRecords)
        case .processStartTime: Spec(.process, "start_time", .string, in: .processRecords, time: true)
        case .processSource: Spec(.process, "source", .string, in: .processRecords)
        case .parent: Spec(.process, "parent", .object, in: .processRecords)
        case .argc: Spec(.process, "argc", .number, in: .execRecords)
        case .previousExe: Spec(.process, "previous_exe", .string, in: .execRecords)
        case .filename: Spec(.process, "filename", .string, in: .execRecords)
        case .stdin: Spec(.process, "stdin", .object, in: .execRecords)
        case .stdout: Spec(.process, "stdout", .object, in: .execRecords)
        case .stderr: Spec(.process, "stderr", .object, in: .execRecords)
        case .exitCode: Spec(.process, "exit_code", .number, in: .exitRecords)
        case .signal: Spec(.process, "signal", .number, in: .exitRecords)
        case .coreDumped: Spec(.process, "core_dumped", .bool, in: .exitRecords)
        case .durationNs: Spec(.process, "duration_ns", .number, in: .exitRecords)
        case .stdinType: Spec(.stdin, "type", .string, in: .execRecords)
        case .stdinIno: Spec(.stdin, "ino", .number, in: .execRecords)
        case .stdoutType: Spec(.stdout, "type", .string, in: .execRecords)
        case .stdoutIno: Spec(.stdout, "ino", .number, in: .execRecords)
        case .stderrType: Spec(.stderr, "type", .string, in: .execRecords)
        case .stderrIno: Spec(.stderr, "ino", .number, in: .execRecords)
        case .exeFileless: Spec(.process, "exe_fileless", .bool, in: .execRecords)
        case .exeDeleted: Spec(.process, "exe_deleted", .bool, in: .execRecords)
        case .exeInode: Spec(.process, "exe_inode", .number, in: .execRecords)
        case .exeDevice: Spec(.process, "exe_device", .string, in: .execRecords)
        case .exeMountID: Spec(.process, "exe_mount_id", .number, in: .execRecords)
        case .exeWritten: Spec(.process, "exe_written", .bool, in: .execRecords)
        case .exeWrittenBy: Spec(.process, "exe_written_by", .string, in: .execRecords)
        case .stdinDevice: Spec(.stdin, "device", .string, in: .execRecords)
        case .stdinDriver: Spec(.stdin, "driver", .object, in: .execRecords)
        case .stdinDriverPID: Spec(.stdinDriver, "pid", .number, in: .execRecords)
        case .stdinDriverEntityID: Spec(.stdinDriver, "entity_id", .string, in: .execRecords)
        case .stdinDriverExe: Spec(.stdinDriver, "exe", .string, in: .execRecords)
        case .stdinDriverInet: Spec(.stdinDriver, "inet", .bool, in: .execRecords)
        case .parentEntityID: Spec(.parent, "entity_id", .string, in: .processRecords)
        case .parentPID: Spec(.parent, "pid", .number, in: .processRecords)
        case .parentExe: Spec(.parent, "exe", .string, in: .processRecords)
        case .filePath: Spec(.file, "path", .string, in: .fileOpen)
        case .fileRequestedPath: Spec(.file, "requested_path", .string, in: .fileOpen)
        case .filePathTruncated: Spec(.file, "path_truncated", .bool, in: .fileOpen)
        case .fileDirfd: Spec(.file, "dirfd", .number, in: .fileOpen)
        case .fileFlags: Spec(.file, "flags", .array, element: .string, in: .fileOpen)
        case .fileMode: Spec(.file, "mode", .number, in: .fileOpen)
        case .fileResult: Spec(.file, "result", .number, in: .fileOpen)
        case .fileError: Spec(.file, "error", .string, in: .fileOpen)
        case .fileVia: Spec(.file, "via", .string, in: .fileOpen)
        case .fileIA32: Spec(.file, "ia32", .bool, in: .fileOpen)
        case .fileFixedFile: Spec(.file, "fixed_file", .bool, in: .fileOpen)
        case .fileResultUnseen: Spec(.file, "result_unseen", .bool, in: .fileOpen)
        case .fileInode: Spec(.file, "inode", .number, in: .fileOpen)
        case .fileDevice: Spec(.file, "device", .string, in: .fileOpen)
        case .fileMountID: Spec(.file, "mount_id", .number, in: .fileOpen)
        case .fileKnownAs: Spec(.file, "known_as", .string, in: .fileOpen)
        case .netFamily: Spec(.net, "family", .string, in: .net)
        case .netV4Mapped: Spec(.net, "v4_mapped", .bool, in: .netConnected)
        case .netTransport: Spec(.net, "transport", .string, in: .net)
        case .netDaddr: Spec(.net, "daddr", .string, in: .net)
        case .netDport: Spec(.net, "dport", .number, in: .net)
        case .netSaddr: Spec(.net, "saddr", .string, in: .net)
        case .netSport: Spec(.net, "sport", .number, in: .net)
        case .netPath: Spec(.net, "path", .string, in: .netConnected)
        case .netAbstract: Spec(.net, "abstract", .bool, in: .netConnected)
        case .netFD: Spec(.net, "fd", .number, in: .netConnect)
        case .netResult: Spec(.net, "result", .number, in: .netConnect)
        case .netError: Spec(.net, "error", .string, in: .netConnect)
        case .netBytesSent: Spec(.net, "bytes_sent", .number, in: .netSent)
        case .netBytesReceived: Spec(.net, "bytes_received", .number, in: .netFlow)
        case .netBytesSentDelta: Spec(.net, "bytes_sent_delta", .number, in: .netSent)
        case .netBytesReceivedDelta: Spec(.net, "bytes_received_delta", .number, in: .netFlow)
        case .netFinal: Spec(.net, "final", .bool, in: .netSent)
        case .ruleID: Spec(.rule, "id", .string, in: .alert)
        case .ruleTitle: Spec(.rule, "title", .string, in: .alert)
        case .ruleSeverity: Spec(.rule, "severity", .string, in: .alert)
        case .ruleTags: Spec(.rule, "tags", .array, element: .string, in: .alert)
        case .ruleSource: Spec(.rule, "source", .string, in: .alert)
        case .ruleAuthor: Spec(.rule, "author", .string, in: .alert)
        case .agentVersion: Spec(.agent, "version", .string, in: .agentStartStop)
        case .agentPID: Spec(.agent, "pid", .number, in: .agentStart)
        case .agentKernel: Spec(.agent, "kernel", .string, in: .agentStart)
        case .agentOutput: Spec(.agent, "output", .string, in: .agentStart)
        case .agentSessionRoots: Spec(.agent, "session_roots", .array, element: .string, in: .agentStart)
        case .agentFeatures: Spec(.agent, "features", .array, element: .string, in: .agentStart)
        case .agentRules: Spec(.agent, "rules", .object, in: .agentRules)
        case .agentSensor: Spec(.agent, "sensor", .object, in: .agentStart)
        case .agentSensorTier: Spec(.agentSensor, "tier", .string, in: .agentStart)
        case .agentSensorForced: Spec(.agentSensor, "forced", .bool, in: .agentStart)
        case .agentSensorHooks: Spec(.agentSensor, "hooks", .array, element: .string, in: .agentStart)
        case .agentSensorRefused: Spec(.agentSensor, "refused", .array, element: .object, in: .agentStart)
        case .agentChainPrev: Spec(.agent, "chain_prev", .string, in: .agentStart)
        case .agentChainStart: Spec(.agent, "chain_start", .bool, in: .agentStart)
        case .agentPreviousRun: Spec(.agent, "previous_run", .object, in: .agentStart)
        case .agentRecords: Spec(.agent, "records", .number, in: .agentStop)
        case .agentKernelDropped: Spec(.agent, "kernel_dropped", .number, in: .agentStop)
        case .agentDecodeRejected: Spec(.agent, "decode_rejected", .number, in: .agentStop)
        case .agentSessions: Spec(.agent, "sessions", .number, in: .agentStop)
        case .agentOK: Spec(.agent, "ok", .bool, in: .agentReload)
        case .agentErrors: Spec(.agent, "errors", .number, in: .agentReload)
        case .agentError: Spec(.agent, "error", .string, in: .agentReload)
        case .agentOutputs: Spec(.agent, "outputs", .array, element: .string, in: .agentReload)
        case .agentOutputsStarted: Spec(.agent, "outputs_started", .array, element: .string, in: .agentReload)
        case .agentOutputsStopped: Spec(.agent, "outputs_stopped", .array, element: .string, in: .agentReload)
        case .agentRestartRequired: Spec(.agent, "restart_required", .array, element: .string, in: .agentReload)
        case .agentRulesCount: Spec(.agentRules, "count", .number, in: .agentRules)
        case .agentRulesDigest: Spec(.agentRules, "digest", .string, in: .agentRules)
        case .previousRunEnded: Spec(.agentPreviousRun, "ended", .string, in: .agentStart)
        case .previousRunLastSeq: Spec(.agentPreviousRun, "last_seq", .number, in: .agentStart)
        case .previousRunLastTime: Spec(.agentPreviousRun, "last_time", .string, in: .agentStart)
        case .previousRunLastType: Spec(.agentPreviousRun, "last_type", .string, in: .agentStart)
        case .previousRunCutBytes: Spec(.agentPreviousRun, "cut_bytes", .number, in: .agentStart)
        case .lossKernelDropped: Spec(.loss, "kernel_dropped", .object, in: .agentLoss)
        case .lossKernelDroppedTotal: Spec(.loss, "kernel_dropped_total", .number, in: .agentLoss)
        case .lossQueueDropped: Spec(.loss, "queue_dropped", .number, in: .agentLoss)
        case .lossReportedBy: Spec(.loss, "reported_by", .string, in: .agentLoss)
        case .lossSink: Spec(.loss, "sink", .string, in: .agentLoss)
        case .lossFirstSeq: Spec(.loss, "first_seq", .number, in: .agentLoss)
        case .lossLastSeq: Spec(.loss, "last_seq", .number, in: .agentLoss)
        case .netVia: Spec(.net, "via", .string, in: .netConnect)
        case .netDname: Spec(.net, "dname", .string, in: .netNamed)
        case .netDatagrams: Spec(.net, "datagrams", .number, in: .netSend)
        case .netDatagramsDelta: Spec(.net, "datagrams_delta", .number, in: .netSend)
        case .netFirstTime: Spec(.net, "first_time", .string, in: .netSend, time: true)
        case .netLastTime: Spec(.net, "last_time", .string, in: .netSend, time: true)
        case .netEvicted: Spec(.net, "evicted", .bool, in: .netSend)
        case .dns: Spec(nil, "dns", .object, in: .netDNS)
        case .dnsDirection: Spec(.dns, "direction", .string, in: .netDNS)
        case .dnsID: Spec(.dns, "id", .number, in: .netDNS)
        case .dnsName: Spec(.dns, "name", .string, in: .netDNS)
        case .dnsType: Spec(.dns, "type", .string, in: .netDNS)
        case .dnsFlags: Spec(.dns, "flags", .array, element: .string, in: .netDNS)
        case .dnsRcode: Spec(.dns, "rcode", .string, in: .netDNS)
        case .dnsAnswers: Spec(.dns, "answers", .array, element: .object, in: .netDNS)
        case .dnsResolvedIP: Spec(.dns, "resolved_ip", .array, element: .string, in: .netDNS)
        case .dnsCut: Spec(.dns, "cut", .bool, in: .netDNS)
        case .dnsUnmatched: Spec(.dns, "unmatched", .bool, in: .netDNS)
        case .sessionThrottle: Spec(.session, "throttle", .object, in: .sessionEnd)
        case .sessionThrottlePauses: Spec(.sessionThrottle, "pauses", .number, in: .sessionEnd)
        case .sessionThrottlePausedMs: Spec(.sessionThrottle, "paused_ms", .number, in: .sessionEnd)
        case .agentThrottle: Spec(.agent, "throttle", .object, in: .agentStop)
        case .agentThrottlePauses: Spec(.agentThrottle, "pauses", .number, in: .agentStop)
        case .agentThrottlePausedMs: Spec(.agentThrottle, "paused_ms", .number, in: .agentStop)
        case .agentThrottleForcedResumes: Spec(.agentThrottle, "forced_resumes", .number, in: .agentStop)
        }
    }
}
