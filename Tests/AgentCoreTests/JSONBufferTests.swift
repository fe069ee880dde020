import AgentRecords
import Foundation
import Glibc
import Testing

private func text(_ j: JSONBuffer) -> String { String(decoding: j.bytes, as: UTF8.self) }

private func jsonString(_ input: [UInt8]) -> [UInt8] {
    var j = JSONBuffer(capacity: 16)
    j.string(input)
    return j.bytes
}

private func jsonString(_ input: String) -> String {
    var j = JSONBuffer(capacity: 16)
    j.string(input)
    return text(j)
}

/// Reverses exactly the scheme documented on JSONBuffer: `\udcXX` is the byte XX, `\u00XX` the
/// byte XX, the short escapes their byte, any other `\uXXXX` its UTF-8, and every other byte
/// stands for itself. Returns nil for text JSONBuffer must never write (a raw control
/// character or quote inside the string, an unknown escape, a lone surrogate outside DC80-DCFF).
func decodeSurrogateEscaped(_ text: [UInt8]) -> [UInt8]? {
    let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
    guard text.count >= 2, text.first == quote, text.last == quote else { return nil }
    func hex(_ b: UInt8) -> UInt32? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(b - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
    var out: [UInt8] = []
    var i = 1
    let end = text.count - 1
    while i < end {
        let b = text[i]
        guard b == backslash else {
            if b < 0x20 || b == quote { return nil }
            out.append(b)
            i += 1
            continue
        }
        guard i + 1 < end else { return nil }
        switch text[i + 1] {
        case quote: out.append(quote)
        case backslash: out.append(backslash)
        case UInt8(ascii: "/"): out.append(UInt8(ascii: "/"))
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            guard i + 6 <= end else { return nil }
            var v: UInt32 = 0
            for k in (i + 2)..<(i + 6) {
                guard let h = hex(text[k]) else { return nil }
                v = v << 4 | h
            }
            switch v {
            case 0xDC80...0xDCFF: out.append(UInt8(v & 0xFF))
            case 0..<0x80: out.append(UInt8(v))
            default:
                guard let scalar = Unicode.Scalar(v) else { return nil }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            }
            i += 6
            continue
        default:
            return nil
        }
        i += 2
    }
    return out
}

/// An encoder written from the documentation, independent of JSONBuffer's UTF-8 table: a
/// sequence is valid when the standard library's validator accepts it as exactly one scalar.
private func referenceEncoding(_ s: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [UInt8(ascii: "\"")]
    let hex = Array("0123456789abcdef".utf8)
    func escape(_ prefix: String, _ b: UInt8) {
        out += Array("\\u\(prefix)".utf8) + [hex[Int(b >> 4)], hex[Int(b & 0xF)]]
    }
    var i = 0
    while i < s.count {
        let b = s[i]
        if b < 0x20 || b == 0x7F {
            escape("00", b)
            i += 1
        } else if b < 0x80 {
            if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
            out.append(b)
            i += 1
        } else {
            var length = 0
            for n in 2...4 where i + n <= s.count {
                if let str = String(validating: s[i..<(i + n)], as: UTF8.self), str.unicodeScalars.count == 1 {
                    length = n
                    break
                }
            }
            if length == 0 {
                escape("dc", b)
                i += 1
            } else {
                out += s[i..<(i + length)]
                i += length
            }
        }
    }
    out.append(UInt8(ascii: "\""))
    return out
}

/// Random strings that stress the UTF-8 table: noise, ASCII, specials, valid sequences of every
/// length and the classic invalid ones (truncated, overlong, surrogates, past U+10FFFF).
private func randomHostileBytes(_ rng: inout SeededGenerator, maxPieces: Int = 24) -> [UInt8] {
    let pieces: [[UInt8]] = [
        [0x41], [0x22], [0x5C], [0x00], [0x1F], [0x7F], [0x0A],
        [0xC3, 0xA9], [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x98, 0x80], [0xEF, 0xBF, 0xBF], [0xEF, 0xBB, 0xBF], [0xF4, 0x8F, 0xBF, 0xBF],
        [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80], [0xE0, 0xA0, 0x80], [0xF0, 0x90, 0x80, 0x80],
        [0xFF], [0x80], [0xBF], [0xC0, 0xAF], [0xC1, 0xBF], [0xE2, 0x82], [0xF0, 0x9F, 0x98],
        [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xE0, 0x80, 0x80], [0xF0, 0x80, 0x80, 0x80],
        [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xF8], [0xFE], [0xC2],
    ]
    var out: [UInt8] = []
    for _ in 0..<Int(rng.next() % UInt64(maxPieces + 1)) {
        switch rng.next() % 3 {
        case 0: out.append(UInt8(truncatingIfNeeded: rng.next()))
        default: out += pieces[Int(rng.next() % UInt64(pieces.count))]
        }
    }
    return out
}

/// Random valid UTF-8 text, control characters included. No U+FEFF: Foundation's
/// JSONSerialization on Linux drops a U+FEFF that directly follows an escape, which is
/// Foundation's doing, not JSONBuffer's (matchesReferenceEncoder covers U+FEFF).
private func randomValidText(_ rng: inout SeededGenerator) -> String {
    let scalars: [Unicode.Scalar] = ["a", "Z", "0", " ", "\"", "\\", "/", "\u{0}", "\u{1}", "\u{8}", "\t", "\n", "\r",
                                     "\u{1B}", "\u{1F}", "\u{7F}", "\u{80}", "é", "ß", "€", "中", "\u{FFFD}",
                                     "\u{D7FF}", "\u{E000}", "\u{FFFF}", "😀", "\u{10FFFF}", "\u{0301}"]
    var s = String.UnicodeScalarView()
    for _ in 0..<Int(rng.next() % 30) { s.append(scalars[Int(rng.next() % UInt64(scalars.count))]) }
    return String(s)
}

@Suite("JSONBuffer")
struct JSONBufferTests {
    // MARK: numbers

    @Test(arguments: [
        (UInt64(0), "0"), (9, "9"), (10, "10"), (99, "99"), (100, "100"), (1_000_000, "1000000"),
        (UInt64(UInt32.max), "4294967295"), (UInt64.max, "18446744073709551615"),
    ])
    func unsigned(_ value: UInt64, _ expected: String) {
        var j = JSONBuffer()
        j.uint(value)
        #expect(text(j) == expected)
    }

    @Test(arguments: [
        (Int64(0), "0"), (9, "9"), (10, "10"), (-1, "-1"), (-9, "-9"), (-10, "-10"),
        (Int64.max, "9223372036854775807"), (Int64.min, "-9223372036854775808"),
    ])
    func signed(_ value: Int64, _ expected: String) {
        var j = JSONBuffer()
        j.int(value)
        #expect(text(j) == expected)
    }

    @Test func otherIntegerTypes() {
        var j = JSONBuffer()
        j.int(Int8.min); j.raw(",")
        j.int(Int32.min); j.raw(",")
        j.int(UInt16.max); j.raw(",")
        j.int(UInt64.max); j.raw(",")
        j.int(-100 as Int)
        #expect(text(j) == "-128,-2147483648,65535,18446744073709551615,-100")
    }

    @Test func integersMatchDescriptionForRandomValues() {
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<2000 {
            let u = rng.next() >> (rng.next() % 64)
            var j = JSONBuffer()
            j.uint(u)
            #expect(text(j) == String(u))
            let s = Int64(bitPattern: rng.next()) >> (rng.next() % 64)
            var k = JSONBuffer()
            k.int(s)
            #expect(text(k) == String(s))
        }
    }

    @Test func keysBoolsAndRaw() {
        var j = JSONBuffer()
        j.byte(UInt8(ascii: "{"))
        j.key("a"); j.bool(true); j.raw(",")
        j.key("b"); j.bool(false)
        j.byte(UInt8(ascii: "}"))
        #expect(text(j) == #"{"a":true,"b":false}"#)
    }

    @Test func bufferKeepsAppending() {
        var j = JSONBuffer(capacity: 1)
        for i in 0..<1000 { j.uint(UInt64(i % 10)) }
        #expect(j.bytes.count == 1000)
        #expect(j.bytes.prefix(12) == ArraySlice(Array("012345678901".utf8)))
    }

    // MARK: timestamps

    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00.000000000Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (999_999_999, "1970-01-01T00:00:00.999999999Z"),
        (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456789Z"),
        (1_709_164_800_000_000_000, "2024-02-29T00:00:00.000000000Z"),
        (1_709_251_199_999_999_999, "2024-02-29T23:59:59.999999999Z"),
        (1_709_251_200_000_000_000, "2024-03-01T00:00:00.000000000Z"),
        (951_782_400_000_000_000, "2000-02-29T00:00:00.000000000Z"),
        (4_107_542_400_000_000_000, "2100-03-01T00:00:00.000000000Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (-1_000_000_000, "1969-12-31T23:59:59.000000000Z"),
        (-2_203_891_200_000_000_000, "1900-03-01T00:00:00.000000000Z"),
        (Int64.max, "2262-04-11T23:47:16.854775807Z"),
    ])
    func timestamp(_ ns: Int64, _ expected: String) {
        var j = JSONBuffer()
        j.timestamp(unixNanoseconds: ns)
        #expect(text(j) == "\"\(expected)\"")
    }

    /// Against the C library's calendar for random instants across the whole Int64 range that
    /// the formula can take without overflow.
    @Test func timestampMatchesGmtime() {
        var rng = SeededGenerator(seed: 1970)
        for _ in 0..<5000 {
            let ns = Int64(bitPattern: rng.next()) >> (rng.next() % 40)
            guard ns > Int64.min + 1_000_000_000 else { continue }
            // Floor division: the second that holds the instant.
            var t = time_t(ns >= 0 ? ns / 1_000_000_000 : -((-ns + 999_999_999) / 1_000_000_000))
            var tm = Glibc.tm()
            guard gmtime_r(&t, &tm) != nil else {
                Issue.record("gmtime_r failed for \(t)")
                continue
            }
            let frac = ns - Int64(t) * 1_000_000_000
            func pad(_ v: Int, _ w: Int) -> String {
                let s = String(v)
                return String(repeating: "0", count: max(0, w - s.count)) + s
            }
            let expected = "\"\(pad(Int(tm.tm_year) + 1900, 4))-\(pad(Int(tm.tm_mon) + 1, 2))-\(pad(Int(tm.tm_mday), 2))T"
                + "\(pad(Int(tm.tm_hour), 2)):\(pad(Int(tm.tm_min), 2)):\(pad(Int(tm.tm_sec), 2)).\(pad(Int(frac), 9))Z\""
            var j = JSONBuffer()
            j.timestamp(unixNanoseconds: ns)
            #expect(text(j) == expected, "ns \(ns)")
        }
    }

    // MARK: strings

    @Test func plainASCII() {
        #expect(jsonString("hello world /usr/bin/ls -la ~") == #""hello world /usr/bin/ls -la ~""#)
        #expect(jsonString("") == #""""#)
    }

    @Test func quoteAndBackslash() {
        #expect(jsonString(#"say "hi""#) == #""say \"hi\"""#)
        #expect(jsonString(#"C:\dir\"#) == #""C:\\dir\\""#)
        #expect(jsonString(#"\""#) == #""\\\"""#)
    }

    @Test func everyControlCharacterIsEscaped() {
        let hex = Array("0123456789abcdef")
        for b in UInt8(0)...UInt8(0x1F) {
            #expect(jsonString([b]) == Array("\"\\u00\(hex[Int(b >> 4)])\(hex[Int(b & 0xF)])\"".utf8), "byte \(b)")
        }
        #expect(jsonString([0x7F]) == Array(#""\u007f""#.utf8))
        #expect(jsonString("a\nb\tc\0") == #""a\u000ab\u0009c\u0000""#)
    }

    @Test func printableASCIIPassesThrough() {
        for b in UInt8(0x20)...UInt8(0x7E) where b != UInt8(ascii: "\"") && b != UInt8(ascii: "\\") {
            #expect(jsonString([b]) == [0x22, b, 0x22])
        }
    }

    @Test func validMultiByteUTF8IsKept() {
        #expect(jsonString("café") == "\"café\"")
        #expect(jsonString("😀") == "\"😀\"")
        #expect(jsonString("中文/€") == "\"中文/€\"")
        // The first and last scalars of each length, and the edges around the surrogates.
        for s in ["\u{80}", "\u{7FF}", "\u{800}", "\u{D7FF}", "\u{E000}", "\u{FFFF}", "\u{10000}", "\u{10FFFF}"] {
            #expect(jsonString(Array(s.utf8)) == [0x22] + Array(s.utf8) + [0x22], "U+\(String(s.unicodeScalars.first!.value, radix: 16))")
        }
    }

    @Test(arguments: [
        ([0xFF] as [UInt8], #""\udcff""#),
        ([0x80], #""\udc80""#),
        ([0x61, 0x80, 0x62], #""a\udc80b""#),
        ([0xE2, 0x82], #""\udce2\udc82""#),                       // truncated 3-byte sequence
        ([0xE2, 0x82, 0x41], #""\udce2\udc82A""#),                // cut short by ASCII
        ([0xC0, 0xAF], #""\udcc0\udcaf""#),                       // overlong '/'
        ([0xE0, 0x80, 0xAF], #""\udce0\udc80\udcaf""#),           // overlong 3-byte
        ([0xED, 0xA0, 0x80], #""\udced\udca0\udc80""#),           // UTF-16 surrogate D800
        ([0xED, 0xB2, 0x80], #""\udced\udcb2\udc80""#),           // DC80 itself, as bytes
        ([0xF4, 0x90, 0x80, 0x80], #""\udcf4\udc90\udc80\udc80""#), // past U+10FFFF
        ([0xF5], #""\udcf5""#),
        ([0xC3], #""\udcc3""#),                                   // lead byte at the end
        ([0xC3, 0xA9, 0xA9], "\"é\\udca9\""),                      // stray continuation
    ])
    func invalidBytesBecomeSurrogateEscapes(_ input: [UInt8], _ expected: String) {
        #expect(String(decoding: jsonString(input), as: UTF8.self) == expected)
    }

    @Test func swiftStringOverloadMatchesBytes() {
        let s = "a\"b\\c\u{1}é😀"
        var j = JSONBuffer()
        j.string(s)
        #expect(j.bytes == jsonString(Array(s.utf8)))
    }

    /// What JSONBuffer writes is always valid UTF-8 with no raw control characters, whatever
    /// the input, and matches an encoder written independently from the documentation.
    @Test func matchesReferenceEncoder() {
        var rng = SeededGenerator(seed: 383)
        for _ in 0..<5000 {
            let input = randomHostileBytes(&rng)
            let out = jsonString(input)
            #expect(out == referenceEncoding(input), "input \(input)")
            #expect(String(validating: out, as: UTF8.self) != nil)
            #expect(!out.contains(where: { $0 < 0x20 }))
        }
    }

    @Test func roundTripRecoversTheExactBytes() {
        var rng = SeededGenerator(seed: 0x5EED)
        for n in 0..<5000 {
            // Alternate structured and pure noise inputs.
            let input = n % 2 == 0 ? randomHostileBytes(&rng) : rng.bytes(Int(rng.next() % 64))
            let out = jsonString(input)
            #expect(decodeSurrogateEscaped(out) == input, "input \(input)")
        }
    }

    @Test func roundTripDecoderRejectsWhatJSONBufferNeverWrites() {
        // Guards the test decoder itself, so the round trip cannot pass vacuously.
        #expect(decodeSurrogateEscaped(Array("\"a\nb\"".utf8)) == nil)
        #expect(decodeSurrogateEscaped(Array(#""\q""#.utf8)) == nil)
        #expect(decodeSurrogateEscaped(Array(#""\ud800""#.utf8)) == nil)
        #expect(decodeSurrogateEscaped(Array(#""\udcff\u00e9""#.utf8)) == [0xFF, 0xC3, 0xA9])
    }

    /// For valid UTF-8 the output is plain JSON that any parser reads back as the same text.
    @Test func validUTF8ParsesWithJSONSerialization() throws {
        var rng = SeededGenerator(seed: 8259)
        for _ in 0..<2000 {
            let s = randomValidText(&rng)
            var j = JSONBuffer()
            j.string(s)
            let parsed = try JSONSerialization.jsonObject(with: Data(j.bytes), options: .fragmentsAllowed)
            let back = try #require(parsed as? String, "\(s.debugDescription) did not parse as a string")
            #expect(Array(back.utf8) == Array(s.utf8), "\(s.debugDescription)")
        }
    }

    @Test func objectWithEscapedStringsParses() throws {
        var j = JSONBuffer()
        j.byte(UInt8(ascii: "{"))
        j.key("path"); j.string("/tmp/\"quoted\"\\dir\n")
        j.raw(","); j.key("n"); j.int(Int64.min)
        j.raw(","); j.key("t"); j.timestamp(unixNanoseconds: 0)
        j.byte(UInt8(ascii: "}"))
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(j.bytes)) as? [String: Any])
        #expect(obj["path"] as? String == "/tmp/\"quoted\"\\dir\n")
        #expect(obj["t"] as? String == "1970-01-01T00:00:00.000000000Z")
        #expect((obj["n"] as? NSNumber)?.int64Value == Int64.min)
    }
}
