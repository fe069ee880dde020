/// A compiled glob: `*` (no `/`), `**` (anything), `?` (one character but `/`), `[a-z]`,
/// `[!a]` classes, `\` escapes. The whole value must match. Literal prefix and suffix are
/// compared as bytes first; what lies between runs through a bit-parallel NFA over Unicode
/// scalars, so a hostile path costs at most its length times the pattern's length.
final class Glob: Sendable {
    enum Token: Sendable, Equatable {
        case scalar(UInt32)
        case any
        case set(CharacterClass)
        case star
        case doubleStar
    }

    enum Middle: UInt8, Sendable {
        case none, star, doubleStar, nfa
    }

    let prefix: [UInt8]
    let suffix: [UInt8]
    let middle: Middle
    let nfa: GlobNFA?
    let caseInsensitive: Bool

    struct SyntaxError: Error { let message: String }

    init(_ pattern: some Collection<UInt8>, caseInsensitive: Bool) throws(SyntaxError) {
        self.caseInsensitive = caseInsensitive
        let tokens = try Self.tokenize(Array(pattern), caseInsensitive: caseInsensitive)
        let head = tokens.prefix { if case .scalar = $0 { true } else { false } }.count
        var tail = 0
        if head < tokens.count {
            tail = tokens.reversed().prefix { if case .scalar = $0 { true } else { false } }.count
        }
        prefix = Self.utf8(tokens[..<head])
        suffix = Self.utf8(tokens[(tokens.count - tail)...])
        let inner = Array(tokens[head..<(tokens.count - tail)])
        var nfa: GlobNFA?
        if inner.isEmpty {
            middle = .none
        } else if inner == [.star] {
            middle = .star
        } else if inner == [.doubleStar] {
            middle = .doubleStar
        } else {
            guard inner.count < GlobNFA.maxTokens else {
                throw SyntaxError(message: "glob is too complex: at most \(GlobNFA.maxTokens - 1) elements between its first and last wildcard")
            }
            middle = .nfa
            nfa = GlobNFA(inner, required: Self.utf8(Self.longestLiteral(inner)))
        }
        self.nfa = nfa
    }

    /// The longest run of literal characters: a value lacking it cannot match, which a
    /// byte search finds out faster than the automaton.
    private static func longestLiteral(_ tokens: [Token]) -> ArraySlice<Token> {
        var best = tokens[0..<0]
        var start = 0
        for i in 0...tokens.count {
            let literal = i < tokens.count && { if case .scalar = tokens[i] { true } else { false } }()
            if !literal {
                if i - start > best.count { best = tokens[start..<i] }
                start = i + 1
            }
        }
        return best
    }

    func matches(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = value.count
        guard n >= prefix.count + suffix.count else { return false }
        if caseInsensitive {
            for i in 0..<prefix.count where foldASCII(value[i]) != prefix[i] { return false }
            let s = n - suffix.count
            for i in 0..<suffix.count where foldASCII(value[s + i]) != suffix[i] { return false }
        } else {
            for i in 0..<prefix.count where value[i] != prefix[i] { return false }
            let s = n - suffix.count
            for i in 0..<suffix.count where value[s + i] != suffix[i] { return false }
        }
        let inner = UnsafeBufferPointer(rebasing: value[prefix.count..<(n - suffix.count)])
        switch middle {
        case .none: return inner.isEmpty
        case .doubleStar: return true
        case .star: return !inner.contains(0x2F)
        case .nfa: return nfa!.matches(inner, caseInsensitive: caseInsensitive)
        }
    }

    private static func utf8(_ tokens: ArraySlice<Token>) -> [UInt8] {
        var out: [UInt8] = []
        for case .scalar(let v) in tokens {
            out.append(contentsOf: Unicode.Scalar(v).map { Array(String($0).utf8) } ?? [])
        }
        return out
    }

    private static func tokenize(_ p: [UInt8], caseInsensitive: Bool) throws(SyntaxError) -> [Token] {
        var tokens: [Token] = []
        var i = 0
        func scalar(at j: Int) -> (UInt32, Int) { decodeScalar(p, j) }
        while i < p.count {
            switch p[i] {
            case 0x5C: // backslash: the next character is literal
                guard i + 1 < p.count else { throw SyntaxError(message: "glob ends with a lone backslash") }
                let (v, len) = scalar(at: i + 1)
                tokens.append(.scalar(caseInsensitive ? UInt32(foldScalar(v)) : v))
                i += 1 + len
            case 0x2A:
                var j = i
                while j < p.count, p[j] == 0x2A { j += 1 }
                let t: Token = j - i >= 2 ? .doubleStar : .star
                // `*` next to `**` adds nothing; keeping one token keeps the fast paths.
                if let last = tokens.last, last == .doubleStar || (last == .star && t == .star) {
                    if t == .doubleStar { tokens[tokens.count - 1] = .doubleStar }
                } else {
                    tokens.append(t)
                }
                i = j
            case 0x3F:
                tokens.append(.any)
                i += 1
            case 0x5B:
                let (set, next) = try CharacterClass.parse(p, from: i, caseInsensitive: caseInsensitive)
                tokens.append(.set(set))
                i = next
            default:
                let (v, len) = scalar(at: i)
                tokens.append(.scalar(caseInsensitive ? foldScalar(v) : v))
                i += len
            }
        }
        return tokens
    }
}

/// `[abc]`, `[a-z]`, `[!a]` (or `[^a]`): a set of characters, never matching `/`.
struct CharacterClass: Sendable, Equatable {
    var ascii: (UInt64, UInt64) = (0, 0)
    var ranges: [ClosedRange<UInt32>] = []
    var negated = false

    static func == (a: CharacterClass, b: CharacterClass) -> Bool {
        a.ascii == b.ascii && a.ranges == b.ranges && a.negated == b.negated
    }

    func contains(_ v: UInt32) -> Bool {
        if v == 0x2F { return false }
        var hit: Bool
        if v < 64 {
            hit = ascii.0 & (1 << UInt64(v)) != 0
        } else if v < 128 {
            hit = ascii.1 & (1 << UInt64(v - 64)) != 0
        } else {
            hit = ranges.contains { $0.contains(v) }
        }
        return hit != negated
    }

    private mutating func add(_ range: ClosedRange<UInt32>, caseInsensitive: Bool) {
        if range.lowerBound < 128 {
            for v in range.lowerBound...min(range.upperBound, 127) {
                insertASCII(v)
                if caseInsensitive, let other = otherCase(v) { insertASCII(other) }
            }
        }
        if range.upperBound >= 128 { ranges.append(max(range.lowerBound, 128)...range.upperBound) }
    }

    private mutating func insertASCII(_ v: UInt32) {
        if v < 64 { ascii.0 |= 1 << UInt64(v) } else { ascii.1 |= 1 << UInt64(v - 64) }
    }

    private func otherCase(_ v: UInt32) -> UInt32? {
        if (65...90).contains(v) { return v + 32 }
        if (97...122).contains(v) { return v - 32 }
        return nil
    }

    /// Parses the class starting at `p[from] == '['`; returns it and the index after `]`.
    package static func parse(_ p: [UInt8], from: Int, caseInsensitive: Bool) throws(Glob.SyntaxError) -> (CharacterClass, Int) {
        var set = CharacterClass()
        var i = from + 1
        if i < p.count, p[i] == 0x21 || p[i] == 0x5E {
            set.negated = true
            i += 1
        }
        var first = true
        while true {
            guard i < p.count else {
                throw Glob.SyntaxError(message: "unterminated character class: add ']'")
            }
            if p[i] == 0x5D, !first { return (set, i + 1) }
            first = false
            var (lo, len) = decodeScalar(p, i)
            if p[i] == 0x5C, i + 1 < p.count {
                (lo, len) = decodeScalar(p, i + 1)
                len += 1
            }
            i += len
            var hi = lo
            if i + 1 < p.count, p[i] == 0x2D, p[i + 1] != 0x5D {
                let (h, hlen) = decodeScalar(p, i + 1)
                guard h >= lo else {
                    throw Glob.SyntaxError(message: "character range is backwards: write the lower end first")
                }
                hi = h
                i += 1 + hlen
            }
            set.add(lo...hi, caseInsensitive: caseInsensitive)
        }
    }
}

/// The part of a glob between its literal prefix and suffix, as a position-set automaton:
/// bit i set means "about to match token i"; bit `count` means "matched". Tokens are kept in
/// plain arrays (kind, scalar or class index) so the per-byte loop touches no references.
struct GlobNFA: Sendable {
    static let maxTokens = 128
    enum Kind: UInt8, Sendable { case scalar, any, set, star, doubleStar }

    let kinds: [Kind]
    /// The scalar of a `.scalar` token, or the class index of a `.set` token.
    let operands: [UInt32]
    let classes: [CharacterClass]
    /// Per position: itself plus every position reachable by letting stars match nothing.
    let closure: [Bits128]
    let accept: Bits128
    /// Bytes every match contains (the longest literal run), checked first.
    let required: [UInt8]

    init(_ tokens: [Glob.Token], required: [UInt8]) {
        var kinds: [Kind] = []
        var operands: [UInt32] = []
        var classes: [CharacterClass] = []
        for t in tokens {
            switch t {
            case .scalar(let v): kinds.append(.scalar); operands.append(v)
            case .any: kinds.append(.any); operands.append(0)
            case .set(let c): kinds.append(.set); operands.append(UInt32(classes.count)); classes.append(c)
            case .star: kinds.append(.star); operands.append(0)
            case .doubleStar: kinds.append(.doubleStar); operands.append(0)
            }
        }
        var closure = [Bits128](repeating: Bits128(), count: tokens.count + 1)
        for i in stride(from: tokens.count, through: 0, by: -1) {
            var b = Bits128()
            b.insert(i)
            if i < tokens.count, kinds[i] == .star || kinds[i] == .doubleStar { b.formUnion(closure[i + 1]) }
            closure[i] = b
        }
        var accept = Bits128()
        accept.insert(tokens.count)
        self.kinds = kinds
        self.operands = operands
        self.classes = classes
        self.closure = closure
        self.accept = accept
        self.required = required
    }

    func matches(_ value: UnsafeBufferPointer<UInt8>, caseInsensitive: Bool) -> Bool {
        if !required.isEmpty, !Self.contains(value, required, caseInsensitive) { return false }
        return kinds.withUnsafeBufferPointer { kinds in
            operands.withUnsafeBufferPointer { operands in
                closure.withUnsafeBufferPointer { closure in
                    run(value, caseInsensitive, kinds, operands, closure)
                }
            }
        }
    }

    private func run(_ value: UnsafeBufferPointer<UInt8>, _ caseInsensitive: Bool, _ kinds: UnsafeBufferPointer<Kind>,
                     _ operands: UnsafeBufferPointer<UInt32>, _ closure: UnsafeBufferPointer<Bits128>) -> Bool {
        var state = closure[0]
        var i = 0
        let end = kinds.count
        while i < value.count {
            var (c, len): (UInt32, Int)
            if value[i] < 0x80 {
                c = UInt32(value[i])
                len = 1
            } else {
                (c, len) = decodeScalar(value, i)
            }
            if caseInsensitive { c = foldScalar(c) }
            i += len
            var next = Bits128()
            var bits = state
            while let pos = bits.popFirst() {
                guard pos < end else { continue }
                switch kinds[pos] {
                case .scalar: if operands[pos] == c { next.formUnion(closure[pos + 1]) }
                case .any: if c != 0x2F { next.formUnion(closure[pos + 1]) }
                case .set: if classes[Int(operands[pos])].contains(c) { next.formUnion(closure[pos + 1]) }
                case .star: if c != 0x2F { next.formUnion(closure[pos]) }
                case .doubleStar: next.formUnion(closure[pos])
                }
            }
            if next.isEmpty { return false }
            state = next
        }
        return state.intersects(accept)
    }

    private static func contains(_ b: UnsafeBufferPointer<UInt8>, _ needle: [UInt8], _ caseInsensitive: Bool) -> Bool {
        let n = needle.count
        guard b.count >= n else { return false }
        return needle.withUnsafeBufferPointer { p in
            for start in 0...(b.count - n) {
                var k = 0
                while k < n, (caseInsensitive ? foldASCII(b[start + k]) : b[start + k]) == p[k] { k += 1 }
                if k == n { return true }
            }
            return false
        }
    }
}

/// A 128-bit set of small integers, kept in two words so the NFA never allocates.
struct Bits128: Sendable, Equatable {
    var lo: UInt64 = 0
    var hi: UInt64 = 0

    mutating func insert(_ i: Int) {
        if i < 64 { lo |= 1 << UInt64(i) } else { hi |= 1 << UInt64(i - 64) }
    }
    mutating func formUnion(_ o: Bits128) {
        lo |= o.lo
        hi |= o.hi
    }
    var isEmpty: Bool { lo == 0 && hi == 0 }
    func intersects(_ o: Bits128) -> Bool { lo & o.lo != 0 || hi & o.hi != 0 }
    mutating func popFirst() -> Int? {
        if lo != 0 {
            let i = lo.trailingZeroBitCount
            lo &= lo - 1
            return i
        }
        if hi != 0 {
            let i = hi.trailingZeroBitCount
            hi &= hi - 1
            return 64 + i
        }
        return nil
    }
}

@inline(__always)
func foldASCII(_ b: UInt8) -> UInt8 { b &- 65 < 26 ? b | 0x20 : b }

@inline(__always)
func foldScalar(_ v: UInt32) -> UInt32 { v &- 65 < 26 ? v | 0x20 : v }

/// Decodes one UTF-8 scalar at `i`; a byte that does not start valid UTF-8 stands for
/// itself (as 0xDC00+byte, where no real scalar can be) and is one character long.
@inline(__always)
func decodeScalar<C: RandomAccessCollection<UInt8>>(_ b: C, _ i: C.Index) -> (UInt32, Int) where C.Index == Int {
    let b0 = UInt32(b[i])
    if b0 < 0x80 { return (b0, 1) }
    let need: Int
    var v: UInt32
    switch b0 {
    case 0xC2...0xDF: need = 1; v = b0 & 0x1F
    case 0xE0...0xEF: need = 2; v = b0 & 0x0F
    case 0xF0...0xF4: need = 3; v = b0 & 0x07
    default: return (0xDC00 + b0, 1)
    }
    guard i + need < b.endIndex else { return (0xDC00 + b0, 1) }
    for k in 1...need {
        let c = UInt32(b[i + k])
        guard c & 0xC0 == 0x80 else { return (0xDC00 + b0, 1) }
        v = v << 6 | (c & 0x3F)
    }
    return (v, need + 1)
}
