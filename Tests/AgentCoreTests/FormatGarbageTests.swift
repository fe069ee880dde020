@testable import AgentDetector
@testable import AgentOutputs
import Foundation
import Testing

/// Native lines are untrusted input to the ECS and OCSF formatters (a capture replayed into a
/// sink, a damaged file): whatever they hold, a formatter declines the line or writes valid JSON,
/// and never crashes or hangs.
@Suite("Format garbage")
struct FormatGarbageTests {
    /// Renders each line with both formatters; returns what they wrote (declined lines leave nothing).
    static func renderBoth(_ lines: [[UInt8]]) -> (outputs: [[UInt8]], declined: Int) {
        var ecs = ECSFormatter(), ocsf = OCSFFormatter()
        var outputs: [[UInt8]] = []
        var declined = 0
        for l in lines {
            if let o = render(&ecs, l) { outputs.append(o) } else { declined += 1 }
            if let o = render(&ocsf, l) { outputs.append(o) } else { declined += 1 }
        }
        return (outputs, declined)
    }

    static func expectValid(_ outputs: [[UInt8]], sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
        guard !outputs.isEmpty else { return }
        // Damaged input may name a label twice; that much JSON allows.
        let valid = try pythonJSONValid(outputs, uniqueKeys: false)
        #expect(valid.count == outputs.count, sourceLocation: sourceLocation)
        for (i, ok) in valid.enumerated() where !ok {
            Issue.record("not JSON: \(String(decoding: outputs[i], as: UTF8.self))", sourceLocation: sourceLocation)
        }
    }

    static func replacing(_ line: [UInt8], _ old: String, _ new: String) -> [UInt8] {
        let text = String(decoding: line, as: UTF8.self)
        return Array(text.replacingOccurrences(of: old, with: new).utf8)
    }

    @Test("truncated lines are declined")
    func truncated() throws {
        let lines = try FormatSamples.lines()
        var cut: [[UInt8]] = []
        for (i, l) in lines.enumerated() {
            for n in stride(from: 0, to: l.count, by: i < 4 ? 1 : 13) { cut.append(Array(l[0..<n])) }
        }
        let (outputs, declined) = Self.renderBoth(cut)
        #expect(outputs.isEmpty)
        #expect(declined == 2 * cut.count)
    }

    @Test("fields of the wrong JSON type, bad times, duplicates and unknown types are declined")
    func wrongTypes() throws {
        let lines = try FormatSamples.lines()
        let exec = try #require(lines.first { String(decoding: $0, as: UTF8.self).contains("\"type\":\"process.exec\"") })
        let alert = try #require(lines.first { String(decoding: $0, as: UTF8.self).contains("\"type\":\"alert\"") })
        let bad: [[UInt8]] = [
            Self.replacing(exec, "\"seq\":", "\"seq\":\"1\",\"x\":"),
            Self.replacing(exec, "\"pid\":4300001,", "\"pid\":\"4300001\","),
            Self.replacing(exec, "\"pid\":4300001,", "\"pid\":-4300001.5,"),
            Self.replacing(exec, "\"argv\":[", "\"argv\":[1,"),
            Self.replacing(exec, "\"argv_truncated\":false", "\"argv_truncated\":\"no\""),
            Self.replacing(exec, "\"process\":{", "\"process\":[{"),
            Self.replacing(exec, "\"time\":\"2", "\"time\":\"yesterday 2"),
            Self.replacing(exec, "\"time\":\"", "\"time\":\"9999-99-99T00:00:00Z\",\"_\":\""),
            // Past Int64 nanoseconds (the year 2262).
            Self.replacing(exec, "\"time\":\"", "\"time\":\"9999-12-31T23:59:59.999999999Z\",\"_\":\""),
            Self.replacing(exec, "\"type\":\"process.exec\"", "\"type\":\"process.fork\""),
            Self.replacing(exec, "\"v\":1,", "\"v\":1,\"seq\":7,"),
            Self.replacing(exec, "\"exe\":\"", "\"exe\":null,\"_\":\""),
            Self.replacing(exec, "\"comm\":\"bash\"", "\"comm\":\"\\ud800x\""),
            Self.replacing(exec, "\"comm\":\"bash\"", "\"comm\":\"\\udc41\""),
            Self.replacing(exec, "\"comm\":\"bash\"", "\"comm\":\"\\q\""),
            Self.replacing(alert, "\"evidence\":[", "\"evidence\":[\"a\","),
            Self.replacing(alert, "\"evidence\":[", "\"evidence\":[-1,"),
            Array("{}".utf8), Array("[]".utf8), Array("null".utf8), Array("".utf8), Array("   ".utf8),
            Array("{\"v\":1,\"seq\":1,\"time\":\"2026-01-01T00:00:00.000000000Z\"}".utf8),
            exec + Array("x".utf8), exec + Array("{}".utf8),
        ]
        for (i, l) in bad.enumerated() {
            let (outputs, declined) = Self.renderBoth([l])
            #expect(outputs.isEmpty && declined == 2, "case \(i): \(String(decoding: l, as: UTF8.self).prefix(300))")
        }
        // Members the formatters do not know are passed over; whitespace is JSON too.
        let extra = Self.replacing(exec, "\"v\":1,", " \"v\" : 1 ,\n\"later\":{\"x\":[1,2.5e3,true,null]},")
        let (outputs, declined) = Self.renderBoth([extra])
        #expect(declined == 0)
        try Self.expectValid(outputs)
    }

    @Test("raw bytes that are not UTF-8, control characters and NULs come out escaped and recoverable")
    func rawBytes() throws {
        let lines = try FormatSamples.lines()
        let open = try #require(lines.first { String(decoding: $0, as: UTF8.self).contains("\"type\":\"file.open\"") })
        // A line not written by the Recorder: raw invalid UTF-8 and DEL where escapes belong.
        var raw = Self.replacing(open, "/home/dev/.ssh/id_ed25519\",\"requested", "/home/dev/\u{1}X\\u0000\\/\\t\",\"requested")
        let at = try #require(String(decoding: raw, as: UTF8.self).range(of: "\u{1}X"))
        let offset = String(decoding: raw, as: UTF8.self).utf8.distance(from: String(decoding: raw, as: UTF8.self).utf8.startIndex, to: at.lowerBound)
        raw.replaceSubrange(offset..<(offset + 2), with: [0xFF, 0x7F])
        var ecs = ECSFormatter(), ocsf = OCSFFormatter()
        let e = try #require(render(&ecs, raw))
        let o = try #require(render(&ocsf, raw))
        try Self.expectValid([e, o])
        let recovered = try pythonSurrogateEscape([(e, ["file", "path"]), (o, ["file", "path"]), (e, ["file", "name"])])
        let expected: [UInt8] = Array("/home/dev/".utf8) + [0xFF, 0x7F, 0x00, 0x2F, 0x09]
        // The escaped slash is a slash: the file's name is what follows it.
        #expect(recovered == [expected, expected, [0x09]])
        #expect(String(decoding: e, as: UTF8.self).contains(#""path":"/home/dev/\udcff\u007f\u0000/\u0009""#))
    }

    @Test("deep nesting and huge lines are declined; large but sane strings are kept whole")
    func deepAndHuge() throws {
        let deep = Array(("{\"v\":1,\"x\":" + String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000) + "}").utf8)
        let deepObjects = Array((String(repeating: "{\"a\":", count: 100_000) + "1" + String(repeating: "}", count: 100_000)).utf8)
        let lines = try FormatSamples.lines()
        let exec = try #require(lines.last { String(decoding: $0, as: UTF8.self).contains("\"type\":\"process.exec\"") })
        let huge = Self.replacing(exec, "\"naïve €\"", "\"" + String(repeating: "A", count: 2 << 20) + "\"")
        let (o1, d1) = Self.renderBoth([deep, deepObjects, huge])
        #expect(o1.isEmpty && d1 == 6)
        let large = String(repeating: "\\udcff\\u0001é", count: 20_000)
        let big = Self.replacing(exec, "\"naïve €\"", "\"" + large + "\"")
        let (o2, d2) = Self.renderBoth([big])
        #expect(d2 == 0)
        try Self.expectValid(o2)
        for o in o2 { #expect(String(decoding: o, as: UTF8.self).contains(large)) }
    }

    /// AGENTWATCH_FUZZ_ROUNDS=N damages N lines instead of 4000.
    @Test("random damage to real lines: declined or valid JSON")
    func mutations() throws {
        let rounds = getenv("AGENTWATCH_FUZZ_ROUNDS").flatMap { Int(String(cString: $0)) } ?? 4000
        let lines = try FormatSamples.lines()
        var rng = SeededGenerator(seed: 0x6F72_6D61_7473)
        let alphabet = Array("{}[]\",:\\u0123456789.-+eEtfnrl abcdz\u{7F}".utf8) + [0x00, 0x0A, 0x80, 0xC3, 0xED, 0xF4, 0xFF]
        var damaged: [[UInt8]] = []
        for i in 0..<rounds {
            var l = lines[i % lines.count]
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let at = Int(rng.next() % UInt64(l.count))
                switch rng.next() % 3 {
                case 0: l[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                case 1: l.remove(at: at)
                default: l.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                }
            }
            damaged.append(l)
        }
        for _ in 0..<500 { damaged.append(rng.bytes(Int(rng.next() % 300))) }
        let (outputs, declined) = Self.renderBoth(damaged)
        #expect(declined > 0 && !outputs.isEmpty, "the damage declines some lines and leaves others renderable")
        try Self.expectValid(outputs)
    }
}
