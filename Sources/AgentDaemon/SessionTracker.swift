import AgentDetector
import AgentPipeline
import AgentRecords
import AgentSensor
import AgentSessions
import AgentSupport
import CAgentEvents
import Glibc
import Logging

/// The sessions as the capture loop knows them: which cgroups below the session roots are
/// sessions, when each starts and ends, and whether the syscall hooks are needed. Lives on the
/// capture loop's thread.
///
/// It is called in two places, and does different things in each:
/// - Inside the ring-buffer callback (`session(for:)` and `cgroupMade`, from `Pipeline.handle`)
///   it reads the registry and writes what must stand at that point of the stream (the
///   `session.start` of a session met there for the first time, before its first record; the
///   alert of a process that left its session). Everything else it learns goes into `learned`.
///   It never changes the registry or the sensor there, and never drains the ring: the callback
///   runs inside `ring_buffer__consume`, which cannot be entered again from within (a session's
///   end waits for its last records, read after), and the registry and the sensor change in one
///   place, between batches, never in the middle of one.
/// - After the callback returns (`applyLearned`, which the loop calls after every `consume`) and
///   between two waits (`rescan`, `settle`), it changes the registry and the sensor.
final class SessionTracker: SessionSource {
    let registry: SessionRegistry
    let sensor: Sensor
    let logger: Logger
    /// The pipeline whose records the tracker writes (it holds the tracker unowned); set once,
    /// right after both are made.
    var pipeline: Pipeline!
    /// Watches the session roots for directories made and removed (the loop polls it).
    let inotifyFD: Int32

    /// What the callbacks learned, applied after them.
    private struct Learned {
        /// Sessions met in records before any scan saw them, in the order met; their
        /// `session.start` is written.
        var sessions: [Session] = []
        var byCgid: [UInt64: Session] = [:]
        /// mkdir notices of session directories below a pattern's root.
        var notices: [UInt64: SessionRegistry.MadeNotice] = [:]
        /// The kernel saw a root or a session directory made below a pattern: the syscall hooks
        /// are wanted now, and the next look announces the session.
        var made: Set<UInt64> = []
        var cgroupMade = false

        var isEmpty: Bool { sessions.isEmpty && !cgroupMade }
    }
    private var learned = Learned()
    /// Sessions whose cgroup went: their last records are still drained into them, then
    /// `settle` writes their `session.end`.
    private var ending: [Session] = []
    /// Session cgroups made for control callers, to be removed once empty.
    private var removeWhenEmpty: Set<String> = []
    /// Until when the syscall hooks stay attached without a session: a root or a session
    /// directory was just made below a pattern, and its first process is moments away.
    private var hooksHeldUntil: Int64 = 0
    /// Sessions (or roots) came or went since `takeChanged()`.
    private var changed = true
    /// Sessions the next look announces even without metadata (made below a pattern).
    private var forced: Set<UInt64> = []
    /// The daemon is stopping: the hooks are detached and stay so, whatever the last records
    /// drained say.
    var stopping = false
    /// The loop's throttle: a session's pause ends with it.
    var throttle: SessionThrottle?

    init(registry: SessionRegistry, sensor: Sensor, logger: Logger, catalogLimits: CredentialCatalog.Limits = .init()) throws(AgentError) {
        self.registry = registry
        self.catalogLimits = catalogLimits
        self.sensor = sensor
        self.logger = logger
        inotifyFD = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard inotifyFD >= 0 else { throw AgentError("inotify: \(String(cString: strerror(errno)))") }
    }

    deinit {
        scanner.stop()
        close(inotifyFD)
    }

    var recorder: Recorder { pipeline.recorder }
    var table: ProcessTable { pipeline.table }
    var clock: WallClock { pipeline.clock }
    func wallNow() -> Int64 { clock.wall(bootNs: WallClock.bootNow()) }

    // MARK: inside the ring-buffer callback

    /// The session of a record: known, or met now (its directory read, its `session.start`
    /// written, the rest queued), or, when its cgroup is already gone, a stand-in so that no
    /// record is dropped for want of a session.
    package func session(for cgid: UInt64) -> Session {
        if let s = registry.sessions[cgid] { return s }
        return meet(cgid)
    }

    @inline(never)
    private func meet(_ cgid: UInt64) -> Session {
        if let s = learned.byCgid[cgid] ?? ending.first(where: { $0.cgid == cgid }) { return s }
        let now = wallNow()
        let s = registry.lookUp(cgid: cgid, nowNs: now, notice: learned.notices[cgid]) ?? SessionRegistry.standIn(cgid: cgid, nowNs: now)
        learned.sessions.append(s)
        learned.byCgid[cgid] = s
        recorder.sessionRecord(.sessionStart, s, unixNs: s.startNs)
        return s
    }

    /// The kernel saw a root or a session directory made below a pattern's root, or a process
    /// moved to another cgroup.
    package func cgroupMade(_ notice: agent_cgroup) {
        if notice.op == AGENT_CGROUP_MOVED.rawValue {
            processMoved(notice)
            return
        }
        learned.cgroupMade = true
        guard notice.op == AGENT_CGROUP_SESSION_ADDED.rawValue else { return }
        learned.made.insert(notice.cgid)
        // Named now, while the directory is surely there, in case it is gone by the time its
        // first record is read.
        if !notice.nameTruncated {
            learned.notices[notice.cgid] = .init(name: notice.nameBytes, uid: notice.uid, parent: notice.parent_cgid)
        }
    }

    /// A process was moved to another cgroup. A session process moved out of its session (to
    /// no session, or to another) has left the record: an alert in the session it left, where
    /// the move is in the stream. A user-scope session cannot prevent it (the user owns those
    /// cgroups), nor can root's.
    private func processMoved(_ n: agent_cgroup) {
        guard let p = table.byPID[n.moved_pid], p.sessionCgid != n.parent_cgid else { return }
        table.remove(pid: n.moved_pid)
        guard let s = registry.sessions[p.sessionCgid] ?? learned.byCgid[p.sessionCgid] else { return }
        let mover = withUnsafeBytes(of: n.comm) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
        let target = n.nameText + (n.nameTruncated ? "… (cgroup id \(n.cgid))" : "")
        let into = n.parent_cgid == 0 ? "no session" : "session \(registry.sessions[n.parent_cgid]?.id ?? "cgroup-\(n.parent_cgid)")"
        let exe = String(decoding: p.exe, as: UTF8.self)
        recorder.daemonAlert(
            id: "agentwatch-session-left", title: "A process left its session: what it does next is not recorded",
            severity: .high, tags: ["attack.defense-evasion", "attack.t1562.001"],
            message: "process \(n.moved_pid) (\(exe)) left session \(s.id) for \(target) (\(into)); moved by process \(n.hdr.pid) (\(mover), uid \(n.uid))",
            session: s, process: p, tid: n.hdr.tid, unixNs: clock.wall(bootNs: n.hdr.ktime_ns))
        logger.warning("process \(n.moved_pid) left session \(s.id) for \(target)")
    }

    // MARK: after the callback

    /// What the callbacks learned goes into the registry and the sensor: sessions met in records
    /// become known and watched, and a cgroup made below a pattern attaches the syscall hooks
    /// at once, before the scope's first process execs (nothing waits on us there, unlike
    /// `agentwatch run`). Called by the loop after every `consume`.
    func applyLearned() {
        guard !learned.isEmpty else { return }
        let l = learned
        learned = Learned()
        for (cgid, n) in l.notices where l.byCgid[cgid] == nil { registry.noteMade(cgid: cgid, n) }
        for s in l.sessions { registry.admit(s) }
        forced.formUnion(l.made)
        if l.cgroupMade {
            hooksHeldUntil = WallClock.monotonicNs() + 2_000_000_000
            attachSyscallHooks(because: "a cgroup was made below a session root pattern")
        }
        if !l.sessions.isEmpty {
            attachSyscallHooks(because: "a session started")
            changed = true
            for s in l.sessions { watched(s, adopting: false) }
        }
    }

    /// Whether the next look should come now rather than on the timer: a cgroup was made below
    /// a pattern (the root is to be synced, the session announced).
    var wantsLook: Bool { !forced.isEmpty }

    /// Compares the session roots with the known sessions: announces new ones after the syscall
    /// hooks are attached (`adopting`: with the processes already in them, at start), and sets
    /// aside gone ones for `settle`, which comes after their last records are drained.
    func rescan(adopting: Bool = false) {
        syncRoots()
        let force = forced
        forced = []
        let (started, gone) = registry.scan(nowNs: wallNow(), adopting: adopting, force: force)
        ending += gone
        if !started.isEmpty || !gone.isEmpty { changed = true }
        // Sessions made through the control socket whose last process has gone.
        for p in removeWhenEmpty where rmdir(p) == 0 || errno == ENOENT { removeWhenEmpty.remove(p) }
        guard !started.isEmpty else { return }
        attachSyscallHooks(because: "a session started")
        for s in started {
            recorder.sessionRecord(.sessionStart, s, unixNs: s.startNs)
            watched(s, adopting: adopting)
        }
    }

    /// Whether sessions wait for their `session.end`: the loop drains the ring before `settle`.
    var hasEnding: Bool { !ending.isEmpty }

    /// After a look: writes the `session.end` of the sessions whose cgroup went (after their
    /// last records), and detaches the syscall hooks when no session is left or coming.
    func settle() {
        let gone = ending
        ending = []
        for s in gone {
            catalogs[s.cgid] = nil
            throttle?.ending(s)
            pipeline.endSession(s, unixNs: wallNow())
            recorder.sessionRecord(.sessionEnd, s, unixNs: wallNow(), ended: true, undecoded: sensor.takeUndecoded(session: s.cgid))
            table.removeSession(s.cgid)
            logger.info("session \(s.id) ended")
        }
        if registry.sessions.isEmpty && !registry.hasPending && sensor.syscallHooksAttached
            && WallClock.monotonicNs() >= hooksHeldUntil {
            sensor.detachSyscallHooks()
            logger.info("no session left: syscall hooks detached")
        }
    }

    /// A session cgroup made for a control caller, to be removed once its last process is gone.
    func removeOnceEmpty(_ path: String) { removeWhenEmpty.insert(path) }

    /// Whether the sessions or the roots changed since the last call (for what the control
    /// socket lists and checks).
    func takeChanged() -> Bool {
        defer { changed = false }
        return changed
    }

    /// A started session's log line, its catalog, its processes when adopted, and the mark
    /// `agentwatch run` waits for: the daemon watches it (its syscall hooks are attached).
    private func watched(_ s: Session, adopting: Bool) {
        logger.info("session \(s.id) started\(adopting ? " (already running)" : "") uid \(s.uid) cgroup \(s.cgroup)")
        scanCatalog(s, nowNs: WallClock.monotonicNs(), wait: true)
        if adopting {
            for pid in CgroupFS.processes(below: s.path) where pid > 0 {
                let p = table.adopt(pid: UInt32(pid), startNs: 0, session: s.cgid, clock: clock)
                recorder.processExec(s, p, tid: p.pid, previousExe: nil, argc: 0, unixNs: clock.wall(bootNs: p.startNs))
                s.counts[Int(RecordType.processExec.rawValue)] += 1
            }
        }
        CgroupFS.setxattr(s.path, SessionMetadata.watchedXattr, Array(String(getpid()).utf8))
    }

    // MARK: the credential catalog

    /// The catalog of each live session: its last scan (with the handles that tell a file that
    /// left its catalog path from one that is gone), the scan asked for and not yet back, and a
    /// second look asked for after a file was created in a catalog directory (an editor renames
    /// its temporary file over the original after creating it).
    private struct CatalogState {
        var last: CredentialCatalog.Result?
        var pending: UInt64?
        var requestedNs: Int64 = 0
        var followUpNs: Int64?
    }
    private var catalogs: [UInt64: CatalogState] = [:]
    private let scanner = CatalogScanner()
    private var tickets: UInt64 = 0
    /// The patterns of the rules in force, and which rule set they were read from.
    private var catalog = CredentialCatalog(patterns: [])
    /// The bounds of every catalog scan (`catalog_scan_budget_ms` among them).
    private let catalogLimits: CredentialCatalog.Limits
    /// Held (not an ObjectIdentifier, whose address a later rule set may take).
    private var catalogRules: RuleSet?
    /// How long a starting session waits for its first scan before its processes run: the
    /// scan's budget and 400 ms more (500 ms with the default budget), at most 2 s (the loop
    /// waits with it).
    private var firstScanWaitNs: Int64 { min(catalogLimits.budgetNs + 400_000_000, 2_000_000_000) }

    /// Takes the rules' catalog when the rules changed; true when its patterns did.
    private func syncCatalogPatterns() -> Bool {
        let rules = pipeline.detector?.rules
        guard rules !== catalogRules else { return false }
        catalogRules = rules
        let paths = rules?.identityPaths ?? []
        guard paths != catalog.patterns else { return false }
        catalog = CredentialCatalog(patterns: paths, limits: catalogLimits)
        return true
    }

    /// Asks for the session's catalog to be scanned; `wait`: for a session starting, whose
    /// first process should find its catalog known (up to `firstScanWaitNs`).
    private func scanCatalog(_ s: Session, nowNs: Int64, wait: Bool = false) {
        _ = syncCatalogPatterns()
        guard !catalog.patterns.isEmpty else {
            s.identities.replace(entries: [:], directories: [], nowNs: nowNs)
            catalogs[s.cgid] = nil
            return
        }
        tickets += 1
        var st = catalogs[s.cgid] ?? CatalogState()
        st.pending = tickets
        st.requestedNs = nowNs
        st.followUpNs = nil
        catalogs[s.cgid] = st
        scanner.submit(.init(cgid: s.cgid, ticket: tickets, homes: s.homes, catalog: catalog, previous: st.last))
        if wait { applyScans(scanner.wait(for: tickets, timeoutNs: firstScanWaitNs)) }
    }

    /// Scans that came back go into their sessions (if still live).
    private func applyScans(_ done: [CatalogScanner.Done]) {
        for d in done {
            guard var st = catalogs[d.cgid], let s = registry.sessions[d.cgid] ?? learned.byCgid[d.cgid] else { continue }
            if st.pending == d.ticket { st.pending = nil }
            let before = st.last?.notes
            st.last = d.result
            catalogs[d.cgid] = st
            s.identities.replace(entries: d.result.entries, directories: d.result.directories, nowNs: WallClock.monotonicNs())
            if !d.result.notes.isEmpty, before != d.result.notes {
                logger.warning("session \(s.id): credential catalog incomplete: \(d.result.notes.joined(separator: "; "))")
            }
        }
    }

    /// Applies the scans that came back, and asks for those that are due: every
    /// `CredentialCatalog.intervalNs`, soon after the session created a file in a catalog
    /// directory (and once more a second later), and all of them when the rules' catalog
    /// changed. A session whose scan is still out waits for it. Called by the loop after each
    /// drain.
    func refreshCatalogs() {
        applyScans(scanner.takeDone())
        let now = WallClock.monotonicNs()
        let changed = syncCatalogPatterns()
        for s in registry.sessions.values {
            let st = catalogs[s.cgid]
            guard changed || st?.pending == nil else { continue }
            let since = now - (st?.requestedNs ?? 0)
            let wanted = s.identities.rescanWanted && since >= CredentialCatalog.wantedGapNs
            let followUp = st?.followUpNs.map { now >= $0 } ?? false
            guard changed || wanted || followUp || (st != nil && since >= CredentialCatalog.intervalNs) else { continue }
            scanCatalog(s, nowNs: now)
            if wanted { catalogs[s.cgid]?.followUpNs = now + 1_000_000_000 }
        }
    }

    private func attachSyscallHooks(because reason: String) {
        guard !sensor.syscallHooksAttached, !stopping else { return }
        do {
            try sensor.attachSyscallHooks()
            logger.info("syscall hooks attached: \(reason)")
        } catch {
            logger.error("attaching the syscall hooks failed: \(error)")
        }
    }

    func watchRoot(_ path: String) {
        inotify_add_watch(inotifyFD, path, UInt32(IN_CREATE | IN_DELETE | IN_ATTRIB | IN_ONLYDIR | IN_MOVED_TO | IN_MOVED_FROM))
    }

    /// Reads what inotify has (the loop rescans after).
    func drainInotify() {
        var buf = [UInt8](repeating: 0, count: 4096)
        while buf.withUnsafeMutableBytes({ read(inotifyFD, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Roots found through patterns: into the kernel gate and under the socket hooks; the
    /// gone ones out. The kernel adds a root it sees made itself; this adds the ones that
    /// existed before the daemon started.
    private func syncRoots() {
        let (added, removed) = registry.discoverRoots()
        if !added.isEmpty || !removed.isEmpty { changed = true }
        for r in removed {
            sensor.removeRoot(cgid: r.cgid)
            logger.info("session root \(r.path) went")
        }
        for r in added {
            do {
                try sensor.addRoot(cgid: r.cgid, path: r.path, pattern: r.pattern ?? 0)
            } catch {
                logger.error("session root \(r.path): attaching the socket hooks failed: \(error)")
            }
            watchRoot(r.path)
            logger.info("session root \(r.path) (matches \(registry.patterns[r.pattern ?? 0].text))")
        }
    }
}
