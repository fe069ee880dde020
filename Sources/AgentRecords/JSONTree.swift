/// A JSON text read whole by `JSONReader` into a tree of nodes over its bytes: every value is a
/// node, kept in one reused array, so reading a record allocates nothing once the array has
/// grown. The view replay, verify and the captured rule input read records through.
package struct JSONTree {
    package struct Node: Sendable {
        package var kind: JSONKind
        /// string: contains escapes; number: an integer (no fraction, no exponent); bool: its value.
        package var flag: Bool
        /// string: the first byte after the opening quote; others: the value's first byte.
        package var start: Int32
        /// string: the closing quote; others: one past the value's last byte.
        package var end: Int32
        /// object: members; array: elements.
        package var count: Int32
        /// The node after this value and everything inside it.
        package var next: Int32
    }

    package let limits: JSONLimits
    package private(set) var nodes: [Node] = []
    /// Why the last `parse` failed, and at which byte.
    package private(set) var error: JSONReadError?

    package init(limits: JSONLimits = .capture) {
        self.limits = limits
        nodes.reserveCapacity(256)
    }

    /// Reads one text (a record line without its newline). On success node 0 is the top-level
    /// value; on failure `error` says why.
    package mutating func parse(_ text: UnsafeRawBufferPointer) -> Bool {
        nodes.removeAll(keepingCapacity: true)
        error = nil
        var builder = Builder(nodes: nodes)
        nodes = []
        var reader = JSONReader(text, limits: limits)
        let ok = reader.document(&builder, ())
        nodes = builder.nodes
        if !ok { error = reader.error ?? JSONReadError(.empty, at: 0) }
        return ok
    }

    /// Appends a node per value, in document order.
    struct Builder: JSONVisitor {
        var nodes: [Node]

        @inline(__always)
        mutating func open(_ kind: JSONKind, at start: Int, in slot: Void) -> Int? {
            nodes.append(Node(kind: kind, flag: false, start: Int32(start), end: Int32(start), count: 0, next: 0))
            return nodes.count - 1
        }

        @inline(__always)
        mutating func member(_ name: JSONSpan, of container: inout Int) -> Void? {
            add(name)
            return ()
        }

        @inline(__always)
        func element(of container: inout Int) {}

        @inline(__always)
        mutating func close(_ container: Int, _ span: JSONSpan, count: Int, in slot: Void) -> Bool {
            nodes[container].count = Int32(count)
            nodes[container].end = span.end
            nodes[container].next = Int32(nodes.count)
            return true
        }

        @inline(__always)
        mutating func scalar(_ span: JSONSpan, in slot: Void) -> Bool {
            add(span)
            return true
        }

        @inline(__always)
        mutating func add(_ s: JSONSpan) {
            let next = Int32(nodes.count + 1)
            switch s.kind {
            case .string: nodes.append(Node(kind: .string, flag: s.escaped, start: s.start + 1, end: s.end - 1, count: 0, next: next))
            case .number: nodes.append(Node(kind: .number, flag: s.integer, start: s.start, end: s.end, count: 0, next: next))
            default: nodes.append(Node(kind: s.kind, flag: s.bool, start: s.start, end: s.end, count: 0, next: next))
            }
        }
    }

    /// Reads the parsed text through a `View`.
    package func withView<R>(_ text: UnsafeRawBufferPointer, _ body: (View) throws -> R) rethrows -> R {
        try nodes.withUnsafeBufferPointer { try body(View(text: text, nodes: $0)) }
    }
}
