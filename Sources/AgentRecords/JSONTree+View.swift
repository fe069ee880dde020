/// Reading values out of a `JSONTree`.
extension JSONTree {
    /// The values of a parsed text. Valid only while the text's bytes and the tree are (inside
    /// `withView`); nothing it returns points into them.
    package struct View {
        package let text: UnsafeRawBufferPointer
        package let nodes: UnsafeBufferPointer<Node>

        package init(text: UnsafeRawBufferPointer, nodes: UnsafeBufferPointer<Node>) {
            self.text = text
            self.nodes = nodes
        }

        @inlinable
        package var isObject: Bool { !nodes.isEmpty && nodes[0].kind == .object }

        /// The value of member `key` of object `object` (the first, if a name repeats).
        @inlinable
        package func member(_ object: Int?, _ key: StaticString) -> Int? {
            guard let object, nodes[object].kind == .object else { return nil }
            var k = object + 1
            for _ in 0..<Int(nodes[object].count) {
                if keyEquals(k, key) { return k + 1 }
                k = Int(nodes[k + 1].next)
            }
            return nil
        }

        /// A member two or three levels down: `at("process", "parent", "exe")`.
        @inlinable
        package func at(_ a: StaticString, _ b: StaticString? = nil, _ c: StaticString? = nil) -> Int? {
            var i = member(0, a)
            if let b { i = member(i, b) }
            if let c { i = member(i, c) }
            return i
        }

        /// Calls `body` with the name and value of each member of an object, in order.
        @inlinable
        package func forEachMember(_ object: Int?, _ body: (_ key: Int, _ value: Int) -> Void) {
            guard let object, nodes[object].kind == .object else { return }
            var k = object + 1
            for _ in 0..<Int(nodes[object].count) {
                body(k, k + 1)
                k = Int(nodes[k + 1].next)
            }
        }

        /// Calls `body` with each element of an array, in order.
        @inlinable
        package func forEachElement(_ array: Int?, _ body: (Int) -> Void) {
            guard let array, nodes[array].kind == .array else { return }
            var k = array + 1
            for _ in 0..<Int(nodes[array].count) {
                body(k)
                k = Int(nodes[k].next)
            }
        }

        /// The elements of an array, in order.
        @inlinable
        package func elements(_ array: Int?) -> [Int] {
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

        @inlinable
        package func kind(_ i: Int?) -> JSONKind? { i.map { nodes[$0].kind } }

        /// Whether string node `k` is exactly `key`.
        @inlinable
        package func keyEquals(_ k: Int, _ key: StaticString) -> Bool {
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
        @inlinable
        package func stringEquals(_ i: Int?, _ value: StaticString) -> Bool {
            guard let i, nodes[i].kind == .string else { return false }
            return keyEquals(i, value)
        }

        /// The bytes a string stands for: JSON escapes undone, and `\udcXX` (a byte that was
        /// not UTF-8, in the record format's PEP 383 escaping) turned back into byte XX, so the
        /// original path or argument comes back exactly.
        @inlinable
        package func bytes(_ i: Int, into out: inout [UInt8]) {
            let node = nodes[i]
            let start = Int(node.start), end = Int(node.end)
            guard node.kind == .string else { return }
            guard node.flag else {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: text[start..<end]))
                return
            }
            JSONReading.appendString(text, from: start, to: end, into: &out)
        }

        /// A string value as the rules see it live: the original bytes decoded as UTF-8, a
        /// byte that is not UTF-8 becoming U+FFFD (what the daemon's `String(decoding:)` gives).
        @inlinable
        package func string(_ i: Int?) -> String? {
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
        @inlinable
        package func rawBytes(_ i: Int?) -> [UInt8]? {
            guard let i, nodes[i].kind == .string else { return nil }
            var raw: [UInt8] = []
            bytes(i, into: &raw)
            return raw
        }

        /// An integer value that fits in Int64.
        @inlinable
        package func int(_ i: Int?) -> Int64? {
            guard let i, nodes[i].kind == .number, nodes[i].flag else { return nil }
            let negative = text[Int(nodes[i].start)] == UInt8(ascii: "-")
            guard let magnitude = digits(Int(nodes[i].start) + (negative ? 1 : 0), Int(nodes[i].end)) else { return nil }
            if negative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(bitPattern: 0 &- magnitude) : nil }
            return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
        }

        /// A non-negative integer value that fits in UInt64.
        @inlinable
        package func uint(_ i: Int?) -> UInt64? {
            guard let i, nodes[i].kind == .number, nodes[i].flag, text[Int(nodes[i].start)] != UInt8(ascii: "-") else { return nil }
            return digits(Int(nodes[i].start), Int(nodes[i].end))
        }

        @inlinable
        func digits(_ from: Int, _ to: Int) -> UInt64? {
            var v: UInt64 = 0
            for k in from..<to {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(UInt64(text[k] &- UInt8(ascii: "0")))
                if o1 || o2 { return nil }
                v = s
            }
            return v
        }

        @inlinable
        package func bool(_ i: Int?) -> Bool? {
            guard let i, nodes[i].kind == .bool else { return nil }
            return nodes[i].flag
        }

        /// Any number as a Double (fractions and exponents, or integers too large for 64 bits).
        @inlinable
        package func double(_ i: Int?) -> Double? {
            guard let i, nodes[i].kind == .number else { return nil }
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: text[Int(nodes[i].start)..<Int(nodes[i].end)]), as: UTF8.self)
            return Double(s)
        }

        /// The value's bytes exactly as written in the line (an object or array whole).
        @inlinable
        package func source(_ i: Int) -> UnsafeRawBufferPointer {
            let node = nodes[i]
            return node.kind == .string
                ? UnsafeRawBufferPointer(rebasing: text[Int(node.start - 1)..<Int(node.end + 1)])
                : UnsafeRawBufferPointer(rebasing: text[Int(node.start)..<Int(node.end)])
        }

        /// The value of member `key` (bytes, as decoded) of object `object` (the first, if a name repeats).
        @inlinable
        package func member(_ object: Int?, bytes key: UnsafeRawBufferPointer) -> Int? {
            guard let object, nodes[object].kind == .object else { return nil }
            var k = object + 1
            for _ in 0..<Int(nodes[object].count) {
                if keyEquals(k, bytes: key) { return k + 1 }
                k = Int(nodes[k + 1].next)
            }
            return nil
        }

        /// Whether string node `k` stands for exactly the bytes `key`.
        @inlinable
        package func keyEquals(_ k: Int, bytes key: UnsafeRawBufferPointer) -> Bool {
            let node = nodes[k]
            if node.flag {
                var decoded: [UInt8] = []
                bytes(k, into: &decoded)
                return decoded.elementsEqual(key)
            }
            let len = Int(node.end - node.start)
            guard len == key.count else { return false }
            let p = text.baseAddress!.advanced(by: Int(node.start)).assumingMemoryBound(to: UInt8.self)
            for i in 0..<len where p[i] != key[i] { return false }
            return true
        }

        /// The raw text of a string node between its quotes (escapes not undone).
        @inlinable
        package func contents(_ i: Int) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: text[Int(nodes[i].start)..<Int(nodes[i].end)])
        }
    }
}
