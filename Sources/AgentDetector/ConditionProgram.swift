/// A compiled condition: the tree laid out flat in prefix order, each node followed by its
/// children, so evaluation walks an array of plain values and touches no reference counts.
/// String tests are classes held here and reached through unmanaged references. Unchecked
/// Sendable: the buffers are written once in `init` and only read afterwards.
final class ConditionProgram: @unchecked Sendable {
    struct Op {
        enum Kind: UInt8 { case all, any, not, constant, exists, string, int, bool, memo }
        var kind: Kind
        /// all/any: the number of children; constant/bool: 1 for true.
        var count: Int32 = 0
        /// Ops in this node's subtree, itself included.
        var size: Int32 = 1
        var slot: Int32 = 0
        /// Index into the string tests or integer checks, or the memo id.
        var test: Int32 = 0
    }

    /// Keeps the string tests alive; the run reaches them unretained through `stringBuffer`.
    private let stringTests: [StringTest]
    // Buffers this object owns, so a run needs no array access checks or reference counting.
    private let opBuffer: UnsafeMutableBufferPointer<Op>
    private let intBuffer: UnsafeMutableBufferPointer<IntCheck>
    private let numberBuffer: UnsafeMutableBufferPointer<Int64>

    /// An integer test as plain values: its operands are `count` numbers from `start` in the
    /// number pool (`equals` is any of them; the orderings use the first).
    struct IntCheck {
        let op: IntTest.Op
        let start: Int32
        let count: Int32
    }
    private let stringBuffer: UnsafeMutableBufferPointer<Unmanaged<StringTest>>
    /// The condition as run (simplified), kept for `necessary(typeSlot:typeName:)`.
    let tree: Matcher

    init(_ tree: Matcher, shared: Set<Int>) {
        let tree = tree.simplified(shared: shared)
        self.tree = tree
        var ops: [Op] = []
        var ints: [IntCheck] = []
        var numbers: [Int64] = []
        var strings: [StringTest] = []
        @discardableResult
        func emit(_ m: Matcher) -> Int32 {
            let at = ops.count
            switch m {
            case .all(let parts), .any(let parts):
                let isAll = if case .all = m { true } else { false }
                ops.append(Op(kind: isAll ? .all : .any, count: Int32(parts.count)))
                for p in parts { emit(p) }
            case .not(let inner):
                ops.append(Op(kind: .not))
                emit(inner)
            case .constant(let b):
                ops.append(Op(kind: .constant, count: b ? 1 : 0))
            case .exists(let slot):
                ops.append(Op(kind: .exists, slot: Int32(slot)))
            case .string(let slot, let test):
                ops.append(Op(kind: .string, slot: Int32(slot), test: Int32(strings.count)))
                strings.append(test)
            case .int(let slot, let test):
                ops.append(Op(kind: .int, slot: Int32(slot), test: Int32(ints.count)))
                ints.append(IntCheck(op: test.op, start: Int32(numbers.count), count: Int32(test.values.count)))
                numbers += test.values
            case .bool(let slot, let value):
                ops.append(Op(kind: .bool, count: value ? 1 : 0, slot: Int32(slot)))
            case .memo(let id, let inner):
                ops.append(Op(kind: .memo, test: Int32(id)))
                emit(inner)
            }
            ops[at].size = Int32(ops.count - at)
            return ops[at].size
        }
        emit(tree)
        stringTests = strings
        opBuffer = .allocate(capacity: ops.count)
        _ = opBuffer.initialize(from: ops)
        intBuffer = .allocate(capacity: ints.count)
        _ = intBuffer.initialize(from: ints)
        numberBuffer = .allocate(capacity: numbers.count)
        _ = numberBuffer.initialize(from: numbers)
        stringBuffer = .allocate(capacity: strings.count)
        _ = stringBuffer.initialize(from: strings.map { Unmanaged.passUnretained($0) })
    }

    /// String tests one of which holds whenever the condition does on a record of type
    /// `typeName`, each with gate keys (`StringTest.gateKeys`); empty when the condition cannot
    /// hold on that type; nil when there is no such set. `RuleGate` skips the condition for a
    /// record none of the tests can hold for.
    func necessary(typeSlot: Int?, typeName: String) -> [(slot: Int, test: StringTest)]? {
        Self.necessary(tree, typeSlot: typeSlot, typeName: Array(typeName.utf8))
    }

    /// A test itself; a test of the record's type is decided here (it holds: nothing learnt;
    /// it fails: the empty set). For `all`, the empty set if a part has it, else the smallest
    /// set of any part (each part is necessary); for `any`, the union of every part's, when
    /// every part has one. Nothing under a `not`, and no other kind of node, gives a set.
    static func necessary(_ m: Matcher, typeSlot: Int?, typeName: [UInt8]) -> [(slot: Int, test: StringTest)]? {
        switch m {
        case .string(let slot, let test) where slot == typeSlot && test.op != .regex && test.op != .cidr:
            // A `~` entry depends on the session's homes, unknown here: nothing learnt.
            if test.usesHome { return nil }
            let holds = typeName.withUnsafeBufferPointer { test.matches($0, tails: HomeTails()) }
            return holds ? nil : []
        case .string(let slot, let test):
            return test.gateKeys == nil ? nil : [(slot, test)]
        case .constant(false):
            return []
        case .memo(_, let inner):
            return necessary(inner, typeSlot: typeSlot, typeName: typeName)
        case .all(let parts):
            var best: [(slot: Int, test: StringTest)]?
            for p in parts {
                if let n = necessary(p, typeSlot: typeSlot, typeName: typeName), n.count < best?.count ?? Int.max { best = n }
            }
            return best
        case .any(let parts):
            var union: [(slot: Int, test: StringTest)] = []
            for p in parts {
                guard let n = necessary(p, typeSlot: typeSlot, typeName: typeName) else { return nil }
                union += n
            }
            return union
        default:
            return nil
        }
    }

    deinit {
        opBuffer.deallocate()
        intBuffer.deallocate()
        numberBuffer.deallocate()
        stringBuffer.deallocate()
    }

    @inline(__always)
    func matches(_ cache: RecordCache, _ fetch: Fetch) -> Bool {
        Self.run(0, UnsafeBufferPointer(opBuffer), Tables(ints: UnsafeBufferPointer(intBuffer), numbers: UnsafeBufferPointer(numberBuffer),
                                                          strings: UnsafeBufferPointer(stringBuffer)), cache, fetch)
    }

    /// The side tables a run reads, passed as one value.
    private struct Tables {
        let ints: UnsafeBufferPointer<IntCheck>
        let numbers: UnsafeBufferPointer<Int64>
        let strings: UnsafeBufferPointer<Unmanaged<StringTest>>

        @inline(__always)
        func matches(_ check: Int, _ v: Int64) -> Bool {
            let c = ints[check]
            switch c.op {
            case .equals:
                for k in Int(c.start)..<Int(c.start + c.count) where numbers[k] == v { return true }
                return false
            case .less: return v < numbers[Int(c.start)]
            case .lessOrEqual: return v <= numbers[Int(c.start)]
            case .greater: return v > numbers[Int(c.start)]
            case .greaterOrEqual: return v >= numbers[Int(c.start)]
            }
        }
    }

    private static func run(_ i: Int, _ ops: UnsafeBufferPointer<Op>, _ t: Tables, _ cache: RecordCache, _ fetch: Fetch) -> Bool {
        let op = ops[i]
        switch op.kind {
        case .all:
            var child = i + 1
            for _ in 0..<op.count {
                if !run(child, ops, t, cache, fetch) { return false }
                child += Int(ops[child].size)
            }
            return true
        case .any:
            var child = i + 1
            for _ in 0..<op.count {
                if run(child, ops, t, cache, fetch) { return true }
                child += Int(ops[child].size)
            }
            return false
        case .not:
            return !run(i + 1, ops, t, cache, fetch)
        case .constant:
            return op.count != 0
        case .exists:
            return cache.load(Int(op.slot), fetch).kind != .missing
        case .int:
            let v = cache.load(Int(op.slot), fetch)
            return v.kind == .int && t.matches(Int(op.test), v.int)
        case .bool:
            let v = cache.load(Int(op.slot), fetch)
            return v.kind == .bool && v.int == Int64(op.count)
        case .string:
            return t.strings[Int(op.test)]._withUnsafeGuaranteedRef { $0.matches(slot: Int(op.slot), cache, fetch) }
        case .memo:
            if let known = cache.memo(Int(op.test)) { return known }
            let result = run(i + 1, ops, t, cache, fetch)
            cache.remember(Int(op.test), result)
            return result
        }
    }
}
