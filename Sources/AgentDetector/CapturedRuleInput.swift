import AgentRecords
import Foundation

/// A record as rules see it when it was captured: a record line read by the one JSON reader
/// (`JSONTree`), its values taken from the nodes as a rule asks for them. Replay hands a
/// line it has parsed already (nothing is copied); a fixture record or a dictionary (tests) is
/// written as JSON first and read back like any line. Fields the catalogue derives
/// (`process.name`, `process.args`, `file.name`, `file.write`, `process.parent.name`) are
/// computed when the record does not carry them.
package struct CapturedRuleInput: RuleInput {
    package let typeName: String
    package let seq: UInt64
    package let timeNs: Int64
    package let sessionID: String
    package let homes: [String]
    private let view: JSONTree.View
    private let uid: SessionUID
    /// Keeps a line read here, and its nodes, for as long as the input lives.
    private let owned: OwnedLine?

    /// Where `session.uid` comes from.
    package enum SessionUID {
        /// The record's own member.
        case record
        /// What a replay learnt from the session's `session.start` (process records carry
        /// none), given to any record with a session object; nil: not known.
        case given(Int?)
    }

    /// A line a replay has parsed: valid only while `view` is (the rules run inside the
    /// replay's reading of the line).
    package init(_ view: JSONTree.View, homes: [String], timeNs: Int64, sessionUID: SessionUID = .record) {
        self.init(view, homes: homes, timeNs: timeNs, uid: sessionUID, owned: nil)
    }

    private init(_ view: JSONTree.View, homes: [String], timeNs: Int64?, uid: SessionUID, owned: OwnedLine?) {
        self.view = view
        self.homes = homes
        self.uid = uid
        self.owned = owned
        let record: Int? = view.isObject ? 0 : nil
        typeName = view.string(view.member(record, "type")) ?? ""
        seq = Self.integer(view, view.member(record, "seq")).map { UInt64(clamping: $0) } ?? 0
        sessionID = view.string(view.member(view.member(record, "session"), "id")) ?? ""
        self.timeNs = timeNs ?? view.string(view.member(record, "time")).flatMap(Self.parseTimestamp) ?? 0
    }

    /// A record line (no newline), copied and read here; nil when it is not JSON. `timeNs`
    /// nil: the record's `time` (RFC 3339), 0 when it has none that reads.
    package init?(line: UnsafeRawBufferPointer, homes: [String], timeNs: Int64? = nil) {
        guard let owned = OwnedLine(line) else { return nil }
        self.init(owned.view, homes: homes, timeNs: timeNs, uid: .record, owned: owned)
    }

    /// A record given as nested values as JSONSerialization or Yams produce them
    /// (NSNumber/Int/Bool/String/[Any]/[String: Any]): written as JSON, then read as a line.
    package init(_ dict: [String: Any], homes: [String], timeNs: Int64? = nil) {
        var j = JSONBuffer(capacity: 1024)
        Self.write(dict, into: &j)
        // Past the reader's bounds (a fixture nested 65 deep): a record with no fields.
        let record = j.bytes.withUnsafeBytes { Self(line: $0, homes: homes, timeNs: timeNs) }
        self = record ?? Array("{}".utf8).withUnsafeBytes { Self(line: $0, homes: homes, timeNs: timeNs)! }
    }

    package func value(_ field: Field) -> RuleValue? {
        if field.ruleField == .sessionUID, case .given(let given) = uid {
            return view.kind(view.member(record, "session")) == .object ? given.map { .int(Int64($0)) } : nil
        }
        let raw = lookup(field.jsonPath)
        switch field.ruleField {
        case .type: return .string(typeName)
        case .processName where raw == nil: return basename(["process", "exe"])
        case .parentName where raw == nil: return basename(["process", "parent", "exe"])
        case .fileName where raw == nil: return basename(["file", "path"])
        case .processArgs where raw == nil:
            guard case .list(let argv)? = convert(lookup(["process", "argv"]), .list) else { return nil }
            return .string(argv.joined(separator: " "))
        case .fileWrite where raw == nil:
            guard case .list(let flags)? = convert(lookup(["file", "flags"]), .list) else { return nil }
            return .bool(flags.contains { Self.writeFlags.contains($0) })
        default:
            return convert(raw, field.kind)
        }
    }

    static let writeFlags: Set<String> = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"]

    private var record: Int? { view.isObject ? 0 : nil }

    /// The node at `path`; nil when absent or null.
    private func lookup(_ path: [String]) -> Int? {
        var node = record
        for key in path {
            var key = key
            node = key.withUTF8 { view.member(node, bytes: UnsafeRawBufferPointer($0)) }
            if node == nil { return nil }
        }
        return view.kind(node) == .null ? nil : node
    }

    private func basename(_ path: [String]) -> RuleValue? {
        guard let full = view.string(lookup(path)) else { return nil }
        guard let slash = full.lastIndex(of: "/") else { return .string(full) }
        return .string(String(full[full.index(after: slash)...]))
    }

    /// Reads a value as the field's kind expects, leniently: numbers become strings where a
    /// string is expected, since a YAML fixture may write `name: 7` unquoted.
    private func convert(_ node: Int?, _ kind: FieldKind) -> RuleValue? {
        guard let node else { return nil }
        switch kind {
        case .string:
            if let s = view.string(node) { return .string(s) }
            if let b = view.bool(node) { return .string(b ? "true" : "false") }
            return Self.integer(view, node).map { .string(String($0)) }
        case .integer:
            return Self.integer(view, node).map { .int($0) }
        case .boolean:
            return view.bool(node).map { .bool($0) }
        case .list:
            guard view.kind(node) == .array else { return nil }
            return .list(view.elements(node).map { item in
                if let s = view.string(item) { return s }
                if let i = Self.integer(view, item) { return String(i) }
                if let b = view.bool(item) { return b ? "true" : "false" }
                if let u = view.uint(item) { return String(u) }
                if let d = view.double(item) { return "\(d)" }
                // null, an array or an object: its JSON text.
                return String(decoding: view.source(item), as: UTF8.self)
            })
        }
    }

    /// A number that is an integer of Int64 (written as one, or a whole number below 9.2e18).
    static func integer(_ view: JSONTree.View, _ node: Int?) -> Int64? {
        guard let node, view.kind(node) == .number else { return nil }
        if let i = view.int(node) { return i }
        // An integer past Int64 is none; a fraction or exponent may still be a whole number.
        if view.nodes[node].flag, view.uint(node) != nil { return nil }
        guard let d = view.double(node), d.rounded() == d, abs(d) < 9.2e18 else { return nil }
        return Int64(d)
    }

    /// `2026-11-21T17:40:00.123456789Z` (or with a `+hh:mm` offset) as Unix ns.
    package static func parseTimestamp(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8 { JSONReading.unixNanoseconds(UnsafeRawBufferPointer($0)) }
    }

    // MARK: values as JSON

    /// Writes a value of JSONSerialization's or Yams's making as JSON (keys sorted; a
    /// value JSON has no form for, such as an infinite number, as null).
    static func write(_ value: Any, into j: inout JSONBuffer) {
        switch value {
        case let s as String:
            j.string(s)
        case _ where isBoolean(value):
            j.bool(value as? Bool ?? false)
        case let i as Int:
            j.int(i)
        case let i as Int64:
            j.int(i)
        case let u as UInt64:
            j.uint(u)
        case let n as NSNumber where CFNumberIsFloat(n):
            write(n.doubleValue, into: &j)
        case let n as NSNumber:
            j.int(n.int64Value)
        case let d as Double:
            if d.isFinite { j.bytes.append(contentsOf: "\(d)".utf8) } else { j.raw("null") }
        case let items as [Any]:
            j.raw("[")
            for (k, item) in items.enumerated() {
                if k > 0 { j.raw(",") }
                write(item, into: &j)
            }
            j.raw("]")
        case let map as [String: Any]:
            j.raw("{")
            for (k, key) in map.keys.sorted().enumerated() {
                if k > 0 { j.raw(",") }
                j.string(key)
                j.raw(":")
                write(map[key]!, into: &j)
            }
            j.raw("}")
        default:
            j.raw("null")
        }
    }

    /// JSONSerialization gives `true` as an NSNumber of ObjC type "c" (char); a JSON number
    /// 1 also casts to Bool, so the type is what tells them apart.
    private static func isBoolean(_ raw: Any) -> Bool {
        if type(of: raw) == Bool.self { return true }
        if let n = raw as? NSNumber { return String(cString: n.objCType) == "c" }
        return false
    }

    private static func CFNumberIsFloat(_ n: NSNumber) -> Bool {
        let t = String(cString: n.objCType)
        return t == "d" || t == "f"
    }
}

/// A record line copied out, with its nodes, for a `CapturedRuleInput` that outlives the
/// text it was read from.
private final class OwnedLine {
    let text: UnsafeMutableRawBufferPointer
    let nodes: UnsafeMutableBufferPointer<JSONTree.Node>

    init?(_ line: UnsafeRawBufferPointer) {
        var tree = JSONTree(limits: .capture)
        guard tree.parse(line) else { return nil }
        text = .allocate(byteCount: max(line.count, 1), alignment: 1)
        text.copyMemory(from: line)
        nodes = .allocate(capacity: tree.nodes.count)
        _ = nodes.initialize(from: tree.nodes)
    }

    var view: JSONTree.View {
        JSONTree.View(text: UnsafeRawBufferPointer(rebasing: text[0..<text.count]), nodes: UnsafeBufferPointer(nodes))
    }

    deinit {
        text.deallocate()
        nodes.deallocate()
    }
}
