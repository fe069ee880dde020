import AgentRecords
import Glibc

/// The fields of a native v1 record line that a syslog header carries, found by one pass over
/// the line: byte ranges of the line, string values without their quotes and still JSON-escaped.
/// The line is the recorder's own output, but the pass checks every bound, so a malformed line
/// only leaves fields missing.
struct SyslogRecordFields {
    var seq: Range<Int>?
    var time: Range<Int>?
    package var type: Range<Int>?
    var hostName: Range<Int>?
    var sessionID: Range<Int>?
    var ruleID: Range<Int>?
    var severity: Range<Int>?

    init(scanning line: UnsafeRawBufferPointer) {
        var seq, time, type, hostName, sessionID, ruleID, severity: Range<Int>?
        // One member of a nested object: `field` takes the string value of key `name`.
        func member(_ s: inout JSONScanner, _ key: Range<Int>, _ name: StaticString, _ field: inout Range<Int>?) -> Bool? {
            guard s.equals(key, name) else { return nil }
            field = s.string()
            return field != nil
        }
        var s = JSONScanner(line)
        // The pass ends once it has what the header needs: for most records that is before
        // `process`, the bulk of the line. A record without a session is read to its end.
        func complete(_ s: JSONScanner) -> Bool {
            guard seq != nil, time != nil, let type, hostName != nil, sessionID != nil else { return false }
            return !s.equals(type, "alert") || (ruleID != nil && severity != nil)
        }
        _ = s.members { s, key in
            let ok: Bool
            if s.equals(key, "seq") {
                seq = s.number()
                ok = seq != nil
            } else if s.equals(key, "time") {
                time = s.string()
                ok = time != nil
            } else if s.equals(key, "type") {
                type = s.string()
                ok = type != nil
            } else if s.equals(key, "host") {
                ok = s.members { s, key in member(&s, key, "name", &hostName) ?? s.skipValue() }
            } else if s.equals(key, "session") {
                ok = s.members { s, key in member(&s, key, "id", &sessionID) ?? s.skipValue() }
            } else if s.equals(key, "rule") {
                ok = s.members { s, key in
                    member(&s, key, "id", &ruleID) ?? member(&s, key, "severity", &severity) ?? s.skipValue()
                }
            } else {
                ok = s.skipValue()
            }
            return ok && !complete(s)
        }
        self.seq = seq
        self.time = time
        self.type = type
        self.hostName = hostName
        self.sessionID = sessionID
        self.ruleID = ruleID
        self.severity = severity
    }
}

/// Walks the JSON of one record line without building values: objects member by member, other
/// values skipped (nesting counted, not recursed into).
struct JSONScanner {
    let s: UnsafeRawBufferPointer
    var i = 0

    init(_ s: UnsafeRawBufferPointer) { self.s = s }

    @inline(__always)
    func equals(_ r: Range<Int>, _ name: StaticString) -> Bool {
        guard r.count == name.utf8CodeUnitCount else { return false }
        let p = name.utf8Start
        for k in 0..<r.count where s[r.lowerBound + k] != p[k] { return false }
        return true
    }

    @inline(__always)
    mutating func skipSpace() {
        while i < s.count, s[i] == 0x20 || s[i] == 0x09 || s[i] == 0x0A || s[i] == 0x0D { i += 1 }
    }

    /// An object's members: `visit` gets each key and must consume its value. False when the
    /// object is malformed or `visit` says so.
    mutating func members(_ visit: (inout JSONScanner, Range<Int>) -> Bool) -> Bool {
        skipSpace()
        guard i < s.count, s[i] == UInt8(ascii: "{") else { return false }
        i += 1
        skipSpace()
        if i < s.count, s[i] == UInt8(ascii: "}") { i += 1; return true }
        while true {
            skipSpace()
            guard let key = string() else { return false }
            skipSpace()
            guard i < s.count, s[i] == UInt8(ascii: ":") else { return false }
            i += 1
            skipSpace()
            guard visit(&self, key) else { return false }
            skipSpace()
            guard i < s.count else { return false }
            if s[i] == UInt8(ascii: ",") { i += 1; continue }
            if s[i] == UInt8(ascii: "}") { i += 1; return true }
            return false
        }
    }

    /// A string's contents (escapes kept), the scanner after its closing quote.
    mutating func string() -> Range<Int>? {
        guard i < s.count, s[i] == UInt8(ascii: "\""), let base = s.baseAddress else { return nil }
        let start = i + 1
        var k = start
        while k < s.count, let q = memchr(base + k, 0x22, s.count - k) {
            let end = base.distance(to: UnsafeRawPointer(q))
            // A quote ends the string unless an odd number of backslashes escapes it.
            var escapes = 0
            while end - escapes - 1 >= start, s[end - escapes - 1] == UInt8(ascii: "\\") { escapes += 1 }
            if escapes % 2 == 0 {
                i = end + 1
                return start..<end
            }
            k = end + 1
        }
        return nil
    }

    /// An unsigned integer's digits.
    mutating func number() -> Range<Int>? {
        let start = i
        while i < s.count, s[i] >= UInt8(ascii: "0"), s[i] <= UInt8(ascii: "9") { i += 1 }
        return i > start ? start..<i : nil
    }

    /// Any value; containers by counting brackets outside strings.
    mutating func skipValue() -> Bool {
        guard i < s.count else { return false }
        switch s[i] {
        case UInt8(ascii: "\""):
            return string() != nil
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while i < s.count {
                switch s[i] {
                case UInt8(ascii: "\""):
                    guard string() != nil else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { i += 1; return true }
                default:
                    break
                }
                i += 1
            }
            return false
        default:
            // A number, true, false or null: up to the next delimiter.
            let start = i
            while i < s.count, s[i] != UInt8(ascii: ","), s[i] != UInt8(ascii: "}"), s[i] != UInt8(ascii: "]"),
                  s[i] != 0x20, s[i] != 0x0A, s[i] != 0x09, s[i] != 0x0D { i += 1 }
            return i > start
        }
    }

    /// Appends the decoded bytes of a string's contents (`r` as `string()` gave it) to `out`.
    /// Characters a syslog header field must not carry (control characters, and the `\udcXX`
    /// escapes that stand for bytes that are not UTF-8) become U+FFFD.
    func decode(_ r: Range<Int>, into out: inout [UInt8]) {
        var k = r.lowerBound
        while k < r.upperBound {
            let c = s[k]
            guard c == UInt8(ascii: "\\"), k + 1 < r.upperBound else {
                if c < 0x20 || c == 0x7F { out.append(contentsOf: Self.replacement) } else { out.append(c) }
                k += 1
                continue
            }
            let e = s[k + 1]
            k += 2
            switch e {
            case UInt8(ascii: "u"):
                guard var v = hex4(at: k) else { out.append(contentsOf: Self.replacement); continue }
                k += 4
                if v >= 0xD800 && v < 0xDC00, k + 6 <= r.upperBound, s[k] == UInt8(ascii: "\\"), s[k + 1] == UInt8(ascii: "u"),
                   let low = hex4(at: k + 2), low >= 0xDC00 && low < 0xE000 {
                    v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
                    k += 6
                }
                guard v >= 0x20, v != 0x7F, let scalar = Unicode.Scalar(v) else { out.append(contentsOf: Self.replacement); continue }
                out.append(contentsOf: UTF8.encode(scalar)!)
            case UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                out.append(contentsOf: Self.replacement)
            default:
                // \" \\ \/
                out.append(e)
            }
        }
    }

    static let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]

    private func hex4(at k: Int) -> UInt32? { JSONReading.hex4(s, at: k) }
}
