import AgentSupport

/// What a JSON value is; `absent` is no value (a field a line does not carry).
package enum JSONKind: UInt8, Sendable {
    case absent, string, number, bool, null, array, object
}

/// Where one value lies in a text, and what the reader learnt of it in passing.
package struct JSONSpan: Sendable {
    /// The value's first byte (a string's opening quote), and one past its last byte.
    package var start: Int32 = 0
    package var end: Int32 = 0
    package var kind = JSONKind.absent
    /// string: its bytes between the quotes are the bytes it stands for and need no escaping
    /// (no backslash, no DEL, valid UTF-8).
    package var plain = false
    /// string: holds a backslash escape.
    package var escaped = false
    /// number: written as an integer (no fraction, no exponent).
    package var integer = false
    /// number: an integer whose magnitude fits 64 bits (`negative`, `magnitude`).
    package var fits = false
    /// bool: its value.
    package var bool = false
    package var negative = false
    package var magnitude: UInt64 = 0

    package init() {}

    /// A string's bytes between its quotes, still escaped.
    @inlinable
    package var contents: Range<Int> { Int(start) + 1..<Int(end) - 1 }
}

/// What a `JSONReader` tells as it reads: the views of a text (the node tree of `JSONTree`, the
/// field table `JSONFieldReader` fills, the members of a checked container) are visitors.
/// Each value is read in a `Slot`, what the visitor knows of it beforehand (the field it is).
package protocol JSONVisitor {
    associatedtype Slot
    /// What the visitor keeps while it reads an object or array.
    associatedtype Container
    /// An object or array begins at `start`; nil refuses the text.
    mutating func open(_ kind: JSONKind, at start: Int, in slot: Slot) -> Container?
    /// A member name of the object: the slot its value is read in; nil refuses the text.
    mutating func member(_ name: JSONSpan, of container: inout Container) -> Slot?
    /// The slot of the array's next element.
    mutating func element(of container: inout Container) -> Slot
    /// The object or array is read whole (`count` members or elements); false refuses the text.
    mutating func close(_ container: Container, _ span: JSONSpan, count: Int, in slot: Slot) -> Bool
    /// A string, number, `true`, `false` or `null` is read; false refuses the text.
    mutating func scalar(_ span: JSONSpan, in slot: Slot) -> Bool
    /// Asked after each member of the top-level object: true stops there (the rest is neither
    /// read nor checked).
    mutating func stop() -> Bool
}

extension JSONVisitor {
    @inlinable
    package mutating func stop() -> Bool { false }
}

/// The one JSON reader: RFC 8259 over raw bytes, strict and bounded by `JSONLimits`, telling a
/// `JSONVisitor` what it finds. `error` says what was wrong and where when a read fails for
/// the text's sake (a visitor's refusal leaves it nil).
package struct JSONReader {
    @usableFromInline let p: UnsafePointer<UInt8>
    @usableFromInline let n: Int
    @usableFromInline let text: UnsafeRawBufferPointer
    @usableFromInline let limits: JSONLimits
    @usableFromInline var i: Int
    @usableFromInline var values = 0
    /// A visitor said stop: reading ends where it is, successfully.
    @usableFromInline var stopped = false
    package var error: JSONReadError?

    /// A reader at byte `at` of `text` (a text of no bytes reads as empty).
    @inlinable
    package init(_ text: UnsafeRawBufferPointer, limits: JSONLimits, at: Int = 0) {
        self.text = text
        self.limits = limits
        self.i = at
        if let base = text.baseAddress {
            p = base.assumingMemoryBound(to: UInt8.self)
            n = min(text.count, Int(Int32.max))
        } else {
            p = UnsafePointer(bitPattern: 1)!
            n = 0
        }
    }

    /// Reads the whole text as one value (white space around it allowed).
    @inlinable
    package mutating func document<V: JSONVisitor>(_ v: inout V, _ slot: V.Slot) -> Bool {
        guard n > 0 else { return fail(.empty) }
        guard text.count <= limits.maxBytes, text.count < Int(Int32.max) else { return fail(.tooLong(limit: limits.maxBytes)) }
        guard value(&v, slot, depth: 0) else { return false }
        if stopped { return true }
        skipSpace()
        return i == n ? true : fail(.trailingText)
    }

    @usableFromInline
    mutating func fail(_ reason: JSONReadError.Reason) -> Bool {
        if error == nil { error = JSONReadError(reason, at: i) }
        return false
    }

    @inlinable @inline(__always)
    package mutating func skipSpace() {
        while i < n {
            let c = p[i]
            guard c == 0x20 || c == 0x0A || c == 0x09 || c == 0x0D else { return }
            i += 1
        }
    }

    @inlinable @inline(__always)
    mutating func counted() -> Bool {
        values += 1
        return values <= limits.maxValues ? true : fail(.tooManyValues(limit: limits.maxValues))
    }

    /// One value and everything inside it, at `depth` (the top-level value is at 0).
    @inlinable
    package mutating func value<V: JSONVisitor>(_ v: inout V, _ slot: V.Slot, depth: Int) -> Bool {
        skipSpace()
        guard i < n else { return fail(.truncated(.value)) }
        guard counted() else { return false }
        var span = JSONSpan()
        switch p[i] {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            return container(&v, slot, depth: depth)
        case UInt8(ascii: "\""):
            guard string(&span) else { return false }
        case UInt8(ascii: "t"):
            guard literal("true", .true, &span) else { return false }
            span.kind = .bool
            span.bool = true
        case UInt8(ascii: "f"):
            guard literal("false", .false, &span) else { return false }
            span.kind = .bool
        case UInt8(ascii: "n"):
            guard literal("null", .null, &span) else { return false }
            span.kind = .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            guard number(&span) else { return false }
        default:
            return fail(.unexpectedByte(p[i]))
        }
        return v.scalar(span, in: slot)
    }

    @inlinable
    mutating func container<V: JSONVisitor>(_ v: inout V, _ slot: V.Slot, depth: Int) -> Bool {
        let isObject = p[i] == UInt8(ascii: "{")
        let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
        guard depth < limits.maxDepth else { return fail(.tooDeep(limit: limits.maxDepth)) }
        let start = i
        guard var c = v.open(isObject ? .object : .array, at: start, in: slot) else { return false }
        i += 1
        skipSpace()
        var count = 0
        if i < n && p[i] == close {
            i += 1
        } else {
            while true {
                let inner: V.Slot
                if isObject {
                    skipSpace()
                    guard i < n else { return fail(.truncated(.object)) }
                    guard p[i] == UInt8(ascii: "\"") else { return fail(.expectedMemberName) }
                    guard counted() else { return false }
                    var name = JSONSpan()
                    guard string(&name) else { return false }
                    guard let s = v.member(name, of: &c) else { return false }
                    inner = s
                    skipSpace()
                    guard i < n else { return fail(.truncated(.object)) }
                    guard p[i] == UInt8(ascii: ":") else { return fail(.expectedColon) }
                    i += 1
                } else {
                    inner = v.element(of: &c)
                }
                guard value(&v, inner, depth: depth + 1) else { return false }
                count += 1
                if stopped { return true }
                if depth == 0 && isObject && v.stop() {
                    stopped = true
                    return true
                }
                skipSpace()
                guard i < n else { return fail(.truncated(isObject ? .object : .array)) }
                if p[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                if p[i] == close {
                    i += 1
                    break
                }
                return fail(.expectedSeparator(object: isObject))
            }
        }
        var span = JSONSpan()
        span.kind = isObject ? .object : .array
        span.start = Int32(start)
        span.end = Int32(i)
        return v.close(c, span, count: count, in: slot)
    }

    /// A string (cursor on its opening quote); the cursor ends past its closing quote.
    @inlinable
    mutating func string(_ span: inout JSONSpan) -> Bool {
        let open = i
        i += 1
        var escaped = false
        var plain = true
        while true {
            // Plain ASCII runs are the common case: eight bytes at a time while none of them is
            // a quote, a backslash, a control character, DEL or a byte beyond ASCII (SWAR: a
            // byte's high bit in `special` marks it, or a byte after it).
            while i + 8 <= n {
                let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                let ones: UInt64 = 0x0101_0101_0101_0101
                let quote = w ^ (ones &* 0x22), slash = w ^ (ones &* 0x5C), del = w ^ (ones &* 0x7F)
                let special = (quote &- ones) & ~quote | (slash &- ones) & ~slash | (del &- ones) & ~del
                    | (w &- ones &* 0x20) & ~w | w
                if special & 0x8080_8080_8080_8080 != 0 { break }
                i += 8
            }
            while i < n {
                let c = p[i]
                if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c < 0x20 || c >= 0x7F { break }
                i += 1
            }
            guard i < n else { return fail(.truncated(.string)) }
            let c = p[i]
            if c == UInt8(ascii: "\"") { break }
            if c == UInt8(ascii: "\\") {
                escaped = true
                plain = false
                guard i + 1 < n else { return fail(.truncated(.string)) }
                switch p[i + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 2
                case UInt8(ascii: "u"):
                    guard let u = JSONReading.hex4(text, at: i + 2), i + 5 < n else { return fail(.badUnicodeEscape) }
                    guard limits.strings == .bytes, (0xD800...0xDFFF).contains(u) else {
                        i += 6
                        continue
                    }
                    // A string of bytes: a surrogate is half of a pair or the escape of one byte.
                    if u <= 0xDBFF {
                        guard i + 11 < n, p[i + 6] == UInt8(ascii: "\\"), p[i + 7] == UInt8(ascii: "u"),
                              let low = JSONReading.hex4(text, at: i + 8), (0xDC00...0xDFFF).contains(low) else { return fail(.loneSurrogate) }
                        i += 12
                    } else {
                        guard u >= 0xDC80 && u <= 0xDCFF else { return fail(.loneSurrogate) }
                        i += 6
                    }
                default:
                    return fail(.badEscape)
                }
            } else if c < 0x20 {
                return fail(.controlCharacter(c))
            } else if c == 0x7F {
                plain = false
                i += 1
            } else {
                let len = UTF8Validation.sequenceLength(text, at: i)
                if len > 0 {
                    i += len
                } else {
                    guard limits.strings == .bytes else { return fail(.invalidUTF8) }
                    plain = false
                    i += 1
                }
            }
        }
        guard i - open - 1 <= limits.maxStringBytes else { return fail(.stringTooLong(limit: limits.maxStringBytes)) }
        i += 1
        span.kind = .string
        span.start = Int32(open)
        span.end = Int32(i)
        span.plain = plain
        span.escaped = escaped
        return true
    }

    @inlinable
    mutating func literal(_ word: StaticString, _ which: JSONReadError.Literal, _ span: inout JSONSpan) -> Bool {
        let w = word.utf8Start
        let len = word.utf8CodeUnitCount
        guard i + len <= n else { return fail(.truncated(.value)) }
        for k in 0..<len where p[i + k] != w[k] { return fail(.unknownLiteral(which)) }
        span.start = Int32(i)
        i += len
        span.end = Int32(i)
        return true
    }

    @inlinable @inline(__always)
    static func isDigit(_ c: UInt8) -> Bool { c &- UInt8(ascii: "0") < 10 }

    /// A number; an integer's magnitude is kept when it fits 64 bits.
    @inlinable
    mutating func number(_ span: inout JSONSpan) -> Bool {
        let start = i
        var negative = false
        if p[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        guard i < n, Self.isDigit(p[i]) else { return fail(.badNumber) }
        var magnitude: UInt64 = 0
        var fits = true
        if p[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while i < n, Self.isDigit(p[i]) {
                let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(UInt64(p[i] &- UInt8(ascii: "0")))
                if o1 || o2 { fits = false }
                magnitude = a
                i += 1
            }
        }
        var integer = true
        if i < n && p[i] == UInt8(ascii: ".") {
            integer = false
            i += 1
            guard i < n, Self.isDigit(p[i]) else { return fail(.badNumber) }
            while i < n && Self.isDigit(p[i]) { i += 1 }
        }
        if i < n && (p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E")) {
            integer = false
            i += 1
            if i < n && (p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-")) { i += 1 }
            guard i < n, Self.isDigit(p[i]) else { return fail(.badNumber) }
            while i < n && Self.isDigit(p[i]) { i += 1 }
        }
        guard i - start <= limits.maxNumberBytes else { return fail(.numberTooLong(limit: limits.maxNumberBytes)) }
        span.kind = .number
        span.start = Int32(start)
        span.end = Int32(i)
        span.integer = integer
        span.fits = integer && fits
        span.negative = negative
        span.magnitude = magnitude
        return true
    }
}
