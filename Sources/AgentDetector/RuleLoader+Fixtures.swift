import AgentRecords
import Yams

/// Reading a rule's fixtures: records as nested values, `~/` expanded with the fixture's
/// home, times from `at:` offsets.
extension RuleLoader {
    static let fixtureBaseNs: Int64 = 1_700_000_000_000_000_000
    static let defaultFixtureHome = "/home/dev"

    func compileFixtures(_ node: Node, _ file: RuleFileText) -> [RuleFixture] {
        guard case .sequence(let entries) = node else {
            error(file.location(node), "fixtures must be a list")
            return []
        }
        var fixtures: [RuleFixture] = []
        for entry in entries {
            guard let map = mapping(entry, "a fixture", file, allowed: ["name", "home", "records", "alerts"]) else { continue }
            let at = file.location(entry)
            let name = string(map, "name", file, required: true, in: "a fixture", at: entry) ?? ""
            let home = string(map, "home", file, required: false, in: "a fixture", at: entry) ?? Self.defaultFixtureHome
            var expected: Int?
            if let a = map["alerts"] {
                if let n = yamlInt(a), n >= 0 { expected = n } else {
                    error(file.location(a), "alerts must be a whole number (0 for a near miss)")
                }
            } else {
                error(at, "fixture \(Self.quote(name)) has no alerts: (how many alerts its records must raise)")
            }
            guard let recordsNode = map["records"], case .sequence(let recordNodes) = recordsNode, !recordNodes.isEmpty else {
                error(file.location(map["records"] ?? entry), "fixture \(Self.quote(name)) needs records: a list of records")
                continue
            }
            var records: [FixtureValue] = []
            var times: [Int64] = []
            var previous: Int64?
            for (i, recordNode) in recordNodes.enumerated() {
                guard case .mapping(let recordMap) = recordNode else {
                    error(file.location(recordNode), "a fixture record must be a mapping like {type: file.open, ...}")
                    continue
                }
                var pairs: [(String, FixtureValue)] = []
                var time = previous.map { $0 + 1_000_000 } ?? Self.fixtureBaseNs
                var hasSeq = false
                var hasSessionID = false
                for (k, v) in recordMap {
                    let key = k.scalar?.string ?? ""
                    if key == "at" {
                        if let offset = duration(v, "at", file) { time = Self.fixtureBaseNs + offset }
                        continue
                    }
                    if key == "type" {
                        guard let t = scalarString(v), RecordType.byTypeName[t] != nil else {
                            error(file.location(v), "unknown record type \(scalarString(v).map(Self.quote) ?? "")",
                                  hint: didYouMean(scalarString(v) ?? "", among: RecordType.allCases.map(\.typeName)))
                            continue
                        }
                    }
                    if key == "seq" { hasSeq = true }
                    guard var value = Self.fixtureValue(v, home: home) else { continue }
                    if key == "session", case .map(var fields) = value {
                        if !fields.contains(where: { $0.0 == "id" }) { fields.append(("id", .string("fixture"))) }
                        value = .map(fields)
                        hasSessionID = true
                    }
                    pairs.append((key, value))
                }
                if recordMap["type"] == nil {
                    error(file.location(recordNode), "a fixture record needs a type", hint: "for example type: file.open")
                }
                if !hasSeq { pairs.append(("seq", .int(i + 1))) }
                if !hasSessionID { pairs.append(("session", .map([("id", .string("fixture"))]))) }
                records.append(.map(pairs))
                times.append(time)
                previous = time
            }
            fixtures.append(RuleFixture(name: name, line: at.line, home: home, expectedAlerts: expected ?? 0,
                                        records: records, timesNs: times))
        }
        return fixtures
    }

    /// A YAML node as a fixture value; nil for null (the key is then absent).
    static func fixtureValue(_ node: Node, home: String) -> FixtureValue? {
        switch node {
        case .scalar(let s):
            if node.null != nil { return nil }
            if s.style == .plain || s.style == .any {
                if let i = yamlInt(node) { return .int(i) }
                if let b = yamlBool(node) { return .bool(b) }
                if s.string.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }), s.string.first?.isLetter == false,
                   let d = Double(s.string) {
                    return .double(d)
                }
            }
            let text = s.string
            if text == "~" || text.hasPrefix("~/") {
                let base = home.count > 1 && home.hasSuffix("/") ? String(home.dropLast()) : home
                return .string(base + text.dropFirst())
            }
            return .string(text)
        case .sequence(let seq):
            return .list(seq.compactMap { fixtureValue($0, home: home) })
        case .mapping(let map):
            return .map(map.compactMap { k, v in fixtureValue(v, home: home).map { (k.scalar?.string ?? "", $0) } })
        case .alias:
            return nil
        }
    }
}
