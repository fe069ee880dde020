import AgentRecords
import Foundation

extension CaptureJSON {
    /// Reads values out of a parsed line. Valid only while the line's bytes are (inside the
    /// reader's callback); nothing it returns points into them.
    struct View {
        let text: UnsafeRawBufferPointer
        let nodes: UnsafeBufferPointer<Node>

        var isObject: Bool { !nodes.isEmpty && nodes[0].kind == .object }

        /// The value of member `key` of object `object` (the first, if a name repeats).
        func member(_ object: Int?, _ key: StaticString) -> Int? {
            guard let object, nodes[object].kind == .object else { return nil }
            var k = object + 1
            for _ in 0..<Int(nodes[object].count) {
                if keyEquals(k, key) { return k + 1 }
                k = Int(nodes[k + 1].next)
            }
            return nil
        }

        /// A member two or three levels down: `at("process", "parent", "exe")`.
        func at(_ a: StaticString, _ b: StaticString? = nil, _ c: StaticString? = nil) -> Int? {
            var i = member(0, a)
            if let b { i = member(i, b) }
            if let c { i = member(i, c) }
            return i
        }

        /// Calls `body` with the name and value of each member of an object, in order.
        func forEachMember(_ object: Int?, _ body: (_ key: Int, _ value: Int) -> Void) {
            guard let object, nodes[object].kind == .object else { return }
            var k = object + 1
            for _ in 0..<Int(nodes[object].count) {
                body(k, k + 1)
                k = Int(nodes[k + 1].next)
            }
        }

        /// Calls `body` with each element of an array, in order.
        func forEachElement(_ array: Int?, _ body: (Int) -> Void) {
            guard let array, nodes[array].kind == .array else { return }
            var k = array + 1
            for _ in 0..<Int(nodes[array].count) {
                body(k)
                k = Int(nodes[k].next)
            }
        }

        /// The elements of an array, in order.
        func elements(_ array: Int?) -> [Int] {
            guard let array, nodes[array].kind == .array else { return [] }
            var out: [Int] = []
            out.reserveCapacity(Int(nodes[array].count))
            var k = array + 1
            for _ in 0..<Int(nodes[array].count) {
                out.append(k)
                k = Int(nodes[k].next)
            }
            return out
        }

        func kind(_ i: Int?) -> Kind? { i.map { nodes[$0].kind } }

        /// Whether string node `k` is exactly `key`.
        func keyEquals(_ k: Int, _ key: StaticString) -> Bool {
            let node = nodes[k]
            let len = Int(node.end - node.start)
            if node.flag {
                var decoded: [UInt8] = []
                bytes(k, into: &decoded)
                return decoded.elementsEqual(UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
            }
            guard len == key.utf8CodeUnitCount else { return false }
            let p = text.baseAddress!.advanced(by: Int(node.start)).assumingMemoryBound(to: UInt8.self)
            let k = key.utf8Start
            // Member names are short: a loop beats a call to memcmp.
            for i in 0..<len where p[i] != k[i] { return false }
            return true
        }

        /// Whether string node `i` holds exactly `bytes` (after unescaping).
        func stringEquals(_ i: Int?, _ value: StaticString) -> Bool {
            guard let i, nodes[i].kind == .string else { return false }
            return keyEquals(i, value)
        }

        /// The bytes a string stands for: JSON escapes undone, and `\udcXX` (a byte that was
        /// not UTF-8, in the record format's PEP 383 escaping) turned back into byte XX, so the
        /// original path or argument comes back exactly.
        func bytes(_ i: Int, into out: inout [UInt8]) {
            let node = nodes[i]
            let start = Int(node.start), end = Int(node.end)
            guard node.kind == .string else { return }
            guard node.flag else {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: text[start..<end]))
                return
            }
            JSONReading.stringBytes(text, from: start, to: end, into: &out)
        }

        /// A string value as the rules see it live: the original bytes decoded as UTF-8, a
        /// byte that is not UTF-8 becoming U+FFFD (what the daemon's `String(decoding:)` gives).
        func string(_ i: Int?) -> String? {
            guard let i, nodes[i].kind == .string else { return nil }
            let node = nodes[i]
            if !node.flag {
                return String(decoding: UnsafeRawBufferPointer(rebasing: text[Int(node.start)..<Int(node.end)]), as: UTF8.self)
            }
            var raw: [UInt8] = []
            bytes(i, into: &raw)
            return String(decoding: raw, as: UTF8.self)
        }

        /// The original bytes of a string value (see `bytes(_:into:)`).
        func rawBytes(_ i: Int?) -> [UInt8]? {
            guard let i, nodes[i].kind == .string else { return nil }
            var raw: [UInt8] = []
            bytes(i, into: &raw)
            return raw
        }

        /// An integer value that fits in Int64.
        func int(_ i: Int?) -> Int64? {
            guard let i, nodes[i].kind == .number, nodes[i].flag else { return nil }
            let negative = text[Int(nodes[i].start)] == UInt8(ascii: "-")
            guard let magnitude = digits(Int(nodes[i].start) + (negative ? 1 : 0), Int(nodes[i].end)) else { return nil }
            if negative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(bitPattern: 0 &- magnitude) : nil }
            return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
        }

        /// A non-negative integer value that fits in UInt64.
        func uint(_ i: Int?) -> UInt64? {
            guard let i, nodes[i].kind == .number, nodes[i].flag, text[Int(nodes[i].start)] != UInt8(ascii: "-") else { return nil }
            return digits(Int(nodes[i].start), Int(nodes[i].end))
        }

        private func digits(_ from: Int, _ to: Int) -> UInt64? {
            var v: UInt64 = 0
            for k in from..<to {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(UInt64(text[k] &- UInt8(ascii: "0")))
                if o1 || o2 { return nil }
                v = s
            }
            return v
        }

        func bool(_ i: Int?) -> Bool? {
            guard let i, nodes[i].kind == .bool else { return nil }
            return nodes[i].flag
        }

        /// Any number as a Double (fractions and exponents, or integers too large for 64 bits).
        func double(_ i: Int?) -> Double? {
            guard let i, nodes[i].kind == .number else { return nil }
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: text[Int(nodes[i].start)..<Int(nodes[i].end)]), as: UTF8.self)
            return Double(s)
        }

        /// The value's bytes exactly as written in the line (an object or array whole).
        func source(_ i: Int) -> UnsafeRawBufferPointer {
            let node = nodes[i]
            return node.kind == .string
                ? UnsafeRawBufferPointer(rebasing: text[Int(node.start - 1)..<Int(node.end + 1)])
                : UnsafeRawBufferPointer(rebasing: text[Int(node.start)..<Int(node.end)])
        }

        /// The value as JSONSerialization would give it (String, Int, UInt64, Double, Bool,
        /// NSNull, [Any], [String: Any]), for a `CapturedRuleInput`. `keep` limits an object to the
        /// members it names (the fields some rule reads); nil keeps everything below. A name
        /// that repeats keeps its first value, as `member` reads it.
        func foundation(_ i: Int, keep: FieldPaths? = nil) -> Any {
            let node = nodes[i]
            switch node.kind {
            case .string:
                return string(i)!
            case .number:
                if node.flag {
                    if let v = int(i) { return Int(v) }
                    if let v = uint(i) { return v }
                }
                return double(i) ?? 0.0
            case .bool:
                return node.flag
            case .null:
                return NSNull()
            case .array:
                return elements(i).map { foundation($0) }
            case .object:
                var out: [String: Any] = [:]
                var k = i + 1
                for _ in 0..<Int(node.count) {
                    defer { k = Int(nodes[k + 1].next) }
                    var below: FieldPaths?
                    if let keep {
                        guard let child = keep.child(matching: self, key: k) else { continue }
                        below = child.all ? nil : child
                    }
                    let key = string(k)!
                    if out[key] == nil { out[key] = foundation(k + 1, keep: below) }
                }
                return out
            }
        }
    }

    /// Reads the parsed line through a `View`.
    func withView<R>(_ text: UnsafeRawBufferPointer, _ body: (View) throws -> R) rethrows -> R {
        try nodes.withUnsafeBufferPointer { try body(View(text: text, nodes: $0)) }
    }
}

/// The JSON paths a replay needs of a record to give rules the values they read: a tree of
/// member names; a leaf keeps everything below it.
final class FieldPaths {
    let name: [UInt8]
    private(set) var children: [FieldPaths] = []
    private(set) var all = false

    init(name: [UInt8] = []) {
        self.name = name
    }

    /// Keeps the value at `path` (and everything below it).
    package func add(_ path: [String]) {
        guard let first = path.first else {
            all = true
            children = []
            return
        }
        if all { return }
        let key = Array(first.utf8)
        let child = children.first { $0.name == key } ?? {
            let c = FieldPaths(name: key)
            children.append(c)
            return c
        }()
        child.add(Array(path.dropFirst()))
    }

    /// The child named by string node `key` of the view, if kept.
    func child(matching view: CaptureJSON.View, key: Int) -> FieldPaths? {
        let node = view.nodes[key]
        if node.flag {
            let decoded = view.rawBytes(key) ?? []
            return children.first { $0.name == decoded }
        }
        let len = Int(node.end - node.start)
        let p = view.text.baseAddress!.advanced(by: Int(node.start))
        return children.first { c in c.name.count == len && c.name.withUnsafeBytes { memcmp($0.baseAddress!, p, len) == 0 } }
    }
}
