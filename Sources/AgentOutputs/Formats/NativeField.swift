import AgentRecords
import Glibc

/// The objects of a native record whose members `NativeLine` notes (schema/agentwatch-record.schema.json).
enum NativeContext: Int, CaseIterable {
    case root, host, session, process, parent, file, net, rule, agent
    /// An object or array whose members are checked, not noted.
    case opaque
}

/// A native record field the formatters map, by its path.
enum NativeField: Int, CaseIterable {
    case v, seq, time, type, chain, message, evidence, suppressed
    case host, session, process, file, net, rule, agent, loss
    case hostName, hostID
    case sessionID, sessionCgroup, sessionLabels, sessionCgroupID, sessionUID, sessionAdopted
    case sessionStartTime, sessionEndTime, sessionCounts, sessionHomes
    case tid, processEntityID, pid, ppid, uid, gid, euid, auid, auditSessionID, comm, exe, argv
    case argvTruncated, cwd, processStartTime, processSource, parent, argc, previousExe
    case exitCode, signal, coreDumped, durationNs, filename, stdin, stdout, stderr
    case parentEntityID, parentPID, parentExe
    case filePath, fileRequestedPath, filePathTruncated, fileDirfd, fileFlags, fileMode, fileResult, fileError
    case netFamily, netV4Mapped, netTransport, netDaddr, netDport, netSaddr, netSport, netPath, netAbstract
    case netFD, netResult, netError, netBytesSent, netBytesReceived, netBytesSentDelta, netBytesReceivedDelta, netFinal
    case ruleID, ruleTitle, ruleSeverity, ruleTags, ruleSource, ruleAuthor
    case agentVersion, agentOutput, agentOK

    /// Where the field is, what JSON it must be, and the context of its members.
    var spec: (context: NativeContext, key: StaticString, kind: NativeLine.Kind, child: NativeContext) {
        switch self {
        case .v: (.root, "v", .number, .opaque)
        case .seq: (.root, "seq", .number, .opaque)
        case .time: (.root, "time", .string, .opaque)
        case .type: (.root, "type", .string, .opaque)
        case .chain: (.root, "chain", .string, .opaque)
        case .message: (.root, "message", .string, .opaque)
        case .evidence: (.root, "evidence", .array, .opaque)
        case .suppressed: (.root, "suppressed", .number, .opaque)
        case .host: (.root, "host", .object, .host)
        case .session: (.root, "session", .object, .session)
        case .process: (.root, "process", .object, .process)
        case .file: (.root, "file", .object, .file)
        case .net: (.root, "net", .object, .net)
        case .rule: (.root, "rule", .object, .rule)
        case .agent: (.root, "agent", .object, .agent)
        case .loss: (.root, "loss", .object, .opaque)
        case .hostName: (.host, "name", .string, .opaque)
        case .hostID: (.host, "id", .string, .opaque)
        case .sessionID: (.session, "id", .string, .opaque)
        case .sessionCgroup: (.session, "cgroup", .string, .opaque)
        case .sessionLabels: (.session, "labels", .object, .opaque)
        case .sessionCgroupID: (.session, "cgroup_id", .number, .opaque)
        case .sessionUID: (.session, "uid", .number, .opaque)
        case .sessionAdopted: (.session, "adopted", .bool, .opaque)
        case .sessionStartTime: (.session, "start_time", .string, .opaque)
        case .sessionEndTime: (.session, "end_time", .string, .opaque)
        case .sessionCounts: (.session, "counts", .object, .opaque)
        case .sessionHomes: (.session, "homes", .array, .opaque)
        case .tid: (.process, "tid", .number, .opaque)
        case .processEntityID: (.process, "entity_id", .string, .opaque)
        case .pid: (.process, "pid", .number, .opaque)
        case .ppid: (.process, "ppid", .number, .opaque)
        case .uid: (.process, "uid", .number, .opaque)
        case .gid: (.process, "gid", .number, .opaque)
        case .euid: (.process, "euid", .number, .opaque)
        case .auid: (.process, "auid", .number, .opaque)
        case .auditSessionID: (.process, "audit_session_id", .number, .opaque)
        case .comm: (.process, "comm", .string, .opaque)
        case .exe: (.process, "exe", .string, .opaque)
        case .argv: (.process, "argv", .array, .opaque)
        case .argvTruncated: (.process, "argv_truncated", .bool, .opaque)
        case .cwd: (.process, "cwd", .string, .opaque)
        case .processStartTime: (.process, "start_time", .string, .opaque)
        case .processSource: (.process, "source", .string, .opaque)
        case .parent: (.process, "parent", .object, .parent)
        case .argc: (.process, "argc", .number, .opaque)
        case .previousExe: (.process, "previous_exe", .string, .opaque)
        case .exitCode: (.process, "exit_code", .number, .opaque)
        case .signal: (.process, "signal", .number, .opaque)
        case .coreDumped: (.process, "core_dumped", .bool, .opaque)
        case .durationNs: (.process, "duration_ns", .number, .opaque)
        case .filename: (.process, "filename", .string, .opaque)
        case .stdin: (.process, "stdin", .object, .opaque)
        case .stdout: (.process, "stdout", .object, .opaque)
        case .stderr: (.process, "stderr", .object, .opaque)
        case .parentEntityID: (.parent, "entity_id", .string, .opaque)
        case .parentPID: (.parent, "pid", .number, .opaque)
        case .parentExe: (.parent, "exe", .string, .opaque)
        case .filePath: (.file, "path", .string, .opaque)
        case .fileRequestedPath: (.file, "requested_path", .string, .opaque)
        case .filePathTruncated: (.file, "path_truncated", .bool, .opaque)
        case .fileDirfd: (.file, "dirfd", .number, .opaque)
        case .fileFlags: (.file, "flags", .array, .opaque)
        case .fileMode: (.file, "mode", .number, .opaque)
        case .fileResult: (.file, "result", .number, .opaque)
        case .fileError: (.file, "error", .string, .opaque)
        case .netFamily: (.net, "family", .string, .opaque)
        case .netV4Mapped: (.net, "v4_mapped", .bool, .opaque)
        case .netTransport: (.net, "transport", .string, .opaque)
        case .netDaddr: (.net, "daddr", .string, .opaque)
        case .netDport: (.net, "dport", .number, .opaque)
        case .netSaddr: (.net, "saddr", .string, .opaque)
        case .netSport: (.net, "sport", .number, .opaque)
        case .netPath: (.net, "path", .string, .opaque)
        case .netAbstract: (.net, "abstract", .bool, .opaque)
        case .netFD: (.net, "fd", .number, .opaque)
        case .netResult: (.net, "result", .number, .opaque)
        case .netError: (.net, "error", .string, .opaque)
        case .netBytesSent: (.net, "bytes_sent", .number, .opaque)
        case .netBytesReceived: (.net, "bytes_received", .number, .opaque)
        case .netBytesSentDelta: (.net, "bytes_sent_delta", .number, .opaque)
        case .netBytesReceivedDelta: (.net, "bytes_received_delta", .number, .opaque)
        case .netFinal: (.net, "final", .bool, .opaque)
        case .ruleID: (.rule, "id", .string, .opaque)
        case .ruleTitle: (.rule, "title", .string, .opaque)
        case .ruleSeverity: (.rule, "severity", .string, .opaque)
        case .ruleTags: (.rule, "tags", .array, .opaque)
        case .ruleSource: (.rule, "source", .string, .opaque)
        case .ruleAuthor: (.rule, "author", .string, .opaque)
        case .agentVersion: (.agent, "version", .string, .opaque)
        case .agentOutput: (.agent, "output", .string, .opaque)
        case .agentOK: (.agent, "ok", .bool, .opaque)
        }
    }

    /// What the elements of an array field must be.
    var element: NativeLine.Kind {
        switch self {
        case .argv, .fileFlags, .ruleTags, .sessionHomes: .string
        case .evidence: .number
        default: .absent
        }
    }

    var isTime: Bool { self == .time || self == .processStartTime || self == .sessionStartTime || self == .sessionEndTime }
}

extension NativeField {
    /// The details of an open that neither ECS nor OCSF has a field for.
    static let openDetails: [NativeField] = [.fileRequestedPath, .filePathTruncated, .fileDirfd, .fileFlags, .fileMode, .fileResult]
    /// What an alert adds beyond its rule and message: the records that made it, the matches
    /// counted and not raised.
    static let alertDetails: [NativeField] = [.evidence, .suppressed]
}

/// `NativeField.spec` laid out for the reader: per context, the member names with their field.
/// Entries hold only plain values (names are static strings), so a lookup touches no reference
/// counts.
struct NativeFieldTable: Sendable {
    static let shared = NativeFieldTable()

    struct Entry: Sendable {
        let key: StaticString
        let count: Int
        let field: NativeField
        let child: NativeContext
        let kind: NativeLine.Kind
        let element: NativeLine.Kind
        let isTime: Bool
    }

    /// Grouped by context; `ranges[context]` is where a context's entries are.
    let entries: [Entry]
    let ranges: [Range<Int>]
    /// Record type names (`RecordType.allCases` builds a new array each time).
    let typeNames: [(RecordType, StaticString)]

    private init() {
        var entries: [Entry] = []
        var ranges: [Range<Int>] = []
        for c in NativeContext.allCases {
            let start = entries.count
            for f in NativeField.allCases where f.spec.context == c {
                let s = f.spec
                entries.append(Entry(key: s.key, count: s.key.utf8CodeUnitCount, field: f, child: s.child,
                                     kind: s.kind, element: f.element, isTime: f.isTime))
            }
            ranges.append(start..<entries.count)
        }
        self.entries = entries
        self.ranges = ranges
        typeNames = RecordType.allCases.map { ($0, $0.name) }
    }

    /// The entry for the key at `p[start..<end]` (its text between the quotes) in `context`.
    @inline(__always)
    func lookup(_ context: NativeContext, _ p: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Entry? {
        let n = end - start
        let key = p.baseAddress! + start
        for i in ranges[context.rawValue] {
            let e = entries[i]
            if e.count == n && memcmp(e.key.utf8Start, key, n) == 0 { return e }
        }
        return nil
    }
}
