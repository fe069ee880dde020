/// The first process seen in each session, rendered once as ECS `process.entry_leader`
/// members. Bounded: a session is forgotten at its `session.end` record, and beyond
/// `capacity` sessions the oldest is forgotten first.
struct SessionLeaders {
    struct Leader {
        var session: [UInt8]
        var entityID: [UInt8]
        /// `"entity_id":"...","pid":N,...` (no braces).
        var members: [UInt8]
        /// When it was recorded: a session that ends and comes back is a new entry in `order`.
        var generation: UInt64 = 0
    }

    let capacity: Int
    private var leaders: [UInt64: Leader] = [:]
    /// Session keys and generations in the order recorded, from `head` on; entries whose leader
    /// was forgotten or recorded again since are stale.
    private var order: [(key: UInt64, generation: UInt64)] = []
    private var head = 0
    private var generation: UInt64 = 0
    /// The last leader looked up: consecutive records mostly share their session.
    private var last: (key: UInt64, leader: Leader)? = nil

    init(capacity: Int = 4096) {
        self.capacity = capacity
    }

    var count: Int { leaders.count }

    /// FNV-1a: session ids are short, and a lookup must not allocate.
    static func key(_ session: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in session {
            h ^= UInt64(b)
            h &*= 0x0000_0100_0000_01b3
        }
        return h
    }

    /// The leader of `session`, if one was recorded (nil too in the unlikely event another
    /// session's id hashes alike).
    mutating func leader(_ session: UnsafeRawBufferPointer) -> Leader? {
        let k = Self.key(session)
        if let last, last.key == k, last.leader.session.elementsEqual(session) { return last.leader }
        guard let l = leaders[k], l.session.elementsEqual(session) else { return nil }
        last = (k, l)
        return l
    }

    mutating func record(_ leader: Leader) {
        let k = leader.session.withUnsafeBytes { Self.key($0) }
        guard leaders[k] == nil else { return }
        generation += 1
        var l = leader
        l.generation = generation
        leaders[k] = l
        last = nil
        order.append((k, generation))
        while leaders.count > capacity, head < order.count {
            let (key, g) = order[head]
            if leaders[key]?.generation == g { leaders[key] = nil }
            head += 1
        }
        // Forgotten sessions leave stale entries behind: drop them once they are the larger part.
        if order.count - head > 2 * max(leaders.count, 64) || head > capacity {
            order = order[head...].filter { leaders[$0.key]?.generation == $0.generation }
            head = 0
        }
    }

    /// Entries kept for eviction order (for tests: stale ones do not pile up).
    var orderCount: Int { order.count - head }

    mutating func forget(_ session: UnsafeRawBufferPointer) {
        let k = Self.key(session)
        if let l = leaders[k], l.session.elementsEqual(session) {
            leaders[k] = nil
            last = nil
        }
    }
}
