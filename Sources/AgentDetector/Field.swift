/// What a field holds, which decides the operators a rule may use on it.
import AgentRecords

package enum FieldKind: String, Sendable {
    case string, integer, boolean, list

    var article: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .boolean: "a boolean"
        case .list: "a list of strings"
        }
    }
}

/// One field of the catalogue, resolved at load time (an index, cheap to pass around).
/// A live `RuleInput` switches on `catalogueField`; `session.labels.<key>` fields share one id and
/// carry their key in `labelKey`.
package struct Field: Hashable, Sendable, CustomStringConvertible {
    package let id: Int
    package let name: String
    /// For `session.labels.<key>`: the key.
    package let labelKey: String?

    init(_ entry: CatalogueField, labelKey: String? = nil) {
        id = entry.rawValue
        self.labelKey = labelKey
        name = labelKey.map { "session.labels." + $0 } ?? entry.name
    }

    package var catalogueField: CatalogueField { CatalogueField(rawValue: id)! }
    package var kind: FieldKind { catalogueField.kind }
    package var description: String { name }

    package static func == (a: Field, b: Field) -> Bool { a.id == b.id && a.labelKey == b.labelKey }
    package func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(labelKey)
    }

    /// The catalogue field of that name, or a label field for `session.labels.<key>`.
    package static func named(_ name: String) -> Field? {
        if let entry = byName[name] { return entry.rawValue == CatalogueField.sessionLabel.rawValue ? nil : Field(entry) }
        let prefix = "session.labels."
        if name.hasPrefix(prefix), name.utf8.count > prefix.utf8.count {
            return Field(.sessionLabel, labelKey: String(name.dropFirst(prefix.count)))
        }
        return nil
    }

    /// Every catalogue field except the label family (which has no fixed name).
    package static let all: [Field] = CatalogueField.allCases.filter { $0 != .sessionLabel }.map { Field($0) }

    /// Names offered in "did you mean" hints.
    static let allNames: [String] = all.map(\.name) + ["session.labels.<key>"]

    private static let byName: [String: CatalogueField] = {
        var map: [String: CatalogueField] = [:]
        for entry in CatalogueField.allCases { map[entry.name] = entry }
        return map
    }()

    /// Whether records of this type can carry the field.
    func isPresent(in type: RecordTypeName) -> Bool { catalogueField.presence.contains(type) }

    /// The JSON path of the field in an NDJSON record (labels: `session.labels.<key>`).
    package var jsonPath: [String] {
        if let labelKey { return ["session", "labels", labelKey] }
        return catalogueField.jsonPath
    }
}

/// The record types rules may name, as a small bit set so presence checks cost nothing.
struct RecordTypeSet: OptionSet, Sendable {
    let rawValue: UInt32

    init(rawValue: UInt32) { self.rawValue = rawValue }
    init(_ types: [RecordTypeName]) {
        self.rawValue = types.reduce(0) { $0 | (1 << UInt32($1.rawValue)) }
    }
    func contains(_ type: RecordTypeName) -> Bool { rawValue & (1 << UInt32(type.rawValue)) != 0 }

    static let all = RecordTypeSet(RecordTypeName.allCases)
    static let process = RecordTypeSet([.processExec, .processExit, .fileOpen, .netConnect, .netFlow])
    static let session = RecordTypeSet(rawValue: process.rawValue | RecordTypeSet([.sessionStart, .sessionEnd, .alert]).rawValue)
    static let exec = RecordTypeSet([.processExec])
    static let exit = RecordTypeSet([.processExit])
    static let file = RecordTypeSet([.fileOpen])
    static let net = RecordTypeSet([.netConnect, .netFlow])
    static let connect = RecordTypeSet([.netConnect])
    static let flow = RecordTypeSet([.netFlow])
}

/// A record type as rules name it (`file.open`); the same set as `RecordType`.
typealias RecordTypeName = RecordType

extension RecordType {
    /// The type's name as a String (rules compare it, and records carry it in `type`).
    package var typeName: String { Self.typeNames[Int(rawValue)] }

    private static let typeNames: [String] = allCases.map { "\($0.name)" }

    package static let byTypeName: [String: RecordType] = {
        var map: [String: RecordType] = [:]
        for t in RecordType.allCases { map[t.typeName] = t }
        return map
    }()
}

/// The field catalogue: every field a rule may read, with its kind and the record types that
/// carry it. The raw value is `Field.id`.
package enum CatalogueField: Int, CaseIterable, Sendable {
    case type, seq
    case sessionID, sessionCgroup, sessionUID, sessionLabel
    case processEntityID, processComm, processExe, processName, processCwd, processArgs, processSource
    case processPID, processTID, processPPID, processUID, processGID, processEUID, processAUID
    case processArgv, processArgvTruncated
    case parentEntityID, parentExe, parentName, parentPID
    case processPreviousExe, processFilename
    case stdinType, stdoutType, stderrType, stdinIno, stdoutIno
    case exitCode, signal, durationNs
    case filePath, fileRequestedPath, fileName, fileError, fileFlags, fileWrite, fileResult, fileMode
    case netFamily, netTransport, netDaddr, netSaddr, netPath, netError
    case netDport, netSport, netResult
    case netBytesSent, netBytesReceived, netBytesSentDelta, netFinal

    package var name: String {
        switch self {
        case .type: "type"
        case .seq: "seq"
        case .sessionID: "session.id"
        case .sessionCgroup: "session.cgroup"
        case .sessionUID: "session.uid"
        case .sessionLabel: "session.labels"
        case .processEntityID: "process.entity_id"
        case .processComm: "process.comm"
        case .processExe: "process.exe"
        case .processName: "process.name"
        case .processCwd: "process.cwd"
        case .processArgs: "process.args"
        case .processSource: "process.source"
        case .processPID: "process.pid"
        case .processTID: "process.tid"
        case .processPPID: "process.ppid"
        case .processUID: "process.uid"
        case .processGID: "process.gid"
        case .processEUID: "process.euid"
        case .processAUID: "process.auid"
        case .processArgv: "process.argv"
        case .processArgvTruncated: "process.argv_truncated"
        case .parentEntityID: "process.parent.entity_id"
        case .parentExe: "process.parent.exe"
        case .parentName: "process.parent.name"
        case .parentPID: "process.parent.pid"
        case .processPreviousExe: "process.previous_exe"
        case .processFilename: "process.filename"
        case .stdinType: "process.stdin.type"
        case .stdoutType: "process.stdout.type"
        case .stderrType: "process.stderr.type"
        case .stdinIno: "process.stdin.ino"
        case .stdoutIno: "process.stdout.ino"
        case .exitCode: "process.exit_code"
        case .signal: "process.signal"
        case .durationNs: "process.duration_ns"
        case .filePath: "file.path"
        case .fileRequestedPath: "file.requested_path"
        case .fileName: "file.name"
        case .fileError: "file.error"
        case .fileFlags: "file.flags"
        case .fileWrite: "file.write"
        case .fileResult: "file.result"
        case .fileMode: "file.mode"
        case .netFamily: "net.family"
        case .netTransport: "net.transport"
        case .netDaddr: "net.daddr"
        case .netSaddr: "net.saddr"
        case .netPath: "net.path"
        case .netError: "net.error"
        case .netDport: "net.dport"
        case .netSport: "net.sport"
        case .netResult: "net.result"
        case .netBytesSent: "net.bytes_sent"
        case .netBytesReceived: "net.bytes_received"
        case .netBytesSentDelta: "net.bytes_sent_delta"
        case .netFinal: "net.final"
        }
    }

    package var kind: FieldKind {
        switch self {
        case .seq, .sessionUID, .processPID, .processTID, .processPPID, .processUID, .processGID,
             .processEUID, .processAUID, .parentPID, .stdinIno, .stdoutIno, .exitCode, .signal,
             .durationNs, .fileResult, .fileMode, .netDport, .netSport, .netResult, .netBytesSent,
             .netBytesReceived, .netBytesSentDelta:
            .integer
        case .processArgvTruncated, .fileWrite, .netFinal:
            .boolean
        case .processArgv, .fileFlags:
            .list
        default:
            .string
        }
    }

    var presence: RecordTypeSet {
        switch self {
        case .type, .seq: .all
        case .sessionID, .sessionCgroup, .sessionUID, .sessionLabel: .session
        case .processPreviousExe, .processFilename, .stdinType, .stdoutType, .stderrType, .stdinIno, .stdoutIno: .exec
        case .exitCode, .signal, .durationNs: .exit
        case .filePath, .fileRequestedPath, .fileName, .fileError, .fileFlags, .fileWrite, .fileResult, .fileMode: .file
        case .netFamily, .netTransport, .netDaddr, .netSaddr, .netPath, .netError, .netDport, .netSport: .net
        case .netResult: .connect
        case .netBytesSent, .netBytesReceived, .netBytesSentDelta, .netFinal: .flow
        default: .process
        }
    }

    package var jsonPath: [String] { Self.jsonPaths[rawValue] }

    private static let jsonPaths: [[String]] = allCases.map { $0.name.split(separator: ".").map(String.init) }
}
