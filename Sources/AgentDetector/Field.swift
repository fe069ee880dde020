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
/// A live `RuleInput` switches on `ruleField`; `session.labels.<key>` fields share one id and
/// carry their key in `labelKey`.
package struct Field: Hashable, Sendable, CustomStringConvertible {
    package let id: Int
    package let name: String
    /// For `session.labels.<key>`: the key.
    package let labelKey: String?

    init(_ entry: RuleField, labelKey: String? = nil) {
        id = entry.rawValue
        self.labelKey = labelKey
        name = labelKey.map { "session.labels." + $0 } ?? entry.name
    }

    package var ruleField: RuleField { RuleField(rawValue: id)! }
    package var kind: FieldKind { ruleField.kind }
    package var description: String { name }

    package static func == (a: Field, b: Field) -> Bool { a.id == b.id && a.labelKey == b.labelKey }
    package func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(labelKey)
    }

    /// The catalogue field of that name, or a label field for `session.labels.<key>`.
    package static func named(_ name: String) -> Field? {
        if let entry = byName[name] { return entry.rawValue == RuleField.sessionLabel.rawValue ? nil : Field(entry) }
        let prefix = "session.labels."
        if name.hasPrefix(prefix), name.utf8.count > prefix.utf8.count {
            return Field(.sessionLabel, labelKey: String(name.dropFirst(prefix.count)))
        }
        return nil
    }

    /// Every catalogue field except the label family (which has no fixed name).
    package static let all: [Field] = RuleField.allCases.filter { $0 != .sessionLabel }.map { Field($0) }

    /// Names offered in "did you mean" hints.
    static let allNames: [String] = all.map(\.name) + ["session.labels.<key>"]

    private static let byName: [String: RuleField] = {
        var map: [String: RuleField] = [:]
        for entry in RuleField.allCases { map[entry.name] = entry }
        return map
    }()

    /// Whether records of this type can carry the field.
    func isPresent(in type: RecordTypeName) -> Bool { ruleField.presence.contains(type) }

    /// The JSON path of the field in an NDJSON record (labels: `session.labels.<key>`).
    package var jsonPath: [String] {
        if let labelKey { return ["session", "labels", labelKey] }
        return ruleField.jsonPath
    }
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

/// The fields a rule may read, made from the record catalogue (`RecordField`): each is a
/// record field, or derived from one (`process.name` from `process.exe`...), or the
/// `session.labels.<key>` family. The raw value is `Field.id`.
package enum RuleField: Int, CaseIterable, Sendable {
    case type, seq
    case sessionID, sessionCgroup, sessionUID, sessionLabel
    case processEntityID, processComm, processExe, processName, processCwd, processArgs, processSource
    case processPID, processTID, processPPID, processUID, processGID, processEUID, processAUID
    case processArgv, processArgvTruncated
    case parentEntityID, parentExe, parentName, parentPID
    case processPreviousExe, processFilename
    case stdinType, stdoutType, stderrType, stdinIno, stdoutIno
    case processExeFileless, processExeDeleted, processExeInode, processExeDevice, processExeMountID
    case processExeWritten, processExeWrittenBy
    case stdinDevice, stdinDriverPID, stdinDriverEntityID, stdinDriverExe, stdinDriverInet
    case exitCode, signal, durationNs
    case filePath, fileRequestedPath, fileName, fileError, fileFlags, fileWrite, fileResult, fileMode
    case fileVia, fileIA32, fileFixedFile, fileResultUnseen, fileInode, fileDevice, fileMountID
    case netFamily, netTransport, netDaddr, netSaddr, netPath, netError
    case netDport, netSport, netResult
    case netBytesSent, netBytesReceived, netBytesSentDelta, netFinal
    case fileKnownAs
    case netVia, netDname, netDatagrams, netDatagramsDelta
    case dnsDirection, dnsID, dnsName, dnsType, dnsFlags, dnsRcode, dnsResolvedIP, dnsUnmatched

    /// What the field is made of.
    package enum Source: Sendable {
        /// The record field itself.
        case record(RecordField)
        /// Computed from a record field when the record does not carry it, named `key` beside it.
        case derived(StaticString, from: RecordField, FieldKind)
    }

    package var source: Source {
        switch self {
        case .type: .record(.type)
        case .seq: .record(.seq)
        case .sessionID: .record(.sessionID)
        case .sessionCgroup: .record(.sessionCgroup)
        case .sessionUID: .record(.sessionUID)
        case .sessionLabel: .record(.sessionLabels)
        case .processEntityID: .record(.processEntityID)
        case .processComm: .record(.comm)
        case .processExe: .record(.exe)
        case .processName: .derived("name", from: .exe, .string)
        case .processCwd: .record(.cwd)
        case .processArgs: .derived("args", from: .argv, .string)
        case .processSource: .record(.processSource)
        case .processPID: .record(.pid)
        case .processTID: .record(.tid)
        case .processPPID: .record(.ppid)
        case .processUID: .record(.uid)
        case .processGID: .record(.gid)
        case .processEUID: .record(.euid)
        case .processAUID: .record(.auid)
        case .processArgv: .record(.argv)
        case .processArgvTruncated: .record(.argvTruncated)
        case .parentEntityID: .record(.parentEntityID)
        case .parentExe: .record(.parentExe)
        case .parentName: .derived("name", from: .parentExe, .string)
        case .parentPID: .record(.parentPID)
        case .processPreviousExe: .record(.previousExe)
        case .processFilename: .record(.filename)
        case .stdinType: .record(.stdinType)
        case .stdoutType: .record(.stdoutType)
        case .stderrType: .record(.stderrType)
        case .stdinIno: .record(.stdinIno)
        case .stdoutIno: .record(.stdoutIno)
        case .processExeFileless: .record(.exeFileless)
        case .processExeDeleted: .record(.exeDeleted)
        case .processExeInode: .record(.exeInode)
        case .processExeDevice: .record(.exeDevice)
        case .processExeMountID: .record(.exeMountID)
        case .processExeWritten: .record(.exeWritten)
        case .processExeWrittenBy: .record(.exeWrittenBy)
        case .stdinDevice: .record(.stdinDevice)
        case .stdinDriverPID: .record(.stdinDriverPID)
        case .stdinDriverEntityID: .record(.stdinDriverEntityID)
        case .stdinDriverExe: .record(.stdinDriverExe)
        case .stdinDriverInet: .record(.stdinDriverInet)
        case .exitCode: .record(.exitCode)
        case .signal: .record(.signal)
        case .durationNs: .record(.durationNs)
        case .filePath: .record(.filePath)
        case .fileRequestedPath: .record(.fileRequestedPath)
        case .fileName: .derived("name", from: .filePath, .string)
        case .fileError: .record(.fileError)
        case .fileFlags: .record(.fileFlags)
        case .fileWrite: .derived("write", from: .fileFlags, .boolean)
        case .fileResult: .record(.fileResult)
        case .fileMode: .record(.fileMode)
        case .fileVia: .record(.fileVia)
        case .fileIA32: .record(.fileIA32)
        case .fileFixedFile: .record(.fileFixedFile)
        case .fileResultUnseen: .record(.fileResultUnseen)
        case .fileInode: .record(.fileInode)
        case .fileDevice: .record(.fileDevice)
        case .fileMountID: .record(.fileMountID)
        case .fileKnownAs: .record(.fileKnownAs)
        case .netFamily: .record(.netFamily)
        case .netTransport: .record(.netTransport)
        case .netDaddr: .record(.netDaddr)
        case .netSaddr: .record(.netSaddr)
        case .netPath: .record(.netPath)
        case .netError: .record(.netError)
        case .netDport: .record(.netDport)
        case .netSport: .record(.netSport)
        case .netResult: .record(.netResult)
        case .netBytesSent: .record(.netBytesSent)
        case .netBytesReceived: .record(.netBytesReceived)
        case .netBytesSentDelta: .record(.netBytesSentDelta)
        case .netFinal: .record(.netFinal)
        case .netVia: .record(.netVia)
        case .netDname: .record(.netDname)
        case .netDatagrams: .record(.netDatagrams)
        case .netDatagramsDelta: .record(.netDatagramsDelta)
        case .dnsDirection: .record(.dnsDirection)
        case .dnsID: .record(.dnsID)
        case .dnsName: .record(.dnsName)
        case .dnsType: .record(.dnsType)
        case .dnsFlags: .record(.dnsFlags)
        case .dnsRcode: .record(.dnsRcode)
        case .dnsResolvedIP: .record(.dnsResolvedIP)
        case .dnsUnmatched: .record(.dnsUnmatched)
        }
    }

    /// The record field it is or is derived from.
    package var recordField: RecordField {
        switch source {
        case .record(let f): f
        case .derived(_, let f, _): f
        }
    }

    package var name: String { Self.names[rawValue] }
    package var kind: FieldKind { Self.kinds[rawValue] }
    var presence: RecordTypeSet { Self.presences[rawValue] }
    package var jsonPath: [String] { Self.jsonPaths[rawValue] }

    private static let jsonPaths: [[String]] = allCases.map { f in
        switch f.source {
        case .record(let r): r.path
        case .derived(let key, let r, _): r.path.dropLast() + ["\(key)"]
        }
    }
    private static let names: [String] = jsonPaths.map { $0.joined(separator: ".") }

    private static let kinds: [FieldKind] = allCases.map { f in
        switch f.source {
        case .derived(_, _, let kind): kind
        case .record where f == .sessionLabel: .string
        case .record(let r):
            switch r.kind {
            case .number: .integer
            case .bool: .boolean
            case .array: .list
            default: .string
            }
        }
    }

    /// The record types whose rules see the field: those that carry it, except that an alert's
    /// process (its trigger's, copied) is not read by rules. Two more, as the loader has always
    /// taken them: `session.uid` on every session record (the daemon knows it from the
    /// session's start; process records do not carry it), and `net.error` on flows too (not
    /// on net.send and net.dns, which have no result).
    private static let presences: [RecordTypeSet] = allCases.map { f in
        switch f {
        case .sessionUID: return RecordField.sessionID.types
        case .netError: return .netConnected
        default:
            var under: RecordField? = f.recordField
            while let u = under, u != .process { under = u.parent }
            return under == .process ? f.recordField.types.subtracting(.alert) : f.recordField.types
        }
    }
}
