/// One record line parsed in place: every JSON value is a node over the line's bytes, kept in
/// one reused array, so parsing a record allocates nothing once the array has grown. Captures
/// are untrusted: the parser is strict (RFC 8259, UTF-8 checked inside strings) and bounded
/// (nesting depth, values per line), so a hostile line costs time linear in its length and
/// memory within the bounds, and a bad one is refused with what is wrong and where.
import AgentSupport

struct CaptureJSON {
    enum Kind: UInt8 { case object, array, string, number, bool, null }

    struct Node {
        var kind: Kind
        /// string: contains escapes; number: an integer (no fraction, no exponent); bool: its value.
        var flag: Bool
        /// string: the first byte after the opening quote; others: the value's first byte.
        var start: Int32
        /// string: the closing quote; others: one past the value's last byte.
        var end: Int32
        /// object: members; array: elements.
        var count: Int32
        /// The node after this value and everything inside it.
        var next: Int32
    }

    /// Deeper nesting is refused: records nest four levels; recursion stays shallow.
    static let maxDepth = 64
    /// More values in one line are refused: a record has about a hundred (argv of a few
    /// thousand at most), and the node array stays within 4 MiB.
    static let maxNodes = 1 << 18

    private(set) var nodes: [Node] = []
    /// Why the last `parse` failed, and at which byte.
    private(set) var error: (offset: Int, message: String)?

    init() {
        nodes.reserveCapacity(256)
    }

    /// Parses one line (no newline). On success node 0 is the top-level value.
    package mutating func parse(_ text: UnsafeRawBufferPointer) -> Bool {
        nodes.removeAll(keepingCapacity: true)
        error = nil
        guard !text.isEmpty, text.count < Int(Int32.max), let base = text.baseAddress else {
            error = (0, "empty line")
            return false
        }
        var state = Parser(p: base.assumingMemoryBound(to: UInt8.self), n: text.count, text: text)
        let ok = state.value(depth: 0, &nodes) && state.end()
        if !ok { error = state.error ?? (0, "malformed JSON") }
        return ok
    }

    /// The recursive descent over raw bytes; `error` says where it stopped.
    private struct Parser {
        let p: UnsafePointer<UInt8>
        let n: Int
        let text: UnsafeRawBufferPointer
        var i = 0
        var error: (offset: Int, message: String)?

        init(p: UnsafePointer<UInt8>, n: Int, text: UnsafeRawBufferPointer) {
            self.p = p
            self.n = n
            self.text = text
        }

        mutating func fail(_ message: String) -> Bool {
            if error == nil { error = (i, message) }
            return false
        }

        @inline(__always)
        mutating func skipSpace() {
            while i < n {
                let c = p[i]
                guard c == 0x20 || c == 0x0A || c == 0x09 || c == 0x0D else { return }
                i += 1
            }
        }

        mutating func end() -> Bool {
            skipSpace()
            return i == n ? true : fail("text after the JSON value")
        }

        @inline(__always)
        package mutating func add(_ nodes: inout [Node], _ kind: Kind, flag: Bool = false, start: Int, end: Int) -> Int? {
            guard nodes.count < CaptureJSON.maxNodes else {
                _ = fail("more than \(CaptureJSON.maxNodes) values in one record")
                return nil
            }
            nodes.append(Node(kind: kind, flag: flag, start: Int32(start), end: Int32(end), count: 0, next: Int32(nodes.count + 1)))
            return nodes.count - 1
        }

        mutating func value(depth: Int, _ nodes: inout [Node]) -> Bool {
            skipSpace()
            guard i < n else { return fail("the line ends inside a value (truncated?)") }
            switch p[i] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                return container(depth: depth, &nodes)
            case UInt8(ascii: "\""):
                return string(&nodes)
            case UInt8(ascii: "t"):
                return literal("true", .bool, flag: true, &nodes)
            case UInt8(ascii: "f"):
                return literal("false", .bool, flag: false, &nodes)
            case UInt8(ascii: "n"):
                return literal("null", .null, flag: false, &nodes)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return number(&nodes)
            default:
                return fail("unexpected byte 0x\(String(p[i], radix: 16)) where a value should be")
            }
        }

        mutating func container(depth: Int, _ nodes: inout [Node]) -> Bool {
            let isObject = p[i] == UInt8(ascii: "{")
            let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
            guard depth < CaptureJSON.maxDepth else { return fail("nested deeper than \(CaptureJSON.maxDepth) levels") }
            guard let index = add(&nodes, isObject ? .object : .array, start: i, end: i) else { return false }
            i += 1
            skipSpace()
            var count: Int32 = 0
            if i < n && p[i] == close {
                i += 1
            } else {
                while true {
                    if isObject {
                        skipSpace()
                        guard i < n else { return fail("the line ends inside an object (truncated?)") }
                        guard p[i] == UInt8(ascii: "\"") else { return fail("expected a member name") }
                        guard string(&nodes) else { return false }
                        skipSpace()
                        guard i < n, p[i] == UInt8(ascii: ":") else { return fail(i < n ? "expected ':' after a member name" : "the line ends inside an object (truncated?)") }
                        i += 1
                    }
                    guard value(depth: depth + 1, &nodes) else { return false }
                    count += 1
                    skipSpace()
                    guard i < n else { return fail("the line ends inside \(isObject ? "an object" : "an array") (truncated?)") }
                    if p[i] == UInt8(ascii: ",") {
                        i += 1
                        continue
                    }
                    if p[i] == close {
                        i += 1
                        break
                    }
                    return fail(isObject ? "expected ',' or '}'" : "expected ',' or ']'")
                }
            }
            nodes[index].count = count
            nodes[index].end = Int32(i)
            nodes[index].next = Int32(nodes.count)
            return true
        }

        mutating func string(_ nodes: inout [Node]) -> Bool {
            i += 1
            let start = i
            var escaped = false
            while true {
                // Plain ASCII runs are the common case: eight bytes at a time while none of
                // them is a quote, a backslash, a control character or a non-ASCII byte.
                while i + 8 <= n {
                    let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                    let quote = w ^ 0x2222_2222_2222_2222, slash = w ^ 0x5C5C_5C5C_5C5C_5C5C
                    let special = (quote &- 0x0101_0101_0101_0101) & ~quote
                        | (slash &- 0x0101_0101_0101_0101) & ~slash
                        | (w &- 0x2020_2020_2020_2020) & ~w
                        | w
                    if special & 0x8080_8080_8080_8080 != 0 { break }
                    i += 8
                }
                while i < n {
                    let c = p[i]
                    if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c < 0x20 || c >= 0x80 { break }
                    i += 1
                }
                guard i < n else { return fail("the line ends inside a string (truncated?)") }
                let c = p[i]
                if c == UInt8(ascii: "\"") { break }
                if c == UInt8(ascii: "\\") {
                    escaped = true
                    guard i + 1 < n else { return fail("the line ends inside a string (truncated?)") }
                    switch p[i + 1] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                         UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        i += 2
                    case UInt8(ascii: "u"):
                        guard i + 5 < n, (2...5).allSatisfy({ CaptureJSON.hexValue(p[i + $0]) != nil }) else {
                            return fail("bad \\u escape in a string")
                        }
                        i += 6
                    default:
                        return fail("bad escape in a string")
                    }
                } else if c < 0x20 {
                    return fail("raw control character 0x\(String(c, radix: 16)) in a string")
                } else {
                    let len = UTF8Validation.sequenceLength(text, at: i)
                    guard len > 0 else { return fail("invalid UTF-8 in a string") }
                    i += len
                }
            }
            let added = add(&nodes, .string, flag: escaped, start: start, end: i) != nil
            i += 1
            return added
        }

        mutating func literal(_ word: StaticString, _ kind: Kind, flag: Bool, _ nodes: inout [Node]) -> Bool {
            let w = word.utf8Start
            let len = word.utf8CodeUnitCount
            guard i + len <= n else { return fail("the line ends inside a value (truncated?)") }
            for k in 0..<len where p[i + k] != w[k] { return fail("unknown literal (expected \(word))") }
            guard add(&nodes, kind, flag: flag, start: i, end: i + len) != nil else { return false }
            i += len
            return true
        }

        mutating func number(_ nodes: inout [Node]) -> Bool {
            let start = i
            var integer = true
            if p[i] == UInt8(ascii: "-") { i += 1 }
            guard i < n, isDigit(p[i]) else { return fail("bad number") }
            if p[i] == UInt8(ascii: "0") {
                i += 1
            } else {
                while i < n && isDigit(p[i]) { i += 1 }
            }
            if i < n && p[i] == UInt8(ascii: ".") {
                integer = false
                i += 1
                guard i < n, isDigit(p[i]) else { return fail("bad number") }
                while i < n && isDigit(p[i]) { i += 1 }
            }
            if i < n && (p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E")) {
                integer = false
                i += 1
                if i < n && (p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-")) { i += 1 }
                guard i < n, isDigit(p[i]) else { return fail("bad number") }
                while i < n && isDigit(p[i]) { i += 1 }
            }
            return add(&nodes, .number, flag: integer, start: start, end: i) != nil
        }

        @inline(__always)
        func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
    }

    @inline(__always)
    static func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(c - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(c - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}
