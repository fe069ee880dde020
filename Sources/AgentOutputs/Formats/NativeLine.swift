import AgentRecords
import AgentSupport
import Glibc

/// One native v1 record line, read in place for the ECS and OCSF formatters: a single pass
/// checks the whole line is JSON (bounded in size and depth) and notes where each field the
/// formatters map lies. Nothing is copied and nothing is allocated once the tables exist; a
/// value is decoded only when a formatter asks for it.
///
/// The line is untrusted: anything that is not JSON, a field of the wrong JSON type, a
/// duplicated field, a string escape that cannot stand for bytes, or a time not in the native
/// format makes `read` return false. Members the formatters do not know are checked and skipped.
struct NativeLine {
    /// Longest line read (native lines stay far below it: argv is at most 16 KiB of bytes).
    static let maxBytes = 1 << 20
    /// Deepest nesting read (native lines go three deep).
    static let maxDepth = 12

    enum Kind: UInt8 {
        case absent, string, number, bool, null, array, object
    }

    /// Where a value lies in the line. `plain`: a string whose bytes between the quotes are
    /// its decoded bytes and need no escaping (no backslash, no DEL, valid UTF-8).
    struct Value {
        var start: Int32 = 0
        var end: Int32 = 0
        var kind = Kind.absent
        var plain = false
        var bool = false
        var negative = false
        var magnitude: UInt64 = 0
    }

    private(set) var values: [Value]
    /// The line being read; valid only during the formatter's `render`.
    private(set) var bytes = UnsafeRawBufferPointer(start: nil, count: 0)
    private(set) var type: RecordType? = nil
    /// Decoded strings land here (reused).
    private var scratch: [UInt8] = []
    private let schema = NativeFieldTable.shared

    init() {
        values = [Value](repeating: Value(), count: NativeField.allCases.count)
        scratch.reserveCapacity(4096)
    }

    // MARK: reading

    /// Reads `line`; false when it is not a native record the formatters can read.
    mutating func read(_ line: UnsafeRawBufferPointer) -> Bool {
        for i in values.indices { values[i].kind = .absent }
        type = nil
        bytes = line
        guard line.count > 0, line.count <= Self.maxBytes, line.baseAddress != nil else { return false }
        var s = NativeJSONScanner(line)
        s.skipSpace()
        guard s.peek == UInt8(ascii: "{"), member(&s, context: .root, entry: nil, depth: 0) else { return false }
        s.skipSpace()
        guard s.atEnd, values[NativeField.time.rawValue].kind == .string,
              values[NativeField.seq.rawValue].kind == .number, !values[NativeField.seq.rawValue].negative
        else { return false }
        type = recordType()
        return type != nil
    }

    /// A value (and, for an object the table knows, its members).
    private mutating func member(_ s: inout NativeJSONScanner, context: NativeContext, entry: NativeFieldTable.Entry?, depth: Int) -> Bool {
        guard depth <= Self.maxDepth else { return false }
        let start = s.i
        var v = Value()
        switch s.peek {
        case UInt8(ascii: "{"):
            s.i += 1
            s.skipSpace()
            if s.peek == UInt8(ascii: "}") {
                s.i += 1
            } else {
                while true {
                    s.skipSpace()
                    guard s.peek == UInt8(ascii: "\"") else { return false }
                    let keyStart = s.i + 1
                    guard s.string() != nil else { return false }
                    let keyEnd = s.i - 1
                    s.skipSpace()
                    guard s.peek == UInt8(ascii: ":") else { return false }
                    s.i += 1
                    s.skipSpace()
                    let known = context == .opaque ? nil : schema.lookup(context, s.p, keyStart, keyEnd)
                    if !member(&s, context: known?.child ?? .opaque, entry: known, depth: depth + 1) { return false }
                    s.skipSpace()
                    if s.peek == UInt8(ascii: ",") { s.i += 1; continue }
                    guard s.peek == UInt8(ascii: "}") else { return false }
                    s.i += 1
                    break
                }
            }
            v.kind = .object
        case UInt8(ascii: "["):
            s.i += 1
            s.skipSpace()
            let element = entry?.element ?? .absent
            if s.peek == UInt8(ascii: "]") {
                s.i += 1
            } else {
                while true {
                    s.skipSpace()
                    if element != .absent && s.kind != element { return false }
                    if element == .number && s.peek == UInt8(ascii: "-") { return false }
                    if !member(&s, context: .opaque, entry: nil, depth: depth + 1) { return false }
                    s.skipSpace()
                    if s.peek == UInt8(ascii: ",") { s.i += 1; continue }
                    guard s.peek == UInt8(ascii: "]") else { return false }
                    s.i += 1
                    break
                }
            }
            v.kind = .array
        case UInt8(ascii: "\""):
            guard let plain = s.string() else { return false }
            v.kind = .string
            v.plain = plain
        case UInt8(ascii: "t"):
            guard s.literal("true") else { return false }
            v.kind = .bool
            v.bool = true
        case UInt8(ascii: "f"):
            guard s.literal("false") else { return false }
            v.kind = .bool
        case UInt8(ascii: "n"):
            guard s.literal("null") else { return false }
            v.kind = .null
        default:
            guard let n = s.number() else { return false }
            v.kind = .number
            // Fields the table knows as numbers are integers that fit 64 bits.
            if entry?.kind == .number {
                guard let integer = n else { return false }
                v.negative = integer.0
                v.magnitude = integer.1
            }
        }
        guard let entry else { return true }
        let f = entry.field.rawValue
        guard values[f].kind == .absent, v.kind == entry.kind else { return false }
        v.start = Int32(start)
        v.end = Int32(s.i)
        if entry.isTime && Self.unixNanoseconds(s.p, v) == nil { return false }
        values[f] = v
        return true
    }

    private func recordType() -> RecordType? {
        let v = values[NativeField.type.rawValue]
        guard v.kind == .string, v.plain else { return nil }
        let name = UnsafeRawBufferPointer(rebasing: bytes[Int(v.start + 1)..<Int(v.end - 1)])
        for (t, text) in schema.typeNames where text.utf8CodeUnitCount == name.count && memcmp(text.utf8Start, name.baseAddress!, name.count) == 0 {
            return t
        }
        return nil
    }

    // MARK: values

    @inline(__always)
    func has(_ f: NativeField) -> Bool { values[f.rawValue].kind != .absent }

    @inline(__always)
    func value(_ f: NativeField) -> Value { values[f.rawValue] }

    /// The value's text as it stands in the line (for a string: with its quotes).
    @inline(__always)
    func raw(_ v: Value) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[Int(v.start)..<Int(v.end)])
    }

    func uint(_ f: NativeField) -> UInt64? {
        let v = values[f.rawValue]
        return v.kind == .number && !v.negative ? v.magnitude : nil
    }

    func int(_ f: NativeField) -> Int64? {
        let v = values[f.rawValue]
        guard v.kind == .number else { return nil }
        if v.negative { return v.magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- v.magnitude) : nil }
        return v.magnitude <= UInt64(Int64.max) ? Int64(v.magnitude) : nil
    }

    func bool(_ f: NativeField) -> Bool? {
        let v = values[f.rawValue]
        return v.kind == .bool ? v.bool : nil
    }

    /// The decoded bytes of a string field (`body` must not keep them).
    mutating func withString<R>(_ f: NativeField, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        let v = values[f.rawValue]
        guard v.kind == .string else { return nil }
        return withString(v, body)
    }

    mutating func withString<R>(_ v: Value, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if v.plain { return body(UnsafeRawBufferPointer(rebasing: bytes[Int(v.start + 1)..<Int(v.end - 1)])) }
        scratch.removeAll(keepingCapacity: true)
        Self.appendDecoded(v, in: bytes, to: &scratch)
        return scratch.withUnsafeBytes(body)
    }

    /// Appends the decoded bytes of string `v` of `bytes` to `out`.
    static func appendDecoded(_ v: Value, in bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        guard v.kind == .string else { return }
        if v.plain {
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[Int(v.start + 1)..<Int(v.end - 1)]))
        } else {
            NativeJSONScanner.decode(bytes, from: Int(v.start), into: &out)
        }
    }

    /// Whether a string field holds exactly `text`.
    func equals(_ f: NativeField, _ text: StaticString) -> Bool {
        let v = values[f.rawValue]
        guard v.kind == .string, v.plain else { return false }
        return text.withUTF8Buffer { UnsafeRawBufferPointer(rebasing: bytes[Int(v.start + 1)..<Int(v.end - 1)]).elementsEqual(UnsafeRawBufferPointer($0)) }
    }

    /// Whether an array field has a string element that is exactly `text`.
    func contains(_ f: NativeField, _ text: StaticString) -> Bool {
        var found = false
        text.withUTF8Buffer { t in
            Self.forEach(values[f.rawValue], in: bytes) { _, e in
                if !found, e.kind == .string, e.plain,
                   UnsafeRawBufferPointer(rebasing: bytes[Int(e.start + 1)..<Int(e.end - 1)]).elementsEqual(UnsafeRawBufferPointer(t)) {
                    found = true
                }
            }
        }
        return found
    }

    /// The elements of an array field, or the members of an object field (`key` is the
    /// member's name, nil for an array element), in order.
    package func forEach(_ f: NativeField, _ body: (_ key: Value?, _ value: Value) -> Void) {
        Self.forEach(values[f.rawValue], in: bytes, body)
    }

    /// The elements or members of a checked array or object `v` of `bytes`.
    package static func forEach(_ v: Value, in bytes: UnsafeRawBufferPointer, _ body: (_ key: Value?, _ value: Value) -> Void) {
        guard v.kind == .array || v.kind == .object else { return }
        var s = NativeJSONScanner(bytes)
        s.i = Int(v.start) + 1
        while s.i < Int(v.end) {
            s.skipSpace()
            if s.peek == UInt8(ascii: "]") || s.peek == UInt8(ascii: "}") || s.atEnd { return }
            var key: Value? = nil
            if v.kind == .object {
                key = s.value()
                s.skipSpace()
                s.i += 1  // ':'
                s.skipSpace()
            }
            body(key, s.value())
            s.skipSpace()
            if s.peek == UInt8(ascii: ",") { s.i += 1 }
        }
    }

    /// Unix time in ns of a native time string value (`JSONReading.unixNanoseconds`).
    package static func unixNanoseconds(_ p: UnsafeRawBufferPointer, _ v: Value) -> Int64? {
        guard v.kind == .string, v.plain else { return nil }
        return JSONReading.unixNanoseconds(UnsafeRawBufferPointer(rebasing: p[(Int(v.start) + 1)..<(Int(v.end) - 1)]))
    }

    package func unixNanoseconds(_ f: NativeField) -> Int64? {
        Self.unixNanoseconds(bytes, values[f.rawValue])
    }
}

/// A cursor over JSON text that checks what it passes.
struct NativeJSONScanner {
    let p: UnsafeRawBufferPointer
    var i = 0

    init(_ p: UnsafeRawBufferPointer) { self.p = p }

    @inline(__always) var atEnd: Bool { i >= p.count }
    @inline(__always) var peek: UInt8 { i < p.count ? p[i] : 0 }

    /// The kind of the value at the cursor, by its first byte.
    var kind: NativeLine.Kind {
        switch peek {
        case UInt8(ascii: "\""): .string
        case UInt8(ascii: "{"): .object
        case UInt8(ascii: "["): .array
        case UInt8(ascii: "t"), UInt8(ascii: "f"): .bool
        case UInt8(ascii: "n"): .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): .number
        default: .absent
        }
    }

    @inline(__always)
    mutating func skipSpace() {
        while i < p.count {
            let c = p[i]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            i += 1
        }
    }

    mutating func literal(_ text: StaticString) -> Bool {
        let n = text.utf8CodeUnitCount
        guard i + n <= p.count else { return false }
        let ok = text.withUTF8Buffer { t in
            UnsafeRawBufferPointer(rebasing: p[i..<(i + n)]).elementsEqual(UnsafeRawBufferPointer(t))
        }
        if ok { i += n }
        return ok
    }

    /// Passes a string (cursor on its quote). Nil when it is not valid JSON or holds an escape
    /// that stands for no bytes (a lone surrogate other than U+DC80-U+DCFF); else whether it is
    /// plain (no backslash, no DEL, valid UTF-8: its text is its bytes).
    mutating func string() -> Bool? {
        guard peek == UInt8(ascii: "\"") else { return nil }
        i += 1
        var plain = true
        while i < p.count {
            // Eight bytes at a time while none is a quote, a backslash, a control byte, DEL or
            // beyond ASCII (SWAR: a byte's high bit set in `special` marks it, or one after it).
            while i + 8 <= p.count {
                let x = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
                @inline(__always) func zeroByte(_ v: UInt64) -> UInt64 { (v &- ones) & ~v & highs }
                let special = zeroByte(x ^ (ones &* 0x22)) | zeroByte(x ^ (ones &* 0x5C)) | zeroByte(x ^ (ones &* 0x7F))
                    | ((x &- ones &* 0x20) & ~x & highs) | (x & highs)
                if special != 0 { break }
                i += 8
            }
            guard i < p.count else { break }
            let c = p[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                return plain
            }
            if c < 0x20 { return nil }
            if c == UInt8(ascii: "\\") {
                plain = false
                guard i + 1 < p.count else { return nil }
                switch p[i + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                     UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 2
                case UInt8(ascii: "u"):
                    guard let u = hex4(i + 2) else { return nil }
                    if (0xD800...0xDBFF).contains(u) {
                        guard i + 11 < p.count, p[i + 6] == UInt8(ascii: "\\"), p[i + 7] == UInt8(ascii: "u"),
                              let low = hex4(i + 8), (0xDC00...0xDFFF).contains(low) else { return nil }
                        i += 12
                    } else if (0xDC00...0xDFFF).contains(u) {
                        guard u >= 0xDC80 && u <= 0xDCFF else { return nil }
                        i += 6
                    } else {
                        i += 6
                    }
                default:
                    return nil
                }
            } else if c < 0x7F {
                i += 1
            } else if c == 0x7F {
                plain = false
                i += 1
            } else {
                let n = UTF8Validation.sequenceLength(p, at: i)
                if n == 0 { plain = false; i += 1 } else { i += n }
            }
        }
        return nil
    }

    private func hex4(_ at: Int) -> UInt32? { JSONReading.hex4(p, at: at) }

    /// Passes a JSON number. Nil when it is not one; else its sign and magnitude when it is an
    /// integer that fits 64 bits, or .some(nil) for any other number.
    mutating func number() -> (Bool, UInt64)?? {
        let start = i
        var negative = false
        if peek == UInt8(ascii: "-") { negative = true; i += 1 }
        guard i < p.count, p[i] >= UInt8(ascii: "0"), p[i] <= UInt8(ascii: "9") else { return nil }
        var magnitude: UInt64 = 0
        var fits = true
        if p[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while i < p.count, p[i] >= UInt8(ascii: "0"), p[i] <= UInt8(ascii: "9") {
                let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(UInt64(p[i] - UInt8(ascii: "0")))
                if o1 || o2 { fits = false }
                magnitude = a
                i += 1
            }
        }
        var integer = true
        if peek == UInt8(ascii: ".") {
            integer = false
            i += 1
            let d = i
            while i < p.count, p[i] >= UInt8(ascii: "0"), p[i] <= UInt8(ascii: "9") { i += 1 }
            guard i > d else { return nil }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            integer = false
            i += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
            let d = i
            while i < p.count, p[i] >= UInt8(ascii: "0"), p[i] <= UInt8(ascii: "9") { i += 1 }
            guard i > d else { return nil }
        }
        guard i > start else { return nil }
        return integer && fits ? .some((negative, magnitude)) : .some(nil)
    }

    /// Passes a value already checked by `NativeLine.read`, saying where it lies.
    mutating func value() -> NativeLine.Value {
        var e = NativeLine.Value()
        e.start = Int32(i)
        e.kind = kind
        switch e.kind {
        case .string:
            e.plain = string() ?? false
        case .number:
            if let n = number(), let integer = n { e.negative = integer.0; e.magnitude = integer.1 }
        case .bool:
            e.bool = peek == UInt8(ascii: "t")
            skipValue()
        default:
            skipValue()
        }
        e.end = Int32(i)
        return e
    }

    /// Passes any value already checked by `NativeLine.read`.
    mutating func skipValue() {
        var depth = 0
        repeat {
            skipSpace()
            guard !atEnd else { return }
            switch peek {
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1; i += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1; i += 1
            case UInt8(ascii: "\""): if string() == nil { i += 1 }
            case UInt8(ascii: ","), UInt8(ascii: ":"): i += 1
            case UInt8(ascii: "t"), UInt8(ascii: "n"): i += 4
            case UInt8(ascii: "f"): i += 5
            default: if number() == nil { i += 1 }
            }
        } while depth > 0
    }

    /// Appends the bytes a checked string (quote at `start`) stands for (`JSONReading`).
    static func decode(_ p: UnsafeRawBufferPointer, from start: Int, into out: inout [UInt8]) {
        JSONReading.stringBytes(p, from: start + 1, to: p.count, into: &out)
    }
}
