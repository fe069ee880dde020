/// Sequence rules: steps matched across records, keyed by the values of `by` fields, all
/// within a window of record time.
extension Detector {
    func advanceSequences(_ i: Int, _ spec: SequenceSpec, _ emit: (Alert) -> Void, _ fetch: Fetch) {
        // Most records match no step: find out before touching any state.
        var matched: UInt32 = 0
        let cache = self.cache
        spec.conditions.withUnsafeBufferPointer { conditions in
            for k in conditions.indices where conditions[k]._withUnsafeGuaranteedRef({ $0.matches(cache, fetch) }) {
                matched |= 1 << UInt32(k)
            }
        }
        guard matched != 0, !(programs[i].exceptions?.matches(cache, fetch) ?? false) else { return }
        // Steps may key on different fields; group the matched steps by the key they give.
        // Usually all give one key, which needs no array.
        var first: (key: StateKey, steps: UInt32)?
        var more: [(key: StateKey, steps: UInt32)] = []
        for (k, step) in spec.steps.enumerated() where matched & (1 << UInt32(k)) != 0 {
            guard let key = key(step.by, fetch) else { continue }
            if first == nil {
                first = (key, 1 << UInt32(k))
            } else if first!.key == key {
                first!.steps |= 1 << UInt32(k)
            } else if let g = more.firstIndex(where: { $0.key == key }) {
                more[g].steps |= 1 << UInt32(k)
            } else {
                more.append((key, 1 << UInt32(k)))
            }
        }
        guard let first else { return }
        let state = states[i]
        let now = cache.timeNs
        func advance(_ key: StateKey, _ steps: UInt32) {
            if let p = state.sequences[key], now - p.startNs > spec.withinNs { state.sequences[key] = nil }
            if state.sequences[key] != nil {
                let progressed = spec.ordered
                    ? state.sequences[key]!.advanceOrdered(steps: steps, seq: cache.seq)
                    : state.sequences[key]!.placeUnordered(steps: steps, seq: cache.seq)
                if progressed, state.sequences[key]!.isComplete, let done = state.sequences.removeValue(forKey: key) {
                    fire(i, evidence: done.evidence, emit, fetch)
                }
            } else if !spec.ordered || steps & 1 != 0 {
                if state.sequences.count >= Self.maxKeysPerRule { state.evictSequences(now: now, within: spec.withinNs) }
                var p = PartialSequence(steps: spec.steps.count, startNs: now, sessionID: cache.sessionID)
                _ = spec.ordered ? p.advanceOrdered(steps: steps, seq: cache.seq) : p.placeUnordered(steps: steps, seq: cache.seq)
                state.sequences[key] = p
            }
        }
        advance(first.key, first.steps)
        for (key, steps) in more { advance(key, steps) }
    }
}

/// A sequence matched part of the way for one key. A record fills at most one step of it.
struct PartialSequence {
    /// Record time of the oldest step matched: the window runs from here.
    let startNs: Int64
    /// Ordered: the next step to match.
    var next = 0
    /// Steps filled, as bits.
    var filled: UInt32 = 0
    let stepCount: Int
    /// The seq that filled each step (0: not yet).
    var evidence: [UInt64]
    /// Unordered: every step the record filling each step could have filled, so a later
    /// record that fits only an occupied step can move the occupant elsewhere.
    var options: [UInt32]
    let sessionID: String

    init(steps: Int, startNs: Int64, sessionID: String) {
        stepCount = steps
        self.startNs = startNs
        evidence = [UInt64](repeating: 0, count: steps)
        options = [UInt32](repeating: 0, count: steps)
        self.sessionID = sessionID
    }

    var isComplete: Bool { filled.nonzeroBitCount == stepCount }

    /// Only the next step counts; a repeat of an earlier step keeps the oldest live match.
    mutating func advanceOrdered(steps: UInt32, seq: UInt64) -> Bool {
        guard steps & (1 << UInt32(next)) != 0 else { return false }
        evidence[next] = seq
        filled |= 1 << UInt32(next)
        next += 1
        return true
    }

    /// Gives the record a step it matched, moving earlier records between the steps they
    /// matched if that frees one (an augmenting path, as in bipartite matching). Steps
    /// already filled keep their oldest records otherwise.
    mutating func placeUnordered(steps: UInt32, seq: UInt64) -> Bool {
        var visited: UInt32 = 0
        return place(steps: steps, seq: seq, visited: &visited)
    }

    private mutating func place(steps: UInt32, seq: UInt64, visited: inout UInt32) -> Bool {
        var candidates = steps & ~visited
        while candidates != 0 {
            let k = candidates.trailingZeroBitCount
            candidates &= candidates - 1
            visited |= 1 << UInt32(k)
            if filled & (1 << UInt32(k)) == 0 {
                put(k, steps, seq)
                return true
            }
            let (occupant, occupantSteps) = (evidence[k], options[k])
            if place(steps: occupantSteps & ~(1 << UInt32(k)), seq: occupant, visited: &visited) {
                put(k, steps, seq)
                return true
            }
        }
        return false
    }

    private mutating func put(_ k: Int, _ steps: UInt32, _ seq: UInt64) {
        evidence[k] = seq
        options[k] = steps
        filled |= 1 << UInt32(k)
    }
}

extension RuleState {
    /// Makes room: drops expired partial matches, then the tenth that started longest ago.
    func evictSequences(now: Int64, within: Int64) {
        sequences.evictStale(now: now, within: within, limit: Detector.maxKeysPerRule) { $0.startNs }
    }
}

extension Dictionary {
    /// Bounds per-key rule state: drops entries whose time has left the window, then, while
    /// still at `limit`, the tenth with the oldest time.
    mutating func evictStale(now: Int64, within: Int64, limit: Int, time: (Value) -> Int64) {
        for (key, value) in self where now - time(value) > within { self[key] = nil }
        guard count >= limit else { return }
        for (key, _) in sorted(by: { time($0.value) < time($1.value) }).prefix(limit / 10) { self[key] = nil }
    }
}
