import Glibc

/// Fields to note while `JSONReader` checks a text once: for each field, where it is (the
/// object it is a member of, its name), what JSON it must be, and the slot where `read` notes
/// the `JSONSpan` of its value. The view the output formats and syslog headers read records
/// through: nothing is copied and nothing allocated per field; a value is decoded only when
/// asked for. Entries hold only plain values (names are static strings), so a lookup touches
/// no reference counts.
package struct JSONFieldTable: Sendable {
    /// One field of the table; its slot is its index in the list the table is made from.
    package struct Field: Sendable {
        /// The index of the object field this one is a member of; nil for the top level.
        package var parent: Int?
        package var key: StaticString
        package var kind: JSONKind
        /// What the elements of an array field must be (`absent`: anything; numbers must
        /// not be negative).
        package var element: JSONKind
        /// A string holding an RFC 3339 time (`JSONReading.unixNanoseconds` must read it).
        package var isTime: Bool

        package init(parent: Int?, key: StaticString, kind: JSONKind, element: JSONKind = .absent, isTime: Bool = false) {
            self.parent = parent
            self.key = key
            self.kind = kind
            self.element = element
            self.isTime = isTime
        }
    }

    @usableFromInline
    struct Entry: Sendable {
        let key: StaticString
        let count: Int
        let slot: Int32
        /// The context its members are looked up in (an object field with fields below it), or -1.
        let child: Int32
        let kind: JSONKind
        let element: JSONKind
        let isTime: Bool
    }

    /// Grouped by context (0: the top level); `ranges[context]` is where a context's entries are.
    let entries: [Entry]
    let ranges: [Range<Int>]
    /// Slots `read` fills: one per field.
    package let count: Int

    package init(_ fields: [Field]) {
        count = fields.count
        // Contexts: the top level, then each object field that has fields below it.
        var contextOf: [Int: Int32] = [:]
        for f in fields {
            if let parent = f.parent, contextOf[parent] == nil { contextOf[parent] = Int32(contextOf.count + 1) }
        }
        var entries: [Entry] = []
        var ranges: [Range<Int>] = []
        let contexts = [(-1, Int32(0))] + contextOf.sorted { $0.value < $1.value }.map { ($0.key, $0.value) }
        for (owner, _) in contexts {
            let start = entries.count
            for (slot, f) in fields.enumerated() where (f.parent ?? -1) == owner {
                entries.append(Entry(key: f.key, count: f.key.utf8CodeUnitCount, slot: Int32(slot), child: contextOf[slot] ?? -1,
                                     kind: f.kind, element: f.element, isTime: f.isTime))
            }
            ranges.append(start..<entries.count)
        }
        self.entries = entries
        self.ranges = ranges
    }

    /// Reads `text` once, checking that it is a JSON object within `limits`, and notes in
    /// `slots` (emptied first, `count` of them) where each field of the table lies. False when
    /// the text is not such an object, or a field is of the wrong JSON type, appears twice, is
    /// a number that is not an integer of 64 bits, or a time that is not one. Members the table
    /// does not know are checked and passed over. `stop`, asked after each top-level member,
    /// ends the read there (true: what was noted so far stands, the rest is not checked).
    package func read(_ text: UnsafeRawBufferPointer, limits: JSONLimits, into slots: inout [JSONSpan],
                      stop: ((UnsafeBufferPointer<JSONSpan>) -> Bool)? = nil) -> Bool {
        if slots.count != count { slots = [JSONSpan](repeating: JSONSpan(), count: count) }
        return slots.withUnsafeMutableBufferPointer { s in
            s.update(repeating: JSONSpan())
            return entries.withUnsafeBufferPointer { e in
                ranges.withUnsafeBufferPointer { r in
                    var filler = Filler(text: text, entries: e, ranges: r, slots: s, stopWhen: stop)
                    var reader = JSONReader(text, limits: limits)
                    return reader.document(&filler, Filler.Slot(entry: Filler.root, element: .absent))
                }
            }
        }
    }

    /// Notes each known field's span as the reader passes it.
    struct Filler: JSONVisitor {
        static let root: Int32 = -2

        struct Slot {
            /// The field's entry; -1 an unknown member, `root` the top level.
            var entry: Int32
            /// What an array element must be.
            var element: JSONKind
        }

        struct Container {
            var context: Int32
            var element: JSONKind
        }

        let text: UnsafeRawBufferPointer
        let entries: UnsafeBufferPointer<Entry>
        let ranges: UnsafeBufferPointer<Range<Int>>
        let slots: UnsafeMutableBufferPointer<JSONSpan>
        let stopWhen: ((UnsafeBufferPointer<JSONSpan>) -> Bool)?

        @inline(__always)
        func open(_ kind: JSONKind, at start: Int, in slot: Slot) -> Container? {
            if slot.entry == Self.root { return kind == .object ? Container(context: 0, element: .absent) : nil }
            guard slot.entry >= 0 else { return Container(context: -1, element: .absent) }
            let e = entries[Int(slot.entry)]
            return Container(context: kind == .object ? e.child : -1, element: kind == .array ? e.element : .absent)
        }

        @inline(__always)
        func member(_ name: JSONSpan, of container: inout Container) -> Slot? {
            guard container.context >= 0 else { return Slot(entry: -1, element: .absent) }
            let r = name.contents
            return Slot(entry: lookupEntry(container.context, r.lowerBound, r.upperBound), element: .absent)
        }

        /// The entry named by `text[start..<end]` (a member name between its quotes) in `context`.
        @inline(__always)
        func lookupEntry(_ context: Int32, _ start: Int, _ end: Int) -> Int32 {
            let n = end - start
            let key = text.baseAddress! + start
            for i in ranges[Int(context)] {
                let e = entries[i]
                if e.count == n && memcmp(e.key.utf8Start, key, n) == 0 { return Int32(i) }
            }
            return -1
        }

        @inline(__always)
        func element(of container: inout Container) -> Slot {
            Slot(entry: -1, element: container.element)
        }

        @inline(__always)
        func close(_ container: Container, _ span: JSONSpan, count: Int, in slot: Slot) -> Bool {
            note(span, slot)
        }

        @inline(__always)
        func scalar(_ span: JSONSpan, in slot: Slot) -> Bool {
            note(span, slot)
        }

        func stop() -> Bool {
            stopWhen.map { $0(UnsafeBufferPointer(slots)) } ?? false
        }

        @inline(__always)
        func note(_ span: JSONSpan, _ slot: Slot) -> Bool {
            if slot.element != .absent {
                guard span.kind == slot.element, !(span.kind == .number && span.negative) else { return false }
            }
            // The top level is an object (`open` saw to it); an unknown member is anything.
            guard slot.entry >= 0 else { return slot.entry == -1 || span.kind == .object }
            let e = entries[Int(slot.entry)]
            guard span.kind == e.kind, slots[Int(e.slot)].kind == .absent else { return false }
            if e.kind == .number && !span.fits { return false }
            if e.isTime {
                guard span.plain, JSONReading.unixNanoseconds(UnsafeRawBufferPointer(rebasing: text[span.contents])) != nil else { return false }
            }
            slots[Int(e.slot)] = span
            return true
        }
    }
}

extension JSONReader {
    /// Calls `body` with each element of a checked array, or each member (name and value) of a
    /// checked object, at `container` of `text`, in order.
    package static func forEach(_ container: JSONSpan, in text: UnsafeRawBufferPointer, limits: JSONLimits,
                                _ body: (_ key: JSONSpan?, _ value: JSONSpan) -> Void) {
        guard container.kind == .array || container.kind == .object else { return }
        withoutActuallyEscaping(body) { body in
            var children = Children(body: body)
            var reader = JSONReader(text, limits: limits, at: Int(container.start))
            _ = reader.value(&children, .top, depth: 0)
        }
    }

    /// Hands the direct children of the value read to `body`.
    struct Children: JSONVisitor {
        enum Slot {
            case top, nested
            case child(JSONSpan?)
        }

        let body: (JSONSpan?, JSONSpan) -> Void

        func open(_ kind: JSONKind, at start: Int, in slot: Slot) -> Bool? {
            if case .top = slot { return true }
            return false
        }

        func member(_ name: JSONSpan, of top: inout Bool) -> Slot? { top ? .child(name) : .nested }

        func element(of top: inout Bool) -> Slot { top ? .child(nil) : .nested }

        func close(_ container: Bool, _ span: JSONSpan, count: Int, in slot: Slot) -> Bool {
            scalar(span, in: slot)
        }

        func scalar(_ span: JSONSpan, in slot: Slot) -> Bool {
            if case .child(let key) = slot { body(key, span) }
            return true
        }
    }
}
