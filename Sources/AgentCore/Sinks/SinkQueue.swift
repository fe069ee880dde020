import Glibc
import Synchronization

/// The hand-over between the reader thread and one sink's worker: batches of whole record
/// lines, bounded in bytes. `push` only copies; it never waits for the worker. What does not fit
/// is dropped here and counted, with the seq range, for an `agent.loss` record.
final class SinkQueue: @unchecked Sendable {
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
    private var drops = SinkDrops()

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
            RecordLine.forEach(in: lines) { line in
                if RecordLine.type(of: line).elementsEqual(RecordLine.lossType) {
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
    func takeDrops() -> SinkDrops {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        let d = drops
        drops = SinkDrops()
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

    private func signal(_ change: (SinkQueue) -> Void) {
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

/// Records a sink could not keep: how many, the seq range they span, and their bytes.
public struct SinkDrops: Sendable, Equatable {
    public var records: UInt64 = 0
    public var bytes: UInt64 = 0
    public var firstSeq: UInt64 = 0
    public var lastSeq: UInt64 = 0

    public init() {}

    /// Counts each line of `lines` (whole lines, or one line without its newline).
    mutating func add(_ lines: UnsafeRawBufferPointer) {
        RecordLine.forEach(in: lines) { line in
            let seq = RecordLine.seq(of: line)
            if records == 0 || seq < firstSeq { firstSeq = seq }
            lastSeq = max(lastSeq, seq)
            records += 1
            bytes += UInt64(line.count + 1)
        }
    }

    mutating func merge(_ other: SinkDrops) {
        guard other.records > 0 else { return }
        firstSeq = records == 0 ? other.firstSeq : min(firstSeq, other.firstSeq)
        lastSeq = max(lastSeq, other.lastSeq)
        records += other.records
        bytes += other.bytes
    }
}

/// Reading the few fields a sink needs from a native v1 line without parsing it: the recorder
/// writes every line as `{"v":1,"seq":N,"time":"...","type":"T",...}`.
enum RecordLine {
    static let seqPrefix = Array("{\"v\":1,\"seq\":".utf8)
    static let typeKey = Array("\"type\":\"".utf8)
    static let alertType = Array("alert".utf8)
    static let lossType = Array("agent.loss".utf8)

    /// Calls `body` with each line of `lines` (newline excluded).
    @inline(__always)
    static func forEach(in lines: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        guard let base = lines.baseAddress else { return }
        var start = 0
        while start < lines.count {
            let rest = lines.count - start
            let nl = memchr(base + start, 0x0A, rest).map { $0 - UnsafeMutableRawPointer(mutating: base) } ?? lines.count
            body(UnsafeRawBufferPointer(rebasing: lines[start..<nl]))
            start = nl + 1
        }
    }

    /// The `seq` of a line; 0 when the line does not start like a record.
    static func seq(of line: UnsafeRawBufferPointer) -> UInt64 {
        guard line.count > seqPrefix.count, line.starts(with: seqPrefix) else { return 0 }
        var v: UInt64 = 0
        for b in line[seqPrefix.count...] {
            guard b >= 0x30 && b <= 0x39 else { break }
            v = v &* 10 &+ UInt64(b - 0x30)
        }
        return v
    }

    /// The seq and where the type is of a line whose header is exactly as the recorder writes
    /// it, `{"v":1,"seq":N,"time":"<RFC 3339>","type":"T",`: N without a leading zero and below
    /// 10^19, a time of digits and `-:T.Z` only (no escape can hide a quote). Nil otherwise.
    static func header(of line: UnsafeRawBufferPointer) -> (seq: UInt64, type: Range<Int>)? {
        guard line.count > seqPrefix.count, line.starts(with: seqPrefix) else { return nil }
        var i = seqPrefix.count
        var seq: UInt64 = 0
        while i < line.count, line[i] >= 0x30, line[i] <= 0x39, i - seqPrefix.count < 19 {
            seq = seq * 10 + UInt64(line[i] - 0x30)
            i += 1
        }
        guard i > seqPrefix.count, line[seqPrefix.count] != 0x30 || i == seqPrefix.count + 1,
              follows(timeKey, in: line, at: i) else { return nil }
        i += timeKey.count
        while i < line.count, line[i] != UInt8(ascii: "\"") {
            let c = line[i]
            guard (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x3A || c == 0x54 || c == 0x2E || c == 0x5A else { return nil }
            i += 1
        }
        guard follows(afterTime, in: line, at: i) else { return nil }
        i += afterTime.count
        var end = i
        while end < line.count, line[end] != UInt8(ascii: "\"") {
            guard line[end] != UInt8(ascii: "\\") else { return nil }
            end += 1
        }
        return end < line.count ? (seq, i..<end) : nil
    }

    static let timeKey = Array(",\"time\":\"".utf8)
    static let afterTime = Array("\",\"type\":\"".utf8)

    private static func follows(_ text: [UInt8], in line: UnsafeRawBufferPointer, at i: Int) -> Bool {
        line.count >= i + text.count && UnsafeRawBufferPointer(rebasing: line[i..<(i + text.count)]).elementsEqual(text)
    }

    /// The `type` of the first line in `lines` (looked for in its first 128 bytes).
    static func type(of lines: UnsafeRawBufferPointer) -> ArraySlice<UInt8> {
        let window = lines.prefix(128)
        guard let at = firstIndex(of: typeKey, in: window) else { return [] }
        let start = at + typeKey.count
        var end = start
        while end < window.count && window[end] != UInt8(ascii: "\"") { end += 1 }
        return ArraySlice(window[start..<end])
    }

    static func firstIndex(of needle: [UInt8], in hay: UnsafeRawBufferPointer.SubSequence) -> Int? {
        guard hay.count >= needle.count else { return nil }
        var i = hay.startIndex
        while i + needle.count <= hay.endIndex {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
