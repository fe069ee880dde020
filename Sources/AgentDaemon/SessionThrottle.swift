import AgentSessions
import AgentSupport
import CLibbpf  // eventfd
import Glibc
import Logging
import Synchronization

/// What the daemon does when sessions write records faster than it reads them (`overflow`).
package enum OverflowMode: String, Sendable, CaseIterable {
    /// The sessions writing the records are paused (cgroup v2 freezer) until the ring drains.
    case throttle
    /// Records that do not fit are dropped, each counted (`agent.loss`).
    case drop
}

/// Throttles the sessions that fill the ring buffer, never the host.
///
/// The reader looks at how much waits in the ring (two positions in its mapped pages, no
/// system call) every `lookEvery` records and whenever a drain ends. Above the high-water mark
/// it pauses each session that wrote records in the last second (`cgroup.freeze` on the
/// session's cgroup: the whole tree below it stops at its next return to user space); at or
/// below the low-water mark it resumes them. The kernel programs wake the reader when the
/// waiting bytes reach the mark (`wakeup_bytes`, the same quarter of the ring), so a pause
/// begins within one drain of the reader's. Processes outside sessions are never paused: only
/// session cgroups are written.
///
/// Deadlock, by design impossible to wait into:
/// - a paused task stops in the freezer's signal path, holding no kernel lock the daemon's
///   reads of /proc or of its files could wait on;
/// - the capture loop never waits on a session's process: outputs have their own threads and
///   bounded queues, catalog scans run on their own thread with a bounded wait, control
///   connections are non-blocking with deadlines;
/// - whatever the loop does, a pause ends within `maxPauseNs`: `PauseGuard`'s own thread
///   resumes a session paused that long, and says so;
/// - the sessions a stopping daemon paused are resumed before it detaches; the ones a killed
///   daemon left paused are named in the runtime directory (`throttled`) and resumed by the
///   next start.
final class SessionThrottle {
    let mode: OverflowMode
    let highBytes: UInt64
    let lowBytes: UInt64
    let maxPauseNs: Int64
    /// Records between two looks at the ring.
    static let lookEvery = 64
    /// A pause longer than this is logged.
    static let longPauseNs: Int64 = 1_000_000_000
    /// How long a session counts as writing after its last record.
    static let activeWindowNs: Int64 = 1_000_000_000

    private let logger: Logger
    private let pauses: PauseGuard
    /// Bytes waiting in the ring now.
    private let waiting: () -> UInt64
    /// The live session of a cgroup id.
    private let session: (UInt64) -> Session?
    /// Sessions with records in this window and the last, and when this one began.
    private var active: Set<UInt64> = []
    private var previous: Set<UInt64> = []
    private var windowStartNs: Int64 = 0
    /// The last record's session: a run of one session's records costs one compare each.
    private var lastSession: UInt64 = 0
    private var sinceLook = 0
    /// Sessions paused now (the loop's view; `pauses` holds their descriptors and deadlines).
    private var paused: [UInt64: Int64] = [:]
    private(set) var totalPauses: UInt64 = 0
    private(set) var totalPausedNs: Int64 = 0
    /// Pauses `PauseGuard` ended at `maxPauseNs` because the ring did not drain.
    private(set) var forcedResumes: UInt64 = 0
    /// Sessions whose pause the guard ended: not paused again until the ring drains below the
    /// low-water mark (what they write meanwhile may be dropped, and is counted).
    private var exempt: Set<UInt64> = []
    /// Whether a session was paused or resumed since the last `takeChanged`.
    private var changed = false
    /// The runtime directory's list of the cgroups paused now.
    static let pausedFile = "throttled"

    init(mode: OverflowMode, ringBytes: UInt64, maxPauseNs: Int64, logger: Logger,
         waiting: @escaping () -> UInt64, session: @escaping (UInt64) -> Session?) {
        self.mode = mode
        self.waiting = waiting
        self.session = session
        highBytes = ringBytes / 4
        lowBytes = ringBytes / 16
        self.maxPauseNs = maxPauseNs
        self.logger = logger
        pauses = PauseGuard()
    }

    deinit { pauses.stop() }

    var pausedNow: Int { paused.count }

    /// After the pipeline took a record of `session` (0: none).
    @inline(__always)
    func noted(session cgid: UInt64) {
        guard mode == .throttle else { return }
        if cgid != 0 && cgid != lastSession {
            lastSession = cgid
            active.insert(cgid)
        }
        sinceLook &+= 1
        if sinceLook >= Self.lookEvery { look() }
    }

    /// Pauses or resumes by what waits in the ring now; ends pauses the guard ended.
    func look() {
        guard mode == .throttle else { return }
        let waiting = waiting()
        sinceLook = 0
        let now = WallClock.monotonicNs()
        if now - windowStartNs >= Self.activeWindowNs {
            previous = active
            active = []
            lastSession = 0
            windowStartNs = now
        }
        takeForced(nowNs: now)
        if waiting >= highBytes {
            for cgid in active.union(previous) where paused[cgid] == nil && !exempt.contains(cgid) {
                guard let s = session(cgid) else { continue }
                if let error = pauses.pause(cgid: cgid, path: s.path, nowNs: now, deadlineNs: now + maxPauseNs) {
                    logger.warning("cannot pause session \(s.id) (\(s.path)/cgroup.freeze): \(error)")
                    continue
                }
                paused[cgid] = now
                changed = true
                s.pauses += 1
                totalPauses += 1
            }
        } else if waiting <= lowBytes {
            if !paused.isEmpty { resumeAll(nowNs: now) }
            exempt = []
        }
    }

    /// Accounts the pauses the guard ended at their deadline.
    private func takeForced(nowNs: Int64) {
        for ended in pauses.takeForced() {
            forcedResumes += 1
            exempt.insert(ended.cgid)
            logger.error("session cgroup \(ended.path) stayed paused \(maxPauseNs / 1_000_000) ms while the ring did not drain: resumed, and not paused again until it drains; what does not fit meanwhile is dropped and counted")
            account(ended.cgid, sinceNs: ended.sinceNs, nowNs: nowNs)
        }
    }

    /// Resumes every paused session (the ring drained, or the daemon stops).
    func resumeAll(nowNs: Int64 = WallClock.monotonicNs()) {
        for (cgid, since) in paused {
            if pauses.resume(cgid: cgid) { account(cgid, sinceNs: since, nowNs: nowNs) }
        }
        paused = [:]
    }

    /// A session about to end: its pause, if any, ends with it.
    func ending(_ s: Session) {
        guard let since = paused.removeValue(forKey: s.cgid) else { return }
        if pauses.resume(cgid: s.cgid) { account(s.cgid, sinceNs: since, nowNs: WallClock.monotonicNs(), session: s) }
    }

    private func account(_ cgid: UInt64, sinceNs: Int64, nowNs: Int64, session known: Session? = nil) {
        paused[cgid] = nil
        changed = true
        let ns = max(0, nowNs - sinceNs)
        totalPausedNs += ns
        let s = known ?? session(cgid)
        s?.pausedNs += ns
        if ns >= Self.longPauseNs {
            logger.warning("session \(s?.id ?? "\(cgid)") was paused \(ns / 1_000_000) ms: the daemon read its records slower than it wrote them")
        }
    }

    func takeChanged() -> Bool {
        defer { changed = false }
        return changed
    }

    /// Writes 0 to the cgroup.freeze of the cgroup at `path`; whether it was frozen before.
    static func thaw(_ path: String) -> Bool {
        let fd = open(path + "/cgroup.freeze", O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var was: UInt8 = 0
        _ = pread(fd, &was, 1, 0)
        return PauseGuard.write(fd, frozen: false) && was == 0x31
    }

    /// The cgroups paused now, for the runtime directory's `throttled`.
    var pausedPaths: [String] { pauses.paths }

    func stop() {
        takeForced(nowNs: WallClock.monotonicNs())
        resumeAll()
        pauses.stop()
    }
}

/// The paused cgroups' `cgroup.freeze` descriptors and deadlines, shared between the capture
/// loop and a thread of its own that resumes a pause the loop did not end in time. The thread
/// sleeps in poll(2) until the nearest deadline, or for good while nothing is paused.
final class PauseGuard: Sendable {
    struct Paused: Sendable {
        let path: String
        let fd: Int32
        let sinceNs: Int64
        let deadlineNs: Int64
    }
    struct Forced: Sendable {
        let cgid: UInt64
        let path: String
        let sinceNs: Int64
    }
    private struct State: Sendable {
        var paused: [UInt64: Paused] = [:]
        var forced: [Forced] = []
        var stopping = false
        /// The thread starts with the first pause: a daemon that never pauses has none.
        var started = false
    }
    private let state = Mutex(State())
    /// Wakes the thread when a pause begins or the guard stops.
    private let wake: Int32

    init() { wake = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
    deinit { close(wake) }


    /// Freezes the cgroup at `path`; an error's text, or nil.
    func pause(cgid: UInt64, path: String, nowNs: Int64, deadlineNs: Int64) -> String? {
        let fd = open(path + "/cgroup.freeze", O_WRONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        guard Self.write(fd, frozen: true) else {
            let e = errno
            close(fd)
            return String(cString: strerror(e))
        }
        let start = state.withLock { s -> Bool in
            s.paused[cgid] = Paused(path: path, fd: fd, sinceNs: nowNs, deadlineNs: deadlineNs)
            defer { s.started = true }
            return !s.started && !s.stopping
        }
        if start { startThread(name: "agentwatch-pause") { [self] in run() } }
        signal()
        return nil
    }

    /// Thaws `cgid` if this call ended its pause (not the thread, not an earlier call).
    func resume(cgid: UInt64) -> Bool {
        guard let p = state.withLock({ $0.paused.removeValue(forKey: cgid) }) else { return false }
        _ = Self.write(p.fd, frozen: false)
        close(p.fd)
        return true
    }

    /// Pauses the thread ended since the last call.
    func takeForced() -> [Forced] {
        state.withLock { s in
            guard !s.forced.isEmpty else { return [] }
            defer { s.forced = [] }
            return s.forced
        }
    }

    var paths: [String] { state.withLock { $0.paused.values.map(\.path) }.sorted() }

    func stop() {
        state.withLock { $0.stopping = true }
        signal()
    }

    private func signal() {
        var one: UInt64 = 1
        _ = Glibc.write(wake, &one, 8)
    }

    static func write(_ fd: Int32, frozen: Bool) -> Bool {
        let byte: [UInt8] = [frozen ? 0x31 : 0x30, 0x0A]
        return pwrite(fd, byte, 2, 0) == 2
    }

    private func run() {
        while true {
            let now = WallClock.monotonicNs()
            let (stopping, due, next) = state.withLock { s -> (Bool, [(UInt64, Paused)], Int64?) in
                let due = s.paused.filter { $0.value.deadlineNs <= now }
                for (cgid, p) in due {
                    s.paused[cgid] = nil
                    s.forced.append(Forced(cgid: cgid, path: p.path, sinceNs: p.sinceNs))
                }
                return (s.stopping, due.map { ($0.key, $0.value) }, s.paused.values.map(\.deadlineNs).min())
            }
            for (_, p) in due {
                _ = Self.write(p.fd, frozen: false)
                close(p.fd)
            }
            if stopping { return }
            var pfd = pollfd(fd: wake, events: Int16(POLLIN), revents: 0)
            let timeout = next.map { Int32(clamping: max(1, ($0 - now + 999_999) / 1_000_000)) } ?? -1
            _ = poll(&pfd, 1, timeout)
            var drained: UInt64 = 0
            _ = read(wake, &drained, 8)
        }
    }
}
