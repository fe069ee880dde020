import Logging

extension StringProtocol {
    /// This text as it may reach a log line or a terminal: a backslash doubled, C0 controls
    /// and DEL as `\xNN`, C1 controls and the invisible format characters that reorder or hide
    /// text (bidi embeddings, overrides and isolates, marks, zero-width characters, line and
    /// paragraph separators, BOM) as `\u{NNNN}`. Session ids, labels, paths and cgroup names
    /// are chosen by the watched agent: escaped, one cannot end a log line and forge the next,
    /// move the cursor, or make a terminal show other text than the bytes say.
    public var displaySafe: String {
        if utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) { return String(self) }
        var out = ""
        out.reserveCapacity(utf8.count + 8)
        for u in unicodeScalars {
            let v = u.value
            if v == 0x5C {
                out += "\\\\"
            } else if v < 0x20 || v == 0x7F {
                out += "\\x" + Self.hex(v, width: 2)
            } else if isDisplayControl(v) {
                out += "\\u{" + Self.hex(v, width: 4) + "}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    static func hex(_ v: UInt32, width: Int) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: Swift.max(0, width - s.count)) + s
    }
}

/// Whether a code point is a control (C0, DEL, C1) or a format character that changes how the
/// text around it is shown or hides itself: what `displaySafe` escapes and labels may not hold.
public func isDisplayControl(_ v: UInt32) -> Bool {
    v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x061C || (0x200B...0x200F).contains(v)
        || (0x2028...0x202E).contains(v) || (0x2060...0x2069).contains(v) || v == 0xFEFF
}

/// A log handler that passes every message and metadata value through `displaySafe` before
/// the handler it wraps writes it: whatever a call site interpolates, one log call is one line
/// of the journal, and its text is what it says.
public struct DisplaySafeLogHandler: LogHandler {
    public var inner: any LogHandler

    public init(wrapping inner: any LogHandler) { self.inner = inner }

    public var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
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
