@testable import AgentDetector
import Foundation
import Testing

/// The rule gate (RuleGate) may only skip rules that cannot match: the default pack raises the
/// same alerts with it and without it, over every fixture record and variations of their paths
/// made to fall just inside and just outside the patterns.
@Suite("Detector rule gate")
struct DetectorGateTests {
    /// Every fixture record of the pack, in order, with its home and time; then each file record
    /// again with its path varied.
    func records(_ set: RuleSet) -> [CapturedRuleInput] {
        var out: [CapturedRuleInput] = []
        var seq: UInt64 = 0
        func add(_ dict: [String: Any], home: String, time: Int64) {
            seq += 1
            var d = dict
            d["seq"] = Int(seq)
            if d["session"] == nil { d["session"] = ["id": "s1"] }
            out.append(CapturedRuleInput(d, homes: [home, "/root"], timeNs: time))
        }
        for rule in set.rules {
            for fixture in rule.fixtures {
                for (record, time) in zip(fixture.records, fixture.timesNs) {
                    guard let dict = record.any as? [String: Any] else { continue }
                    add(dict, home: fixture.home, time: time)
                    for key in ["path", "known_as"] {
                        guard var file = dict["file"] as? [String: Any], let path = file[key] as? String else { continue }
                        for variant in Self.variants(path, home: fixture.home) {
                            file[key] = variant
                            var d = dict
                            d["file"] = file
                            add(d, home: fixture.home, time: time)
                        }
                    }
                }
            }
        }
        return out
    }

    static func variants(_ path: String, home: String) -> [String] {
        var v = [path + "x", path + "/x", String(path.dropLast()), String(path.dropFirst()), path.uppercased(),
                 "/tmp" + path, path.replacingOccurrences(of: "/", with: "//")]
        if path.hasPrefix(home) {
            let rest = path.dropFirst(home.count)
            v += ["/root" + rest, "/home/other" + rest, home + "x" + rest]
        }
        return v
    }

    func alerts(_ set: RuleSet, _ records: [CapturedRuleInput], gates: Bool) -> [String] {
        let d = Detector(rules: set)
        d.gatesEnabled = gates
        var out: [String] = []
        for r in records { d.evaluate(r) { out.append("\($0.rule.id) \($0.evidence) \($0.message)") } }
        return out
    }

    @Test func thePackRaisesTheSameAlertsWithAndWithoutTheGate() throws {
        let set = try RuleSet.load(paths: [packageRules])
        let records = records(set)
        #expect(records.count > 1_000)
        let with = alerts(set, records, gates: true)
        let without = alerts(set, records, gates: false)
        #expect(with == without)
        // Not a vacuous equality: most of the pack's rules fire on their own fixtures.
        let firing = Set(with.map { $0.prefix { $0 != " " } })
        #expect(firing.count * 2 > set.rules.count, "\(firing.count) of \(set.rules.count) rules fired")
        // The gate is there: most file.open rules are behind it.
        let table = Detector(rules: set).typeTable
        let open = try #require(table.first { $0.name == "file.open" })
        let gated = try #require(open.gate).gated.filter { $0 }.count
        #expect(gated >= 15, "\(gated) of \(open.rules.count) file.open rules gated")
        // A sequence is gated by its steps: on opens, the credential read (the other steps
        // need other types).
        let sequence = try #require(set.rules.firstIndex { $0.id == "net-credential-read-then-upload" })
        let position = try #require(open.rules.firstIndex { $0.index == sequence })
        #expect(open.gate!.gated[position])
    }

    @Test func whatEachConditionGives() throws {
        func gated(_ condition: String) throws -> Bool {
            let set = try DT.rules(DT.oneRule(condition))
            return Detector(rules: set).typeTable.first?.gate != nil
        }
        #expect(try gated("file.path glob [/etc/*, ~/.ssh/id_*]"))
        #expect(try gated("file.result >= 0 and file.path startswith /etc/"))
        #expect(try gated("file.path in [/etc/shadow] or file.known_as glob [/etc/*]"))
        // A test of the type is decided for the type: one that fails gives nothing to find,
        // one that holds tells nothing.
        #expect(try gated("type == net.send or file.path startswith /etc/"))
        #expect(try gated("type == file.open and file.path startswith /etc/"))
        #expect(try !gated("type == file.open"))
        #expect(try !gated("type == file.open or file.path startswith /etc/"))
        // Each part of an `or` must give keys; `not`, endswith, contains and the i-forms give none.
        #expect(try !gated("file.path in [/etc/shadow] or file.result < 0"))
        #expect(try !gated("not file.path glob [/etc/*]"))
        #expect(try !gated("file.path endswith .pem"))
        #expect(try !gated("file.path contains secret"))
        #expect(try !gated("file.path iglob [/etc/*]"))
        // A glob with no literal prefix gives the empty key: every value passes it.
        #expect(try DT.fires("file.path glob ['**/.env']", "file.open", ["file.path": "/srv/app/.env"]))
    }

    @Test func aLongListStillMatchesItsHomeEntries() throws {
        // More than eight plain entries are searched by halving; the `~` entries beside them
        // were not looked at.
        let list = "[/a, /b, /c, /d, /e, /f, /g, /h, /i, ~/.netrc]"
        #expect(try DT.fires("file.path in \(list)", "file.open", ["file.path": "/home/dev/.netrc"]))
        #expect(try DT.fires("file.path in \(list)", "file.open", ["file.path": "/e"]))
        #expect(try !DT.fires("file.path in \(list)", "file.open", ["file.path": "/home/dev/.netrcx"]))
    }
}
