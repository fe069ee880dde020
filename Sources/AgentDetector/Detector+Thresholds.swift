/// Threshold rules: a sum (or count) over a sliding window of record time, per key.
extension Detector {
    func addToWindow(_ i: Int, _ spec: ThresholdSpec, _ emit: (Alert) -> Void, _ fetch: Fetch) {
        var amount: Int64 = 1
        if let sumSlot = spec.sum {
            guard case .int(let v)? = cache.value(sumSlot, fetch) else { return }
            amount = v
        }
        guard let key = key(spec.by, fetch) else { return }
        let state = states[i]
        let now = cache.timeNs
        if state.windows[key] == nil {
            if state.windows.count >= Self.maxKeysPerRule { state.evictWindows(now: now, within: spec.withinNs) }
            state.windows[key] = ThresholdWindow(sessionID: cache.sessionID)
        }
        let over = state.windows[key]!.add(now: now, amount: amount, seq: cache.seq, within: spec.withinNs) > spec.over
        guard over, let window = state.windows.removeValue(forKey: key) else { return }
        // The window restarts empty whether or not suppression lets the alert out.
        fire(i, evidence: window.recentSeqs(Self.maxEvidence), emit, fetch)
    }
}

/// The records of one key inside a threshold's window, oldest first.
struct ThresholdWindow {
    struct Entry {
        var timeNs: Int64
        var amount: Int64
        var seq: UInt64
    }

    /// Entries before `head` have left the window; they are compacted away in batches.
    var entries: [Entry] = []
    var head = 0
    var sum: Int64 = 0
    let sessionID: String
    /// Past this many live entries the two oldest are merged, so a flood of small records
    /// cannot grow a window without bound; merged amounts stay until the newer one's time.
    static let maxEntries = 1024

    init(sessionID: String) {
        self.sessionID = sessionID
    }

    var newestNs: Int64 { entries.last?.timeNs ?? .min }

    /// Adds a record and drops what fell out of the window; returns the window's sum.
    package mutating func add(now: Int64, amount: Int64, seq: UInt64, within: Int64) -> Int64 {
        while head < entries.count, now - entries[head].timeNs > within {
            sum &-= entries[head].amount
            head += 1
        }
        entries.append(Entry(timeNs: now, amount: amount, seq: seq))
        sum &+= amount
        if entries.count - head > Self.maxEntries {
            entries[head + 1].amount &+= entries[head].amount
            head += 1
        }
        if head >= 256, head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
        return sum
    }

    func recentSeqs(_ limit: Int) -> [UInt64] {
        entries[max(head, entries.count - limit)...].map(\.seq)
    }
}

extension RuleState {
    /// Makes room: drops windows whose newest record has left the window, then the tenth
    /// that saw a record longest ago.
    func evictWindows(now: Int64, within: Int64) {
        windows.evictStale(now: now, within: within, limit: Detector.maxKeysPerRule) { $0.newestNs }
    }
}
