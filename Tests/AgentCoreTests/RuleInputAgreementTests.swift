@testable import AgentDetector
@testable import AgentReplay
import AgentRecords
import AgentSessions
import CAgentEvents
import Foundation
import Glibc
import Testing

/// The rules see a record twice in agentwatch's life: live, as a `LiveRuleInput` computed from
/// the kernel record, the process table and the session; and weeks later in a replay, as a
/// `CapturedRuleInput` read back from the line the recorder wrote. A field that differs between
/// the two is an alert that fires live and not in the replay (or the other way round). Here
/// every field of every record type the rules read is rendered by a rule's message on both
/// sides, from one capture written by the real pipeline, and the messages must be equal.
@Suite("live and replayed rule input agree")
struct RuleInputAgreementTests {
    static let ruleTypes: [RecordType] = [.processExec, .processExit, .fileOpen, .netConnect, .netFlow, .netSend, .netDNS]

    /// The catalogue's fields a record of `type` carries (session labels by key).
    static func fields(_ type: RecordType) -> [String] {
        RuleField.allCases.filter { $0.presence.contains(type) }.map { field in
            field == .sessionLabel ? "session.labels.agent" : field.name
        }
    }

    /// One rule per record type whose message renders every field of the type.
    static let rules: RuleSet = {
        var yaml = "rules:\n"
        for type in ruleTypes {
            let message = fields(type).map { "\($0)=<{\($0)}>" }.joined(separator: " ")
            yaml += """
              - id: every-field-\(type.typeName.replacingOccurrences(of: ".", with: "-"))
                title: Every field of \(type.typeName)
                description: Renders every field of the record type.
                severity: low
                types: [\(type.typeName)]
                condition: seq > 0
                suppress: 0
                message: '\(message.replacingOccurrences(of: "'", with: "''"))'

            """
        }
        return try! RuleSet.parse(yaml, file: "agreement.yaml")
    }()

    /// Every kind of record, with the shapes that take other branches: a resolved and an
    /// unresolved open, a failed one, a write, IPv4 and IPv6, a refused connect, a flow, an exec
    /// whose filename differs from its exe, one that replaced an image, odd bytes in names.
    static func capture() -> RecordedCapture {
        let c = RecordedCapture(rules: rules)
        let s1 = c.sessionStart("s1", cgid: 0x51, labels: [("agent", "claude")])
        // A catalog file of the session, known by identity.
        s1.identities.replace(entries: [FileIdentities.Key(dev: 8 << 20 | 1, ino: 4711): FileIdentities.Entry(paths: [Array("/home/dev/.ssh/id_rsa".utf8)])],
                              directories: [], nowNs: 1)
        c.exec(session: 0x51, pid: 100, ppid: 1, exe: "/usr/bin/bash", argv: ["bash"])
        c.fork(session: 0x51, parent: 100, child: 101)
        c.exec(session: 0x51, pid: 101, ppid: 100, exe: "/usr/bin/cat", argv: ["cat", "/home/dev/.aws/credentials", "a b", ""],
               filename: "cat", stdio: (2, 3, 4), stdinIno: 4242)
        c.open(session: 0x51, pid: 101, requested: "/home/dev/.aws/credentials", resolved: "/home/dev/.aws/credentials")
        // The catalog file under another path (a hard link): file.known_as.
        c.open(session: 0x51, pid: 101, requested: "notes.txt", resolved: "/home/dev/proj/notes.txt", id: agent_file_id(ino: 4711, dev: 8 << 20 | 1, mnt_id: 0))
        c.open(session: 0x51, pid: 101, requested: "notes.txt", resolved: nil, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644, result: 4)
        c.open(session: 0x51, pid: 101, requested: "../x", resolved: "/home/dev", result: -2)
        c.open(session: 0x51, pid: 101, requested: "/t/\u{1B}[31m\u{202E}ü", resolved: "/t/\u{1B}[31m\u{202E}ü", flags: O_RDWR)
        // Every way of asking, identities with a large inode and device; a fixed-file slot, an
        // io_uring open never completed, a refused open_by_handle_at with no path at all.
        c.open(session: 0x51, pid: 101, requested: "/etc/passwd", resolved: "/etc/passwd", via: AGENT_VIA_OPENAT2.rawValue,
               id: agent_file_id(ino: UInt64(Int64.max), dev: 4095 << 20 | 0xFFFFF, mnt_id: UInt32.max))
        c.open(session: 0x51, pid: 101, requested: "f", resolved: "/home/dev/f", flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600,
               via: AGENT_VIA_CREAT.rawValue)
        c.open(session: 0x51, pid: 101, requested: "g", resolved: "/home/dev/g", via: AGENT_VIA_OPEN.rawValue)
        c.open(session: 0x51, pid: 101, requested: "", resolved: "/home/dev/h", via: AGENT_VIA_OPEN_BY_HANDLE_AT.rawValue)
        c.open(session: 0x51, pid: 101, requested: "", resolved: nil, result: -1, dfd: 3, via: AGENT_VIA_OPEN_BY_HANDLE_AT.rawValue)
        c.open(session: 0x51, pid: 101, requested: "/etc/shadow", resolved: "/etc/shadow", result: 0, via: AGENT_VIA_IO_URING.rawValue,
               hdrFlags: AGENT_F_FIXED_FILE.rawValue)
        c.open(session: 0x51, pid: 101, requested: "/home/dev/.ssh/id_rsa", resolved: nil, result: 0, via: AGENT_VIA_IO_URING.rawValue,
               id: agent_file_id(), hdrFlags: AGENT_F_RESULT_UNSEEN.rawValue | AGENT_F_FIXED_FILE.rawValue)
        c.exec(session: 0x51, pid: 101, ppid: 100, exe: "/usr/bin/python3.12", argv: ["python3", "-c", "print(1)"])
        // A file the session writes, then runs (process.exe_written), from a terminal; a memfd.
        let tool = agent_file_id(ino: 777, dev: 259 << 20 | 2, mnt_id: 30)
        c.open(session: 0x51, pid: 101, requested: "tool", resolved: "/home/dev/proj/tool", flags: O_WRONLY | O_CREAT | O_TRUNC,
               mode: 0o755, result: 5, id: tool)
        c.exec(session: 0x51, pid: 101, ppid: 100, exe: "/home/dev/proj/tool", argv: ["./tool"], filename: "./tool",
               exeID: tool, stdinRdev: 136 << 20 | 4)
        c.exec(session: 0x51, pid: 101, ppid: 100, exe: "memfd:x", argv: ["x"], filename: "/proc/self/fd/3",
               exeID: agent_file_id(ino: 9, dev: 1, mnt_id: 14), exeFlags: AGENT_EXE_MEMFD.rawValue)
        c.exec(session: 0x51, pid: 101, ppid: 100, exe: "/usr/bin/python3.12", argv: ["python3", "-c", "print(1)"],
               exeID: agent_file_id(ino: 1234, dev: 259 << 20 | 2, mnt_id: 30))
        c.connect(session: 0x51, pid: 101, daddr: "203.0.113.9", dport: 4444, cookie: 7)
        c.connect(session: 0x51, pid: 101, daddr: "2001:db8::5", dport: 443, result: -111)
        c.flow(session: 0x51, pid: 101, cookie: 7, sent: 1 << 20, received: 10, sentDelta: 1 << 20, final: false)
        c.flow(session: 0x51, pid: 101, cookie: 7, sent: 3 << 20, received: 99, sentDelta: 2 << 20, final: true)
        // A name resolved, then a connect, a flow and unconnected sends to its address (net.dname).
        c.dns(session: 0x51, pid: 101, cookie: 8, direction: AGENT_DNS_QUERY, server: "127.0.0.53",
              message: DNSWire.query(id: 4711, name: "exfil.example.test"))
        c.dns(session: 0x51, pid: 101, cookie: 8, direction: AGENT_DNS_ANSWER, server: "127.0.0.53",
              message: DNSWire.answer(id: 4711, name: "exfil.example.test", alias: "edge.example.net", addresses: [DNSWire.v4("198.51.100.4")]))
        c.dns(session: 0x51, pid: 101, cookie: 8, direction: AGENT_DNS_ANSWER, server: "127.0.0.53",
              message: DNSWire.answer(id: 9, name: "unasked.example.test", addresses: [DNSWire.v4("198.51.100.5")], rcode: 3))
        c.connect(session: 0x51, pid: 101, daddr: "198.51.100.4", dport: 443, cookie: 9)
        c.flow(session: 0x51, pid: 101, cookie: 9, sent: 1 << 20, received: 7, sentDelta: 1 << 20, final: true)
        c.send(session: 0x51, pid: 101, cookie: 10, daddr: "198.51.100.4", dport: 53, bytes: 100, datagrams: 1, bytesDelta: 100,
               datagramsDelta: 1, reason: AGENT_SEND_FIRST)
        c.send(session: 0x51, pid: 101, cookie: 10, daddr: "2001:db8::77", dport: 9999, bytes: 3 << 20, datagrams: 3000,
               bytesDelta: 2 << 20, datagramsDelta: 2000, reason: AGENT_SEND_EVICTED)
        c.exit(session: 0x51, pid: 101, ppid: 100, comm: "python3", status: 9 | 0x80)
        c.exit(session: 0x51, pid: 100, ppid: 1, comm: "bash", status: 3 << 8)
        c.sessionEnd(0x51)
        return c
    }

    static func messages(ofAlertsIn lines: [String]) -> [UInt64: String] {
        var out: [UInt64: String] = [:]
        for line in lines {
            guard let record = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  record["type"] as? String == "alert",
                  let evidence = (record["evidence"] as? [NSNumber])?.last?.uint64Value,
                  let message = record["message"] as? String else { continue }
            out[evidence] = message
        }
        return out
    }

    @Test("every field of every record type the rules read: the same value live and replayed")
    func liveAndReplayedAgree() throws {
        let c = Self.capture()
        let lines = c.lines
        let typesWritten = Set(lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["type"] as? String })
        for type in Self.ruleTypes { #expect(typesWritten.contains(type.typeName), "the capture has no \(type.typeName)") }
        let live = Self.messages(ofAlertsIn: lines)
        let recordsSeen = lines.filter { l in Self.ruleTypes.contains { l.contains("\"type\":\"\($0.typeName)\"") } }.count
        #expect(live.count == recordsSeen, "one live alert per record the rules read:\n\(lines.joined(separator: "\n"))")

        let (report, _, summary) = replay([("agreement.ndjson", c.bytes)]) { o in
            o.rules = Self.rules
            o.format = .ndjson
        }
        #expect(summary.intact, "\(summary.line)")
        let replayed = Self.messages(ofAlertsIn: report.split(separator: "\n").map(String.init))
        #expect(replayed.count == live.count)
        // The field only a catalog file under another path carries, on both sides.
        #expect(live.values.contains { $0.contains("file.known_as=</home/dev/.ssh/id_rsa>") })
        #expect(replayed.values.contains { $0.contains("file.known_as=</home/dev/.ssh/id_rsa>") })
        var compared = 0
        for (seq, message) in live.sorted(by: { $0.key < $1.key }) {
            guard let again = replayed[seq] else {
                Issue.record("the record \(seq) raised no alert in the replay")
                continue
            }
            // Field by field, so a difference names its field.
            let a = Self.fieldValues(message), b = Self.fieldValues(again)
            #expect(a.map(\.0) == b.map(\.0))
            for ((name, liveValue), (_, replayValue)) in zip(a, b) where liveValue != replayValue {
                Issue.record("record \(seq): \(name) is <\(liveValue)> live, <\(replayValue)> replayed")
            }
            compared += a.count
        }
        let expected = Self.ruleTypes.reduce(0) { $0 + Self.fields($1).count }
        #expect(compared >= expected, "every field of every type compared at least once (\(compared) of \(expected))")
        // A field a record does not carry renders as "-" on both sides: the live side must not
        // leave fields unset that the capture shows.
        for (seq, message) in live {
            let values = Self.fieldValues(message)
            // The session's first process was started by one from outside: its parent is unknown.
            let parentUnknown = values.contains { $0 == ("process.ppid", "1") }
            for (name, value) in values where value == "-" && !Self.mayBeAbsent.contains(name)
                && !(parentUnknown && name.hasPrefix("process.parent.") && name != "process.parent.pid") {
                Issue.record("record \(seq): \(name) is absent live")
            }
        }
    }

    /// Fields a record may lack: an unresolved open has no resolved path, an exec without a
    /// replaced image has no previous exe, and so on.
    static let mayBeAbsent: Set<String> = [
        "process.previous_exe", "process.filename", "process.stdin.ino", "process.stdout.ino", "file.requested_path",
        "file.error", "net.error", "net.path", "net.saddr", "net.sport", "process.signal", "process.exit_code",
        "process.auid", "net.result", "file.result", "file.fixed_file", "file.ia32", "file.result_unseen", "file.inode", "file.device",
        "file.mount_id", "process.exe_written_by", "process.stdin.device", "process.stdin.driver.pid",
        "process.stdin.driver.entity_id", "process.stdin.driver.exe", "process.stdin.driver.inet",
        "process.exe_inode", "process.exe_device", "process.exe_mount_id", "file.known_as",
                "net.dname", "dns.rcode", "dns.resolved_ip", "dns.unmatched",
    ]

    /// `name=<value>` pairs of a message, in order.
    static func fieldValues(_ message: String) -> [(String, String)] {
        var out: [(String, String)] = []
        var rest = Substring(message)
        while let eq = rest.range(of: "=<") {
            let name = String(rest[..<eq.lowerBound]).trimmingCharacters(in: .whitespaces)
            rest = rest[eq.upperBound...]
            guard let close = rest.range(of: "> ") ?? (rest.hasSuffix(">") ? rest.index(before: rest.endIndex)..<rest.endIndex : nil) else { break }
            out.append((name, String(rest[..<close.lowerBound])))
            rest = rest[close.upperBound...]
        }
        return out
    }
}
