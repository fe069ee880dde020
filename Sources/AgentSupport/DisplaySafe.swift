import Logging

/// Untrusted text made safe to show in a log line or on a terminal: a session id, label, path,
/// argument or cgroup name may hold line breaks, terminal escape sequences, bidirectional
/// overrides or bytes that are not UTF-8. Shown, each is visible and inert: `\xNN` for control
/// bytes and bytes that are not UTF-8, `\u{NNNN}` for C1 controls and invisible format
/// characters, `\\` for a backslash; so one cannot end a log line and forge the next, move the
/// cursor, or make a terminal show other text than the bytes say.
package enum DisplayText {
    /// Appends `s` (at most `limit` bytes of it, then `…`) to `out`, escaped.
    package static func escape(_ s: UnsafeRawBufferPointer, limit: Int = .max, into out: inout String) {
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
                let len = UTF8Validation.sequenceLength(s, at: i)
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

    /// Whether a code point is escaped when shown and refused in a label: a C0 control, DEL,
    /// or one of `isHidden`.
    package static func isControl(_ v: UInt32) -> Bool { v < 0x20 || v == 0x7F || isHidden(v) }

    /// C1 controls, and characters that change how the text around them is shown without being
    /// seen: bidirectional controls (the "Trojan Source" characters), zero-width ones, line
    /// and paragraph separators, the BOM.
    static func isHidden(_ v: UInt32) -> Bool {
        switch v {
        case 0x80...0x9F, 0xAD, 0x061C, 0x180E, 0x200B...0x200F, 0x2028...0x202E, 0x2060...0x206F, 0xFEFF, 0xFFF9...0xFFFB:
            true
        default:
            false
        }
    }

    private static func hexByte(_ b: UInt8) -> String {
        let h = Array("0123456789abcdef".utf8)
        return String(decoding: [UInt8(ascii: "\\"), UInt8(ascii: "x"), h[Int(b >> 4)], h[Int(b & 0xF)]], as: UTF8.self)
    }
}

extension StringProtocol {
    /// This text escaped for a log line or a terminal (`DisplayText`).
    package var displaySafe: String {
        if utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) { return String(self) }
        var out = ""
        var copy = String(self)
        copy.withUTF8 { DisplayText.escape(UnsafeRawBufferPointer($0), into: &out) }
        return out
    }
}

/// A log handler that passes every message and metadata value through `displaySafe` before
/// the handler it wraps writes it: whatever a call site interpolates, one log call is one line
/// of the journal, and its text is what it says.
package struct DisplaySafeLogHandler: LogHandler {
    package var inner: any LogHandler

    package init(wrapping inner: any LogHandler) { self.inner = inner }

    package var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    package var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    package var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    package func log(event: LogEvent) {
        var e = event
        e.message = Logger.Message(stringLiteral: event.message.description.displaySafe)
        e.metadata = event.metadata.map { Self.safe($0) }
        inner.log(event: e)
    }

    static func safe(_ m: Logger.Metadata) -> Logger.Metadata {
        m.reduce(into: [:]) { out, kv in out[kv.key.displaySafe] = safe(kv.value) }
    }

    static func safe(_ v: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch v {
        case .string(let s): .string(s.displaySafe)
        case .stringConvertible(let c): .string(c.description.displaySafe)
        case .array(let a): .array(a.map(safe))
        case .dictionary(let d): .dictionary(safe(d))
        }
    }
}
