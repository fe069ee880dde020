/// A string comparison against one or more patterns ("any of"), compiled at load. Literal
/// patterns live in one byte pool (lowercased for the i-forms); patterns that began with `~`
/// are kept apart and matched against the value after a home prefix. Long exact lists are
/// sorted and searched by halving.
final class StringTest: Sendable {
    enum Op: Sendable { case equals, startsWith, endsWith, contains, glob, regex, cidr }

    struct Literal {
        var start: Int32
        var count: Int32
    }

    let op: Op
    let caseInsensitive: Bool
    private let pool: [UInt8]
    private let literals: [Literal]
    private let homeLiterals: [Literal]
    /// `literals` is sorted (by bytes) and long enough to search by halving.
    private let sorted: Bool
    /// Keep the globs alive; matching reaches them unretained through the refs.
    private let globs: [Glob]
    private let homeGlobs: [Glob]
    private let globRefs: [Unmanaged<Glob>]
    private let homeGlobRefs: [Unmanaged<Glob>]
    let regexes: [Int]
    private let blocks: [CIDRBlock]
    /// Prefix indexes: globs by their literal prefix, `startswith` patterns by themselves.
    private let globIndex: PrefixTrie
    private let homeGlobIndex: PrefixTrie
    private let prefixIndex: PrefixTrie
    private let homePrefixIndex: PrefixTrie
    let usesHome: Bool
    /// The keys a value must start with (`plain`), or continue with after a home prefix
    /// (`home`), for this test to hold: the literals of `equals` and `startswith`, the literal
    /// prefixes of globs. Nil for the other operators and the case-insensitive forms. The
    /// detector walks these keys of many tests at once to skip rules that cannot match
    /// (`RuleGate`).
    let gateKeys: (plain: [[UInt8]], home: [[UInt8]])?

    init(op: Op, caseInsensitive: Bool, literals: [[UInt8]] = [], homeLiterals: [[UInt8]] = [], globs: [Glob] = [],
         homeGlobs: [Glob] = [], regexes: [Int] = [], blocks: [CIDRBlock] = []) {
        self.op = op
        self.caseInsensitive = caseInsensitive
        var pool: [UInt8] = []
        func add(_ patterns: [[UInt8]]) -> [Literal] {
            patterns.map { p in
                defer { pool += p }
                return Literal(start: Int32(pool.count), count: Int32(p.count))
            }
        }
        sorted = op == .equals && literals.count > 8
        let ordered = sorted ? Array(Set(literals)).sorted { $0.lexicographicallyPrecedes($1) } : literals
        self.literals = add(ordered)
        self.homeLiterals = add(homeLiterals)
        self.pool = pool
        self.globs = globs
        self.homeGlobs = homeGlobs
        globRefs = globs.map { Unmanaged.passUnretained($0) }
        homeGlobRefs = homeGlobs.map { Unmanaged.passUnretained($0) }
        self.regexes = regexes
        self.blocks = blocks
        globIndex = PrefixTrie(globs.map(\.prefix))
        homeGlobIndex = PrefixTrie(homeGlobs.map(\.prefix))
        prefixIndex = PrefixTrie(op == .startsWith ? ordered : [])
        homePrefixIndex = PrefixTrie(op == .startsWith ? homeLiterals : [])
        usesHome = !homeLiterals.isEmpty || !homeGlobs.isEmpty
        switch op {
        case _ where caseInsensitive: gateKeys = nil
        case .equals, .startsWith: gateKeys = (ordered, homeLiterals)
        case .glob: gateKeys = (globs.map(\.prefix), homeGlobs.map(\.prefix))
        default: gateKeys = nil
        }
    }

    func matches(slot: Int, _ cache: RecordCache, _ fetch: Fetch) -> Bool {
        if op == .regex { return matchesRegex(slot, cache, fetch) }
        let v = cache.load(slot, fetch)
        switch v.kind {
        case .string:
            let b = cache.bytes(v.start, v.count)
            return matches(b, tails: usesHome ? cache.tails(slot, b) : HomeTails())
        case .list:
            for e in 0..<v.count {
                let b = cache.element(v.start + e)
                if matches(b, tails: usesHome ? cache.homeTails(b) : HomeTails()) { return true }
            }
            return false
        default:
            return false
        }
    }

    private func matchesRegex(_ slot: Int, _ cache: RecordCache, _ fetch: Fetch) -> Bool {
        switch cache.value(slot, fetch) {
        case .string(let s)?:
            return regexes.contains { s.contains(cache.regexes[$0]) }
        case .list(let items)?:
            return items.contains { s in regexes.contains { s.contains(cache.regexes[$0]) } }
        default:
            return false
        }
    }

    func matches(_ b: UnsafeBufferPointer<UInt8>, tails: HomeTails) -> Bool {
        pool.withUnsafeBufferPointer { pool in
            switch op {
            case .equals:
                if sorted {
                    if search(b, pool) { return true }
                } else {
                    for p in literals where equal(b, 0, pool, p) { return true }
                }
                return anyTail(tails) { t in homeLiterals.contains { equal(b, t, pool, $0) } }
            case .startsWith:
                if prefixIndex.walk(b, from: 0, caseInsensitive: caseInsensitive, { _ in true }) { return true }
                return anyTail(tails) { t in homePrefixIndex.walk(b, from: t, caseInsensitive: caseInsensitive) { _ in true } }
            case .endsWith:
                for p in literals where b.count >= Int(p.count) && startsWith(b, b.count - Int(p.count), pool, p) { return true }
                return false
            case .contains:
                for p in literals where contains(b, pool, p) { return true }
                return false
            case .glob:
                // Only globs whose literal prefix the value starts with can match.
                if globIndex.walk(b, from: 0, caseInsensitive: caseInsensitive, { k in
                    globRefs[k]._withUnsafeGuaranteedRef { $0.matches(b) }
                }) { return true }
                return anyTail(tails) { t in
                    let rest = UnsafeBufferPointer(rebasing: b[t...])
                    return homeGlobIndex.walk(b, from: t, caseInsensitive: caseInsensitive) { k in
                        homeGlobRefs[k]._withUnsafeGuaranteedRef { $0.matches(rest) }
                    }
                }
            case .cidr:
                guard let (address, _) = IPAddress.parse(b) else { return false }
                for block in blocks where block.contains(address) { return true }
                return false
            case .regex:
                return false
            }
        }
    }

    @inline(__always)
    private func anyTail(_ tails: HomeTails, _ body: (Int) -> Bool) -> Bool {
        if tails.first >= 0, body(Int(tails.first)) { return true }
        if tails.second >= 0, body(Int(tails.second)) { return true }
        return false
    }

    @inline(__always)
    private func byte(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> UInt8 {
        caseInsensitive ? foldASCII(b[i]) : b[i]
    }

    private func equal(_ b: UnsafeBufferPointer<UInt8>, _ from: Int, _ pool: UnsafeBufferPointer<UInt8>, _ p: Literal) -> Bool {
        b.count - from == Int(p.count) && startsWith(b, from, pool, p)
    }

    private func startsWith(_ b: UnsafeBufferPointer<UInt8>, _ from: Int, _ pool: UnsafeBufferPointer<UInt8>, _ p: Literal) -> Bool {
        let n = Int(p.count), s = Int(p.start)
        guard b.count - from >= n else { return false }
        for i in 0..<n where byte(b, from + i) != pool[s + i] { return false }
        return true
    }

    private func contains(_ b: UnsafeBufferPointer<UInt8>, _ pool: UnsafeBufferPointer<UInt8>, _ p: Literal) -> Bool {
        let n = Int(p.count)
        guard n > 0 else { return true }
        guard b.count >= n else { return false }
        let first = pool[Int(p.start)]
        for i in 0...(b.count - n) where byte(b, i) == first && startsWith(b, i, pool, p) { return true }
        return false
    }

    /// Exact match in the sorted literals, comparing (folded) bytes.
    private func search(_ b: UnsafeBufferPointer<UInt8>, _ pool: UnsafeBufferPointer<UInt8>) -> Bool {
        var lo = 0, hi = literals.count
        while lo < hi {
            let mid = (lo + hi) / 2
            let p = literals[mid]
            let c = compare(b, pool, p)
            if c == 0 { return true }
            if c < 0 { hi = mid } else { lo = mid + 1 }
        }
        return false
    }

    private func compare(_ b: UnsafeBufferPointer<UInt8>, _ pool: UnsafeBufferPointer<UInt8>, _ p: Literal) -> Int {
        let n = min(b.count, Int(p.count))
        for i in 0..<n {
            let x = byte(b, i), y = pool[Int(p.start) + i]
            if x != y { return x < y ? -1 : 1 }
        }
        return b.count == Int(p.count) ? 0 : (b.count < Int(p.count) ? -1 : 1)
    }
}
