/// Reading back what `JSONBuffer` writes, for every reader of record lines (`JSONReader` and
/// its views): string contents to the original bytes, and the record timestamps to Unix
/// nanoseconds.
package enum JSONReading {
    /// Four hex digits at `k` as a number; nil when they are not four hex digits.
    @inlinable @inline(__always)
    package static func hex4(_ p: UnsafeRawBufferPointer, at k: Int) -> UInt32? {
        guard k >= 0, k + 4 <= p.count else { return nil }
        var v: UInt32 = 0
        for j in k..<(k + 4) {
            let c = p[j]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    @inlinable
    static func appendUTF8(_ u: UInt32, to out: inout [UInt8]) {
        switch u {
        case 0..<0x80:
            out.append(UInt8(u))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | u >> 6)); out.append(UInt8(0x80 | u & 0x3F))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | u >> 12)); out.append(UInt8(0x80 | u >> 6 & 0x3F)); out.append(UInt8(0x80 | u & 0x3F))
        default:
            out.append(UInt8(0xF0 | u >> 18)); out.append(UInt8(0x80 | u >> 12 & 0x3F))
            out.append(UInt8(0x80 | u >> 6 & 0x3F)); out.append(UInt8(0x80 | u & 0x3F))
        }
    }

    /// What a decoded string may carry.
    package enum Controls: Sendable {
        /// Every byte the string stands for, as it is.
        case keep
        /// Text for a syslog header: control characters (U+0000-U+001F, U+007F, raw or
        /// escaped) and the `\udcXX` escapes of bytes that are not UTF-8 become U+FFFD.
        case replace
    }

    /// The one string decoder: appends the bytes the string contents `p[from..<to]` stand for,
    /// stopping early at an unescaped quote. Escapes are decoded, a surrogate pair joined,
    /// `\udcXX` turned back into the byte XX (how `JSONBuffer` writes a byte that is not
    /// UTF-8), any other lone surrogate or a bad `\u` escape read as U+FFFD, other bytes kept
    /// as they are; `controls` says what becomes of control characters and byte escapes.
    @inlinable
    package static func appendString(_ p: UnsafeRawBufferPointer, from: Int, to: Int, into out: inout [UInt8],
                                     controls: Controls = .keep) {
        let replace = controls == .replace
        var k = from
        while k < to {
            let c = p[k]
            if c == UInt8(ascii: "\"") { return }
            guard c == UInt8(ascii: "\\"), k + 1 < to else {
                if replace && (c < 0x20 || c == 0x7F) { appendUTF8(0xFFFD, to: &out) } else { out.append(c) }
                k += 1
                continue
            }
            let e = p[k + 1]
            k += 2
            switch e {
            case UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                if replace {
                    appendUTF8(0xFFFD, to: &out)
                } else {
                    out.append(e == UInt8(ascii: "b") ? 0x08 : e == UInt8(ascii: "f") ? 0x0C : e == UInt8(ascii: "n") ? 0x0A
                        : e == UInt8(ascii: "r") ? 0x0D : 0x09)
                }
            case UInt8(ascii: "u"):
                guard let u = k + 4 <= to ? hex4(p, at: k) : nil else {
                    appendUTF8(0xFFFD, to: &out)
                    k = min(k + 4, to)
                    continue
                }
                k += 4
                if (0xD800...0xDBFF).contains(u), k + 6 <= to, p[k] == UInt8(ascii: "\\"), p[k + 1] == UInt8(ascii: "u"),
                   let low = hex4(p, at: k + 2), (0xDC00...0xDFFF).contains(low) {
                    appendUTF8(0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00), to: &out)
                    k += 6
                } else if (0xDC80...0xDCFF).contains(u) && !replace {
                    out.append(UInt8(truncatingIfNeeded: u))
                } else if (0xD800...0xDFFF).contains(u) || (replace && (u < 0x20 || u == 0x7F)) {
                    appendUTF8(0xFFFD, to: &out)
                } else {
                    appendUTF8(u, to: &out)
                }
            default:
                // \" \\ \/
                out.append(e)
            }
        }
    }

    /// An RFC 3339 time (`2026-11-21T17:40:00.123456789Z`, or with a `+hh:mm` offset; any
    /// number of fraction digits, nanoseconds kept) as Unix ns; nil when it is not one, or is
    /// past what Int64 nanoseconds hold (the year 2262).
    package static func unixNanoseconds(_ b: UnsafeRawBufferPointer) -> Int64? {
        func digits(_ at: Int, _ count: Int) -> Int64? {
            guard at + count <= b.count else { return nil }
            var v: Int64 = 0
            for i in at..<(at + count) {
                let d = b[i] &- UInt8(ascii: "0")
                guard d < 10 else { return nil }
                v = v * 10 + Int64(d)
            }
            return v
        }
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] | 0x20 == UInt8(ascii: "t"),
              b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
              let year = digits(0, 4), let month = digits(5, 2), let day = digits(8, 2),
              let hour = digits(11, 2), let minute = digits(14, 2), let second = digits(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var i = 19
        var fraction: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale: Int64 = 100_000_000
            let first = i
            while i < b.count, b[i] &- UInt8(ascii: "0") < 10 {
                fraction += Int64(b[i] - UInt8(ascii: "0")) * scale
                scale /= 10
                i += 1
            }
            guard i > first else { return nil }
        }
        var offset: Int64 = 0
        guard i < b.count else { return nil }
        if b[i] | 0x20 == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-"), let oh = digits(i + 1, 2), i + 3 < b.count,
                  b[i + 3] == UInt8(ascii: ":"), let om = digits(i + 4, 2) {
            offset = (oh * 60 + om) * 60 * (b[i] == UInt8(ascii: "+") ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        // Days from the civil date (H. Hinnant's algorithm; JSONBuffer.timestamp is its inverse).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        let (ns, o1) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (t, o2) = ns.addingReportingOverflow(fraction)
        return o1 || o2 ? nil : t
    }
}
