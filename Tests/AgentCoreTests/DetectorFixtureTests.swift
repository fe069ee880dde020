@testable import AgentDetector
@testable import AgentSessions
import Foundation
import Testing

@Suite("Detector fixtures and records")
struct DetectorFixtureTests {
    let packText = """
    lists:
      - list: ssh_private_keys
        items: ["~/.ssh/id_*", "~/.ssh/*_key"]
    macros:
      - macro: opened_for_write
        condition: file.write == true
    rules:
      - id: cred-ssh-private-key
        title: SSH private key read
        description: A process read an SSH private key.
        severity: high
        tags: [attack.credential_access]
        author: agentwatch
        types: [file.open]
        condition: file.path glob @ssh_private_keys and file.result >= 0 and not opened_for_write
        exceptions:
          - name: ssh client itself
            condition: process.name in [ssh, ssh-add, ssh-agent, sshd]
        message: "{process.exe} (pid {process.pid}) read SSH key {file.path}"
        suppress: 10m
        fixtures:
          - name: cat reads a key
            records:
              - {type: file.open, process: {exe: /usr/bin/cat, pid: 10}, file: {path: ~/.ssh/id_ed25519, result: 3, flags: [O_RDONLY]}}
            alerts: 1
          - name: ssh reads its key
            records:
              - {type: file.open, process: {exe: /usr/bin/ssh, pid: 11}, file: {path: ~/.ssh/id_ed25519, result: 3, flags: [O_RDONLY]}}
            alerts: 0
          - name: another home
            home: /srv/build
            records:
              - {type: file.open, process: {exe: /usr/bin/cat}, file: {path: /srv/build/.ssh/id_rsa, result: 3, flags: [O_RDONLY]}}
              - {type: file.open, process: {exe: /usr/bin/cat}, file: {path: /home/dev/.ssh/id_rsa, result: 3, flags: [O_RDONLY]}}
            alerts: 1
          - name: repeated reads are suppressed
            records:
              - {type: file.open, process: {exe: /usr/bin/cat}, file: {path: ~/.ssh/id_rsa, result: 3, flags: [O_RDONLY]}}
              - {type: file.open, process: {exe: /usr/bin/cat}, file: {path: ~/.ssh/id_rsa, result: 3, flags: [O_RDONLY]}}
              - {type: file.open, at: 11m, process: {exe: /usr/bin/cat}, file: {path: ~/.ssh/id_rsa, result: 3, flags: [O_RDONLY]}}
            alerts: 2
          - name: wrong on purpose
            records:
              - {type: file.open, process: {exe: /usr/bin/cat}, file: {path: /etc/hosts, result: 3, flags: [O_RDONLY]}}
            alerts: 1
    """

    @Test func fixturesPassAndFail() throws {
        let set = try DT.rules(packText)
        let results = set.runFixtures()
        #expect(results.map(\.fixtureName) == ["cat reads a key", "ssh reads its key", "another home", "repeated reads are suppressed", "wrong on purpose"])
        #expect(results.map(\.passed) == [true, true, true, true, false])
        let failed = try #require(results.last)
        #expect(failed.expected == 1)
        #expect(failed.got == 0)
        #expect(failed.line == 42)
        #expect(failed.description == "test.yaml:42: FAIL cred-ssh-private-key / wrong on purpose: expected 1 alert, got 0")
        #expect(set.rules[0].fixtures[2].home == "/srv/build")
        #expect(set.warnings.isEmpty)
    }

    @Test func rulesWithoutBothKindsOfFixtureFail() throws {
        let yaml = """
        rules:
          - id: only-positive
            title: t
            severity: low
            types: [file.open]
            condition: file.path == /x
            fixtures:
              - name: hit
                records: [{type: file.open, file: {path: /x}}]
                alerts: 1
          - id: none
            title: t
            severity: low
            enabled: false
            types: [file.open]
            condition: file.path == /x
        """
        let results = try DT.rules(yaml).runFixtures()
        #expect(results.filter { !$0.passed }.map(\.ruleID) == ["only-positive", "none", "none"])
        #expect(results.filter { !$0.passed }.compactMap(\.note).first == "no near miss: add a fixture with alerts: 0")
        // Disabled rules still have their fixtures run.
        #expect(results.first?.passed == true)
    }

    @Test func fixtureRecordsGetDefaultsAndTimes() throws {
        let yaml = """
        rules:
          - id: burst
            title: t
            severity: low
            types: [net.flow]
            condition: session.id == fixture and seq >= 1
            threshold:
              count: true
              over: 1
              within: 10s
            fixtures:
              - name: two within the window
                records:
                  - {type: net.flow}
                  - {type: net.flow, at: 9s}
                alerts: 1
              - name: two apart
                records:
                  - {type: net.flow}
                  - {type: net.flow, at: 11s}
                alerts: 0
        """
        let results = try DT.rules(yaml).runFixtures()
        #expect(results.map(\.passed) == [true, true])
        #expect(results.map(\.got) == [1, 0])
    }

    @Test func fixtureErrorsAreLoadErrors() {
        let yaml = """
        rules:
          - id: a
            title: t
            severity: low
            types: [file.open]
            condition: file.path == /x
            fixtures:
              - name: bad
                records:
                  - {type: file.opn}
                  - {file: {path: /x}}
                alerts: many
        """
        #expect(DT.errors(yaml) == [
            "test.yaml:10:20: unknown record type \"file.opn\" (did you mean file.open?)",
            "test.yaml:11:13: a fixture record needs a type (for example type: file.open)",
            "test.yaml:12:17: alerts must be a whole number (0 for a near miss)",
        ])
    }

    @Test func dictRecordFromNDJSON() throws {
        let line = #"{"v":1,"seq":42,"time":"2026-11-21T17:40:00.123456789Z","type":"file.open","host":{"name":"h","id":""},"session":{"id":"s9","cgroup":"agentwatch/s9","labels":{"agent":"claude"}},"process":{"pid":7,"exe":"/usr/bin/cat","argv":["cat","/etc/shadow"],"argv_truncated":false},"file":{"path":"/etc/shadow","flags":["O_RDONLY"],"mode":0,"result":3}}"#
        let dict = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let r = CapturedRuleInput(dict, homes: ["/root"])
        #expect(r.seq == 42)
        #expect(r.typeName == "file.open")
        #expect(r.sessionID == "s9")
        #expect(r.timeNs == 1_795_282_800_123_456_789)
        #expect(r.value(Field.named("process.pid")!) == .int(7))
        #expect(r.value(Field.named("process.name")!) == .string("cat"))
        #expect(r.value(Field.named("process.args")!) == .string("cat /etc/shadow"))
        #expect(r.value(Field.named("process.argv_truncated")!) == .bool(false))
        #expect(r.value(Field.named("file.write")!) == .bool(false))
        #expect(r.value(Field.named("file.name")!) == .string("shadow"))
        #expect(r.value(Field.named("file.flags")!) == .list(["O_RDONLY"]))
        #expect(r.value(Field.named("file.result")!) == .int(3))
        #expect(r.value(Field.named("session.labels.agent")!) == .string("claude"))
        #expect(r.value(Field.named("file.requested_path")!) == nil)
        #expect(r.value(Field.named("file.mode")!) == .int(0))
        #expect(r.value(Field.named("process.uid")!) == nil)
        let set = try DT.rules(DT.oneRule("file.path == /etc/shadow and process.argv_truncated == false"))
        #expect(DT.alerts(set, [r]).map(\.message) == ["hit /usr/bin/cat"])
    }

    @Test func jsonBooleansAndNumbersStayApart() throws {
        let line = #"{"type":"net.flow","seq":1,"net":{"final":1,"bytes_sent":true,"dport":443,"daddr":7}}"#
        let dict = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let r = CapturedRuleInput(dict, homes: [])
        #expect(r.value(Field.named("net.final")!) == nil)
        #expect(r.value(Field.named("net.bytes_sent")!) == nil)
        #expect(r.value(Field.named("net.dport")!) == .int(443))
        // A number where a string is expected reads as its decimal text.
        #expect(r.value(Field.named("net.daddr")!) == .string("7"))
        #expect(r.timeNs == 0)
    }

    @Test func timestamps() {
        #expect(CapturedRuleInput.parseTimestamp("1970-01-01T00:00:00.000000000Z") == 0)
        #expect(CapturedRuleInput.parseTimestamp("1970-01-01T00:00:01Z") == 1_000_000_000)
        #expect(CapturedRuleInput.parseTimestamp("2000-03-01T00:00:00.5Z") == 951_868_800_500_000_000)
        #expect(CapturedRuleInput.parseTimestamp("2000-03-01T01:00:00+01:00") == 951_868_800_000_000_000)
        #expect(CapturedRuleInput.parseTimestamp("2000-13-01T00:00:00Z") == nil)
        #expect(CapturedRuleInput.parseTimestamp("yesterday") == nil)
    }

    @Test func catalogueLookups() {
        #expect(Field.named("file.path")?.kind == .string)
        #expect(Field.named("net.bytes_sent")?.kind == .integer)
        #expect(Field.named("file.flags")?.kind == .list)
        #expect(Field.named("net.final")?.kind == .boolean)
        #expect(Field.named("session.labels.team")?.labelKey == "team")
        #expect(Field.named("session.labels.team") != Field.named("session.labels.owner"))
        #expect(Field.named("session.labels") == nil)
        #expect(Field.named("file.pth") == nil)
        #expect(Field.all.count == RuleField.allCases.count - 1)
        #expect(Field.named("net.result")!.isPresent(in: .netConnect))
        #expect(!Field.named("net.result")!.isPresent(in: .netFlow))
        #expect(Field.named("type")!.isPresent(in: .agentHeartbeat))
        #expect(!Field.named("session.id")!.isPresent(in: .agentHeartbeat))
    }
}
