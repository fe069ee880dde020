import Synchronization

/// A point one part of the daemon reaches once, that other parts wait for: the control socket
/// bound (before the capture loop starts, so a daemon that captures answers its socket), the
/// capture loop capturing (before metrics and the status line report on it). `reach(false)`
/// says the point will never come (the part ended first); waiters are never left hanging.
final class Readiness: Sendable {
    private struct State {
        var reached: Bool?
        var waiters: [CheckedContinuation<Bool, Never>] = []
    }
    private let state = Mutex(State())

    init() {}

    /// The first call counts.
    func reach(_ reached: Bool = true) {
        let waiters = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            guard s.reached == nil else { return [] }
            s.reached = reached
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: reached) }
    }

    /// Whether the point was reached; waits until it is, or will not be.
    func wait() async -> Bool {
        await withCheckedContinuation { c in
            let now = state.withLock { s -> Bool? in
                if s.reached == nil { s.waiters.append(c) }
                return s.reached
            }
            if let now { c.resume(returning: now) }
        }
    }
}
