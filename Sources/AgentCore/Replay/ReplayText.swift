import Foundation

/// Untrusted text made safe to show: a path or argument from a capture may hold terminal
/// escape sequences, bidirectional overrides or bytes that are not UTF-8. Shown, each is
/// visible and inert: `\xNN` for control bytes and bytes that are not UTF-8, `\u{NNNN}` for
/// invisible format characters, `\\` for a backslash. Lengths are bounded.
enum ReplayText {
    /// Longest shown string, in bytes of input (longer ones end with `…`).
    static let maxBytes = 4096

    /// `bytes` as a string safe for a terminal or an HTML text node (after HTML escaping).
    static func display<C: Collection>(_ bytes: C, limit: Int = maxBytes) -> String where C.Element == UInt8 {
        var out = ""
        out.reserveCapacity(Swift.max(0, Swift.min(bytes.count, limit)) + 8)
        bytes.withContiguousStorageIfAvailable { display(UnsafeRawBufferPointer($0), limit: limit, into: &out) }
            ?? Array(bytes).withUnsafeBytes { display($0, limit: limit, into: &out) }
        return out
    }

    static func display(_ s: UnsafeRawBufferPointer, limit: Int, into out: inout String) {
        let n = Swift.min(s.count, limit)
        var i = 0
        var plain = 0
        func flushPlain(_ upTo: Int) {
            if upTo > plain { out += String(decoding: UnsafeRawBufferPointer(rebasing: s[plain..<upTo]), as: UTF8.self) }
        }
        while i < n {
            let b = s[i]
            if b >= 0x20 && b < 0x7F && b != UInt8(ascii: "\\") {
                i += 1
                continue
            }
            flushPlain(i)
            if b == UInt8(ascii: "\\") {
                out += "\\\\"
                i += 1
            } else if b < 0x80 {
                out += hexByte(b)
                i += 1
            } else {
                let len = JSONBuffer.validSequenceLength(s, at: i)
                if len == 0 {
                    out += hexByte(b)
                    i += 1
                } else {
                    let scalar = String(decoding: UnsafeRawBufferPointer(rebasing: s[i..<(i + len)]), as: UTF8.self).unicodeScalars.first!
                    if isHidden(scalar.value) {
                        out += "\\u{" + String(scalar.value, radix: 16) + "}"
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                    i += len
                }
            }
            plain = i
        }
        flushPlain(n)
        if s.count > n { out += "…" }
    }

    static func display(_ s: String, limit: Int = maxBytes) -> String {
        var s = s
        return s.withUTF8 { display($0, limit: limit) }
    }

    private static func hexByte(_ b: UInt8) -> String {
        let h = Array("0123456789abcdef".utf8)
        return String(decoding: [UInt8(ascii: "\\"), UInt8(ascii: "x"), h[Int(b >> 4)], h[Int(b & 0xF)]], as: UTF8.self)
    }

    /// C1 controls, and characters that change how the text around them is shown without being
    /// seen: bidirectional controls (the "Trojan Source" characters), zero-width ones, line
    /// and paragraph separators, the BOM.
    private static func isHidden(_ v: UInt32) -> Bool {
        switch v {
        case 0x80...0x9F, 0xAD, 0x061C, 0x180E, 0x200B...0x200F, 0x2028...0x202E, 0x2060...0x206F, 0xFEFF, 0xFFF9...0xFFFB:
            true
        default:
            false
        }
    }

    /// An argv for one line: arguments separated by spaces, one that is empty or holds a space
    /// or a quote shown in single quotes.
    static func argv(_ args: [[UInt8]], limit: Int = maxBytes) -> String {
        var out = ""
        var used = 0
        for (k, a) in args.enumerated() {
            if used >= limit {
                out += " …(\(args.count - k) more)"
                break
            }
            if k > 0 { out += " " }
            let shown = display(a, limit: Swift.max(0, limit - used))
            used += a.count + 1
            if a.isEmpty || a.contains(where: { $0 == 0x20 || $0 == 0x27 || $0 == 0x22 }) {
                out += "'" + shown.replacingOccurrences(of: "'", with: "'\\''") + "'"
            } else {
                out += shown
            }
        }
        return out
    }

    /// `s` cut to `limit` characters, with `…` when cut.
    static func clip(_ s: String, _ limit: Int) -> String {
        s.count <= limit ? s : String(s.prefix(limit)) + "…"
    }

    /// `s` escaped for HTML text or a quoted attribute value.
    static func html(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count + 16)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// A duration in ns as `1.234 s`, `12.3 ms`, `45 µs` (any Int64, from an untrusted record).
    static func duration(_ ns: Int64) -> String {
        let sign = ns < 0 ? "-" : ""
        let a = ns.magnitude
        if a >= 60_000_000_000 {
            let s = a / 1_000_000_000
            return sign + (s >= 3600 ? "\(s / 3600)h\(s / 60 % 60)m\(s % 60)s" : "\(s / 60)m\(s % 60)s")
        }
        if a >= 1_000_000_000 { return sign + format3(Double(a) / 1e9) + " s" }
        if a >= 1_000_000 { return sign + format3(Double(a) / 1e6) + " ms" }
        if a >= 1_000 { return sign + "\(a / 1000) µs" }
        return "\(ns) ns"
    }

    /// The time from `a` to `b`, or "?" when it does not fit.
    static func span(_ a: Int64, _ b: Int64) -> String {
        let (d, overflow) = b.subtractingReportingOverflow(a)
        return overflow ? "?" : duration(d)
    }

    private static func format3(_ v: Double) -> String {
        let r = (v * 1000).rounded() / 1000
        return "\(r)"
    }

    /// RFC 3339 UTC with nanoseconds, as records write time.
    static func timestamp(_ ns: Int64) -> String {
        var j = JSONBuffer(capacity: 40)
        j.timestamp(unixNanoseconds: ns)
        return String(decoding: j.bytes.dropFirst().dropLast(), as: UTF8.self)
    }

    /// A byte count as `20.0 MiB`.
    static func bytes(_ n: UInt64) -> String {
        if n >= 1 << 30 { return "\(format1(Double(n) / Double(1 << 30))) GiB" }
        if n >= 1 << 20 { return "\(format1(Double(n) / Double(1 << 20))) MiB" }
        if n >= 1 << 10 { return "\(format1(Double(n) / Double(1 << 10))) KiB" }
        return "\(n) B"
    }

    private static func format1(_ v: Double) -> String { "\((v * 10).rounded() / 10)" }
}
