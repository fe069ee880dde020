/// A condition as the compiler builds it: a tree, flattened into a `ConditionProgram` to run.
indirect enum Matcher: Sendable {
    case all([Matcher])
    case any([Matcher])
    case not(Matcher)
    case constant(Bool)
    case exists(slot: Int)
    /// A string test on a string field, or on any element of a list field.
    case string(slot: Int, test: StringTest)
    case int(slot: Int, test: IntTest)
    case bool(slot: Int, value: Bool)
    /// A part shared by several rules: evaluated once per record, its result remembered.
    case memo(id: Int, Matcher)

    /// How often each memo occurs, to keep only the shared ones.
    func countMemos(into uses: inout [Int: Int]) {
        switch self {
        case .all(let parts), .any(let parts): for p in parts { p.countMemos(into: &uses) }
        case .not(let inner): inner.countMemos(into: &uses)
        case .memo(let id, let inner):
            uses[id, default: 0] += 1
            inner.countMemos(into: &uses)
        default: break
        }
    }

    /// Drops memos no other rule shares (remembering them costs more than it saves) and
    /// merges the nested and/or nodes that leaves.
    func simplified(shared: Set<Int>) -> Matcher {
        switch self {
        case .memo(let id, let inner):
            let s = inner.simplified(shared: shared)
            return shared.contains(id) ? .memo(id: id, s) : s
        case .not(let inner):
            return .not(inner.simplified(shared: shared))
        case .all(let parts):
            let flat = parts.map { $0.simplified(shared: shared) }.flatMap { p -> [Matcher] in
                if case .all(let inner) = p { inner } else { [p] }
            }
            return flat.count == 1 ? flat[0] : .all(flat)
        case .any(let parts):
            let flat = parts.map { $0.simplified(shared: shared) }.flatMap { p -> [Matcher] in
                if case .any(let inner) = p { inner } else { [p] }
            }
            return flat.count == 1 ? flat[0] : .any(flat)
        default:
            return self
        }
    }

    /// The slots the matcher reads, for the rule set's list of used fields.
    func slots(into out: inout Set<Int>) {
        switch self {
        case .all(let parts), .any(let parts): for p in parts { p.slots(into: &out) }
        case .not(let inner), .memo(_, let inner): inner.slots(into: &out)
        case .constant: break
        case .exists(let slot), .string(let slot, _), .int(let slot, _), .bool(let slot, _): out.insert(slot)
        }
    }
}

/// An integer comparison as compiled: `equals` holds when the value is any of `values`; the
/// orderings compare with the first.
struct IntTest: Sendable {
    enum Op: UInt8, Sendable { case equals, less, lessOrEqual, greater, greaterOrEqual }
    let op: Op
    let values: [Int64]
}
