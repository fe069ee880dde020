@testable import AgentDetector
@testable import AgentSessions
import Testing

@Suite("Detector conditions")
struct DetectorConditionTests {
    let open = "file.open"

    @Test func equalityAndInequality() throws {
        #expect(try DT.fires("file.path == /etc/shadow", open, ["file.path": "/etc/shadow"]))
        #expect(try !DT.fires("file.path == /etc/shadow", open, ["file.path": "/etc/passwd"]))
        #expect(try DT.fires("file.path != /etc/shadow", open, ["file.path": "/etc/passwd"]))
        #expect(try !DT.fires("file.path != /etc/shadow", open, ["file.path": "/etc/shadow"]))
        #expect(try DT.fires(#"file.path == "/a b""#, open, ["file.path": "/a b"]))
        #expect(try DT.fires("file.path == '/a \\\"b'", open, ["file.path": "/a \\\"b"]))
        #expect(try DT.fires(#"file.path == "q\"x\\y""#, open, ["file.path": "q\"x\\y"]))
    }

    @Test func caseInsensitiveForms() throws {
        #expect(try DT.fires("process.name ieq CURL", open, ["process.name": "curl"]))
        #expect(try !DT.fires("process.name == CURL", open, ["process.name": "curl"]))
        #expect(try DT.fires("process.name iin [WGET, Curl]", open, ["process.name": "curl"]))
        #expect(try !DT.fires("process.name in [WGET, Curl]", open, ["process.name": "curl"]))
        #expect(try DT.fires("file.path istartswith /ETC/", open, ["file.path": "/etc/x"]))
        #expect(try DT.fires("file.path iendswith .PEM", open, ["file.path": "/k/a.pem"]))
        #expect(try DT.fires("file.path icontains SECRET", open, ["file.path": "/k/my-secret-file"]))
        #expect(try !DT.fires("file.path contains SECRET", open, ["file.path": "/k/my-secret-file"]))
        #expect(try DT.fires("file.path iglob /ETC/*.CONF", open, ["file.path": "/etc/a.conf"]))
        #expect(try !DT.fires("file.path glob /ETC/*.CONF", open, ["file.path": "/etc/a.conf"]))
    }

    @Test func stringOperators() throws {
        #expect(try DT.fires("file.path startswith /etc/", open, ["file.path": "/etc/hosts"]))
        #expect(try !DT.fires("file.path startswith /etc/", open, ["file.path": "/etcx/hosts"]))
        #expect(try DT.fires("file.path endswith .pem", open, ["file.path": "/a/b.pem"]))
        #expect(try !DT.fires("file.path endswith .pem", open, ["file.path": "/a/b.pem.bak"]))
        #expect(try DT.fires("file.path contains /.aws/", open, ["file.path": "/home/dev/.aws/credentials"]))
        #expect(try !DT.fires("file.path contains /.aws/", open, ["file.path": "/home/dev/aws/credentials"]))
    }

    @Test func integerComparisons() throws {
        #expect(try DT.fires("file.result >= 0", open, ["file.result": 3]))
        #expect(try DT.fires("file.result >= 0", open, ["file.result": 0]))
        #expect(try !DT.fires("file.result >= 0", open, ["file.result": -2]))
        #expect(try DT.fires("file.result < 0", open, ["file.result": -2]))
        #expect(try !DT.fires("file.result < 0", open, ["file.result": 0]))
        #expect(try DT.fires("file.result <= 3", open, ["file.result": 3]))
        #expect(try !DT.fires("file.result > 3", open, ["file.result": 3]))
        #expect(try DT.fires("file.result == 3", open, ["file.result": 3]))
        #expect(try DT.fires("file.result != 3", open, ["file.result": 4]))
        #expect(try DT.fires("net.dport in [22, 2222]", "net.connect", ["net.dport": 2222]))
        #expect(try !DT.fires("net.dport in [22, 2222]", "net.connect", ["net.dport": 80]))
        #expect(try !DT.fires("net.dport in []", "net.connect", ["net.dport": 80]))
        #expect(try DT.fires("not net.dport in []", "net.connect", ["net.dport": 80]))
    }

    @Test func numbersTakeSizeSuffixes() throws {
        #expect(try DT.fires("net.bytes_sent > 1MiB", "net.flow", ["net.bytes_sent": 1_048_577]))
        #expect(try !DT.fires("net.bytes_sent > 1MiB", "net.flow", ["net.bytes_sent": 1_048_576]))
        #expect(try DT.fires("net.bytes_sent >= 2KiB", "net.flow", ["net.bytes_sent": 2048]))
        #expect(try DT.fires("net.bytes_sent >= 1GiB", "net.flow", ["net.bytes_sent": 1 << 30]))
        #expect(try !DT.fires("net.bytes_sent >= 1GiB", "net.flow", ["net.bytes_sent": (1 << 30) - 1]))
        #expect(parseNumber("10MiB") == .some(.some(10 << 20)))
        #expect(parseNumber("-7") == .some(.some(-7)))
        #expect(parseNumber("7z") == .none)
    }

    @Test func booleans() throws {
        #expect(try DT.fires("file.write == true", open, ["file.flags": ["O_WRONLY", "O_CREAT"]]))
        #expect(try DT.fires("file.write == false", open, ["file.flags": ["O_RDONLY"]]))
        #expect(try DT.fires("file.write != true", open, ["file.flags": ["O_RDONLY"]]))
        #expect(try DT.fires("process.argv_truncated == true", open, ["process.argv_truncated": true]))
        #expect(try !DT.fires("process.argv_truncated == true", open, ["process.argv_truncated": false]))
    }

    @Test func andOrNotAndParentheses() throws {
        let c = "(process.name == cat or process.name == less) and not file.path startswith /tmp/"
        #expect(try DT.fires(c, open, ["process.name": "less", "file.path": "/etc/x"]))
        #expect(try !DT.fires(c, open, ["process.name": "less", "file.path": "/tmp/x"]))
        #expect(try !DT.fires(c, open, ["process.name": "vi", "file.path": "/etc/x"]))
        // `and` binds tighter than `or`.
        #expect(try DT.fires("process.name == a or process.name == b and file.path == /x", open, ["process.name": "a", "file.path": "/y"]))
        #expect(try DT.fires("not not process.name == a", open, ["process.name": "a"]))
    }

    @Test func literalListsAndAnyOf() throws {
        #expect(try DT.fires("file.path startswith [/etc/, /root/]", open, ["file.path": "/root/.bashrc"]))
        #expect(try !DT.fires("file.path startswith [/etc/, /root/]", open, ["file.path": "/usr/x"]))
        #expect(try DT.fires("file.path endswith ['.pem', \".key\"]", open, ["file.path": "/a.key"]))
        #expect(try !DT.fires("process.name in []", open, ["process.name": "a"]))
        // A long list takes the hashed path; it must agree with the scan.
        let many = (0..<20).map { "n\($0)" }.joined(separator: ", ")
        #expect(try DT.fires("process.name in [\(many)]", open, ["process.name": "n17"]))
        #expect(try !DT.fires("process.name in [\(many)]", open, ["process.name": "n170"]))
    }

    @Test func namedListsSpliceOtherLists() throws {
        let prelude = """
        lists:
          - list: shells
            items: [bash, sh, "@more_shells"]
          - list: more_shells
            items: [zsh, fish]
        """
        #expect(try DT.fires("process.name in @shells", open, ["process.name": "fish"], prelude: prelude))
        #expect(try DT.fires("process.name in @shells", open, ["process.name": "bash"], prelude: prelude))
        #expect(try !DT.fires("process.name in @shells", open, ["process.name": "python"], prelude: prelude))
        #expect(try DT.fires("process.name startswith @shells", open, ["process.name": "zsh5"], prelude: prelude))
    }

    @Test func macrosIncludingNested() throws {
        let prelude = """
        macros:
          - macro: opened_for_write
            condition: file.write == true
          - macro: shell_writes
            condition: opened_for_write and process.name in [bash, sh]
        """
        #expect(try DT.fires("shell_writes", open, ["process.name": "sh", "file.flags": ["O_WRONLY"]], prelude: prelude))
        #expect(try !DT.fires("shell_writes", open, ["process.name": "sh", "file.flags": ["O_RDONLY"]], prelude: prelude))
        #expect(try DT.fires("not opened_for_write", open, ["file.flags": ["O_RDONLY"]], prelude: prelude))
    }

    @Test func sharedMacrosAreEvaluatedPerRecord() throws {
        // Both rules use the macro; its remembered result must not leak between records.
        let yaml = """
        macros:
          - macro: writes
            condition: file.write == true and file.path startswith /etc/
        rules:
          - {id: a, title: t, severity: low, types: [file.open], condition: writes and process.name == sh, suppress: 0, fixtures: []}
          - {id: b, title: t, severity: low, types: [file.open], condition: not writes and file.path startswith /etc/, suppress: 0, fixtures: []}
          - {id: c, title: t, severity: low, types: [file.open], condition: writes, suppress: 0, fixtures: []}
        """
        let set = try DT.rules(yaml)
        let write = DT.record(open, ["file.path": "/etc/x", "file.flags": ["O_WRONLY"], "process.name": "sh"], seq: 1)
        let read = DT.record(open, ["file.path": "/etc/x", "file.flags": ["O_RDONLY"], "process.name": "sh"], seq: 2)
        let alerts = DT.alerts(set, [write, read, write])
        #expect(alerts.map { "\($0.rule.id)\($0.triggerSeq)" } == ["a1", "c1", "b2", "a1", "c1"])
    }

    @Test func exceptionsStopARule() throws {
        let yaml = """
        rules:
          - id: r1
            title: t
            severity: low
            types: [file.open]
            condition: file.path glob "~/.ssh/id_*"
            exceptions:
              - name: ssh itself
                condition: process.name in [ssh, ssh-add]
              - name: backups
                condition: process.exe startswith /usr/lib/backup/
            suppress: 0
            fixtures: []
        """
        let set = try DT.rules(yaml)
        let path = ["file.path": "/home/dev/.ssh/id_rsa"]
        #expect(DT.alerts(set, [DT.record(open, path.merging(["process.name": "cat"]) { a, _ in a })]).count == 1)
        #expect(DT.alerts(set, [DT.record(open, path.merging(["process.name": "ssh"]) { a, _ in a })]).isEmpty)
        #expect(DT.alerts(set, [DT.record(open, path.merging(["process.exe": "/usr/lib/backup/run"]) { a, _ in a })]).isEmpty)
    }

    @Test func tildeMeansTheSessionHome() throws {
        #expect(try DT.fires("file.path glob ~/.ssh/id_*", open, ["file.path": "/home/dev/.ssh/id_rsa"]))
        #expect(try !DT.fires("file.path glob ~/.ssh/id_*", open, ["file.path": "/home/other/.ssh/id_rsa"]))
        #expect(try DT.fires("file.path == ~/.netrc", open, ["file.path": "/home/dev/.netrc"]))
        #expect(try DT.fires("file.path in [~/.netrc, /etc/shadow]", open, ["file.path": "/home/dev/.netrc"]))
        #expect(try DT.fires("file.path startswith ~/.aws/", open, ["file.path": "/home/dev/.aws/credentials"]))
        #expect(try DT.fires("process.cwd == ~", open, ["process.cwd": "/home/dev"]))
        #expect(try !DT.fires("process.cwd == ~", open, ["process.cwd": "/home/devx"]))
        // `/home/devil` does not start with the home directory `/home/dev`.
        #expect(try !DT.fires("file.path startswith ~", open, ["file.path": "/home/devil/x"]))
        #expect(try DT.fires("file.path startswith ~", open, ["file.path": "/home/dev/x"]))
        #expect(try DT.fires("file.path istartswith ~/.AWS/", open, ["file.path": "/home/dev/.aws/x"]))
        // No home known: a `~` pattern matches nothing.
        #expect(try !DT.fires("file.path glob ~/.ssh/*", open, ["file.path": "/home/dev/.ssh/x"], homes: []))
        // `~` elsewhere, or with other operators, is literal.
        #expect(try DT.fires("file.path endswith ~/x", open, ["file.path": "/a~/x"]))
    }

    @Test func tildeWithTwoHomes() throws {
        let homes = ["/home/dev", "/root/"]
        #expect(try DT.fires("file.path glob ~/.ssh/*", open, ["file.path": "/home/dev/.ssh/a"], homes: homes))
        #expect(try DT.fires("file.path glob ~/.ssh/*", open, ["file.path": "/root/.ssh/a"], homes: homes))
        #expect(try !DT.fires("file.path glob ~/.ssh/*", open, ["file.path": "/srv/.ssh/a"], homes: homes))
        #expect(try DT.fires("process.argv glob ~/bin/*", "process.exec", ["process.argv": ["x", "/root/bin/tool"]], homes: homes))
    }

    @Test func listFieldsMatchAnyElement() throws {
        #expect(try DT.fires("file.flags == O_TRUNC", open, ["file.flags": ["O_WRONLY", "O_TRUNC"]]))
        #expect(try !DT.fires("file.flags == O_TRUNC", open, ["file.flags": ["O_WRONLY"]]))
        // `!=` on a list field: no element equals.
        #expect(try DT.fires("file.flags != O_TRUNC", open, ["file.flags": ["O_WRONLY"]]))
        #expect(try !DT.fires("file.flags != O_TRUNC", open, ["file.flags": ["O_WRONLY", "O_TRUNC"]]))
        #expect(try DT.fires(#"process.argv glob "-e*""#, "process.exec", ["process.argv": ["bash", "-ec", "x"]]))
        #expect(try !DT.fires(#"process.argv glob "-e*""#, "process.exec", ["process.argv": ["bash", "-c"]]))
        #expect(try DT.fires("process.argv in [--upload-file, -T]", "process.exec", ["process.argv": ["curl", "-T", "f"]]))
        #expect(try DT.fires("process.args contains \"-T f\"", "process.exec", ["process.argv": ["curl", "-T", "f"]]))
    }

    @Test func emptyValuesAreValuesNotMissing() throws {
        #expect(try DT.fires("process.cwd == ''", open, ["process.cwd": ""]))
        #expect(try DT.fires("process.cwd exists", open, ["process.cwd": ""]))
        #expect(try !DT.fires("process.cwd glob ?*", open, ["process.cwd": ""]))
        #expect(try DT.fires("process.argv == ''", "process.exec", ["process.argv": ["", "x"]]))
        #expect(try !DT.fires("process.argv == y", "process.exec", ["process.argv": [String]()]))
    }

    @Test func missingFieldsFailEverythingButNotEquals() throws {
        let none: [String: Any] = ["file.path": "/x"]
        #expect(try !DT.fires("file.requested_path == /x", open, none))
        #expect(try DT.fires("file.requested_path != /x", open, none))
        #expect(try !DT.fires("file.requested_path startswith /", open, none))
        #expect(try !DT.fires("file.requested_path glob **", open, none))
        #expect(try !DT.fires("file.result < 0", open, none))
        #expect(try !DT.fires("file.result >= 0", open, none))
        #expect(try !DT.fires("file.requested_path exists", open, none))
        #expect(try DT.fires("file.path exists", open, none))
        #expect(try DT.fires("not file.requested_path exists", open, none))
    }

    @Test func regexIsUnanchored() throws {
        #expect(try DT.fires(#"process.args regex 'curl .*\| *(ba)?sh'"#, "process.exec", ["process.argv": ["sh", "-c", "curl x | bash"]]))
        #expect(try !DT.fires(#"process.args regex 'curl .*\| *(ba)?sh'"#, "process.exec", ["process.argv": ["sh", "-c", "curl x > f"]]))
        #expect(try DT.fires("process.name regex ^py", "process.exec", ["process.name": "python3"]))
        #expect(try !DT.fires("process.name regex ^py", "process.exec", ["process.name": "cpython"]))
        #expect(try DT.fires(#"process.name regex [n, '^py$']"#, "process.exec", ["process.name": "py"]))
    }

    @Test func cidrMatchesV4V6AndMapped() throws {
        let c = "net.connect"
        #expect(try DT.fires("net.daddr cidr 10.0.0.0/8", c, ["net.daddr": "10.1.2.3"]))
        #expect(try !DT.fires("net.daddr cidr 10.0.0.0/8", c, ["net.daddr": "11.1.2.3"]))
        #expect(try DT.fires("net.daddr cidr 10.0.0.0/8", c, ["net.daddr": "::ffff:10.9.9.9"]))
        #expect(try DT.fires("net.daddr cidr fd00::/8", c, ["net.daddr": "fd12:3456::1"]))
        #expect(try !DT.fires("net.daddr cidr fd00::/8", c, ["net.daddr": "fe80::1"]))
        #expect(try DT.fires("net.daddr cidr 192.168.1.7", c, ["net.daddr": "192.168.1.7"]))
        #expect(try !DT.fires("net.daddr cidr 192.168.1.7", c, ["net.daddr": "192.168.1.8"]))
        #expect(try DT.fires("net.daddr cidr ::1", c, ["net.daddr": "::1"]))
        #expect(try DT.fires("net.daddr cidr [127.0.0.0/8, ::1]", c, ["net.daddr": "127.0.0.53"]))
        #expect(try !DT.fires("net.daddr cidr 10.0.0.0/8", c, ["net.daddr": "not-an-address"]))
        #expect(try DT.fires("not net.daddr cidr 10.0.0.0/8", c, ["net.daddr": "8.8.8.8"]))
    }

    @Test func labelsAndDerivedFields() throws {
        #expect(try DT.fires("session.labels.agent == claude", open, ["session.labels": ["agent": "claude"]]))
        #expect(try !DT.fires("session.labels.agent == claude", open, ["session.labels": ["model": "claude"]]))
        #expect(try DT.fires("process.name == cat", open, ["process.exe": "/usr/bin/cat"]))
        #expect(try DT.fires("file.name == id_rsa", open, ["file.path": "/home/dev/.ssh/id_rsa"]))
        #expect(try DT.fires("process.parent.name == bash", open, ["process.parent.exe": "/bin/bash"]))
        #expect(try DT.fires("type == file.open", open, [:]))
        #expect(try DT.fires("session.id == s1", open, [:]))
        #expect(try DT.fires("seq == 1", open, [:]))
    }

    @Test func messageTemplates() throws {
        let yaml = """
        rules:
          - id: m1
            title: t
            severity: low
            types: [process.exec]
            condition: process.name exists
            message: "{process.exe} ({process.pid}) ran {process.argv} in {process.cwd} {{literal}}"
            suppress: 0
            fixtures: []
        """
        let set = try DT.rules(yaml)
        let alerts = DT.alerts(set, [DT.record("process.exec", ["process.exe": "/bin/ls", "process.pid": 42, "process.argv": ["ls", "-la"]], seq: 9)])
        #expect(alerts.map(\.message) == ["/bin/ls (42) ran ls -la in - {literal}"])
        #expect(alerts.first?.evidence == [9])
        #expect(alerts.first?.triggerSeq == 9)
        #expect(alerts.first?.sessionID == "s1")
        #expect(alerts.first?.rule.id == "m1")
    }

    @Test func disabledRulesDoNotRun() throws {
        let yaml = DT.oneRule("file.path exists").replacingOccurrences("severity: high", "severity: high\n    enabled: false")
        let set = try DT.rules(yaml)
        #expect(set.rules.count == 1)
        #expect(set.rules[0].enabled == false)
        #expect(DT.alerts(set, [DT.record("file.open", ["file.path": "/x"])]).isEmpty)
        #expect(set.fields.isEmpty)
    }

    @Test func fieldsListsWhatEnabledRulesRead() throws {
        let set = try DT.rules(DT.oneRule("file.path glob /x/* and process.pid > 1"))
        #expect(set.fields == [Field.named("file.path")!, Field.named("process.pid")!, Field.named("process.exe")!])
    }
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
