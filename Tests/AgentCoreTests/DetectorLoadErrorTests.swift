@testable import AgentDetector
import Testing

@Suite("Detector load errors")
struct DetectorLoadErrorTests {
    /// A rule file whose only rule has this condition line (line 6) and types.
    func rule(_ conditionLine: String, types: String = "[file.open]", prelude: String = "") -> String {
        """
        rules:
          - id: a
            title: t
            severity: low
            types: \(types)
        \(conditionLine)
            fixtures: []
        \(prelude)
        """
    }

    @Test func unknownFieldWithDidYouMeanAtItsColumn() {
        #expect(DT.errors(rule("    condition: file.pth == /x")) == ["test.yaml:6:16: unknown field file.pth (did you mean file.path?)"])
        #expect(DT.errors(rule("    condition: file.path == /x and pid > 1")) == ["test.yaml:6:36: unknown field pid (did you mean process.pid?)"])
    }

    @Test func columnsInQuotedScalars() {
        #expect(DT.errors(rule(#"    condition: "file.path == /x and proc.name == y""#)).first?.hasPrefix("test.yaml:6:37: unknown field proc.name") == true)
        #expect(DT.errors(rule("    condition: 'file.path == \"a\" and proc.name == y'")).first?.hasPrefix("test.yaml:6:38: unknown field proc.name") == true)
    }

    @Test func linesInBlockScalars() {
        let folded = rule("""
            condition: >
              file.path == /x
              and proc.name == y
        """)
        #expect(DT.errors(folded).first?.hasPrefix("test.yaml:8:11: unknown field proc.name") == true)
        let literal = rule("""
            condition: |
              file.path == /x and
              file.path > 3
        """)
        // The `>` of the operator, not the `|` header, and on the right line.
        #expect(DT.errors(literal) == ["test.yaml:8:17: > needs an integer field; file.path is a string"])
    }

    @Test func fieldNotPresentInTheRulesTypes() {
        #expect(DT.errors(rule("    condition: file.path == /x", types: "[net.connect]"))
            == ["test.yaml:6:16: file.path is never present in net.connect records (it is in file.open records)"])
        #expect(DT.errors(rule("    condition: net.bytes_sent > 1", types: "[net.connect, file.open]")).first?
            .hasPrefix("test.yaml:6:16: net.bytes_sent is never present in net.connect or file.open records") == true)
        // Present in one of the types is enough.
        #expect(DT.errors(rule("    condition: file.path == /x or net.dport == 1", types: "[net.connect, file.open]")).isEmpty)
    }

    @Test func badRegexPointsAtTheValue() {
        let errors = DT.errors(rule("    condition: process.name regex 'a(b'"))
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("test.yaml:6:35: bad regex \"a(b\"") == true)
    }

    @Test func unknownOperator() {
        #expect(DT.errors(rule("    condition: file.path = /x")) == ["test.yaml:6:26: unknown operator '=' (did you mean ==?)"])
        #expect(DT.errors(rule("    condition: file.path globb /x")) == ["test.yaml:6:26: unknown operator 'globb' (did you mean glob?)"])
        #expect(DT.errors(rule("    condition: file.path")).first?.hasPrefix("test.yaml:6:16: expected an operator after file.path") == true)
    }

    @Test func duplicateRuleIDNamesBothPlaces() {
        let yaml = """
        rules:
          - id: a
            title: t
            severity: low
            types: [file.open]
            condition: file.path exists
            fixtures: []
          - id: a
            title: t2
            severity: low
            types: [file.open]
            condition: file.path exists
            fixtures: []
        """
        #expect(DT.errors(yaml) == ["test.yaml:8:9: duplicate rule id a (first defined at test.yaml:2:9)"])
    }

    @Test func duplicatesAcrossFilesOfADirectory() throws {
        let dir = DetectorTempDir()
        dir.write("a.yaml", "lists:\n  - list: keys\n    items: [a]\n")
        dir.write("b.yml", "lists:\n  - list: keys\n    items: [b]\n")
        dir.write("notes.txt", "not a rule file")
        #expect(throws: RuleErrors.self) { try RuleSet.load(paths: [dir.path]) }
        do {
            _ = try RuleSet.load(paths: [dir.path])
        } catch {
            #expect(error.diagnostics.map(\.description) == ["\(dir.path)/b.yml:2:11: duplicate list keys (first defined at \(dir.path)/a.yaml:2:11)"])
        }
    }

    @Test func unknownListAndMacro() {
        let prelude = """
        lists:
          - list: ssh_keys
            items: [a]
        macros:
          - macro: is_shell
            condition: process.name in [sh]
        """
        #expect(DT.errors(rule("    condition: file.path glob @ssh_key", prelude: prelude))
            == ["test.yaml:6:31: unknown list @ssh_key (did you mean ssh_keys?)"])
        #expect(DT.errors(rule("    condition: is_shel and file.path exists", prelude: prelude))
            == ["test.yaml:6:16: unknown macro is_shel (did you mean is_shell?)"])
    }

    @Test func macroCycleIsAnError() {
        let prelude = """
        macros:
          - macro: ping
            condition: pong and file.path exists
          - macro: pong
            condition: not ping
        """
        let errors = DT.errors(rule("    condition: ping", prelude: prelude))
        #expect(errors.count == 1)
        #expect(errors.first?.contains("macros use each other in a cycle: ping → pong → ping") == true)
        #expect(errors.first?.hasPrefix("test.yaml:12:20:") == true)
    }

    @Test func listSpliceCycleIsAnError() {
        let yaml = """
        lists:
          - list: a
            items: ["@b"]
          - list: b
            items: ["@a"]
        """
        #expect(DT.errors(yaml).contains { $0.contains("lists splice each other in a cycle") })
    }

    @Test func errorsInsideMacrosNameTheRule() {
        let prelude = """
        macros:
          - macro: writes
            condition: file.write == true
        """
        #expect(DT.errors(rule("    condition: writes", types: "[net.connect]", prelude: prelude))
            == ["test.yaml:10:16: file.write is never present in net.connect records (in macro writes, used by rule a) (it is in file.open records)"])
    }

    @Test func yamlSyntaxError() {
        let errors = DT.errors("rules:\n  - id: a\n    title: [unclosed\n")
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("test.yaml:4:1: YAML error:") == true)
        #expect(DT.errors("rules:\n  - id: a\n    id: b\n").first?.contains("given twice") == true)
    }

    @Test func collectsEveryErrorOfALoad() {
        let yaml = """
        rules:
          - id: one
            title: t
            severity: hgh
            types: [file.opn]
            condition: file.path == /x
          - id: two
            title: t
            severity: low
            types: [file.open]
            condition: file.path ==
            fixtures: []
          - id: three
            title: t
            severity: low
            types: [file.open]
            condition: file.path in /x and file.result glob 1
            message: "{file.pat}"
            sumpress: 1m
            fixtures: []
        """
        let errors = DT.errors(yaml)
        #expect(errors == [
            "test.yaml:4:15: unknown severity \"hgh\" (did you mean high?)",
            "test.yaml:5:13: unknown record type file.opn (did you mean file.open?)",
            "test.yaml:11:26: expected a value after ==",
            "test.yaml:17:29: in needs a list: [a, b] or @list_name (use == for one value)",
            "test.yaml:17:48: glob needs a string field; file.result is an integer (use ==, !=, <, <=, >, >= or in)",
            "test.yaml:18:16: unknown field {file.pat} in the message (did you mean file.path?)",
            "test.yaml:19:5: unknown key 'sumpress' in a rule (did you mean suppress?)",
        ])
    }

    @Test func valueKindErrors() {
        #expect(DT.errors(rule("    condition: file.path == [a, b]")) == ["test.yaml:6:29: == compares with one value, not a list (use in for a list)"])
        #expect(DT.errors(rule("    condition: file.result == abc")) == ["test.yaml:6:31: file.result is an integer: \"abc\" is not a number (write a whole number such as 42, -1 or 10MiB)"])
        #expect(DT.errors(rule("    condition: file.write == yes")) == ["test.yaml:6:30: file.write is a boolean: compare it with true or false"])
        #expect(DT.errors(rule("    condition: file.path glob '/x/[ab'")).first?.contains("unterminated character class") == true)
        #expect(DT.errors(rule("    condition: file.path cidr 10.0.0.0/8", types: "[file.open]")).isEmpty)
        #expect(DT.errors(rule("    condition: net.daddr cidr 10.0.0.0/40", types: "[net.connect]"))
            == ["test.yaml:6:31: bad network prefix \"10.0.0.0/40\" (write 10.0.0.0/8, fd00::/8 or one address)"])
        #expect(DT.errors(rule("    condition: (file.path exists")) == ["test.yaml:6:16: '(' is never closed"])
        #expect(DT.errors(rule("    condition: file.path == \"open")) == ["test.yaml:6:29: string is not closed: add \""])
    }

    @Test func statefulRuleErrors() {
        let yaml = """
        rules:
          - id: s
            title: t
            severity: low
            types: [process.exec]
            sequence:
              within: 1m
              steps:
                - condition: process.name == curl
                  by: [process.stdout.ino]
                - condition: process.name == sh
                  by: [session.id, process.stdin.ino]
            fixtures: []
          - id: th
            title: t
            severity: low
            types: [net.flow]
            condition: net.final == true
            threshold:
              sum: net.family
              over: lots
              within: 10
            fixtures: []
        """
        let errors = DT.errors(yaml)
        #expect(errors == [
            "test.yaml:12:15: step 2 is keyed by 2 fields but an earlier step by 1: all steps need by lists of the same length",
            "test.yaml:20:12: sum names one integer field (for example net.bytes_sent_delta)",
            "test.yaml:21:13: over must be a whole number (10MiB, 500) (suffixes KiB, MiB and GiB are allowed)",
            "test.yaml:22:15: within must be a duration (write 500ms, 30s, 10m or 1h)",
        ])
    }

    @Test func warnsAboutRulesWithoutFixtures() throws {
        let set = try DT.rules("rules:\n  - id: a\n    title: t\n    severity: low\n    types: [file.open]\n    condition: file.path exists\n")
        #expect(set.warnings.map(\.description) == ["test.yaml:2:9: warning: rule a has no fixtures (add one that raises an alert and a near miss that does not)"])
    }

    @Test func unreadablePath() {
        #expect(throws: RuleErrors.self) { try RuleSet.load(paths: ["/nonexistent/rules.yaml"]) }
    }
}
