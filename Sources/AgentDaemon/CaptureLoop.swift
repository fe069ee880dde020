import AgentDetector
import AgentOutputs
import AgentPipeline
import AgentRecords
import AgentSensor
import AgentSessions
import AgentSupport
import CLibbpf  // epoll
import CSupport
import Glibc
import Logging

/// The capture loop: Sensor (ring buffer) → `Pipeline` (decode, process table, rules, Recorder)
/// → outputs, on one thread that waits on the ring buffer, the session roots (inotify) and its
/// inbox. Between two waits it drains the ring, lets the session tracker apply what it learned,
/// reloads, reports output losses, flushes and publishes. Everything it holds is touched on
/// that thread only; other threads post to `inbox` and read `published`.
/// Checked and loaded by `init` (`Preflight`), run by `run()`, stopped by `stop()`.
package final class CaptureLoop: @unchecked Sendable {
    let logger: Logger
    package let sensor: Sensor
    package var registry: SessionRegistry { tracker.registry }
    let tracker: SessionTracker
    /// decode → correlate → record, for every ring buffer record.
    let pipeline: Pipeline
    var recorder: Recorder { pipeline.recorder }
    let reloader: Reloader
    /// Pauses the sessions that fill the ring faster than the loop drains it (`overflow`).
    let throttle: SessionThrottle
    /// The outputs with their own threads, when the recorder writes to those (the daemon does).
    package let outputs: Outputs?
    let sinkDescription: String
    /// READY, RELOADING, WATCHDOG and STOPPING for systemd (nothing when not under systemd).
    package let notifier: SystemdNotifier
    package let published: PublishedState
    let inbox: LoopInbox
    /// `runtime_dir`, checked: the pid file (here) and the control socket are made through it.
    package let runtime: TrustedDirectory
    /// Reached once the loop captures (`agent.start` written, hooks attached, sessions adopted).
    let capturing = Readiness()
    /// Records each output could not keep, by output name, since start.
    private var outputDropped: [String: UInt64] = [:]
    private let epollFD: Int32

    /// What the kernel programs capture, as `agent.start` names it.
    static let features = ["exec", "fork", "exit", "openat", "openat2", "connect", "flow", "file_identity", "identity_catalog",
                           "fileless_exec", "pty_driver"]

    private enum Tag: UInt64 { case ring = 1, roots, inbox }

    package init(config: DaemonConfig, sink: RecordOutput, logger: Logger, objectBytes: [UInt8]? = nil,
                 notifier: SystemdNotifier = SystemdNotifier()) throws(AgentError) {
        self.logger = logger
        self.notifier = notifier
        sinkDescription = sink.description
        outputs = sink as? Outputs
        let checked = try Preflight(config: config, outputs: outputs, logger: logger, objectBytes: objectBytes)
        sensor = checked.sensor
        runtime = checked.runtime
        tracker = try SessionTracker(registry: checked.registry, sensor: checked.sensor, logger: logger,
                                     catalogLimits: CredentialCatalog.Limits(budgetNs: Int64(config.catalogScanBudgetMs) * 1_000_000))
        pipeline = Pipeline(recorder: Recorder(sink: sink, host: HostIdentity.current()), sessions: tracker)
        pipeline.detector = checked.rules.map { Detector(rules: $0) }
        tracker.pipeline = pipeline
        let sensor = checked.sensor, registry = checked.registry
        throttle = SessionThrottle(
            mode: config.overflow, ringBytes: UInt64(config.ringBufferKiB) * 1024,
            maxPauseNs: Int64(config.throttleMaxPauseMs) * 1_000_000, logger: logger,
            // Weak: the sensor's ring handler holds the throttle, which must not hold the sensor
            // (its BPF object's descriptors would outlive the loop).
            waiting: { [weak sensor] in sensor?.ringFill.waiting ?? 0 }, session: { [weak registry] in registry?.sessions[$0] })
        tracker.throttle = throttle
        reloader = Reloader(config: config, rules: checked.rules)
        inbox = try LoopInbox()
        published = PublishedState(config: config)
        published.update { [outputs] in
            $0.outputs = outputs?.workers ?? []
            $0.roots = checked.registry.roots.map(\.path)
        }
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw AgentError("epoll: \(String(cString: strerror(errno)))") }
    }

    deinit { close(epollFD) }

    /// Reads the config again for a reload: the file and the command line's overrides. nil: a
    /// reload reloads the rules only. Set it before `run()`.
    package var configLoader: (() throws(AgentError) -> DaemonConfig)? {
        get { reloader.configLoader }
        set { reloader.configLoader = newValue }
    }

    /// Asks the loop to reload the config and rules between two records, and to reopen the
    /// output files (logrotate) and reconnect the receivers. Safe from any thread.
    package func reload() { inbox.post { $0.reload = true } }

    /// Asks the loop to drain, flush, write `agent.stop` and return. Safe from any thread.
    package func stop() { inbox.post { $0.stop = true } }

    // MARK: the loop

    /// Runs until `stop()`: the calling thread becomes the pipeline's thread.
    package func run() throws(AgentError) {
        defer { capturing.reach(false) }
        try begin()
        capturing.reach()
        var config = reloader.config
        var events = [epoll_event](repeating: epoll_event(), count: 8)
        var lastLook = WallClock.monotonicNs()
        var lastWatchdog = lastLook
        var stopping = false
        while !stopping {
            let n = epoll_wait(epollFD, &events, Int32(events.count), Int32(config.pollIntervalMs))
            if n < 0 && errno != EINTR { break }
            pipeline.clock.refresh()
            let asked = inbox.take()
            stopping = asked.stop
            if asked.reload {
                applyReload()
                config = reloader.config
            }
            var rootsChanged = false
            for i in 0..<max(Int(n), 0) where events[i].data.u64 == Tag.roots.rawValue {
                rootsChanged = true
                tracker.drainInotify()
            }
            for path in asked.removeWhenEmpty { tracker.removeOnceEmpty(path) }
            for attempt in asked.escapes { escapeRefused(attempt) }
            tracker.applyLearned()
            consumeRing()
            tracker.refreshCatalogs()
            reportOutputDrops()
            let now = WallClock.monotonicNs()
            // inotify does not always report mkdir on cgroupfs; a look is one readdir per root.
            if rootsChanged || tracker.wantsLook || now - lastLook >= 250_000_000 {
                lookAtSessions()
                lastLook = now
            }
            recorder.flush()
            publish()
            // The loop is alive as long as it comes round: that is what the watchdog hears.
            if let iv = notifier.watchdogIntervalNs, now - lastWatchdog >= iv {
                notifier.watchdog()
                lastWatchdog = now
            }
        }
        shutdown()
    }

    /// `agent.start`, the hooks, the pid file, and the sessions that exist already.
    private func begin() throws(AgentError) {
        outputs?.start()
        let features = Self.features + sensor.features
        recorder.sight = sensor.sight(features: features)
        recorder.agentStart(
            version: AgentVersion.string, pid: getpid(), kernel: Preflight.kernelRelease(), output: sinkDescription,
            sessionRoots: registry.roots.map(\.path), features: features,
            sensor: sensor.choice, hooks: sensor.hooks, rules: reloader.rules.map(RulesInForce.init),
            unixNs: wallNow())
        if let p = recorder.previousRun, p.ended == "unclean" {
            logger.warning("the previous run ended without agent.stop after seq \(p.lastSeq.map { "\($0)" } ?? "?") (\(p.lastTime ?? "?")): what it had not yet written is lost; agent.start says so")
        }
        do {
            try sensor.start { [pipeline, throttle] raw in
                pipeline.handle(raw)
                throttle.noted(session: KernelRecord.session(ofRaw: raw))
            }
        } catch {
            throw AgentError("attaching the process hooks failed: \(error)")
        }
        if !runtime.replace("daemon.pid", with: Array("\(getpid())\n".utf8), mode: 0o644) {
            logger.warning("cannot write \(runtime.path(of: "daemon.pid")): \(String(cString: strerror(errno)))")
        }
        logger.info("writing records to \(sinkDescription); session roots: \(registry.roots.map(\.path).joined(separator: ", "))")
        for root in registry.roots { tracker.watchRoot(root.path) }
        if !registry.patterns.isEmpty {
            logger.info("session root patterns: \(registry.patterns.map(\.text).joined(separator: ", "))")
        }
        // Sessions that exist already, with the processes running in them. The process hooks
        // are attached first, so an exec during the scan is seen; exact start times keep the
        // entity ids an earlier daemon gave these processes.
        do {
            pipeline.table.exactStarts = try sensor.taskStartTimes()
        } catch {
            logger.warning("task iterator unavailable, adopted processes get /proc start times (to a clock tick): \(error)")
        }
        lookAtSessions(adopting: true)
        pipeline.table.exactStarts = [:]
        // After the first look: the roots found through patterns (user scopes) are known.
        resumeLeftPaused()
        watch(sensor.ringEpollFD, .ring)
        watch(tracker.inotifyFD, .roots)
        watch(inbox.wakeFD, .inbox)
        publish()
        // Start-up parsed the kernel's BTF (several MiB, more than once: tier choice, libbpf's
        // CO-RE relocation) and freed it; glibc keeps freed memory in its arenas. Give it back.
        aw_release_free_memory()
        published.update { $0.capturing = true }
        // Capturing from here on: systemd may start what is ordered after us.
        notifier.ready(status: published.snapshot.counters.statusLine)
        if let iv = notifier.watchdogIntervalNs {
            notifier.watchdog()
            logger.info("systemd watchdog: a ping every \(iv / 1_000_000) ms")
        }
    }

    /// Drains the ring buffer through the pipeline. After each batch the ring-buffer callback
    /// has returned: the session tracker applies what it learned inside it. A drain that ends
    /// leaves the ring below the throttle's low-water mark: its paused sessions resume.
    func consumeRing() {
        while true {
            let n: Int
            do {
                n = try sensor.consume()
            } catch {
                logger.error("reading the ring buffer: \(error)")
                n = 0
            }
            tracker.applyLearned()
            if n == 0 { break }
        }
        throttle.look()
        if throttle.takeChanged() { keepPausedList() }
    }

    /// The cgroups paused now, in the runtime directory (`throttled`), so that a daemon killed
    /// while they were paused leaves the next one the list to resume.
    private func keepPausedList() {
        let paths = throttle.pausedPaths
        if paths.isEmpty {
            _ = runtime.unlink(SessionThrottle.pausedFile)
        } else if !runtime.replace(SessionThrottle.pausedFile, with: Array(paths.map { $0 + "\n" }.joined().utf8), mode: 0o600) {
            logger.warning("cannot write \(runtime.path(of: SessionThrottle.pausedFile)): \(String(cString: strerror(errno)))")
        }
    }

    /// The session cgroups an earlier run paused and did not resume (it was killed): resumed
    /// once the first look has found every session root (patterns too), whatever this run's `overflow`.
    private func resumeLeftPaused() {
        let fd = runtime.open(SessionThrottle.pausedFile, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        close(fd)
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            let path = String(decoding: line, as: UTF8.self)
            // Only cgroups below the session roots, named as this daemon names them.
            guard registry.roots.contains(where: { path.hasPrefix($0.path + "/") }), !path.contains("/../"), !path.hasSuffix("/..") else {
                logger.warning("\(runtime.path(of: SessionThrottle.pausedFile)) names \(path), not below a session root: left as it is")
                continue
            }
            if SessionThrottle.thaw(path) {
                logger.warning("session cgroup \(path) was left paused by a daemon that did not stop: resumed")
            }
        }
        _ = runtime.unlink(SessionThrottle.pausedFile)
    }

    /// A look at the session roots: new sessions start, gone ones end after their last records.
    private func lookAtSessions(adopting: Bool = false) {
        tracker.rescan(adopting: adopting)
        if tracker.hasEnding { consumeRing() }
        tracker.settle()
    }

    /// The reload, between two records: what the ring holds is recorded under the old rules.
    private func applyReload() {
        outputs?.reopen()
        consumeRing()
        notifier.reloading()
        reloader.reload(pipeline: pipeline, outputs: outputs, logger: logger, unixNs: wallNow())
        published.update { [outputs, reloader] in
            $0.config = reloader.config
            $0.outputs = outputs?.workers ?? []
        }
        notifier.reloaded(status: snapshot().statusLine)
    }

    /// A process inside a session asked the control socket for another session: an alert in
    /// the session it is in.
    private func escapeRefused(_ a: LoopInbox.EscapeAttempt) {
        var st = stat()
        guard stat(a.holding, &st) == 0 else { return }
        let s = tracker.session(for: UInt64(st.st_ino))
        recorder.daemonAlert(
            id: "agentwatch-session-escape", title: "A process in a session asked to be moved to another session",
            severity: .high, tags: ["attack.defense-evasion", "attack.t1562.001"],
            message: "process \(a.peer.pid) (uid \(a.peer.uid)) of session \(s.id) asked the control socket for session \(a.requested); refused",
            session: s, process: pipeline.table.byPID[UInt32(a.peer.pid)], tid: UInt32(a.peer.pid), unixNs: wallNow())
        logger.warning("refused: process \(a.peer.pid) of session \(s.id) asked to start session \(a.requested)")
    }

    /// Records an output could not keep (its queue and spool full) become `agent.loss` records
    /// in the stream, naming the output and the seq range, so every other output shows the gap.
    private func reportOutputDrops() {
        guard let outputs else { return }
        for (sink, drops) in outputs.takeDrops() {
            outputDropped[sink, default: 0] += drops.records
            recorder.sinkLoss(sink: sink, drops: drops, unixNs: wallNow())
            logger.warning("sink \(sink): \(drops.records) records dropped (seq \(drops.firstSeq)-\(drops.lastSeq)): its queue and spool are full")
        }
    }

    // MARK: stopping

    /// Detaches, drains what the kernel still holds, lets every output deliver or give up what
    /// it has, and writes `agent.stop` last.
    private func shutdown() {
        notifier.stopping(status: "stopping: draining the ring buffer and flushing the outputs")
        tracker.stopping = true
        // Paused sessions run on first: what they write from here is drained or counted lost.
        throttle.stop()
        keepPausedList()
        sensor.detachAll()
        consumeRing()
        // Drops the kernel counted but never got to put in the stream.
        if let (unreported, _) = try? sensor.lossCounters(), unreported.contains(where: { $0 > 0 }) {
            for (k, v) in unreported.enumerated() { pipeline.kernelDropped[k] += v }
            recorder.agentLoss(kernelDropped: unreported, queueDropped: 0, cpuReported: false, unixNs: wallNow())
        }
        // Each output delivers or gives up what it holds before the last records, so what one
        // could not keep (a full disk, a dead receiver with no spool) is an agent.loss in the
        // stream, before agent.stop, not only a line in the journal.
        recorder.flush()
        outputs?.drain()
        reportOutputDrops()
        let c = snapshot()
        recorder.agentStop(version: AgentVersion.string, records: c.records, kernelDropped: c.kernelDropped,
                           decodeRejected: c.decodeRejected, sessions: c.sessions,
                           throttle: c.throttle.map { ($0.pauses, $0.pausedMs, $0.forcedResumes) }, unixNs: wallNow())
        recorder.close()
        outputs?.stop()
        publish()
        _ = runtime.unlink("daemon.pid")
        logger.info("stopped: \(c.records + 1) records written to \(sinkDescription), \(c.kernelDropped) lost in the kernel")
    }

    // MARK: helpers

    private func snapshot() -> DaemonCounters {
        DaemonCounters(
            records: recorder.seq, sessions: registry.sessions.count, processes: pipeline.table.count,
            kernelDropped: pipeline.kernelDropped.reduce(0, +), kernelDroppedByKind: pipeline.kernelDropped,
            decodeRejected: pipeline.decoder.counters.rejected, syscallHooksAttached: sensor.syscallHooksAttached,
            recordsByType: recorder.counts,
            throttle: throttle.mode == .throttle
                ? ThrottleStatus(pauses: throttle.totalPauses, pausedMs: UInt64(throttle.totalPausedNs / 1_000_000),
                                 pausedNow: throttle.pausedNow, forcedResumes: throttle.forcedResumes) : nil)
    }

    private func publish() {
        let counters = snapshot()
        let sessions = tracker.takeChanged() ? registry.sessions.values.sorted { $0.startNs < $1.startNs }.map { s in
            SessionSummary(id: s.id, cgroup: s.cgroup, uid: s.uid, startNs: s.startNs, adopted: s.adopted,
                           labels: Dictionary(s.labels.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a }))
        } : nil
        let roots = sessions == nil ? nil : registry.roots.map(\.path)
        published.update { [outputDropped] in
            $0.counters = counters
            if let sessions { $0.sessions = sessions }
            if let roots { $0.roots = roots }
            $0.outputDropped = outputDropped
        }
    }

    private func watch(_ fd: Int32, _ tag: Tag) {
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.u64 = tag.rawValue
        epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &ev)
    }

    func wallNow() -> Int64 { pipeline.clock.wall(bootNs: WallClock.bootNow()) }
}
