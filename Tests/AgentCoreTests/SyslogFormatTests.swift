@testable import AgentOutputs
@testable import AgentSupport
import Foundation
import Glibc
import Testing

/// A native record line as the recorder writes it (field order, nesting), with the parts the
/// syslog header reads given by the caller.
func sampleRecord(seq: Int, type: String = "file.open", time: String = "2026-11-21T22:50:01.123456789Z",
                  host: String = "build-7", session: String? = "s1", rule: (id: String, severity: String)? = nil,
                  path: String = "/home/dev/.ssh/id_ed25519") -> String {
    var r = "{\"v\":1,\"seq\":\(seq),\"time\":\"\(time)\",\"type\":\"\(type)\",\"host\":{\"name\":\"\(host)\",\"id\":\"0f3c\"}"
    if let session {
        r += ",\"session\":{\"id\":\"\(session)\",\"cgroup\":\"/agentwatch/s1\",\"labels\":{\"k\":\"v}]\"}}"
    }
    r += ",\"process\":{\"entity_id\":\"e1\",\"pid\":4000,\"argv\":[\"cat\",\"{\\\"x\\\"]\"],\"parent\":{\"pid\":1}}"
    if let rule {
        r += ",\"rule\":{\"id\":\"\(rule.id)\",\"title\":\"Credential read\",\"severity\":\"\(rule.severity)\",\"tags\":[\"t\"],\"source\":\"rules/x.yaml\",\"author\":\"a\"}"
        r += ",\"message\":\"cat read a key\",\"evidence\":[\(seq - 1)]"
    } else {
        r += ",\"file\":{\"path\":\"\(path)\",\"flags\":[\"O_RDONLY\"],\"result\":3}"
    }
    return r + ",\"chain\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}"
}

/// Renders one line with a fixed PROCID, so the bytes can be compared whole.
func syslogMessage(_ line: String, _ configure: (inout SyslogSettings) -> Void = { _ in }) -> String {
    var settings = SyslogSettings()
    configure(&settings)
    var w = SyslogMessageWriter(settings: settings, facility: SyslogTransport.facilityCode(settings.facility)!,
                                formatter: NativeFormatter(), procID: 4242)
    var out: [UInt8] = []
    var l = line
    let ok = l.withUTF8 { w.append(UnsafeRawBufferPointer($0), to: &out) }
    #expect(ok)
    return String(decoding: out, as: UTF8.self)
}

@Suite("Syslog message format")
struct SyslogFormatTests {
    @Test func rfc5424Bytes() {
        let line = sampleRecord(seq: 42)
        #expect(syslogMessage(line) == "<86>1 2026-11-21T22:50:01.123456Z build-7 agentwatch 4242 file.open [agentwatch@32473 seq=\"42\" type=\"file.open\" session=\"s1\"] " + line)
    }

    @Test func rfc5424AlertBytes() {
        let line = sampleRecord(seq: 7, type: "alert", rule: ("cred-read", "critical"))
        let msg = syslogMessage(line) { $0.facility = "local3"; $0.appName = "aw" }
        // local3 (19) * 8 + critical (2)
        #expect(msg == "<154>1 2026-11-21T22:50:01.123456Z build-7 aw 4242 alert [agentwatch@32473 seq=\"7\" type=\"alert\" session=\"s1\" rule=\"cred-read\" severity=\"critical\"] " + line)
    }

    @Test func recordWithoutSession() {
        let line = sampleRecord(seq: 1, type: "agent.loss", session: nil)
        // agent.loss is a warning: authpriv (10) * 8 + 4
        #expect(syslogMessage(line) == "<84>1 2026-11-21T22:50:01.123456Z build-7 agentwatch 4242 agent.loss [agentwatch@32473 seq=\"1\" type=\"agent.loss\"] " + line)
    }

    @Test func rfc3164Bytes() {
        let line = sampleRecord(seq: 42)
        #expect(syslogMessage(line) { $0.framing = .rfc3164 } == "<86>Nov 21 22:50:01 build-7 agentwatch[4242]: " + line)
        let early = sampleRecord(seq: 43, time: "2027-01-02T03:04:05.000000001Z")
        #expect(syslogMessage(early) { $0.framing = .rfc3164; $0.facility = "daemon" } == "<30>Jan  2 03:04:05 build-7 agentwatch[4242]: " + early)
    }

    @Test(arguments: [
        ("2026-11-21T22:50:01.123456789Z", "2026-11-21T22:50:01.123456Z"),
        ("2026-11-21T22:50:01.1234567Z", "2026-11-21T22:50:01.123456Z"),
        ("2026-11-21T22:50:01.123456Z", "2026-11-21T22:50:01.123456Z"),
        ("2026-11-21T22:50:01.5Z", "2026-11-21T22:50:01.5Z"),
        ("2026-11-21T22:50:01Z", "2026-11-21T22:50:01Z"),
        ("2026-11-21T22:50:01.987654321+01:00", "2026-11-21T22:50:01.987654+01:00"),
        ("2026-11-21T22:50:01.Z", "-"),
        ("2026-11-21 22:50:01Z", "-"),
        ("yesterday", "-"),
    ])
    func timestampCutToSixDigits(time: String, expected: String) {
        let msg = syslogMessage(sampleRecord(seq: 1, time: time))
        #expect(msg.split(separator: " ")[1] == Substring(expected))
    }

    @Test func structuredDataEscaping() {
        // The session id a"b\c]d, JSON-escaped in the record; RFC 5424 escapes ", \ and ].
        let line = sampleRecord(seq: 5, session: #"a\"b\\c]d é"#)
        #expect(syslogMessage(line).contains(#"session="a\"b\\c\]d é"]"#))
        // Control characters and the \udcXX escapes of bytes that are not UTF-8 become U+FFFD.
        let odd = sampleRecord(seq: 6, session: #"x\u0001y\udcffz\u00e9"#)
        #expect(syslogMessage(odd).contains("session=\"x\u{FFFD}y\u{FFFD}zé\"]"))
        // A value ending in an escaped backslash: the quote after it ends the string.
        #expect(syslogMessage(sampleRecord(seq: 7, session: #"x\\"#)).contains(#"type="file.open" session="x\\"]"#))
        let escaped = escapeParamValue(#"1"2\3]4[5"#)
        #expect(escaped == #"1\"2\\3\]4[5"#)
    }

    @Test func headerFieldsThatAreNotTokens() {
        // A host name with a space, or longer than 255, is the NILVALUE; so is a long type.
        #expect(syslogMessage(sampleRecord(seq: 1, host: "my host")).hasPrefix("<86>1 2026-11-21T22:50:01.123456Z - agentwatch 4242 file.open "))
        #expect(syslogMessage(sampleRecord(seq: 1, host: String(repeating: "h", count: 256))).contains("Z - agentwatch"))
        let long = String(repeating: "t", count: 33)
        #expect(syslogMessage(sampleRecord(seq: 1, type: long)).contains(" 4242 - [agentwatch@32473 seq=\"1\" type=\"\(String(repeating: "t", count: 32))\""))
        // An app name is cut to printable ASCII.
        #expect(syslogMessage(sampleRecord(seq: 1)) { $0.appName = "agent watch" }.contains(" agentwatch 4242 "))
    }

    @Test func malformedLineStillGoesOut() {
        #expect(syslogMessage("not json") == "<86>1 - - agentwatch 4242 - [agentwatch@32473] not json")
        #expect(syslogMessage("{\"seq\":1,\"type\":{\"x\":\"}\"}") == "<86>1 - - agentwatch 4242 - [agentwatch@32473 seq=\"1\"] {\"seq\":1,\"type\":{\"x\":\"}\"}")
    }

    @Test(arguments: [
        ("critical", 2), ("high", 3), ("medium", 4), ("low", 5), ("info", 6), ("bogus", 4),
    ])
    func alertSeverity(severity: String, code: Int) {
        let msg = syslogMessage(sampleRecord(seq: 1, type: "alert", rule: ("r", severity))) { $0.facility = "kern" }
        #expect(msg.hasPrefix("<\(code)>1 "))
    }

    @Test func recordSeverity() {
        let type: (String) -> UnsafeRawBufferPointer = { s in UnsafeRawBufferPointer(start: strdup(s), count: s.utf8.count) }
        #expect(SyslogMessageWriter.severity(type: type("agent.loss"), ruleSeverity: nil) == 4)
        #expect(SyslogMessageWriter.severity(type: type("process.exec"), ruleSeverity: nil) == 6)
        #expect(SyslogMessageWriter.severity(type: type("alert"), ruleSeverity: nil) == 4)
    }

    @Test func facilityCodes() {
        let expected: [String: Int] = [
            "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "security": 4, "syslog": 5, "lpr": 6, "news": 7,
            "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14, "clock": 15,
            "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
            "LOCAL7": 23,
        ]
        for (name, code) in expected { #expect(SyslogTransport.facilityCode(name) == code, "\(name)") }
        for bad in ["", "local8", "authpriv ", "kernel", "10"] { #expect(SyslogTransport.facilityCode(bad) == nil, "\(bad)") }
    }

    @Test func unknownFacilityFailsOpen() {
        var settings = SyslogSettings()
        settings.facility = "local9"
        let d = SyslogTransport(settings: settings, formatter: NativeFormatter())
        #expect(throws: AgentError.self) { try d.open() }
        do { try d.open() } catch { #expect(error.message.contains("unknown facility 'local9'")) }
    }

    /// The bound is the minimum (1024); the record's multi-byte characters put the cut inside
    /// one for one of three paddings. The MSG is the longest whole-character prefix that fits.
    @Test func truncationAtCharacterBoundary() throws {
        var cutInside = false
        for pad in 0..<3 {
            let line = sampleRecord(seq: 9, path: "/" + String(repeating: "a", count: pad) + String(repeating: "€", count: 600))
            let msg = Array(syslogMessage(line) { $0.maxMessageBytes = 100 }.utf8)
            #expect(msg.count <= 1024)
            let header = Array("<86>1 2026-11-21T22:50:01.123456Z build-7 agentwatch 4242 file.open [agentwatch@32473 seq=\"9\" type=\"file.open\" session=\"s1\" truncated=\"true\" length=\"\(line.utf8.count)\"] ".utf8)
            #expect(Array(msg.prefix(header.count)) == header)
            let body = Array(msg.dropFirst(header.count))
            let room = 1024 - header.count
            var expected = Array(line.utf8.prefix(room))
            while String(validating: expected, as: UTF8.self) == nil { expected.removeLast() }
            #expect(body == expected)
            if body.count < room { cutInside = true }
        }
        #expect(cutInside)
    }

    @Test func truncationIn3164() {
        let line = sampleRecord(seq: 9, path: String(repeating: "é", count: 2000))
        let msg = syslogMessage(line) { $0.framing = .rfc3164; $0.maxMessageBytes = 2048 }
        #expect(msg.utf8.count <= 2048 && msg.utf8.count >= 2046)
        #expect(msg.hasPrefix("<86>Nov 21 22:50:01 build-7 agentwatch[4242]: [truncated length=\(line.utf8.count)] {\"v\":1,\"seq\":9,"))
        #expect(line.hasPrefix(String(msg.split(separator: "] ", maxSplits: 1)[1])))
    }

    @Test func messageAtTheBoundIsNotCut() {
        // Find the line length whose message is exactly 1024 bytes: it goes out whole.
        let base = syslogMessage(sampleRecord(seq: 1, path: "/"))
        let line = sampleRecord(seq: 1, path: "/" + String(repeating: "x", count: 1024 - base.utf8.count))
        let msg = syslogMessage(line) { $0.maxMessageBytes = 1024 }
        #expect(msg.utf8.count == 1024 && msg.hasSuffix(line) && !msg.contains("truncated"))
        let longer = sampleRecord(seq: 1, path: "/" + String(repeating: "x", count: 1025 - base.utf8.count))
        #expect(syslogMessage(longer) { $0.maxMessageBytes = 1024 }.contains("truncated=\"true\" length=\"\(longer.utf8.count)\""))
    }

    /// The longest header this writer makes (every field at its limit, every SD value escaped
    /// twice over) still leaves room for MSG under the smallest bound.
    @Test func longestHeaderFitsTheSmallestBound() {
        let nasty = String(repeating: #"\""#, count: 200)
        let line = sampleRecord(seq: Int.max, type: "alert", time: "2026-11-21T22:50:01.123456789+14:00",
                                host: String(repeating: "h", count: 255), session: nasty, rule: (nasty, nasty))
        let msg = syslogMessage(line) { $0.maxMessageBytes = 1; $0.appName = String(repeating: "a", count: 60) }
        #expect(msg.utf8.count <= 1024)
        #expect(msg.contains("truncated=\"true\""))
        let afterSD = msg.utf8.count - (msg.range(of: "\"] ")!.upperBound.utf16Offset(in: msg))
        #expect(afterSD > 50, "MSG keeps \(afterSD) bytes")
    }

    @Test func octetCountedFrames() throws {
        var settings = SyslogSettings()
        settings.transport = .tcp
        var w = SyslogMessageWriter(settings: settings, facility: 10, formatter: NativeFormatter(), procID: 1)
        var out: [UInt8] = []
        let lines = [sampleRecord(seq: 1), sampleRecord(seq: 2, path: "/tmp/ü")]
        for var l in lines { _ = l.withUTF8 { w.append(UnsafeRawBufferPointer($0), to: &out) } }
        // LEN SP MSG, LEN the octets of MSG, no leading zeros, frame after frame.
        var rest = out[...]
        for l in lines {
            let space = try #require(rest.firstIndex(of: UInt8(ascii: " ")))
            let len = try #require(Int(String(decoding: rest[rest.startIndex..<space], as: UTF8.self)))
            let msg = rest[(space + 1)..<(space + 1 + len)]
            #expect(String(decoding: msg, as: UTF8.self) == syslogMessage(l).replacingOccurrences(of: " 4242 ", with: " 1 "))
            rest = rest[(space + 1 + len)...]
        }
        #expect(rest.isEmpty)
    }

    /// A formatter that renders no `agent.loss` record.
    struct NoLossFormatter: RecordFormatter {
        mutating func render(_ line: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
            guard !String(decoding: line, as: UTF8.self).contains("\"type\":\"agent.loss\"") else { return false }
            out.append(contentsOf: line)
            return true
        }
    }

    /// Over a local datagram socket of the test's own: one datagram per rendered line, lines the
    /// formatter refuses passed over and counted; a receiver gone fails the next deliver with
    /// nothing delivered.
    @Test func destinationOverALocalSocket() throws {
        let path = "/tmp/aw-syslog-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let receiver = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(receiver, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0)
        defer { unlink(path) }
        var settings = SyslogSettings()
        settings.address = path
        let d = SyslogTransport(settings: settings, formatter: NoLossFormatter())
        try d.open()
        var lines = [sampleRecord(seq: 1), sampleRecord(seq: 2, type: "agent.loss", session: nil), sampleRecord(seq: 3)]
            .joined(separator: "\n") + "\n\n"
        try lines.withUTF8 { try d.deliver(UnsafeRawBufferPointer($0)) }
        #expect(d.unrenderable == 1)
        var got: [String] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(receiver, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n <= 0 { break }
            got.append(String(decoding: buffer[0..<n], as: UTF8.self))
        }
        #expect(got.count == 2)
        #expect(got.first?.hasSuffix(sampleRecord(seq: 1)) == true && got.last?.hasSuffix(sampleRecord(seq: 3)) == true)
        close(receiver)
        do {
            try lines.withUTF8 { try d.deliver(UnsafeRawBufferPointer($0)) }
            Issue.record("deliver to a closed local socket succeeded")
        } catch let error as DeliveryFailure {
            #expect(error.delivered == 0)
            #expect(error.reason.contains("refused"), "\(error.reason)")
        }
        d.close()
    }

    @Test func descriptions() {
        var s = SyslogSettings()
        #expect(SyslogTransport(settings: s, formatter: NativeFormatter()).description == "syslog+unix:///dev/log")
        s.transport = .tls
        s.address = "::1"
        #expect(SyslogTransport(settings: s, formatter: NativeFormatter()).description == "syslog+tls://[::1]:6514")
        s.transport = .udp
        s.address = "loghost"
        #expect(SyslogTransport(settings: s, formatter: NativeFormatter()).description == "syslog+udp://loghost:514")
    }
}

/// RFC 5424 PARAM-VALUE escaping of a whole string.
func escapeParamValue(_ s: String) -> String {
    var out: [UInt8] = []
    SyslogMessageWriter.appendEscapedParamValue(Array(s.utf8), to: &out)
    return String(decoding: out, as: UTF8.self)
}
