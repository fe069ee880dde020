import AgentRecords
import Foundation

/// A record parsed from NDJSON or written in a fixture: nested `[String: Any]` as
/// JSONSerialization or Yams produce (NSNumber/Int/Bool/String/[Any]/[String: Any]).
/// Fields the catalogue derives (`process.name`, `process.args`, `file.name`, `file.write`,
/// `process.parent.name`) are computed when the record does not carry them.
package struct CapturedRuleInput: RuleInput {
    package let dict: [String: Any]
    package let homes: [String]
    package let typeName: String
    package let seq: UInt64
    package let timeNs: Int64
    package let sessionID: String

    /// `time` (RFC 3339) gives `timeNs`; a record without a readable time is at 0.
    package init(_ dict: [String: Any], homes: [String]) {
        let time = (dict["time"] as? String).flatMap(Self.parseTimestamp) ?? 0
        self.init(dict, homes: homes, timeNs: time)
    }

    package init(_ dict: [String: Any], homes: [String], timeNs: Int64) {
        self.dict = dict
        self.homes = homes
        self.timeNs = timeNs
        typeName = dict["type"] as? String ?? ""
        seq = Self.integer(dict["seq"]).map { UInt64(clamping: $0) } ?? 0
        sessionID = (dict["session"] as? [String: Any])?["id"] as? String ?? ""
    }

    package func value(_ field: Field) -> RuleValue? {
        let raw = lookup(field.jsonPath)
        switch field.catalogueField {
        case .type: return .string(typeName)
        case .processName where raw == nil: return basename(["process", "exe"])
        case .parentName where raw == nil: return basename(["process", "parent", "exe"])
        case .fileName where raw == nil: return basename(["file", "path"])
        case .processArgs where raw == nil:
            guard case .list(let argv)? = Self.convert(lookup(["process", "argv"]), .list) else { return nil }
            return .string(argv.joined(separator: " "))
        case .fileWrite where raw == nil:
            guard case .list(let flags)? = Self.convert(lookup(["file", "flags"]), .list) else { return nil }
            return .bool(flags.contains { Self.writeFlags.contains($0) })
        default:
            return Self.convert(raw, field.kind)
        }
    }

    static let writeFlags: Set<String> = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"]

    private func lookup(_ path: [String]) -> Any? {
        var node: Any? = dict
        for key in path {
            guard let map = node as? [String: Any] else { return nil }
            node = map[key]
        }
        // A type check, not `is NSNull`, which would bridge every array to NSArray.
        if let n = node, type(of: n) == NSNull.self { return nil }
        return node
    }

    private func basename(_ path: [String]) -> RuleValue? {
        guard let full = lookup(path) as? String else { return nil }
        guard let slash = full.lastIndex(of: "/") else { return .string(full) }
        return .string(String(full[full.index(after: slash)...]))
    }

    /// Reads a value as the field's kind expects, leniently: numbers become strings where a
    /// string is expected, since a YAML fixture may write `name: 7` unquoted.
    static func convert(_ raw: Any?, _ kind: FieldKind) -> RuleValue? {
        guard let raw else { return nil }
        switch kind {
        case .string:
            if let s = raw as? String { return .string(s) }
            if isBoolean(raw), let b = raw as? Bool { return .string(b ? "true" : "false") }
            return integer(raw).map { .string(String($0)) }
        case .integer:
            return integer(raw).map { .int($0) }
        case .boolean:
            return isBoolean(raw) ? (raw as? Bool).map { .bool($0) } : nil
        case .list:
            guard let items = raw as? [Any] else { return nil }
            return .list(items.map { item in
                if let s = item as? String { return s }
                if let i = integer(item) { return String(i) }
                return "\(item)"
            })
        }
    }

    /// JSONSerialization gives `true` as an NSNumber of ObjC type "c" (char); a JSON number
    /// 1 also casts to Bool, so the type is what tells them apart.
    private static func isBoolean(_ raw: Any) -> Bool {
        if type(of: raw) == Bool.self { return true }
        if let n = raw as? NSNumber { return String(cString: n.objCType) == "c" }
        return false
    }

    static func integer(_ raw: Any?) -> Int64? {
        guard let raw, !isBoolean(raw) else { return nil }
        switch raw {
        case let i as Int: return Int64(i)
        case let i as Int64: return i
        case let u as UInt64: return Int64(exactly: u)
        case let n as NSNumber:
            let d = n.doubleValue
            return d.rounded() == d && abs(d) < 9.2e18 ? n.int64Value : nil
        case let d as Double: return d.rounded() == d && abs(d) < 9.2e18 ? Int64(d) : nil
        default: return nil
        }
    }

    /// `2026-11-21T17:40:00.123456789Z` (or with a `+hh:mm` offset) as Unix ns.
    package static func parseTimestamp(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8 { JSONReading.unixNanoseconds(UnsafeRawBufferPointer($0)) }
    }
}
