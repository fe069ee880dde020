/// Evaluates records against a RuleSet, holding sequence, threshold and suppression state.
/// Not thread-safe: one per pipeline.
public final class Detector {
    package private(set) var rules: RuleSet
    @exclusivity(unchecked) var cache: RecordCache
    /// Per rule (aligned with `rules.rules`): its program and its state.
    @exclusivity(unchecked) var programs: [RuleProgram]
    @exclusivity(unchecked) var states: [RuleState]
    /// Enabled rules per record type. A short array scanned with `==` on small strings beats
    /// hashing the type name for the dozen types there are.
    @exclusivity(unchecked) var typeTable: [(name: String, rules: [RuleEntry], gate: RuleGate?)]

    /// What the per-record loop needs of a rule, as plain values: the programs are owned by
    /// the rule set and reached without reference counting.
    struct RuleEntry {
        let index: Int
        let kind: RuleKind
        let condition: Unmanaged<ConditionProgram>?
        let exceptions: Unmanaged<ConditionProgram>?

        init(_ index: Int, _ program: RuleProgram) {
            self.index = index
            kind = program.kind
            condition = program.condition.map { Unmanaged.passUnretained($0) }
            exceptions = program.exceptions.map { Unmanaged.passUnretained($0) }
        }
    }

    static func typeTable(_ rules: RuleSet, gates: Bool = true) -> [(name: String, rules: [RuleEntry], gate: RuleGate?)] {
        let typeSlot = rules.slotFields.firstIndex { $0.id == RuleField.type.rawValue }
        return rules.byType.map { type, indices in
            (type, indices.map { RuleEntry($0, rules.rules[$0].program) },
             gates ? RuleGate(indices.map { gateConditions(rules.rules[$0].program) }, typeSlot: typeSlot, typeName: type) : nil)
        }.sorted { $0.name < $1.name }
    }

    /// What the gate may look at for a rule: the conditions one of which must hold before the
    /// rule does anything. A sequence advances only when a step matches (no state changes
    /// otherwise), so any of its steps; a condition or threshold rule, its condition.
    static func gateConditions(_ program: RuleProgram) -> [ConditionProgram]? {
        switch program.kind {
        case .condition, .threshold: program.condition.map { [$0] }
        case .sequence: program.sequence?.steps.map(\.condition)
        }
    }

    /// Whether rules are skipped through their type's `RuleGate`: on, except for the tests that
    /// hold the alerts equal with and without it.
    package var gatesEnabled = true {
        didSet { typeTable = Self.typeTable(rules, gates: gatesEnabled) }
    }

    /// Keys of state a rule keeps (sessions, partial sequences, windows) before it drops the oldest.
    static let maxKeysPerRule = 10_000
    /// Seqs kept as evidence by a threshold window or a suppression count.
    static let maxEvidence = 64

    public init(rules: RuleSet) {
        self.rules = rules
        cache = RecordCache(fields: rules.slotFields, kept: rules.keptSlots, regexPatterns: rules.regexPatterns, memoCount: rules.memoCount)
        programs = rules.rules.map(\.program)
        states = rules.rules.map { RuleState(definition: $0.program.definition) }
        typeTable = Self.typeTable(rules)
    }

    /// Runs the record through every enabled rule of its type; `emit` receives each alert.
    package func evaluate(_ record: some RuleInput, emit: (Alert) -> Void) {
        let typeName = record.typeName
        for entry in typeTable where entry.name == typeName {
            cache.begin(typeName: typeName, seq: record.seq, timeNs: record.timeNs, sessionID: record.sessionID, homes: record.homes)
            // From here on the engine is not generic: values come through this closure.
            run(entry.rules, entry.gate, emit) { record.value($0) }
            return
        }
    }

    private func run(_ entries: [RuleEntry], _ gate: RuleGate?, _ emit: (Alert) -> Void, _ fetch: Fetch) {
        let cache = self.cache
        gate?.mark(cache, fetch)
        entries.withUnsafeBufferPointer { entries in
            for (position, entry) in entries.enumerated() {
                if let gate, !gate.allows(position) { continue }
                switch entry.kind {
                case .condition, .threshold:
                    guard entry.condition!._withUnsafeGuaranteedRef({ $0.matches(cache, fetch) }),
                          !(entry.exceptions?._withUnsafeGuaranteedRef { $0.matches(cache, fetch) } ?? false) else { continue }
                    if entry.kind == .condition {
                        fire(entry.index, evidence: [cache.seq], emit, fetch)
                    } else {
                        addToWindow(entry.index, programs[entry.index].threshold!, emit, fetch)
                    }
                case .sequence:
                    advanceSequences(entry.index, programs[entry.index].sequence!, emit, fetch)
                }
            }
        }
    }

    /// A session ended: for every rule that counted suppressed matches in it, one alert with the
    /// count; then the session's state is dropped.
    package func endSession(_ sessionID: String, timeNs: Int64, emit: (Alert) -> Void) {
        for (i, state) in states.enumerated() {
            if let s = state.suppression.removeValue(forKey: sessionID), s.count > 0 {
                let rule = rules.rules[i]
                emit(Alert(rule: rule, message: "\(s.count) further matches of \(rule.id) suppressed", evidence: s.evidence,
                           suppressed: s.count, sessionID: sessionID, triggerSeq: s.lastSeq, timeNs: timeNs))
            }
            state.dropSession(sessionID)
        }
    }

    /// Swaps in reloaded rules (SIGHUP). A rule whose id and definition (conditions with macros
    /// and lists expanded, types, windows, suppression) are unchanged keeps its suppression,
    /// sequence and threshold state; every other rule starts fresh.
    package func replaceRules(_ newRules: RuleSet) {
        var previous: [String: RuleState] = [:]
        for (i, rule) in rules.rules.enumerated() { previous[rule.id] = states[i] }
        rules = newRules
        cache = RecordCache(fields: newRules.slotFields, kept: newRules.keptSlots, regexPatterns: newRules.regexPatterns, memoCount: newRules.memoCount)
        programs = newRules.rules.map(\.program)
        states = newRules.rules.map { rule in
            if let old = previous[rule.id], old.definition == rule.program.definition { return old }
            return RuleState(definition: rule.program.definition)
        }
        typeTable = Self.typeTable(newRules, gates: gatesEnabled)
    }

    /// Raises an alert for rule `i` unless the rule fired in this session within its
    /// suppression window; then the match is only counted.
    func fire(_ i: Int, evidence: @autoclosure () -> [UInt64], _ emit: (Alert) -> Void, _ fetch: Fetch) {
        let rule = rules.rules[i]
        let state = states[i]
        let session = cache.sessionID
        let now = cache.timeNs
        var suppressed = 0
        if rule.suppressNs > 0 {
            if let last = state.suppression[session]?.lastFiredNs, now - last < rule.suppressNs {
                state.suppression[session]!.count(cache.seq)
                return
            }
            suppressed = state.suppression[session]?.count ?? 0
            if state.suppression.count >= Self.maxKeysPerRule, state.suppression[session] == nil {
                state.evictSuppression(now: now, window: rule.suppressNs)
            }
            state.suppression[session] = Suppression(lastFiredNs: now)
        }
        emit(Alert(rule: rule, message: programs[i].message.render(cache, fetch), evidence: evidence(),
                   suppressed: suppressed, sessionID: session, triggerSeq: cache.seq, timeNs: now))
    }

    /// The values of `slots` in this record, as a state key; nil when one is missing.
    func key(_ slots: [Int], _ fetch: Fetch) -> StateKey? {
        guard let first = cache.value(slots[0], fetch) else { return nil }
        guard slots.count > 1 else { return StateKey(first: first, second: nil, rest: []) }
        guard let second = cache.value(slots[1], fetch) else { return nil }
        guard slots.count > 2 else { return StateKey(first: first, second: second, rest: []) }
        var rest: [RuleValue] = []
        rest.reserveCapacity(slots.count - 2)
        for s in slots.dropFirst(2) {
            guard let v = cache.value(s, fetch) else { return nil }
            rest.append(v)
        }
        return StateKey(first: first, second: second, rest: rest)
    }
}

/// What a Detector remembers for one rule.
final class RuleState {
    let definition: String
    var suppression: [String: Suppression] = [:]
    var sequences: [StateKey: PartialSequence] = [:]
    var windows: [StateKey: ThresholdWindow] = [:]

    init(definition: String) {
        self.definition = definition
    }

    func dropSession(_ session: String) {
        for (key, p) in sequences where p.sessionID == session { sequences[key] = nil }
        for (key, w) in windows where w.sessionID == session { windows[key] = nil }
    }

    /// Makes room: forgets sessions whose window has passed with nothing counted, then, if
    /// that is not enough, the tenth that fired longest ago.
    func evictSuppression(now: Int64, window: Int64) {
        for (key, s) in suppression where s.count == 0 && now - s.lastFiredNs >= window { suppression[key] = nil }
        guard suppression.count >= Detector.maxKeysPerRule else { return }
        let oldest = suppression.sorted { $0.value.lastFiredNs < $1.value.lastFiredNs }.prefix(Detector.maxKeysPerRule / 10)
        for (key, _) in oldest { suppression[key] = nil }
    }
}

/// Suppression of one rule in one session.
struct Suppression {
    var lastFiredNs: Int64
    var count = 0
    var evidence: [UInt64] = []
    var lastSeq: UInt64 = 0

    mutating func count(_ seq: UInt64) {
        count += 1
        lastSeq = seq
        if evidence.count == Detector.maxEvidence { evidence.removeFirst() }
        evidence.append(seq)
    }
}

/// The values of a rule's `by` fields for one record. The first two are held apart so the
/// usual keys (`session.id`, or it and an address) need no array, hence no allocation.
struct StateKey: Hashable {
    let first: RuleValue
    let second: RuleValue?
    let rest: [RuleValue]
}
