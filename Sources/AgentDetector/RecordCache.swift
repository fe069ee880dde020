/// Fetches a field's value from the record being evaluated (a non-escaping closure over the
/// caller's `RuleInput`, so the engine needs no generics and no boxing).
typealias Fetch = (Field) -> RuleValue?

/// Per-record scratch a Detector reuses: each field value fetched once per record for the
/// conditions, string bytes copied into one arena so matchers read plain bytes (no reference
/// counting on the hot path), and the home-prefix offsets of values for `~` patterns. Entries
/// are valid while their stamp equals the record's generation, so nothing is cleared between
/// records. The value itself is kept only for slots that keys, sums and regexes read; a
/// message reads its fields again when an alert is raised. Storage is owned buffers and
/// properties skip dynamic exclusivity checks: the cache is private to one Detector, used
/// from one thread, and those checks would cost more than the lookups.
final class RecordCache {
    enum Kind: UInt8 { case missing, string, list, int, bool }

    struct SlotState {
        var stamp: UInt32 = 0
        var kind = Kind.missing
        var tailsStamp: UInt32 = 0
        var tails = HomeTails()
        /// Strings: the bytes' offset and length in the arena. Lists: the first element's
        /// index in `elements` and the element count.
        var start: Int32 = 0
        var count: Int32 = 0
        /// Integers and booleans (0/1).
        var int: Int64 = 0
    }

    struct Span {
        var start: Int32
        var count: Int32
    }

    let fields: [Field]
    /// Swift's Regex is not Sendable, so each Detector compiles its own from the rule set's
    /// patterns (checked at load).
    let regexes: [Regex<AnyRegexOutput>]

    @exclusivity(unchecked) private(set) var generation: UInt32 = 0
    private let slots: UnsafeMutablePointer<SlotState>
    private let values: UnsafeMutablePointer<RuleValue?>
    /// Per slot: whether its value is kept for keys, sums and regexes.
    private let keeps: UnsafeMutablePointer<Bool>
    @exclusivity(unchecked) private var elements: UnsafeMutablePointer<Span>
    @exclusivity(unchecked) private var elementCount = 0
    @exclusivity(unchecked) private var elementCapacity = 256
    @exclusivity(unchecked) private var arena: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) private var arenaCount = 0
    @exclusivity(unchecked) private var arenaCapacity = 4096
    @exclusivity(unchecked) private var homes: [String] = []
    /// The homes' bytes without a trailing `/`, rebuilt only when the homes change.
    @exclusivity(unchecked) private(set) var homeBytes: [[UInt8]] = []

    // The record being evaluated.
    @exclusivity(unchecked) private(set) var typeName = ""
    @exclusivity(unchecked) private(set) var seq: UInt64 = 0
    @exclusivity(unchecked) private(set) var timeNs: Int64 = 0
    @exclusivity(unchecked) private(set) var sessionID = ""

    /// Results of shared condition parts (macros, repeated comparisons) in this record.
    private let memos: UnsafeMutablePointer<UInt32>
    private let memoCount: Int

    init(fields: [Field], kept: Set<Int>, regexPatterns: [String], memoCount: Int) {
        self.fields = fields
        self.memoCount = memoCount
        memos = .allocate(capacity: max(memoCount, 1))
        memos.initialize(repeating: 0, count: max(memoCount, 1))
        slots = .allocate(capacity: max(fields.count, 1))
        slots.initialize(repeating: SlotState(), count: max(fields.count, 1))
        values = .allocate(capacity: max(fields.count, 1))
        values.initialize(repeating: nil, count: max(fields.count, 1))
        keeps = .allocate(capacity: max(fields.count, 1))
        keeps.initialize(repeating: false, count: max(fields.count, 1))
        for slot in kept where slot < fields.count { keeps[slot] = true }
        elements = .allocate(capacity: elementCapacity)
        regexes = regexPatterns.map { (try? Regex($0)) ?? (try! Regex("(?!)")) }
        arena = .allocate(capacity: arenaCapacity)
    }

    deinit {
        arena.deallocate()
        elements.deallocate()
        memos.deallocate()
        slots.deallocate()
        values.deinitialize(count: max(fields.count, 1)).deallocate()
        keeps.deallocate()
    }

    /// Starts a new record: every cached value becomes stale.
    func begin(typeName: String, seq: UInt64, timeNs: Int64, sessionID: String, homes: [String]) {
        generation &+= 1
        if generation & 0x7FFF_FFFF == 0 {
            // Memos keep 31 bits of the generation: clear everything each time those wrap
            // rather than misread a result from 2^31 records ago.
            slots.update(repeating: SlotState(), count: fields.count)
            memos.update(repeating: 0, count: memoCount)
            generation &+= 1
        }
        self.typeName = typeName
        self.seq = seq
        self.timeNs = timeNs
        self.sessionID = sessionID
        arenaCount = 0
        elementCount = 0
        if homes != self.homes {
            self.homes = homes
            homeBytes = homes.map { h in
                var b = Array(h.utf8)
                while b.count > 1, b.last == 0x2F { b.removeLast() }
                // A home of `/` leaves an empty prefix: every absolute path is under it.
                if b == [0x2F] { b = [] }
                return b
            }
        }
    }

    /// A shared part's result in this record, if already evaluated. The stamp's low bit holds
    /// the result, the rest the generation, so one word answers both questions.
    @inline(__always)
    func memo(_ id: Int) -> Bool? {
        let m = memos[id]
        return m >> 1 == generation & 0x7FFF_FFFF ? m & 1 == 1 : nil
    }

    @inline(__always)
    func remember(_ id: Int, _ result: Bool) {
        memos[id] = (generation & 0x7FFF_FFFF) << 1 | (result ? 1 : 0)
    }

    /// The slot's value as the record holds it: kept for keys, sums and regexes, fetched
    /// again for a message.
    func value(_ slot: Int, _ fetch: Fetch) -> RuleValue? {
        guard keeps[slot] else { return fetchValue(slot, fetch) }
        _ = load(slot, fetch)
        return values[slot]
    }

    /// The slot's state, fetching the value on first use in this record.
    @inline(__always)
    func load(_ slot: Int, _ fetch: Fetch) -> SlotState {
        if slots[slot].stamp == generation { return slots[slot] }
        return fill(slot, fetch)
    }

    private func fetchValue(_ slot: Int, _ fetch: Fetch) -> RuleValue? {
        switch fields[slot].id {
        case RuleField.type.rawValue: .string(typeName)
        case RuleField.seq.rawValue: .int(Int64(truncatingIfNeeded: seq))
        case RuleField.sessionID.rawValue: sessionID.isEmpty ? fetch(fields[slot]) : .string(sessionID)
        default: fetch(fields[slot])
        }
    }

    private func fill(_ slot: Int, _ fetch: Fetch) -> SlotState {
        let v = fetchValue(slot, fetch)
        var state = SlotState(stamp: generation)
        switch v {
        case .string(let s)?:
            state.kind = .string
            let span = store(s)
            state.start = span.start
            state.count = span.count
        case .list(let items)?:
            state.kind = .list
            state.start = Int32(elementCount)
            state.count = Int32(items.count)
            if elementCount + items.count > elementCapacity {
                var capacity = elementCapacity * 2
                while capacity < elementCount + items.count { capacity *= 2 }
                let bigger = UnsafeMutablePointer<Span>.allocate(capacity: capacity)
                bigger.update(from: elements, count: elementCount)
                elements.deallocate()
                elements = bigger
                elementCapacity = capacity
            }
            for item in items {
                elements[elementCount] = store(item)
                elementCount += 1
            }
        case .int(let i)?:
            state.kind = .int
            state.int = i
        case .bool(let b)?:
            state.kind = .bool
            state.int = b ? 1 : 0
        case nil:
            state.kind = .missing
        }
        if keeps[slot] { values[slot] = v }
        slots[slot] = state
        return state
    }

    private func store(_ s: String) -> Span {
        let start = arenaCount
        let n = s.utf8.count
        guard n > 0 else { return Span(start: Int32(start), count: 0) }
        reserve(n)
        if s.utf8.withContiguousStorageIfAvailable({ (arena + start).update(from: $0.baseAddress!, count: $0.count) }) == nil {
            var i = start
            for b in s.utf8 {
                arena[i] = b
                i += 1
            }
        }
        arenaCount += n
        return Span(start: Int32(start), count: Int32(n))
    }

    private func reserve(_ n: Int) {
        guard arenaCount + n > arenaCapacity else { return }
        var capacity = arenaCapacity * 2
        while capacity < arenaCount + n { capacity *= 2 }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
        bigger.update(from: arena, count: arenaCount)
        arena.deallocate()
        arena = bigger
        arenaCapacity = capacity
    }

    /// Bytes of a string value or list element; valid until the next `load` of another slot.
    @inline(__always)
    func bytes(_ start: Int32, _ count: Int32) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: arena + Int(start), count: Int(count))
    }

    @inline(__always)
    func element(_ index: Int32) -> UnsafeBufferPointer<UInt8> {
        let e = elements[Int(index)]
        return bytes(e.start, e.count)
    }

    /// Home offsets of the string value in `slot`, computed once per record.
    func tails(_ slot: Int, _ bytes: UnsafeBufferPointer<UInt8>) -> HomeTails {
        if slots[slot].tailsStamp == generation { return slots[slot].tails }
        let t = homeTails(bytes)
        slots[slot].tails = t
        slots[slot].tailsStamp = generation
        return t
    }

    /// Where the value continues after a home directory it starts with (`/home/dev` in
    /// `/home/dev/.ssh/id_rsa` leaves `/.ssh/id_rsa`); a `~` pattern matches that rest.
    func homeTails(_ bytes: UnsafeBufferPointer<UInt8>) -> HomeTails {
        var t = HomeTails()
        for home in homeBytes where bytes.count >= home.count {
            let same = home.withUnsafeBufferPointer { h in
                for i in 0..<h.count where bytes[i] != h[i] { return false }
                return true
            }
            guard same, bytes.count == home.count || bytes[home.count] == 0x2F else { continue }
            t.add(home.count)
        }
        return t
    }
}

/// Up to two home prefixes a value starts with (a session has one home, rarely two).
struct HomeTails {
    var first: Int32 = -1
    var second: Int32 = -1

    package mutating func add(_ offset: Int) {
        if first < 0 { first = Int32(offset) } else if second < 0 { second = Int32(offset) }
    }
}
