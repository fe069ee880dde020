import AgentRecords
import Glibc
import Synchronization

/// The hand-over between the reader thread and one sink's worker: batches of whole record
/// lines, bounded in bytes. `push` only copies; it never waits for the worker. What does not fit
/// is dropped here and counted, with the seq range, for an `agent.loss` record.
final class OutputQueue: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let ready = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var batches: [[UInt8]] = []
    private var stopRequested = false
    private var reopenRequested = false
    /// Bumped by each `requestDrain`; the worker answers by storing it in `drained`.
    private var drainRequested: UInt64 = 0
    private var drainSeen: UInt64 = 0
    /// Bytes the sink holds in memory: queued here plus taken by the worker and not yet
    /// delivered or spooled. The worker lowers it as it gets rid of bytes.
    let held = Atomic<Int>(0)
    let limit: Int
    /// Records dropped because `held` was at the limit, not yet reported.
    private var drops = OutputDrops()

    init(limit: Int) {
        self.limit = limit
        pthread_mutex_init(lock, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(ready, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(ready)
        pthread_mutex_destroy(lock)
        lock.deallocate()
        ready.deallocate()
    }

    /// Queues `lines` (whole lines) when they fit below the limit; an `agent.loss` line always
    /// fits (the record that reports a loss must not be lost to it). Otherwise drops and counts.
    func push(_ lines: UnsafeRawBufferPointer) {
        guard lines.count > 0 else { return }
        let fits = held.load(ordering: .relaxed) + lines.count <= limit
        pthread_mutex_lock(lock)
        if fits {
            batches.append(Array(lines))
            held.add(lines.count, ordering: .relaxed)
            pthread_cond_signal(ready)
        } else {
            var kept: [UInt8] = []
            RecorderLine.forEach(in: lines) { line in
                if RecorderLine.type(of: line).elementsEqual(RecorderLine.lossType) {
                    kept.append(contentsOf: line)
                    kept.append(0x0A)
                } else {
                    drops.add(line)
                }
            }
            if !kept.isEmpty {
                held.add(kept.count, ordering: .relaxed)
                batches.append(kept)
                pthread_cond_signal(ready)
            }
        }
        pthread_mutex_unlock(lock)
    }

    /// Counts lines the worker itself had to give up (a full spool, a stop that timed out).
    func dropped(_ lines: UnsafeRawBufferPointer) {
        pthread_mutex_lock(lock)
        drops.add(lines)
        pthread_mutex_unlock(lock)
    }

    /// Drops counted since the last call.
    func takeDrops() -> OutputDrops {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        let d = drops
        drops = OutputDrops()
        return d
    }

    func requestStop() { signal { $0.stopRequested = true } }
    func requestReopen() { signal { $0.reopenRequested = true } }
    /// Asks the worker to deliver what it holds now, or give it up (spooled or dropped and
    /// counted) by its stop deadline, and to say so; returns the number it will answer with.
    func requestDrain() -> UInt64 {
        var n: UInt64 = 0
        signal { $0.drainRequested += 1; n = $0.drainRequested }
        return n
    }

    private func signal(_ change: (OutputQueue) -> Void) {
        pthread_mutex_lock(lock)
        change(self)
        pthread_cond_signal(ready)
        pthread_mutex_unlock(lock)
    }

    /// What the worker gets from one wait.
    struct Take {
        var batches: [[UInt8]]
        var stop: Bool
        var reopen: Bool
        /// The latest drain request (0: none yet).
        var drain: UInt64
    }

    /// Waits until there is something to do or `deadlineNs` (CLOCK_MONOTONIC) passes.
    func take(deadlineNs: Int64) -> Take {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        while batches.isEmpty && !stopRequested && !reopenRequested && drainRequested == drainSeen {
            var ts = timespec(tv_sec: Int(deadlineNs / 1_000_000_000), tv_nsec: Int(deadlineNs % 1_000_000_000))
            if pthread_cond_timedwait(ready, lock, &ts) == ETIMEDOUT { break }
        }
        let t = Take(batches: batches, stop: stopRequested, reopen: reopenRequested, drain: drainRequested)
        drainSeen = drainRequested
        batches = []
        reopenRequested = false
        return t
    }
}

