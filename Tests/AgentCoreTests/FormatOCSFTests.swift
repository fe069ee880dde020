@testable import AgentOutputs
@testable import AgentRecords
import Foundation
import Testing

/// The `ocsf` output format: real native records of every type rendered and each event checked
/// against the OCSF 1.8.0 class and object definitions (Tests/FormatTables/ocsf-1.8.0-classes.json,
/// taken from ocsf/ocsf-schema at tag 1.8.0 by extract.py): every attribute known to its class or
/// object and of its type, every required attribute and constraint met, enum ids in range and
/// their captions matching, type_uid = class_uid * 100 + activity_id.
@Suite("Format OCSF")
struct FormatOCSFTests {
    /// Checks events against the table.
    struct Checker {
        let classes: [String: [String: Any]]
        let objects: [String: [String: Any]]
        let types: [String: [String: Any]]
        var problems: [String] = []

        init() throws {
            let table = try FormatTables.ocsf
            classes = try #require(table["classes"] as? [String: [String: Any]])
            objects = try #require(table["objects"] as? [String: [String: Any]])
            types = try #require(table["types"] as? [String: [String: Any]])
        }

        mutating func check(event: [String: Any]) {
            guard let uid = event["class_uid"] as? Int, let cls = classes[String(uid)] else {
                return problems.append("class_uid \(event["class_uid"] ?? "none") is not a class the table has")
            }
            let profiles = Set(((event["metadata"] as? [String: Any])?["profiles"] as? [String]) ?? [])
            check(event, cls, "", profiles)
            if event["category_uid"] as? Int != cls["category_uid"] as? Int { problems.append("category_uid does not match the class") }
            let activity = event["activity_id"] as? Int ?? -1
            if event["type_uid"] as? Int != uid * 100 + activity { problems.append("type_uid is not class_uid * 100 + activity_id") }
            if event["class_name"] as? String != cls["caption"] as? String { problems.append("class_name is not the class caption") }
            if event["category_name"] as? String != cls["category_caption"] as? String { problems.append("category_name is not the category caption") }
            let attrs = cls["attributes"] as? [String: [String: Any]] ?? [:]
            let activityCaption = (attrs["activity_id"]?["enum"] as? [String: String])?[String(activity)]
            if event["activity_name"] as? String != activityCaption { problems.append("activity_name is not the caption of activity_id") }
            if let typeName = event["type_name"] as? String, typeName != "\(cls["caption"]!): \(activityCaption ?? "")" {
                problems.append("type_name \(typeName)")
            }
        }

        /// `value` against a class or object definition.
        mutating func check(_ value: [String: Any], _ def: [String: Any], _ path: String, _ profiles: Set<String>) {
            let attrs = def["attributes"] as? [String: [String: Any]] ?? [:]
            for (name, v) in value {
                let at = path.isEmpty ? name : "\(path).\(name)"
                if name == "unmapped" && path.isEmpty {
                    if !(v is [String: Any]) { problems.append("unmapped is not an object") }
                    continue
                }
                guard let spec = attrs[name] else {
                    problems.append("\(at): not an attribute here")
                    continue
                }
                if spec["deprecated"] as? Bool == true { problems.append("\(at): deprecated") }
                if let p = spec["profile"] as? String, !profiles.contains(p) { problems.append("\(at): needs profile \(p)") }
                if spec["array"] as? Bool == true {
                    guard let items = v as? [Any] else {
                        problems.append("\(at): not an array")
                        continue
                    }
                    for (i, item) in items.enumerated() { checkValue(item, spec, "\(at)[\(i)]", profiles) }
                } else {
                    checkValue(v, spec, at, profiles)
                }
                // A caption sibling (type for type_id, status for status_id...) says what the id says.
                if name.hasSuffix("_id"), name != "activity_id", let id = v as? Int, id != 99,
                   let enumeration = spec["enum"] as? [String: String], let sibling = value[String(name.dropLast(3))] as? String,
                   sibling != enumeration[String(id)] {
                    problems.append("\(at): \(id) is \(enumeration[String(id)] ?? "?"), not \(sibling)")
                }
            }
            for (name, spec) in attrs where spec["requirement"] as? String == "required" && value[name] == nil {
                if let p = spec["profile"] as? String, !profiles.contains(p) { continue }
                problems.append("\(path.isEmpty ? name : "\(path).\(name)"): required, missing")
            }
            if let some = (def["constraints"] as? [String: Any])?["at_least_one"] as? [String], !some.contains(where: { value[$0] != nil }) {
                problems.append("\(path): needs one of \(some)")
            }
        }

        mutating func checkValue(_ v: Any, _ spec: [String: Any], _ at: String, _ profiles: Set<String>) {
            let type = spec["type"] as? String ?? "?"
            if let obj = objects[type] {
                guard let dict = v as? [String: Any] else { return problems.append("\(at): not an object") }
                check(dict, obj, at, profiles)
                return
            }
            let base = (spec["base"] as? String) ?? (types[type]?["type"] as? String) ?? type
            let ok: Bool
            switch (type, base) {
            case ("ip_t", _): ok = (v as? String).map(isIPAddress) ?? false
            case ("datetime_t", _): ok = (v as? String).map(isRFC3339) ?? false
            case ("object", _): ok = v is [String: Any]
            case (_, "string_t"), ("string_t", _): ok = v is String
            case (_, "integer_t"), ("integer_t", _), (_, "long_t"), ("long_t", _): ok = isInteger(v)
            case ("boolean_t", _): ok = isBool(v)
            case ("float_t", _): ok = v is NSNumber && !isBool(v)
            case ("json_t", _): ok = true
            default:
                ok = false
                problems.append("\(at): type \(type) is not in the table (add its object to extract.py)")
            }
            if !ok { problems.append("\(at): \(v) is not a \(type)") }
            let range = (spec["range"] as? [Int]) ?? (types[type]?["range"] as? [Int])
            if let range, let n = v as? Int, !(range[0]...range[1]).contains(n) { problems.append("\(at): \(n) out of \(range)") }
            if let enumeration = spec["enum"] as? [String: String], let n = v as? Int, enumeration[String(n)] == nil {
                problems.append("\(at): \(n) is not one of \(enumeration.keys.sorted())")
            }
        }
    }

    struct Rendered {
        var native: [String: Any]
        var line: [UInt8]?
        var event: [String: Any]?
        var type: String { native["type"] as! String }
    }

    static func renderAll() throws -> [Rendered] {
        var f = OCSFFormatter()
        return try FormatSamples.lines().map { l in
            let native = try #require(FormatSamples.parse(l))
            let line = render(&f, l)
            return Rendered(native: native, line: line, event: line.flatMap(parseOutput))
        }
    }

    /// Unix milliseconds of a native time, by Foundation's ISO 8601 reader (seconds) and the
    /// first three fraction digits.
    static func milliseconds(_ time: String) -> Int? {
        let seconds = String(time.prefix(19)) + "Z"
        guard let date = ISO8601DateFormatter().date(from: seconds) else { return nil }
        let fraction = time.dropFirst(20).prefix(3)
        return Int(date.timeIntervalSince1970) * 1000 + (Int(fraction) ?? 0)
    }

    static let notRendered: Set<String> = ["session.start", "session.end", "agent.heartbeat", "agent.reload", "agent.loss"]

    @Test("every mapped type renders an event with all its class requires; the others render nothing")
    func requiredAttributes() throws {
        var checker = try Checker()
        let rendered = try Self.renderAll()
        #expect(Set(rendered.map(\.type)) == Set(RecordType.allCases.map { "\($0.name)" }))
        for r in rendered where Self.notRendered.contains(r.type) {
            #expect(r.line == nil, "\(r.type) has no OCSF class")
        }
        let events = rendered.filter { !Self.notRendered.contains($0.type) }
        let valid = try pythonJSONValid(events.compactMap(\.line))
        #expect(valid.count == events.count && valid.allSatisfy { $0 })
        var classes: Set<Int> = []
        for r in events {
            let event = try #require(r.event, "\(r.type) renders JSON")
            checker.problems = []
            checker.check(event: event)
            #expect(checker.problems.isEmpty, "\(r.type): \(checker.problems)\n\(String(decoding: r.line ?? [], as: UTF8.self))")
            classes.insert(event["class_uid"] as? Int ?? 0)
            let metadata = event["metadata"] as? [String: Any]
            #expect(metadata?["version"] as? String == "1.8.0")
            #expect(metadata?["uid"] as? String == r.native["chain"] as? String)
            #expect(metadata?["sequence"] as? Int == r.native["seq"] as? Int)
            #expect(metadata?["original_time"] as? String == r.native["time"] as? String)
            let product = metadata?["product"] as? [String: Any]
            #expect(product?["name"] as? String == "agentwatch" && product?["vendor_name"] != nil && product?["version"] != nil)
            #expect(event["time"] as? Int == Self.milliseconds(r.native["time"] as! String))
        }
        #expect(classes == [1007, 1001, 4001, 4003, 2004, 1008])
    }

    @Test("the checker catches what it is for")
    func checkerCatches() throws {
        var checker = try Checker()
        var f = OCSFFormatter()
        let exec = try #require(FormatSamples.lines().first { String(decoding: $0, as: UTF8.self).contains("\"process.exec\"") })
        let good = try #require(render(&f, exec).flatMap(parseOutput))
        checker.check(event: good)
        #expect(checker.problems.isEmpty)
        var bad = good
        bad["type_uid"] = 100702
        bad["process"] = nil
        bad["tid"] = 5
        bad["severity_id"] = 7
        var device = bad["device"] as! [String: Any]
        device["type"] = "Server"
        bad["device"] = device
        checker.problems = []
        checker.check(event: bad)
        for expected in ["type_uid is not", "process: required", "tid: not an attribute", "severity_id: 7 is not one of", "device.type_id: 0 is Unknown, not Server"] {
            #expect(checker.problems.contains { $0.contains(expected) }, "\(expected): \(checker.problems)")
        }
    }

    @Test("process, file, network, finding and event log mappings")
    func mappings() throws {
        let rendered = try Self.renderAll()
        func events(_ type: String) -> [[String: Any]] { rendered.filter { $0.type == type }.compactMap(\.event) }
        func v(_ e: [String: Any], _ path: String) -> Any? { FormatECSTests.value(e, path) }

        let execs = events("process.exec")
        try #require(execs.count == 2)
        #expect(v(execs[1], "activity_id") as? Int == 1)
        #expect(v(execs[1], "type_uid") as? Int == 100701)
        #expect(v(execs[1], "launch_type_id") as? Int == 3)
        #expect(v(execs[1], "process.path") as? String == "/usr/bin/curl")
        #expect(v(execs[1], "process.name") as? String == "curl")
        #expect(v(execs[1], "process.pid") as? Int == Int(FormatSamples.toolPID))
        #expect(v(execs[1], "actor.process.pid") as? Int == Int(FormatSamples.shellPID))
        #expect(v(execs[1], "actor.process.path") as? String == "/usr/bin/bash")
        #expect(v(execs[1], "process.parent_process.uid") as? String == v(execs[0], "process.uid") as? String)
        #expect(v(execs[1], "process.user.uid") as? String == "0")
        #expect(v(execs[1], "metadata.correlation_uid") as? String == "sess-1")
        #expect((v(execs[1], "unmapped.process.argv") as? [Any])?.count == 4)
        #expect(v(execs[1], "unmapped.session.labels.ticket") as? String == "OPS-1")

        let exits = events("process.exit")
        try #require(exits.count == 2)
        #expect(v(exits[0], "activity_id") as? Int == 2)
        #expect(v(exits[0], "exit_code") as? Int == 1)
        #expect(v(exits[0], "actor.process.pid") as? Int == Int(FormatSamples.toolPID))
        #expect(v(exits[0], "process.terminated_time") as? Int == v(exits[0], "time") as? Int)
        #expect(v(exits[1], "unmapped.process.signal") as? Int == 9)

        let opens = events("file.open")
        try #require(opens.count == 9)
        #expect(v(opens[0], "type_uid") as? Int == 100114)
        // OCSF's file has no inode or device: they and how it was asked stay unmapped.
        #expect(v(opens[0], "unmapped.file.inode") as? Int == 1_234_567)
        #expect(v(opens[0], "unmapped.file.device") as? String == "8:1")
        #expect(v(opens[0], "unmapped.file.mount_id") as? Int == 29)
        #expect(v(opens[0], "unmapped.file.via") as? String == "openat")
        #expect(v(opens[6], "unmapped.file.fixed_file") as? Bool == true)
        #expect(v(opens[6], "status_id") as? Int == 1)
        #expect(v(opens[7], "status_id") as? Int == 0)
        #expect(v(opens[7], "unmapped.file.result_unseen") as? Bool == true)
        #expect(v(opens[8], "unmapped.file.via") as? String == "open_by_handle_at")
        #expect(v(opens[8], "status_code") as? String == "EPERM")
        #expect(v(opens[0], "file.name") as? String == "id_ed25519")
        #expect(v(opens[0], "file.parent_folder") as? String == "/home/dev/.ssh")
        #expect(v(opens[0], "actor.process.pid") as? Int == Int(FormatSamples.toolPID))
        #expect(v(opens[2], "status_id") as? Int == 2)
        #expect(v(opens[2], "status_code") as? String == "ENOENT")
        #expect(v(opens[3], "file.ext") as? String == "gz")
        #expect(v(opens[4], "file.name") as? String == "/")
        #expect(v(opens[4], "file.type_id") as? Int == 2)

        let connects = events("net.connect")
        try #require(connects.count == 8)
        #expect(connects.map { v($0, "activity_id") as? Int } == [1, 1, 5, 4, 1, 1, 1, 1])
        #expect(connects.map { v($0, "status_id") as? Int } == [1, 0, 2, 2, 1, 1, 1, 1])
        #expect(v(connects[0], "dst_endpoint.ip") as? String == "93.184.216.34")
        #expect(v(connects[0], "dst_endpoint.port") as? Int == 443)
        #expect(v(connects[0], "src_endpoint.ip") as? String == "10.0.0.5")
        #expect(v(connects[0], "src_endpoint.hostname") as? String == "devbox")
        #expect(v(connects[0], "connection_info.protocol_num") as? Int == 6)
        #expect(v(connects[0], "connection_info.protocol_ver_id") as? Int == 4)
        #expect(connects.map { v($0, "connection_info.direction_id") as? Int } == [2, 2, 4, 3, 4, 4, 0, 2])
        // The name the session resolved the address from.
        #expect(v(connects[7], "dst_endpoint.hostname") as? String == "upload.example.com")
        #expect(v(connects[0], "dst_endpoint.hostname") == nil)
        #expect(v(connects[7], "unmapped.net.via") as? String == "connect")
        #expect(v(connects[0], "metadata.profiles") as? [String] == ["host"])
        #expect(v(connects[4], "dst_endpoint.name") as? String == "/run/systemd/journal/socket")

        let flows = events("net.flow")
        try #require(flows.count == 3)
        #expect(flows.map { v($0, "activity_id") as? Int } == [6, 2, 2])
        #expect(v(flows[0], "traffic.bytes_out") as? Int == 1_048_576)
        #expect(v(flows[0], "cumulative_traffic.bytes_out") as? Int == 2_000_000)
        #expect(v(flows[0], "cumulative_traffic.bytes") as? Int == 2_004_096)
        #expect(v(flows[2], "dst_endpoint") == nil)

        let sends = events("net.send")
        try #require(sends.count == 3)
        #expect(sends.map { v($0, "class_uid") as? Int } == [4001, 4001, 4001])
        #expect(sends.map { v($0, "activity_id") as? Int } == [6, 2, 2])
        #expect(v(sends[1], "traffic.bytes_out") as? Int == 2_398_800)
        #expect(v(sends[1], "traffic.packets_out") as? Int == 1999)
        #expect(v(sends[1], "cumulative_traffic.bytes_out") as? Int == 2_400_000)
        #expect(v(sends[1], "cumulative_traffic.packets_out") as? Int == 2000)
        #expect(v(sends[1], "cumulative_traffic.start_time") as? Int != nil)
        #expect(v(sends[1], "dst_endpoint.hostname") as? String == "upload.example.com")
        #expect(v(sends[2], "unmapped.net.evicted") as? Bool == true)

        let dns = events("net.dns")
        try #require(dns.count == 3)
        #expect(dns.map { v($0, "class_uid") as? Int } == [4003, 4003, 4003])
        #expect(dns.map { v($0, "activity_id") as? Int } == [1, 2, 2])
        #expect(dns.map { v($0, "type_uid") as? Int } == [400301, 400302, 400302])
        #expect(v(dns[0], "query.hostname") as? String == "upload.example.com")
        #expect(v(dns[0], "query.type") as? String == "A")
        #expect(v(dns[0], "query.packet_uid") as? Int == 4242)
        #expect(v(dns[0], "rcode_id") == nil)
        #expect(v(dns[1], "rcode_id") as? Int == 0 && v(dns[1], "rcode") as? String == "NoError")
        let answers = try #require(v(dns[1], "answers") as? [[String: Any]])
        #expect(answers.map { $0["rdata"] as? String } == ["edge.example.net", "93.184.216.34", "2001:db8::34"])
        #expect(answers.map { $0["type"] as? String } == ["CNAME", "A", "AAAA"])
        #expect(v(dns[1], "status_id") as? Int == 1)
        #expect(v(dns[2], "rcode_id") as? Int == 3 && v(dns[2], "status_id") as? Int == 2)
        #expect(v(dns[2], "status_code") as? String == "NXDOMAIN")
        #expect(v(dns[2], "connection_info.protocol_name") as? String == "tcp")
        #expect(v(dns[2], "unmapped.dns.unmatched") as? Bool == true)

        let findings = events("alert")
        try #require(findings.count == 2)
        let a = findings[0]
        #expect(v(a, "class_uid") as? Int == 2004)
        #expect(v(a, "severity_id") as? Int == 4)
        #expect(v(a, "severity") as? String == "High")
        #expect(v(a, "is_alert") as? Bool == true)
        #expect(v(a, "finding_info.analytic.uid") as? String == "test-ssh-key-read")
        #expect(v(a, "finding_info.title") as? String == "SSH private key read")
        #expect(v(a, "finding_info.uid") as? String == v(a, "metadata.uid") as? String)
        #expect(v(a, "message") as? String == "/usr/bin/curl read /home/dev/.ssh/id_ed25519")
        #expect(((v(a, "evidences") as? [[String: Any]])?.first?["process"] as? [String: Any])?["path"] as? String == "/usr/bin/curl")
        #expect(v(a, "unmapped.rule.author") as? String == "agentwatch tests")
        #expect(v(findings[1], "evidences") == nil)
        #expect(v(findings[1], "unmapped.suppressed") as? Int == 1)

        let start = try #require(events("agent.start").first)
        #expect(v(start, "class_uid") as? Int == 1008 && v(start, "activity_id") as? Int == 6)
        #expect(v(start, "log_provider") as? String == "agentwatch")
        #expect(v(start, "log_name") as? String == "file:/var/log/agentwatch/records.ndjson")
        let stop = try #require(events("agent.stop").first)
        #expect(v(stop, "activity_id") as? Int == 7)
    }

    @Test("untrusted bytes keep their escaping: Python recovers them byte for byte")
    func bytesRecoverable() throws {
        let rendered = try Self.renderAll()
        let tool = try #require(rendered.filter { $0.type == "process.exec" }.last?.line)
        let open = try #require(rendered.filter { $0.type == "file.open" }.dropFirst(5).first?.line)
        let recovered = try pythonSurrogateEscape([(tool, ["unmapped", "process", "argv", "2"]), (open, ["file", "path"]),
                                                   (open, ["file", "name"])])
        #expect(recovered == [[0x2F, 0x74, 0xFF, 0xFE, 0x0A, 0x22, 0x5C], [0x2F, 0x74, 0x6D, 0x70, 0x2F, 0x07, 0xC3, 0x28, 0x7F],
                              [0x07, 0xC3, 0x28, 0x7F]])
    }
}

/// Prints each sample record in the three formats (AGENTWATCH_FORMAT_DUMP=1), to read them.
@Suite("Format dump", .enabled(if: getenv("AGENTWATCH_FORMAT_DUMP") != nil))
struct FormatDump {
    @Test func dump() throws {
        var e = ECSFormatter(), o = OCSFFormatter()
        for l in try FormatSamples.lines() {
            print("NATIVE " + String(decoding: l, as: UTF8.self))
            print("ECS " + (render(&e, l).map { String(decoding: $0, as: UTF8.self) } ?? "-"))
            print("OCSF " + (render(&o, l).map { String(decoding: $0, as: UTF8.self) } ?? "-"))
        }
    }
}
