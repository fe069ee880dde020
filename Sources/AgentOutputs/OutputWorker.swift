import AgentRecords
import AgentSupport
import Glibc
import Logging
import Synchronization

/// Which records a sink takes.
package enum RecordFilter: String, Sendable, CaseIterable {
    case all
    /// `alert` records only.
    case alerts
}

/// One output: a destination, the records it takes, a bounded queue, an optional disk spool and
/// a thread of its own. The reader thread only copies batches into the queue, so a slow or dead
/// destination never stalls it or another sink. The worker delivers in order: the spool first
/// (everything older), then memory; while a destination is down, memory moves to the spool;
/// what fits nowhere is dropped, counted, and reported by the daemon as `agent.loss`.
public final class OutputWorker: @unchecked Sendable {
    package let name: String
    package let destination: any OutputTransport
    package let filter: RecordFilter
    let queue: OutputQueue
    let spool: Spool?
    let logger: Logger
    let flushIntervalNs: Int64
    /// How long `stop` keeps trying a destination that does not take the rest.
    let stopTimeoutNs: Int64 = 5_000_000_000
    private let done = Atomic<Bool>(false)
    /// The last drain request the worker has finished.
    private let drained = Atomic<UInt64>(0)
    private let stats = Mutex(OutputStats())

    package init(name: String, destination: any OutputTransport, filter: RecordFilter, queueBytes: Int,
                spoolDirectory: String?, spoolBytes: Int, flushIntervalMs: Int, logger: Logger) throws(AgentError) {
        self.name = name
        self.destination = destination
        self.filter = filter
        queue = OutputQueue(limit: queueBytes)
        spool = try spoolDirectory.map { dir throws(AgentError) in try Spool(directory: dir, maxBytes: spoolBytes) }
        self.logger = logger
        flushIntervalNs = Int64(flushIntervalMs) * 1_000_000
    }

    package func start() {
        startThread(name: "agentwatch-sink") { [self] in run() }
    }

    /// From the reader thread: the lines this sink takes, copied into its queue.
    func push(_ lines: UnsafeRawBufferPointer) {
        switch filter {
        case .all:
            queue.push(lines)
        case .alerts:
            var picked: [UInt8] = []
            RecorderLine.forEach(in: lines) { line in
                if RecorderLine.type(of: line).elementsEqual(RecorderLine.alertType) {
                    picked.append(contentsOf: line)
                    picked.append(0x0A)
                }
            }
            if !picked.isEmpty { picked.withUnsafeBytes { queue.push($0) } }
        }
    }

    package func reopen() { queue.requestReopen() }

    /// Delivers what is queued (within `stopTimeoutNs`; the rest goes to the spool when there
    /// is one, else is lost and logged), closes, and returns once the worker has ended.
    package func stop() {
        queue.requestStop()
        while !done.load(ordering: .acquiring) { usleep(2_000) }
    }

    /// Delivers what is queued now (within `stopTimeoutNs`; what is left then goes to the spool
    /// when there is one, else is dropped and counted for `takeDrops`) and returns once the
    /// worker has, or has ended. The daemon drains before its last records, so what an output
    /// could not keep at stop is in the stream as `agent.loss` before `agent.stop`.
    package func drain() {
        let ticket = queue.requestDrain()
        while drained.load(ordering: .acquiring) < ticket && !done.load(ordering: .acquiring) { usleep(2_000) }
    }

    public func takeDrops() -> OutputDrops { queue.takeDrops() }

    /// Bytes queued or being delivered (not spooled): how far the sink is behind.
    public var backlogBytes: Int { queue.held.load(ordering: .relaxed) }

    public var counters: OutputStats { stats.withLock { $0 } }

    // MARK: the worker

    private var pending: [[UInt8]] = []
    private var isOpen = false
    private var retryAtNs: Int64 = 0
    private var backoffNs: Int64 = 250_000_000
    /// Retries back off up to this: a second for a local file (a full disk frees up), 30 s for
    /// a remote receiver.
    private lazy var maxBackoffNs: Int64 = destination is FileTransport ? 1_000_000_000 : 30_000_000_000
    private var lastError = ""

    private func run() {
        var nextFlush = WallClock.monotonicNs() + flushIntervalNs
        var stopping = false
        var stopDeadline = Int64.max
        // A drain in progress: its ticket and deadline.
        var draining: UInt64 = 0
        var drainDeadline = Int64.max
        while true {
            let now = WallClock.monotonicNs()
            var wake = now + 1_000_000_000
            if flushIntervalNs > 0 { wake = min(wake, nextFlush) }
            if !isOpen { wake = min(wake, retryAtNs) }
            if !pending.isEmpty || (spool.map { !$0.isEmpty } ?? false) { wake = min(wake, isOpen ? now : retryAtNs) }
            let take = queue.take(deadlineNs: max(wake, now))
            pending += take.batches
            if take.reopen && isOpen {
                destination.close()
                isOpen = false
                retryAtNs = 0
            }
            if take.stop && !stopping {
                stopping = true
                stopDeadline = WallClock.monotonicNs() + stopTimeoutNs
            }
            if take.drain > draining {
                draining = take.drain
                drainDeadline = WallClock.monotonicNs() + stopTimeoutNs
            }
            if !isOpen && WallClock.monotonicNs() >= retryAtNs { openDestination() }
            if isOpen {
                deliverAll()
            } else if let spool, !pending.isEmpty {
                toSpool(spool)
            }
            if isOpen {
                do {
                    try destination.maintain()
                    if flushIntervalNs > 0 && WallClock.monotonicNs() >= nextFlush {
                        try destination.flush()
                        nextFlush = WallClock.monotonicNs() + flushIntervalNs
                    }
                } catch {
                    failed(error.reason)
                }
            }
            let empty = pending.isEmpty && (spool?.isEmpty ?? true)
            if draining > drained.load(ordering: .relaxed) && (empty || WallClock.monotonicNs() >= drainDeadline) {
                giveUpPending()
                drained.store(draining, ordering: .releasing)
            }
            if stopping && (empty || WallClock.monotonicNs() >= stopDeadline) { break }
        }
        // Stopping: keep what is left on disk or say it is lost.
        giveUpPending()
        let lost = queue.takeDrops()
        if lost.records > 0 {
            logger.error("sink \(name): \(lost.records) records (seq \(lost.firstSeq)-\(lost.lastSeq)) not delivered to \(destination.description) at stop")
        }
        if let spool, !spool.isEmpty {
            logger.warning("sink \(name): \(spool.bytes) bytes left in the spool, delivered at the next start")
        }
        pending = []
        destination.close()
        done.store(true, ordering: .releasing)
    }

    /// Flushes, then what is still pending goes to the spool, or is dropped and counted.
    private func giveUpPending() {
        if isOpen { try? destination.flush() }
        if let spool, !pending.isEmpty { toSpool(spool) }
        for b in pending {
            b.withUnsafeBytes { queue.dropped($0) }
            _ = queue.held.subtract(b.count, ordering: .relaxed)
        }
        pending = []
    }

    private func openDestination() {
        do {
            try destination.open()
            isOpen = true
            backoffNs = 250_000_000
            if !lastError.isEmpty { logger.info("sink \(name): \(destination.description) is back") }
            lastError = ""
            stats.withLock { $0.connected = true; $0.opens += 1 }
        } catch {
            failed(error.message)
        }
    }

    private func failed(_ reason: String) {
        if isOpen { destination.close() }
        isOpen = false
        retryAtNs = WallClock.monotonicNs() + backoffNs
        backoffNs = min(backoffNs * 2, maxBackoffNs)
        if reason != lastError {
            logger.error("sink \(name): \(reason); retrying\(spool == nil ? "" : ", spooling to \(spool!.directory)")")
            lastError = reason
        }
        stats.withLock { $0.connected = false; $0.errors += 1; $0.lastError = reason }
    }

    /// Spool first (older), then memory; stops at the first failure.
    private func deliverAll() {
        if let spool {
            // Everything new goes behind what is already spooled.
            if !spool.isEmpty && !pending.isEmpty { toSpool(spool) }
            while isOpen, let count = spool.peek(max: 4 << 20) {
                let n = spool.front.withUnsafeBytes { send(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                if n > 0 { spool.consume(n) }
                if n < count { return }
            }
        }
        while isOpen, !pending.isEmpty {
            let batch = pending[0]
            let n = batch.withUnsafeBytes { send($0) }
            _ = queue.held.subtract(n, ordering: .relaxed)
            if n == batch.count {
                pending.removeFirst()
            } else {
                pending[0] = Array(batch[n...])
                if let spool { toSpool(spool) }
                return
            }
        }
    }

    /// Delivers `lines`; returns the bytes delivered (all of them unless it failed).
    private func send(_ lines: UnsafeRawBufferPointer) -> Int {
        do {
            try destination.deliver(lines)
            count(lines, delivered: lines.count)
            return lines.count
        } catch {
            count(lines, delivered: error.delivered)
            failed(error.reason)
            return error.delivered
        }
    }

    private func count(_ lines: UnsafeRawBufferPointer, delivered: Int) {
        guard delivered > 0 else { return }
        var records: UInt64 = 0
        RecorderLine.forEach(in: UnsafeRawBufferPointer(rebasing: lines[0..<delivered])) { _ in records += 1 }
        stats.withLock { $0.records += records; $0.bytes += UInt64(delivered) }
    }

    private func toSpool(_ spool: Spool) {
        for b in pending {
            let rest = b.withUnsafeBytes { spool.append($0) }
            if !rest.isEmpty { rest.withUnsafeBytes { queue.dropped($0) } }
            _ = queue.held.subtract(b.count, ordering: .relaxed)
        }
        pending = []
        stats.withLock { $0.spooledBytes = UInt64(spool.bytes) }
    }
}

/// What a sink has done, for `agent.stop`, status and tests.
public struct OutputStats: Sendable, Equatable {
    public var records: UInt64 = 0
    public var bytes: UInt64 = 0
    public var errors: UInt64 = 0
    package var opens: UInt64 = 0
    package var connected = false
    package var spooledBytes: UInt64 = 0
    package var lastError = ""
}
