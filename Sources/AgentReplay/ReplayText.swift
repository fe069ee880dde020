import AgentRecords
import AgentSupport
import Foundation

/// Untrusted text from a capture made safe to show (`DisplayText`), with lengths bounded.
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
        DisplayText.escape(s, limit: limit, into: &out)
    }

    static func display(_ s: String, limit: Int = maxBytes) -> String {
        var s = s
        return s.withUTF8 { display($0, limit: limit) }
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
