/// Which rules of one record type can still match a record, found with one walk of each gated
/// field instead of each rule's own tests. Most rules of a type look for a few paths among all
/// a session opens (`read_ok and file.path glob @ssh_private_keys`): the first ops of 20 such
/// rules ran for every open and almost never matched.
///
/// A rule is gated when its condition (a sequence: each of its steps) has a necessary set of
/// string tests (`ConditionProgram.necessary`): tests one of which holds whenever the condition
/// does on this record type, each of a kind whose keys a value must begin with
/// (`StringTest.gateKeys`); tests of the record's type are decided when the gate is built. The gate merges every gated rule's
/// keys, per field, into one prefix trie; walking a record's value marks each rule one of
/// whose keys the value begins with (or continues with after a home prefix, for `~` keys).
/// An unmarked gated rule cannot match and is skipped; the others run as before. A key being
/// a prefix is only necessary, never sufficient: the marked rules still run their conditions.
/// Not thread-safe: the detector's, as its cache is.
final class RuleGate {
    /// One field's merged keys: trie item k marks rule position `plainRules[k]` (or `homeRules[k]`).
    /// A class: the per-record loop over the fields then retains one reference instead of
    /// copying four arrays and two tries (measured: 2,800 instructions a record).
    final class FieldIndex {
        let slot: Int
        let plain: PrefixTrie
        let plainRules: [Int32]
        let home: PrefixTrie
        let homeRules: [Int32]

        init(slot: Int, plain: PrefixTrie, plainRules: [Int32], home: PrefixTrie, homeRules: [Int32]) {
            self.slot = slot
            self.plain = plain
            self.plainRules = plainRules
            self.home = home
            self.homeRules = homeRules
        }
    }

    let fields: [FieldIndex]
    /// Per rule position: whether the rule is gated.
    let gated: [Bool]
    /// Per rule position: the generation in which a walk marked it. Raw memory: `allows` runs
    /// for every rule of every record, and an array property costs an exclusivity check per read.
    private let marks: UnsafeMutableBufferPointer<UInt32>
    @exclusivity(unchecked) private var generation: UInt32 = 0

    /// The gate of rules at positions 0..<conditions.count, for records of type `typeName`:
    /// per position, the conditions one of which must hold for the rule to do anything (a
    /// rule's condition; a sequence's steps), nil for a rule never gated. nil when none is.
    init?(_ conditions: [[ConditionProgram]?], typeSlot: Int?, typeName: String) {
        var bySlot: [Int: (plain: [[UInt8]], plainRules: [Int32], home: [[UInt8]], homeRules: [Int32])] = [:]
        var gated = [Bool](repeating: false, count: conditions.count)
        for (position, programs) in conditions.enumerated() {
            guard let programs, !programs.isEmpty else { continue }
            // Every condition needs a set; with none at all (all empty) the rule cannot match
            // this type: gated, never marked.
            let sets = programs.map { $0.necessary(typeSlot: typeSlot, typeName: typeName) }
            guard !sets.contains(where: { $0 == nil }) else { continue }
            let tests = sets.flatMap { $0! }
            gated[position] = true
            for (slot, test) in tests {
                let keys = test.gateKeys!
                bySlot[slot, default: ([], [], [], [])].plain += keys.plain
                bySlot[slot]!.plainRules += Array(repeating: Int32(position), count: keys.plain.count)
                bySlot[slot]!.home += keys.home
                bySlot[slot]!.homeRules += Array(repeating: Int32(position), count: keys.home.count)
            }
        }
        guard gated.contains(true) else { return nil }
        fields = bySlot.sorted { $0.key < $1.key }.map { slot, k in
            FieldIndex(slot: slot, plain: PrefixTrie(k.plain), plainRules: k.plainRules, home: PrefixTrie(k.home), homeRules: k.homeRules)
        }
        self.gated = gated
        marks = .allocate(capacity: conditions.count)
        marks.initialize(repeating: 0)
    }

    deinit { marks.deallocate() }

    /// Marks the rules the current record (in `cache`) can match; then `allows` answers.
    func mark(_ cache: RecordCache, _ fetch: Fetch) {
        generation &+= 1
        if generation == 0 {
            // Wrapped: old marks could pass for new ones.
            marks.update(repeating: 0)
            generation = 1
        }
        for field in fields {
            let v = cache.load(field.slot, fetch)
            switch v.kind {
            case .string:
                let b = cache.bytes(v.start, v.count)
                walk(field, b, field.home.isEmpty ? HomeTails() : cache.tails(field.slot, b))
            case .list:
                for e in 0..<v.count {
                    let b = cache.element(v.start + e)
                    walk(field, b, field.home.isEmpty ? HomeTails() : cache.homeTails(b))
                }
            default:
                break
            }
        }
    }

    @inline(__always)
    func allows(_ position: Int) -> Bool {
        !gated[position] || marks[position] == generation
    }

    private func walk(_ field: FieldIndex, _ b: UnsafeBufferPointer<UInt8>, _ tails: HomeTails) {
        let g = generation, marks = marks
        _ = field.plain.walk(b, from: 0, caseInsensitive: false) { k in
            marks[Int(field.plainRules[k])] = g
            return false
        }
        func home(_ t: Int32) {
            guard t >= 0 else { return }
            _ = field.home.walk(b, from: Int(t), caseInsensitive: false) { k in
                marks[Int(field.homeRules[k])] = g
                return false
            }
        }
        home(tails.first)
        home(tails.second)
    }
}
