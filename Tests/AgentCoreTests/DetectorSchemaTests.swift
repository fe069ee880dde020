@testable import AgentDetector
@testable import AgentRecords
import Foundation
import Testing

/// rules/rule.schema.json is written by hand from the catalogue; these keep the two in step.
@Suite("Detector rule schema")
struct DetectorSchemaTests {
    func schema() throws -> [String: Any] {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("rules/rule.schema.json")
        let data = try Data(contentsOf: path)
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func defs() throws -> [String: Any] { try #require(try schema()["$defs"] as? [String: Any]) }

    @Test func isDraft2020AndStrict() throws {
        let s = try schema()
        #expect(s["$schema"] as? String == "https://json-schema.org/draft/2020-12/schema")
        #expect(s["additionalProperties"] as? Bool == false)
        let rule = try #require(try defs()["rule"] as? [String: Any])
        #expect(rule["additionalProperties"] as? Bool == false)
        let keys = Set(try #require(rule["properties"] as? [String: Any]).keys)
        #expect(keys == Set(RuleLoader.ruleKeys))
    }

    @Test func fieldsAndTypesMatchTheCatalogue() throws {
        let d = try defs()
        let field = try #require(d["field"] as? [String: Any])
        let anyOf = try #require(field["anyOf"] as? [[String: Any]])
        let names = try #require(anyOf.first?["enum"] as? [String])
        #expect(Set(names) == Set(Field.all.map(\.name)))
        let ints = try #require((d["integerField"] as? [String: Any])?["enum"] as? [String])
        #expect(Set(ints) == Set(Field.all.filter { $0.kind == .integer }.map(\.name)))
        let types = try #require((d["recordType"] as? [String: Any])?["enum"] as? [String])
        #expect(Set(types) == Set(RecordType.allCases.map(\.typeName)))
    }
}
