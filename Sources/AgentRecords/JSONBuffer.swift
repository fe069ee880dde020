/// JSON text written byte by byte into one buffer that is reused from record to record: no
/// intermediate strings, no allocation once the buffer has grown to its working size.
///
/// Strings are taken as raw bytes, because what a session hands us (paths, argv, comm) need not
/// be UTF-8. Valid UTF-8 is copied; `"` and `\` are escaped; control characters (U+0000-U+001F,
/// U+007F) become `\u00XX`; every byte that is not part of valid UTF-8 becomes `\udcXX` where XX
/// is the byte (0x80-0xFF), the "surrogateescape" scheme of PEP 383. A reader recovers the exact
/// original bytes by encoding the decoded string back with surrogateescape (Python:
/// `s.encode("utf-8", "surrogateescape")`); lone U+DC80-U+DCFF can never come from valid UTF-8,
/// so the mapping is unambiguous.
import AgentSupport

package struct JSONBuffer {
    package var bytes: [UInt8]
    var cachedSecond: Int64 = .min
    var cachedPrefix: [UInt8] = []

    package init(capacity: Int = 1 << 16) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inline(__always)
    package mutating func raw(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    package mutating func byte(_ b: UInt8) { bytes.append(b) }

    /// `"name":`
    @inline(__always)
    package mutating func key(_ name: StaticString) {
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
    }

    package mutating func int<T: BinaryInteger>(_ v: T) {
        if v < 0 {
            bytes.append(UInt8(ascii: "-"))
            uint(UInt64(v.magnitude))
        } else {
            uint(UInt64(v))
        }
    }

    package mutating func uint(_ v: UInt64) {
        if v < 10 {
            bytes.append(UInt8(ascii: "0") &+ UInt8(v))
            return
        }
        var digits: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                     UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        var x = v
        withUnsafeMutableBytes(of: &digits) { d in
            let p = d.bindMemory(to: UInt8.self)
            while x > 0 {
                p[n] = UInt8(ascii: "0") &+ UInt8(x % 10)
                x /= 10
                n += 1
            }
            // Reverse in place, then one append.
            var lo = 0, hi = n - 1
            while lo < hi { let t = p[lo]; p[lo] = p[hi]; p[hi] = t; lo += 1; hi -= 1 }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: p[0..<n]))
        }
    }

    /// `["a","b"]`
    package mutating func stringArray<S: Sequence>(_ items: S) where S.Element == String {
        byte(UInt8(ascii: "["))
        for (i, item) in items.enumerated() {
            if i > 0 { byte(UInt8(ascii: ",")) }
            string(item)
        }
        byte(UInt8(ascii: "]"))
    }

    /// `[1,2]`
    package mutating func uintArray(_ items: [UInt64]) {
        byte(UInt8(ascii: "["))
        for (i, item) in items.enumerated() {
            if i > 0 { byte(UInt8(ascii: ",")) }
            uint(item)
        }
        byte(UInt8(ascii: "]"))
    }

    package mutating func bool(_ v: Bool) {
        if v { raw("true") } else { raw("false") }
    }

    /// A JSON string from a Swift string (always valid UTF-8).
    package mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { string(UnsafeRawBufferPointer($0)) }
    }

    package mutating func string(_ s: [UInt8]) {
        s.withUnsafeBytes { string($0) }
    }

    /// A JSON string from raw bytes, escaped as described on the type.
    package mutating func string(_ s: UnsafeRawBufferPointer) {
        bytes.append(UInt8(ascii: "\""))
        var i = 0
        let n = s.count
        while i < n {
            // The longest run that needs no escaping goes in with one append.
            var j = i
            while j < n {
                let c = s[j]
                if c < 0x20 || c >= 0x7F || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") { break }
                j += 1
            }
            if j > i {
                bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: s[i..<j]))
                i = j
                if i == n { break }
            }
            let b = s[i]
            if b >= 0x20 && b < 0x7F {
                if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                    bytes.append(UInt8(ascii: "\\"))
                }
                bytes.append(b)
                i += 1
            } else if b < 0x80 {
                escape(prefix: 0x00, b)
                i += 1
            } else {
                let len = UTF8Validation.sequenceLength(s, at: i)
                if len == 0 {
                    escape(prefix: 0xDC, b)
                    i += 1
                } else {
                    for j in i..<(i + len) { bytes.append(s[j]) }
                    i += len
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private static let hex: StaticString = "0123456789abcdef"

    /// `\uPPXX`: PP is 00 for control characters, dc for a byte that is not UTF-8.
    @inline(__always)
    private mutating func escape(prefix: UInt8, _ b: UInt8) {
        Self.hex.withUTF8Buffer { h in
            bytes.append(UInt8(ascii: "\\"))
            bytes.append(UInt8(ascii: "u"))
            bytes.append(h[Int(prefix >> 4)])
            bytes.append(h[Int(prefix & 0xF)])
            bytes.append(h[Int(b >> 4)])
            bytes.append(h[Int(b & 0xF)])
        }
    }

    /// RFC 3339 UTC with nanoseconds: `2026-11-21T17:40:00.123456789Z`.
    package mutating func timestamp(unixNanoseconds ns: Int64) {
        let secs = ns >= 0 ? ns / 1_000_000_000 : (ns - 999_999_999) / 1_000_000_000
        let frac = ns - secs * 1_000_000_000
        if secs == cachedSecond {
            bytes.append(contentsOf: cachedPrefix)
            digits(frac, 9)
            bytes.append(UInt8(ascii: "Z"))
            bytes.append(UInt8(ascii: "\""))
            return
        }
        let start = bytes.count
        defer {
            cachedSecond = secs
            cachedPrefix.removeAll(keepingCapacity: true)
            cachedPrefix.append(contentsOf: bytes[start..<(start + 21)])
        }
        var days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400
        let rem = secs - days * 86400
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let doe = days - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        var year = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        if month <= 2 { year += 1 }
        bytes.append(UInt8(ascii: "\""))
        digits(year, 4); bytes.append(UInt8(ascii: "-"))
        digits(month, 2); bytes.append(UInt8(ascii: "-"))
        digits(day, 2); bytes.append(UInt8(ascii: "T"))
        digits(rem / 3600, 2); bytes.append(UInt8(ascii: ":"))
        digits(rem / 60 % 60, 2); bytes.append(UInt8(ascii: ":"))
        digits(rem % 60, 2); bytes.append(UInt8(ascii: "."))
        digits(frac, 9)
        bytes.append(UInt8(ascii: "Z"))
        bytes.append(UInt8(ascii: "\""))
    }

    @inline(__always)
    private mutating func digits(_ v: Int64, _ width: Int) {
        var div: Int64 = 1
        for _ in 1..<width { div *= 10 }
        var x = v
        while div > 0 {
            bytes.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: (x / div) % 10))
            x %= div
            div /= 10
        }
    }
}
