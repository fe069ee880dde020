@testable import AgentOutputs
@testable import AgentRecords
@testable import AgentSupport
import Foundation
import Testing

/// The `ecs` output format: real native records of every type rendered, every emitted field
/// checked against the ECS 9.4.0 field table (Tests/FormatTables/ecs-9.4.0-fields.json, taken
/// from elastic/ecs generated/ecs/ecs_flat.yml at tag v9.4.0 by extract.py).
@Suite("Format ECS")
struct FormatECSTests {
    struct Rendered {
        var native: [String: Any]
        var nativeLine: [UInt8]
        var line: [UInt8]
        var doc: [String: Any]
        var type: String { native["type"] as! String }
    }

    static func renderAll() throws -> [Rendered] {
        var f = ECSFormatter()
        var out: [Rendered] = []
        for l in try FormatSamples.lines() {
            let native = try #require(FormatSamples.parse(l), "\(String(decoding: l, as: UTF8.self))")
            let line = try #require(render(&f, l), "ECS renders every record type: \(String(decoding: l, as: UTF8.self))")
            let doc = try #require(parseOutput(line), "not JSON: \(String(decoding: line, as: UTF8.self))")
            out.append(Rendered(native: native, nativeLine: l, line: line, doc: doc))
        }
        return out
    }

    /// `a.b.c` of nested dictionaries.
    static func value(_ doc: [String: Any], _ path: String) -> Any? {
        var cur: Any? = doc
        for part in path.split(separator: ".") {
            cur = (cur as? [String: Any])?[String(part)]
        }
        return cur
    }

    /// Problems with `value` at `path` against the ECS table; "" for the document itself.
    static func check(_ value: Any, _ path: String, _ fields: [String: [String: Any]], _ problems: inout [String]) {
        if path == "agentwatch" {
            if !(value is [String: Any]) { problems.append("agentwatch is not an object") }
            return
        }
        if path == "labels" {
            guard let labels = value as? [String: Any] else { return problems.append("labels is not an object") }
            for (k, v) in labels where !(v is String) || k.contains(".") { problems.append("labels.\(k): \(v)") }
            return
        }
        if let dict = value as? [String: Any] {
            if let t = fields[path]?["type"] as? String, ["object", "flattened", "nested"].contains(t) { return }
            if dict.isEmpty { problems.append("\(path): empty object") }
            for (k, v) in dict { check(v, path.isEmpty ? k : "\(path).\(k)", fields, &problems) }
            return
        }
        guard let spec = fields[path], let type = spec["type"] as? String else {
            return problems.append("\(path): not an ECS field")
        }
        // An array of objects (dns.answers): each object's members are fields under its path.
        if type == "object", let array = value as? [Any] {
            if spec["array"] as? Bool != true { problems.append("\(path): an array where ECS expects one value") }
            for item in array {
                guard let dict = item as? [String: Any] else { return problems.append("\(path): \(item) is not an object") }
                for (k, v) in dict { check(v, "\(path).\(k)", fields, &problems) }
            }
            return
        }
        let items: [Any]
        if let array = value as? [Any] {
            if spec["array"] as? Bool != true { problems.append("\(path): an array where ECS expects one value") }
            items = array
        } else {
            items = [value]
        }
        for item in items {
            let ok: Bool
            switch type {
            case "keyword", "wildcard", "constant_keyword", "match_only_text", "text":
                ok = item is String
            case "long", "integer", "short", "byte", "unsigned_long":
                ok = isInteger(item)
            case "float", "double", "scaled_float", "half_float":
                ok = item is NSNumber && !isBool(item)
            case "date":
                ok = (item as? String).map(isRFC3339) ?? false
            case "ip":
                ok = (item as? String).map(isIPAddress) ?? false
            case "boolean":
                ok = isBool(item)
            default:
                ok = false
            }
            if !ok { problems.append("\(path): \(item) is not a valid \(type)") }
            if let allowed = spec["allowed"] as? [String], let s = item as? String, !allowed.contains(s) {
                problems.append("\(path): \(s) is not an allowed value")
            }
        }
    }

    @Test("every record type renders; every field is an ECS field with a value of its type")
    func fieldsAndTypes() throws {
        let table = try FormatTables.ecs
        let fields = try #require(table["fields"] as? [String: [String: Any]])
        let rendered = try Self.renderAll()
        #expect(Set(rendered.map(\.type)) == Set(RecordType.allCases.map { "\($0.name)" }))
        let valid = try pythonJSONValid(rendered.map(\.line))
        #expect(valid.count == rendered.count && valid.allSatisfy { $0 }, "Python's json module reads every document")
        let expected = try #require(fields["event.category"]?["expected_event_types"] as? [String: [String]])
        for r in rendered {
            var problems: [String] = []
            Self.check(r.doc, "", fields, &problems)
            // Each event.type must be one ECS expects with one of the event's categories.
            if let categories = Self.value(r.doc, "event.category") as? [String], let types = Self.value(r.doc, "event.type") as? [String] {
                for t in types where !categories.contains(where: { expected[$0]?.contains(t) ?? false }) {
                    problems.append("event.type \(t) does not go with \(categories)")
                }
            }
            #expect(problems.isEmpty, "\(r.type): \(problems)\n\(String(decoding: r.line, as: UTF8.self))")
            #expect(Self.value(r.doc, "@timestamp") as? String == r.native["time"] as? String)
            #expect(Self.value(r.doc, "event.sequence") as? Int == r.native["seq"] as? Int)
            #expect(Self.value(r.doc, "agentwatch.seq") as? Int == r.native["seq"] as? Int)
            #expect(Self.value(r.doc, "agentwatch.chain") as? String == r.native["chain"] as? String)
            #expect(Self.value(r.doc, "event.action") as? String == r.type)
            #expect(Self.value(r.doc, "agent.type") as? String == "agentwatch")
            #expect(Self.value(r.doc, "ecs.version") as? String == "9.4.0")
            #expect(Self.value(r.doc, "host.name") as? String == "devbox")
            if let session = Self.value(r.native, "session.id") as? String {
                #expect(Self.value(r.doc, "labels.agent_session_id") as? String == session)
            }
        }
    }

    @Test("the checker catches what it is for")
    func checkerCatches() throws {
        let fields = try #require(try FormatTables.ecs["fields"] as? [String: [String: Any]])
        let doc: [String: Any] = [
            "@timestamp": "yesterday", "process": ["pid": "12", "signal": 9, "exit_code": [1]],
            "event": ["kind": "warning", "sequence": true], "destination": ["ip": "host.example"],
            "labels": ["a.b": "x"], "agentwatch": ["anything": [1]],
        ]
        var problems: [String] = []
        Self.check(doc, "", fields, &problems)
        for expected in ["@timestamp: yesterday", "process.pid: 12", "process.signal: not an ECS field", "process.exit_code: an array where",
                         "event.kind: warning is not an allowed", "event.sequence", "destination.ip", "labels.a.b"] {
            #expect(problems.contains { $0.hasPrefix(expected) || $0.contains(expected) }, "\(expected): \(problems)")
        }
        #expect(problems.count == 8, "\(problems)")
    }

    @Test("process records: ids, image, argv, users, parent, entry leader")
    func processes() throws {
        let rendered = try Self.renderAll()
        let execs = rendered.filter { $0.type == "process.exec" }
        try #require(execs.count == 2)
        let shell = execs[0].doc, tool = execs[1].doc
        let shellID = try #require(Self.value(shell, "process.entity_id") as? String)
        #expect(Self.value(shell, "process.entry_leader.entity_id") as? String == shellID)
        #expect(Self.value(shell, "process.entry_leader.same_as_process") as? Bool == true)
        #expect(Self.value(tool, "process.entry_leader.entity_id") as? String == shellID)
        #expect(Self.value(tool, "process.entry_leader.same_as_process") as? Bool == false)
        #expect(Self.value(tool, "process.entry_leader.executable") as? String == "/usr/bin/bash")
        #expect(Self.value(tool, "process.entry_leader.args") as? [String] == ["bash", "-c", "curl …"])
        #expect(Self.value(tool, "process.executable") as? String == "/usr/bin/curl")
        #expect(Self.value(tool, "process.name") as? String == "curl")
        #expect(Self.value(tool, "process.pid") as? Int == Int(FormatSamples.toolPID))
        #expect(Self.value(tool, "process.thread.id") as? Int == Int(FormatSamples.toolPID))
        #expect(Self.value(tool, "process.parent.pid") as? Int == Int(FormatSamples.shellPID))
        #expect(Self.value(tool, "process.parent.entity_id") as? String == shellID)
        #expect(Self.value(tool, "process.parent.executable") as? String == "/usr/bin/bash")
        #expect(Self.value(tool, "process.parent.name") as? String == "bash")
        #expect(Self.value(tool, "process.args_count") as? Int == 4)
        #expect((Self.value(tool, "process.args") as? [Any])?.count == 4)
        #expect((Self.value(tool, "process.command_line") as? String)?.hasPrefix("curl -T /t") == true)
        #expect(Self.value(tool, "process.working_directory") as? String == "/home/dev/src")
        #expect(Self.value(tool, "process.user.id") as? String == "0", "process.user is the effective user")
        #expect(Self.value(tool, "process.real_user.id") as? String == "1000")
        #expect(Self.value(tool, "process.real_group.id") as? String == "1001")
        #expect(Self.value(tool, "process.group") == nil, "the effective group is not known")
        #expect(Self.value(tool, "user.id") as? String == "0")
        #expect(Self.value(tool, "process.previous.executable") as? String == "/usr/bin/bash")
        #expect(Self.value(tool, "agentwatch.process.filename") as? String == "curl")
        #expect(Self.value(tool, "agentwatch.process.stdin.type") as? String == "pipe")
        #expect(Self.value(tool, "agentwatch.process.auid") as? Int == 1000)
        #expect(Self.value(tool, "event.type") as? [String] == ["start"])
        #expect(Self.value(tool, "event.outcome") as? String == "success")
        #expect(Self.value(tool, "labels.ticket") as? String == "OPS-1")
        #expect(Self.value(tool, "labels.agent") as? String == "claude")
        #expect((Self.value(tool, "agentwatch.session.labels") as? [String: String])?["team.name"] == "a\"b\u{1}")

        let exits = rendered.filter { $0.type == "process.exit" }
        try #require(exits.count == 2)
        #expect(Self.value(exits[0].doc, "process.exit_code") as? Int == 1)
        #expect(Self.value(exits[0].doc, "process.end") as? String == exits[0].native["time"] as? String)
        #expect(Self.value(exits[0].doc, "event.duration") as? Int == Self.value(exits[0].native, "process.duration_ns") as? Int)
        #expect(Self.value(exits[1].doc, "process.exit_code") == nil)
        #expect(Self.value(exits[1].doc, "agentwatch.process.signal") as? Int == 9)
        #expect(Self.value(exits[1].doc, "agentwatch.process.core_dumped") as? Bool == true)
    }

    @Test("file, network and alert records")
    func filesNetworkAlerts() throws {
        let rendered = try Self.renderAll()
        let opens = rendered.filter { $0.type == "file.open" }.map(\.doc)
        try #require(opens.count == 9)
        #expect(Self.value(opens[0], "file.path") as? String == "/home/dev/.ssh/id_ed25519")
        // Its identity as ECS keywords; the same file opened another way has the same.
        #expect(Self.value(opens[0], "file.inode") as? String == "1234567")
        #expect(Self.value(opens[0], "file.device") as? String == "8:1")
        #expect(Self.value(opens[0], "agentwatch.file.mount_id") as? Int == 29)
        #expect(Self.value(opens[0], "agentwatch.file.via") as? String == "openat")
        #expect(Self.value(opens[1], "agentwatch.file.via") as? String == "openat2")
        #expect(Self.value(opens[1], "file.inode") as? String == "1234567")
        #expect(Self.value(opens[2], "file.inode") == nil && Self.value(opens[2], "file.device") == nil)
        #expect(Self.value(opens[6], "agentwatch.file.via") as? String == "io_uring")
        #expect(Self.value(opens[6], "agentwatch.file.fixed_file") as? Bool == true)
        #expect(Self.value(opens[6], "file.device") as? String == "259:1048575")
        #expect(Self.value(opens[6], "event.outcome") as? String == "success")
        #expect(Self.value(opens[7], "event.outcome") as? String == "unknown")
        #expect(Self.value(opens[7], "agentwatch.file.result_unseen") as? Bool == true)
        #expect(Self.value(opens[7], "agentwatch.file.result") == nil && Self.value(opens[7], "error.code") == nil)
        #expect(Self.value(opens[8], "agentwatch.file.via") as? String == "open_by_handle_at")
        #expect(Self.value(opens[8], "agentwatch.file.dirfd") as? Int == 3)
        #expect(Self.value(opens[8], "error.code") as? String == "EPERM")
        #expect(Self.value(opens[0], "file.name") as? String == "id_ed25519")
        #expect(Self.value(opens[0], "file.directory") as? String == "/home/dev/.ssh")
        #expect(Self.value(opens[0], "file.extension") == nil)
        #expect(Self.value(opens[0], "agentwatch.file.requested_path") as? String == "../.ssh/id_ed25519")
        #expect(Self.value(opens[0], "event.type") as? [String] == ["access"])
        #expect(Self.value(opens[2], "event.outcome") as? String == "failure")
        #expect(Self.value(opens[2], "error.code") as? String == "ENOENT")
        #expect(Self.value(opens[2], "file.path") as? String == "/home/dev/src/missing.txt")
        #expect(Self.value(opens[2], "agentwatch.file.dirfd") as? Int == 5)
        #expect(Self.value(opens[3], "file.extension") as? String == "gz")
        #expect(Self.value(opens[3], "event.type") as? [String] == ["access", "creation", "change"])
        #expect(Self.value(opens[3], "agentwatch.file.mode") as? Int == 0o644)
        #expect(Self.value(opens[4], "file.name") == nil)
        #expect(Self.value(opens[4], "file.directory") as? String == "/")

        let connects = rendered.filter { $0.type == "net.connect" }.map(\.doc)
        try #require(connects.count == 8)
        #expect(Self.value(connects[7], "destination.domain") as? String == "upload.example.com")
        #expect(Self.value(connects[0], "destination.domain") == nil)
        #expect(Self.value(connects[7], "agentwatch.net.via") as? String == "connect")
        #expect(Self.value(connects[0], "destination.ip") as? String == "93.184.216.34")
        #expect(Self.value(connects[0], "destination.port") as? Int == 443)
        #expect(Self.value(connects[0], "source.ip") as? String == "10.0.0.5")
        #expect(Self.value(connects[0], "source.port") as? Int == 51000)
        #expect(Self.value(connects[0], "network.transport") as? String == "tcp")
        #expect(Self.value(connects[0], "network.iana_number") as? String == "6")
        #expect(Self.value(connects[0], "network.type") as? String == "ipv4")
        #expect(Self.value(connects[0], "network.direction") as? String == "egress")
        #expect(Self.value(connects[0], "event.outcome") as? String == "success")
        #expect(Self.value(connects[1], "event.outcome") as? String == "unknown", "EINPROGRESS is neither")
        #expect(Self.value(connects[1], "network.type") as? String == "ipv6")
        #expect(Self.value(connects[2], "error.code") as? String == "ECONNREFUSED")
        #expect(Self.value(connects[2], "event.type") as? [String] == ["connection"])
        #expect(Self.value(connects[3], "network.transport") as? String == "udp")
        #expect(Self.value(connects[3], "agentwatch.net.v4_mapped") as? Bool == true)
        #expect(Self.value(connects[4], "destination.address") as? String == "/run/systemd/journal/socket")
        #expect(Self.value(connects[4], "destination.ip") == nil)
        #expect(Self.value(connects[4], "network.transport") == nil)
        #expect(Self.value(connects[4], "agentwatch.net.family") as? String == "unix")
        #expect(Self.value(connects[4], "agentwatch.net.transport") as? String == "dgram")
        #expect(Self.value(connects[5], "agentwatch.net.abstract") as? Bool == true)
        #expect(Self.value(connects[6], "agentwatch.net.family") as? String == "unspec")

        let flows = rendered.filter { $0.type == "net.flow" }.map(\.doc)
        try #require(flows.count == 3)
        #expect(Self.value(flows[0], "source.bytes") as? Int == 2_000_000)
        #expect(Self.value(flows[0], "destination.bytes") as? Int == 4096)
        #expect(Self.value(flows[0], "network.bytes") as? Int == 2_004_096)
        #expect(Self.value(flows[0], "agentwatch.net.bytes_sent_delta") as? Int == 1_048_576)
        #expect(Self.value(flows[0], "event.type") as? [String] == ["connection", "info"])
        #expect(Self.value(flows[1], "event.type") as? [String] == ["connection", "end"])
        #expect(Self.value(flows[2], "destination.ip") == nil, "a flow whose connect was not seen has no addresses")

        let sends = rendered.filter { $0.type == "net.send" }.map(\.doc)
        try #require(sends.count == 3)
        #expect(Self.value(sends[0], "event.type") as? [String] == ["connection", "info"])
        #expect(Self.value(sends[1], "event.type") as? [String] == ["connection", "end"])
        #expect(Self.value(sends[1], "network.bytes") as? Int == 2_400_000)
        #expect(Self.value(sends[1], "source.bytes") as? Int == 2_400_000)
        #expect(Self.value(sends[1], "source.packets") as? Int == 2000)
        #expect(Self.value(sends[1], "network.packets") as? Int == 2000)
        #expect(Self.value(sends[1], "destination.domain") as? String == "upload.example.com")
        #expect(Self.value(sends[1], "destination.port") as? Int == 4500)
        #expect(Self.value(sends[1], "network.transport") as? String == "udp")
        #expect(Self.value(sends[1], "agentwatch.net.datagrams_delta") as? Int == 1999)
        #expect(Self.value(sends[1], "event.start") as? String != nil && Self.value(sends[1], "event.end") as? String != nil)
        #expect(Self.value(sends[2], "network.transport") as? String == "ipv6-icmp")
        #expect(Self.value(sends[2], "agentwatch.net.evicted") as? Bool == true)

        let dns = rendered.filter { $0.type == "net.dns" }.map(\.doc)
        try #require(dns.count == 3)
        #expect(dns.map { Self.value($0, "dns.type") as? String } == ["query", "answer", "answer"])
        #expect(dns.map { Self.value($0, "network.direction") as? String } == ["egress", "ingress", "ingress"])
        #expect(Self.value(dns[0], "event.category") as? [String] == ["network"])
        #expect(Self.value(dns[0], "event.type") as? [String] == ["protocol"])
        #expect(Self.value(dns[0], "network.protocol") as? String == "dns")
        #expect(Self.value(dns[0], "dns.id") as? String == "4242")
        #expect(Self.value(dns[0], "dns.question.name") as? String == "upload.example.com")
        #expect(Self.value(dns[0], "dns.question.type") as? String == "A")
        #expect(Self.value(dns[0], "dns.header_flags") as? [String] == ["RD"])
        #expect(Self.value(dns[0], "destination.ip") as? String == "127.0.0.53")
        #expect(Self.value(dns[0], "destination.port") as? Int == 53)
        #expect(Self.value(dns[1], "dns.response_code") as? String == "NOERROR")
        #expect(Self.value(dns[1], "dns.resolved_ip") as? [String] == ["93.184.216.34", "2001:db8::34"])
        let answers = try #require(Self.value(dns[1], "dns.answers") as? [[String: Any]])
        #expect(answers.map { $0["data"] as? String } == ["edge.example.net", "93.184.216.34", "2001:db8::34"])
        #expect(answers.first?["name"] as? String == "upload.example.com" && answers.first?["ttl"] as? Int == 300)
        #expect(Self.value(dns[2], "dns.response_code") as? String == "NXDOMAIN")
        #expect(Self.value(dns[2], "network.transport") as? String == "tcp")
        #expect(Self.value(dns[2], "agentwatch.dns.unmatched") as? Bool == true)

        let alerts = rendered.filter { $0.type == "alert" }
        try #require(alerts.count == 2)
        let a = alerts[0].doc
        #expect(Self.value(a, "event.kind") as? String == "alert")
        #expect(Self.value(a, "event.category") as? [String] == ["intrusion_detection"])
        #expect(Self.value(a, "event.severity") as? Int == 4)
        #expect(Self.value(a, "rule.id") as? String == "test-ssh-key-read")
        #expect(Self.value(a, "rule.name") as? String == "SSH private key read")
        #expect(Self.value(a, "rule.author") as? [String] == ["agentwatch tests"])
        #expect(Self.value(a, "rule.ruleset") as? String == "credentials")
        #expect(Self.value(a, "tags") as? [String] == ["attack.credential_access", "attack.t1552.004"])
        #expect(Self.value(a, "message") as? String == "/usr/bin/curl read /home/dev/.ssh/id_ed25519")
        #expect(Self.value(a, "agentwatch.rule.severity") as? String == "high")
        #expect((Self.value(a, "agentwatch.alert.evidence") as? [Int])?.count == 1)
        #expect(Self.value(a, "process.executable") as? String == "/usr/bin/curl")
        // The suppression summary at the session's end names no process.
        #expect(Self.value(alerts[1].doc, "process") == nil)
        #expect(Self.value(alerts[1].doc, "agentwatch.alert.suppressed") as? Int == 1)
    }

    @Test("session and agent records")
    func sessionsAndAgent() throws {
        let rendered = try Self.renderAll()
        let start = try #require(rendered.first { $0.type == "session.start" }).doc
        #expect(Self.value(start, "event.category") as? [String] == ["session"])
        #expect(Self.value(start, "event.type") as? [String] == ["start"])
        #expect(Self.value(start, "user.id") as? String == "1000")
        #expect(Self.value(start, "agentwatch.session.cgroup") as? String == "/agentwatch/sess-1")
        #expect((Self.value(start, "agentwatch.session.homes") as? [String])?.first == "/home/dev")
        let end = try #require(rendered.first { $0.type == "session.end" })
        #expect(Self.value(end.doc, "event.end") as? String == Self.value(end.native, "session.end_time") as? String)
        #expect(Self.value(end.doc, "event.start") as? String == Self.value(end.native, "session.start_time") as? String)
        #expect((Self.value(end.doc, "event.duration") as? Int ?? 0) > 0)
        #expect((Self.value(end.doc, "agentwatch.session.counts") as? [String: Int])?["file.open"] == 9)
        let agentStart = try #require(rendered.first { $0.type == "agent.start" }).doc
        #expect(Self.value(agentStart, "agent.version") as? String == AgentVersion.string)
        #expect(Self.value(agentStart, "agentwatch.agent.kernel") as? String == "6.8.0")
        let reload = try #require(rendered.first { $0.type == "agent.reload" }).doc
        #expect(Self.value(reload, "event.outcome") as? String == "failure")
        #expect(Self.value(reload, "event.category") as? [String] == ["configuration"])
        let heartbeat = try #require(rendered.first { $0.type == "agent.heartbeat" }).doc
        #expect(Self.value(heartbeat, "event.kind") as? String == "state")
        let loss = try #require(rendered.first { $0.type == "agent.loss" }).doc
        #expect(Self.value(loss, "agentwatch.loss.kernel_dropped_total") as? Int == 4)
    }

    @Test("untrusted bytes keep their escaping: Python recovers argv and paths byte for byte")
    func bytesRecoverable() throws {
        let rendered = try Self.renderAll()
        let tool = try #require(rendered.filter { $0.type == "process.exec" }.last)
        let open = try #require(rendered.filter { $0.type == "file.open" }.dropFirst(5).first)
        let recovered = try pythonSurrogateEscape([(tool.line, ["process", "args", "2"]), (open.line, ["file", "path"]),
                                                   (tool.line, ["process", "args", "3"]), (tool.line, ["agentwatch", "process", "comm"])])
        #expect(recovered == [[0x2F, 0x74, 0xFF, 0xFE, 0x0A, 0x22, 0x5C], [0x2F, 0x74, 0x6D, 0x70, 0x2F, 0x07, 0xC3, 0x28, 0x7F],
                              Array("naïve €".utf8), Array("cu\u{1}rl".utf8)])
    }

    @Test("the entry leader is forgotten at session.end; a later session of that id gets its own")
    func entryLeaderLifetime() throws {
        let lines = try FormatSamples.lines()
        var f = ECSFormatter()
        for l in lines { _ = render(&f, l) }
        #expect(f.leaders.count == 0)
        let exitLine = try #require(lines.first { String(decoding: $0, as: UTF8.self).contains("\"type\":\"process.exit\"") })
        let doc = try #require(render(&f, exitLine).flatMap(parseOutput))
        #expect(Self.value(doc, "process.entry_leader.same_as_process") as? Bool == true)
        #expect(f.leaders.count == 1)
    }

    @Test("session leaders are bounded: the oldest session is forgotten first")
    func leadersBounded() {
        var leaders = SessionLeaders(capacity: 4)
        for i in 0..<1000 {
            let id = Array("s\(i)".utf8)
            leaders.record(.init(session: id, entityID: [1], members: [2]))
            if i % 3 == 0 { id.withUnsafeBytes { leaders.forget($0) } }
        }
        #expect(leaders.count <= 4)
        #expect(Array("s998".utf8).withUnsafeBytes { leaders.leader($0) } != nil)
        #expect(Array("s5".utf8).withUnsafeBytes { leaders.leader($0) } == nil)
        // One session that ends and comes back again and again leaves no trail behind.
        var again = SessionLeaders(capacity: 4)
        let id = Array("s".utf8)
        for _ in 0..<10_000 {
            again.record(.init(session: id, entityID: [1], members: [2]))
            id.withUnsafeBytes { again.forget($0) }
        }
        #expect(again.count == 0 && again.orderCount <= 130)
    }
}
