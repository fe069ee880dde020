@testable import AgentDetector
@testable import AgentRecords
import Foundation
import Testing

/// The field catalogue (`RecordField`) against schema/agentwatch-record.schema.json: every field
/// of every record type the schema allows is in the catalogue once, with the schema's JSON
/// type, element type, time format and record types; and the rule fields are made of it.
@Suite("Detector record catalogue")
struct DetectorCatalogueTests {
    struct SchemaField: Equatable, CustomStringConvertible {
        var kind: JSONKind
        var element: JSONKind
        var isTime: Bool
        var types: Set<String>
        var description: String { "\(kind) of \(element)\(isTime ? " time" : "") in \(types.sorted())" }
    }

    /// The schema's fields by dotted name, read by following each `record:TYPE` definition's
    /// properties (through `$ref`, with the `"not": {}` a type uses to leave a field out).
    static func schemaFields() throws -> [String: SchemaField] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("schema/agentwatch-record.schema.json")
        let schema = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let defs = try #require(schema["$defs"] as? [String: Any])
        let top = try #require(schema["properties"] as? [String: Any])

        func isTrue(_ v: Any) -> Bool { (v as? NSNumber).map { String(cString: $0.objCType) == "c" && $0.boolValue } ?? false }
        func ref(_ n: [String: Any]) -> [String: Any]? {
            (n["$ref"] as? String).flatMap { defs[String($0.split(separator: "/").last!)] as? [String: Any] }
        }
        func kind(_ name: String?) -> JSONKind? {
            switch name {
            case "integer", "number": .number
            case "boolean": .bool
            case "string": .string
            case "array": .array
            case "object": .object
            default: nil
            }
        }
        /// A node's JSON type, its properties (objects) and its items (arrays).
        func merge(_ node: Any) -> (kind: JSONKind?, properties: [String: Any]?, items: Any?) {
            guard let n = node as? [String: Any] else { return (nil, nil, nil) }
            var (k, properties, items): (JSONKind?, [String: Any]?, Any?) = (kind(n["type"] as? String), nil, n["items"])
            if let base = ref(n) {
                let b = merge(base)
                k = k ?? b.kind
                properties = b.properties
                items = items ?? b.items
            }
            if let own = n["properties"] as? [String: Any] {
                var p = properties ?? [:]
                for (key, v) in own {
                    if let d = v as? [String: Any], d.count == 1, let not = d["not"] as? [String: Any], not.isEmpty {
                        p[key] = nil
                    } else if !(p[key] != nil && isTrue(v)) {
                        p[key] = v
                    }
                }
                properties = p
                k = k ?? .object
            }
            if k == nil {
                if let e = n["enum"] as? [Any] { k = e.allSatisfy { $0 is String } ? .string : nil }
                if let c = n["const"] { k = c is String ? .string : isTrue(c) || (c as? NSNumber).map { String(cString: $0.objCType) == "c" } == true ? .bool : .number }
                if n["anyOf"] != nil { k = .string }
                for a in n["allOf"] as? [Any] ?? [] { k = k ?? merge(a).kind }
            }
            return (k, properties, items)
        }

        var fields: [String: SchemaField] = [:]
        func walk(_ type: String, _ prefix: [String], _ node: Any) {
            guard let properties = merge(node).properties else { return }
            for (key, value) in properties {
                let v = isTrue(value) ? top[key] ?? value : value
                let m = merge(v)
                let name = (prefix + [key]).joined(separator: ".")
                let element = m.items.map { merge($0).kind ?? .absent } ?? .absent
                let isTime = (v as? [String: Any])?["$ref"] as? String == "#/$defs/timestamp"
                var f = fields[name] ?? SchemaField(kind: m.kind ?? .absent, element: element, isTime: isTime, types: [])
                #expect(f.kind == (m.kind ?? .absent) && f.element == element && f.isTime == isTime,
                        "\(name) is \(m.kind.map { "\($0)" } ?? "?") in \(type) but \(f.kind) elsewhere")
                f.types.insert(type)
                fields[name] = f
                if m.properties != nil { walk(type, prefix + [key], v) }
            }
        }
        for (name, def) in defs where name.hasPrefix("record:") { walk(String(name.dropFirst(7)), [], def) }
        return fields
    }

    @Test func catalogueIsTheSchema() throws {
        let schema = try Self.schemaFields()
        let catalogue = Dictionary(uniqueKeysWithValues: RecordField.allCases.map { f in
            (f.name, SchemaField(kind: f.kind, element: f.spec.element, isTime: f.spec.isTime,
                                 types: Set(RecordType.allCases.filter { f.types.contains($0) }.map { "\($0.name)" })))
        })
        #expect(catalogue.count == RecordField.allCases.count, "a name is in the catalogue twice")
        #expect(Set(catalogue.keys).subtracting(schema.keys).sorted() == [], "in the catalogue, not in the schema")
        #expect(Set(schema.keys).subtracting(catalogue.keys).sorted() == [], "in the schema, not in the catalogue")
        for (name, s) in schema.sorted(by: { $0.key < $1.key }) {
            guard let c = catalogue[name] else { continue }
            #expect(c == s, "\(name): catalogue \(c), schema \(s)")
        }
    }

    /// The formats' table has a slot per catalogue field, found under its path.
    @Test func formatTableReadsEveryField() throws {
        #expect(RecordField.table.count == RecordField.allCases.count)
        let line = #"{"v":1,"seq":7,"time":"2026-01-01T00:00:00.000000000Z","type":"process.exec","host":{"name":"h","id":""},"process":{"parent":{"exe":"/bin/sh"},"stdin":{"ino":5}}}"#
        var spans: [JSONSpan] = []
        let ok = Array(line.utf8).withUnsafeBytes { RecordField.table.read($0, limits: .output, into: &spans) }
        #expect(ok)
        #expect(spans[RecordField.seq.rawValue].magnitude == 7)
        #expect(spans[RecordField.parentExe.rawValue].kind == .string)
        #expect(spans[RecordField.stdinIno.rawValue].magnitude == 5)
        #expect(spans[RecordField.exe.rawValue].kind == .absent)
    }

    /// Each rule field is a catalogue field (or derived from one beside it), of a kind its
    /// JSON type gives, present where the catalogue says the record types carry it.
    @Test func ruleFieldsAreMadeOfTheCatalogue() {
        for f in RuleField.allCases {
            let r = f.recordField
            switch f.source {
            case .record:
                #expect(f.name == r.name)
                if f != .sessionLabel {
                    let expected: FieldKind = switch r.kind {
                    case .number: .integer
                    case .bool: .boolean
                    case .array: .list
                    default: .string
                    }
                    #expect(f.kind == expected, "\(f.name)")
                }
            case .derived(let key, _, _):
                #expect(f.name == (r.path.dropLast() + ["\(key)"]).joined(separator: "."))
            }
            if f != .sessionUID && f != .netError {
                #expect(r.types.subtracting(f.presence).isSubset(of: .alert), "\(f.name)")
                #expect(f.presence.isSubset(of: r.types), "\(f.name)")
            }
        }
    }
}
