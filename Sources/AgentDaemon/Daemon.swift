import AgentDetector
import AgentOutputs
import AgentPipeline
import AgentRecords
import AgentSensor
import AgentSessions
import AgentSupport
import BPFKit
import CAgentEvents
import CLibbpf
import Glibc
import Logging
import Synchronization

/// The live pipeline: Sensor (ring buffer) → decode → ProcessTable and sessions → Recorder →
/// sink, driven by one thread that waits on the ring buffer, the session roots and a stop
/// signal. Built and checked by `init`, run by `run()`, ended from any thread by `stop()`.
package final class Daemon: SessionSource, ControlHandler, @unchecked Sendable {

    package private(set) var config: DaemonConfig
    /// Reads the config again for a reload (SIGHUP): the file and the command line's overrides.
    /// nil: a reload reloads the rules only.
    package var configLoader: (() throws(AgentError) -> DaemonConfig)?
    let logger: Logger
    let registry: SessionRegistry
    let sensor: Sensor
    /// decode → correlate → record, for every ring buffer record.
    var pipeline: Pipeline!
    var recorder: Recorder { pipeline.recorder }
    var table: ProcessTable { pipeline.table }
    var clock: WallClock { pipeline.clock }
    let sinkDescription: String
    /// The sinks with their own threads, when the recorder writes to those (the service does).
    let outputs: Outputs?
    /// READY, STATUS, WATCHDOG and STOPPING for systemd (nothing when not under systemd).
    package let notifier: SystemdNotifier

    private let epollFD: Int32
    private let stopFD: Int32
    private let inotifyFD: Int32
    private let stopRequested = Atomic<Bool>(false)
    private let reloadRequested = Atomic<Bool>(false)
    /// Where the rules come from (resolved once), and what is loaded.
    private(set) var rulePaths: [String]
    private(set) var rules: RuleSet?
    private let published = Mutex(DaemonCounters())
    /// The live sessions as the control socket lists them, rebuilt when sessions change.
    private let publishedSessions = Mutex<[SessionSummary]>([])
    private var sessionsChanged = true
    /// The control socket, once running.
    private var control: ControlServer?
    /// Where `start` requests make sessions (the first root), fixed at start.
    let controlRoot: String
    let cgroupMount: String
    /// Session cgroups made for control callers that are to be removed once empty.
    private let removeWhenEmpty = Mutex<Set<String>>([])
    /// Records each output dropped, by output name, since start (for the metrics).
    private var sinkDropped: [String: UInt64] = [:]
    /// `runtime_dir`, checked: the pid file and the control socket are made through it.
    let runtime: TrustedDirectory
    /// The metrics textfile's directory as last checked (the setting can change at a reload).
    private var metricsDirectory: TrustedDirectory?
    /// Why the metrics directory was last refused (logged once).
    private var metricsRefusal: String?
    /// Refused control requests, for the loop to record as alerts.
    private let refusals = Mutex<[(peer: ControlPeer, cgroup: String, requested: String)]>([])

    /// Checks the machine, resolves the session roots and loads the kernel programs.
    /// Every failure is one `AgentError` line that says what to do.
    package init(config: DaemonConfig, sink: RecordOutput, logger: Logger, objectBytes: [UInt8]? = nil,
                notifier: SystemdNotifier = SystemdNotifier()) throws(AgentError) {
        self.config = config
        self.notifier = notifier
        self.logger = logger
        sinkDescription = sink.description
        outputs = sink as? Outputs
        try Self.checkPrivileges()
        // AGENTWATCH_BTF names a BTF file for a kernel that does not expose its own.
        let customBTF = getenv("AGENTWATCH_BTF").map { String(cString: $0) }
        let btf = customBTF ?? "/sys/kernel/btf/vmlinux"
        guard access(btf, R_OK) == 0 else {
            throw AgentError("no kernel BTF at \(btf): agentwatch needs Linux 5.15 or later built with CONFIG_DEBUG_INFO_BTF=y, or AGENTWATCH_BTF set to this kernel's BTF file")
        }
        guard let mount = CgroupFS.mountPoint() else {
            throw AgentError("no cgroup2 filesystem is mounted: mount one (mount -t cgroup2 none /sys/fs/cgroup) and start again")
        }
        registry = try SessionRegistry(mount: mount, roots: config.sessionRoots)
        controlRoot = registry.roots[0].path
        cgroupMount = mount
        // Invalid rules stop the daemon before it loads anything: a SIEM must not believe a
        // host is covered by rules that never loaded.
        rulePaths = config.rules ?? RuleSet.defaultPaths()
        if !rulePaths.isEmpty {
            do {
                rules = try RuleSet.load(paths: rulePaths)
            } catch {
                let first = error.diagnostics.first.map { "\($0)" } ?? "\(error)"
                let more = error.diagnostics.count > 1 ? " (and \(error.diagnostics.count - 1) more)" : ""
                throw AgentError("invalid rules, not starting: \(first)\(more); agentwatch rules check \(rulePaths.joined(separator: " ")) lists every error")
            }
        }
        // Root writes here: a directory others could change would let them plant a link.
        runtime = try TrustedDirectory(config.runtimeDir, purpose: "runtime_dir", create: 0o755)
        for w in (sink as? Outputs)?.workers ?? [] {
            guard let f = w.destination as? FileTransport, !f.leftovers.isEmpty else { continue }
            let l = f.leftovers
            logger.notice("output \(w.name): an interrupted rotation was finished: \(l.removedPartial.count) partial compressions removed, \(l.removedCompressed.count) files removed beside their complete .gz, \(l.compressing.count) being compressed")
        }
        try Self.mountTracefs()
        var settings = SensorSettings(
            roots: registry.roots.map { ($0.cgid, $0.level) },
            ringBufferBytes: UInt32(config.ringBufferKiB * 1024),
            argsMax: UInt32(config.argsMax),
            wakeupBytes: UInt64(config.ringBufferKiB * 1024 / 4),
            btfPath: customBTF)
        settings.rootPaths = registry.roots.map(\.path)
        settings.patterns = registry.patterns.map { $0.kernelBytes() }
        settings.flowReportBytes = UInt64(config.flowReportKiB) * 1024
        settings.resolvePaths = config.resolvePaths
        do {
            sensor = try Sensor(settings: settings, objectBytes: objectBytes)
        } catch {
            if error.errno == EPERM || error.errno == EACCES {
                throw AgentError("the kernel refused to load the BPF programs (\(error)): run as root, or grant CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_CHOWN (packaging/CAPABILITIES.md)")
            }
            throw AgentError("loading the BPF programs failed: \(error)")
        }
        let recorder = Recorder(sink: sink, host: HostIdentity.current())
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        stopFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        inotifyFD = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard epollFD >= 0, stopFD >= 0, inotifyFD >= 0 else {
            throw AgentError("epoll/eventfd/inotify: \(String(cString: strerror(errno)))")
        }
        pipeline = Pipeline(recorder: recorder, sessions: self)
        pipeline.detector = rules.map { Detector(rules: $0) }
    }

    deinit {
        close(epollFD)
        close(stopFD)
        close(inotifyFD)
    }

    static func checkPrivileges() throws(AgentError) {
        if geteuid() == 0 { return }
        // Without root, CAP_BPF (39) with CAP_PERFMON (38), or CAP_SYS_ADMIN (21), may do.
        let capEff = ((try? readFile("/proc/self/status")) ?? "").split(separator: "\n")
            .first { $0.hasPrefix("CapEff:") }.flatMap { UInt64($0.dropFirst(7).trimmingPrefix(while: { $0 == "\t" || $0 == " " }), radix: 16) } ?? 0
        let bpf = capEff & (1 << 39) != 0 && capEff & (1 << 38) != 0
        if !(bpf || capEff & (1 << 21) != 0) {
            throw AgentError("agentwatch daemon needs root (or CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_CHOWN, see packaging/CAPABILITIES.md): run it with sudo")
        }
    }

    /// Syscall tracepoints are found through tracefs, which a minimal host may not mount.
    static func mountTracefs() throws(AgentError) {
        if access("/sys/kernel/tracing/events", F_OK) == 0 || access("/sys/kernel/debug/tracing/events", F_OK) == 0 { return }
        if mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, nil) != 0 {
            throw AgentError("tracefs is not mounted and mounting it at /sys/kernel/tracing failed (\(String(cString: strerror(errno)))): mount it (mount -t tracefs nodev /sys/kernel/tracing)")
        }
    }

    /// Asks the loop to reload the config and rules between two records (SIGHUP). Safe from
    /// any thread.
    /// SIGHUP also reopens the output files (logrotate) and reconnects the receivers.
    package func reload() {
        outputs?.reopen()
        reloadRequested.store(true, ordering: .releasing)
        var one: UInt64 = 1
        _ = write(stopFD, &one, 8)
    }

    /// Settings that only a restart can change (the kernel programs and maps are sized and
    /// loaded with them) that differ between `a` and `b`.
    static func restartOnly(_ a: DaemonConfig, _ b: DaemonConfig) -> [String] {
        var keys: [String] = []
        if a.sessionRoots != b.sessionRoots { keys.append("session_roots") }
        if a.ringBufferKiB != b.ringBufferKiB { keys.append("ring_buffer_kib") }
        if a.argsMax != b.argsMax { keys.append("args_max") }
        if a.flowReportKiB != b.flowReportKiB { keys.append("flow_report_kib") }
        if a.resolvePaths != b.resolvePaths { keys.append("resolve_paths") }
        if a.runtimeDir != b.runtimeDir { keys.append("runtime_dir") }
        if a.controlGroup != b.controlGroup { keys.append("control_group") }
        return keys
    }

    /// Reloads the config (when there is a loader) and the rules, all or nothing: a new config
    /// or rule set that does not load, or an output that cannot be made, leaves everything as
    /// it was and says why. Runs on the loop thread between records, so no record is evaluated
    /// twice or skipped. Settings only a restart can change are named in the record and wait.
    private func applyReload() {
        var failure: String?
        var errorCount = 0
        var fresh = config
        var restartRequired: [String] = []
        var outputsChanged: (started: [String], stopped: [String]) = ([], [])
        var newRules: RuleSet?
        do throws(AgentError) {
            if let configLoader {
                fresh = try configLoader()
                restartRequired = Self.restartOnly(config, fresh)
                // Those keep what runs; a restart applies them.
                fresh.sessionRoots = config.sessionRoots
                fresh.ringBufferKiB = config.ringBufferKiB
                fresh.argsMax = config.argsMax
                fresh.flowReportKiB = config.flowReportKiB
                fresh.resolvePaths = config.resolvePaths
                fresh.runtimeDir = config.runtimeDir
                fresh.controlGroup = config.controlGroup
            }
            let paths = fresh.rules ?? RuleSet.defaultPaths()
            if !paths.isEmpty {
                do {
                    newRules = try RuleSet.load(paths: paths)
                } catch {
                    errorCount = error.diagnostics.count
                    throw AgentError(error.diagnostics.first.map { "\($0)" } ?? "\(error)")
                }
            }
            if let outputs, fresh.effectiveOutputs != config.effectiveOutputs {
                outputsChanged = try outputs.replace(with: fresh.effectiveOutputs, logger: logger)
            }
        } catch {
            failure = error.message
        }
        if failure == nil {
            if let newRules {
                if let detector = pipeline.detector { detector.replaceRules(newRules) } else { pipeline.detector = Detector(rules: newRules) }
            } else {
                pipeline.detector = nil
            }
            rules = newRules
            rulePaths = fresh.rules ?? RuleSet.defaultPaths()
            config = fresh
            logger.info("reloaded: \(rules?.rules.count ?? 0) rules\(outputsChanged.started.isEmpty && outputsChanged.stopped.isEmpty ? "" : ", outputs started \(outputsChanged.started) stopped \(outputsChanged.stopped)")\(restartRequired.isEmpty ? "" : "; a restart is needed to apply \(restartRequired.joined(separator: ", "))")")
        } else {
            logger.error("reload failed, keeping the running config and \(rules?.rules.count ?? 0) rules: \(failure!)")
        }
        // In the stream too: a SIEM sees which rules ran from which record on, and why a
        // reload did not take.
        let running = rules
        recorder.agentRecord(.agentReload, unixNs: wallNow()) { j in
            j.key("ok"); j.bool(failure == nil)
            if let running {
                j.raw(","); j.key("rules"); j.raw("{"); j.key("count"); j.uint(UInt64(running.rules.filter(\.enabled).count))
                j.raw(","); j.key("digest"); j.string(running.digest); j.raw("}")
            }
            if configLoader != nil {
                j.raw(","); j.key("outputs"); j.stringArray(self.outputs?.workers.map(\.name) ?? [])
            }
            if !outputsChanged.started.isEmpty || !outputsChanged.stopped.isEmpty {
                j.raw(","); j.key("outputs_started"); j.stringArray(outputsChanged.started)
                j.raw(","); j.key("outputs_stopped"); j.stringArray(outputsChanged.stopped)
            }
            if !restartRequired.isEmpty {
                j.raw(","); j.key("restart_required"); j.stringArray(restartRequired)
            }
            if let failure {
                if errorCount > 0 { j.raw(","); j.key("errors"); j.uint(UInt64(errorCount)) }
                j.raw(","); j.key("error"); j.string(failure)
            }
        }
    }

    /// Asks the loop to drain, flush, write `agent.stop` and return. Safe from any thread.
    package func stop() {
        stopRequested.store(true, ordering: .releasing)
        var one: UInt64 = 1
        _ = write(stopFD, &one, 8)
    }

    /// A snapshot of the counters, safe from any thread.
    package var counters: DaemonCounters { published.withLock { $0 } }

    // MARK: the loop

    /// Runs until `stop()`: the calling thread becomes the pipeline's thread.
    package func run() throws(AgentError) {
        outputs?.start()
        let start = wallNow()
        recorder.agentRecord(.agentStart, unixNs: start) { j in
            j.key("version"); j.string(AgentVersion.string)
            j.raw(","); j.key("pid"); j.uint(UInt64(getpid()))
            j.raw(","); j.key("kernel"); j.string(Self.kernelRelease())
            j.raw(","); j.key("output"); j.string(self.sinkDescription)
            j.raw(","); j.key("session_roots"); j.raw("[")
            for (i, r) in self.registry.roots.enumerated() {
                if i > 0 { j.raw(",") }
                j.string(r.path)
            }
            j.raw("],"); j.key("features"); j.raw("[\"exec\",\"fork\",\"exit\",\"openat\",\"openat2\",\"connect\",\"flow\"]")
            if let rules = self.rules {
                j.raw(","); j.key("rules"); j.raw("{"); j.key("count"); j.uint(UInt64(rules.rules.filter(\.enabled).count))
                j.raw(","); j.key("digest"); j.string(rules.digest); j.raw("}")
            }
            self.recorder.chainOrigin(into: &j)
        }
        if let p = recorder.previousRun, p.ended == "unclean" {
            logger.warning("the previous run ended without agent.stop after seq \(p.lastSeq.map { "\($0)" } ?? "?") (\(p.lastTime ?? "?")): what it had not yet written is lost; agent.start says so")
        }
        do {
            let pipeline = self.pipeline!
            try sensor.start { raw in pipeline.handle(raw) }
        } catch {
            throw AgentError("attaching the process hooks failed: \(error)")
        }
        writePidFile()
        do {
            let server = try ControlServer(directory: runtime, group: config.controlGroup, handler: self, logger: logger)
            server.start()
            control = server
        } catch {
            logger.error("\(error.message): sessions can be started as root only")
        }
        logger.info("writing records to \(sinkDescription); session roots: \(registry.roots.map(\.path).joined(separator: ", "))")

        for root in registry.roots {
            watchRoot(root.path)
        }
        if !registry.patterns.isEmpty {
            logger.info("session root patterns: \(registry.patterns.map(\.text).joined(separator: ", "))")
        }
        // Sessions that exist already, with the processes running in them. The process hooks
        // are attached first, so an exec during the scan is seen; exact start times keep the
        // entity ids an earlier daemon gave these processes.
        do {
            table.exactStarts = try sensor.taskStartTimes()
        } catch {
            logger.warning("task iterator unavailable, adopted processes get /proc start times (to a clock tick): \(error)")
        }
        rescan(adopting: true)
        table.exactStarts = [:]

        watch(sensor.ringEpollFD, tag: 1)
        watch(inotifyFD, tag: 2)
        watch(stopFD, tag: 3)
        // Capturing from here on: systemd may start what is ordered after us.
        notifier.ready(status: statusLine())
        var lastWatchdog = WallClock.monotonicNs()
        var lastNotifiedStatus = lastWatchdog
        var lastMetrics = Int64.min / 2
        if let iv = notifier.watchdogIntervalNs {
            notifier.watchdog()
            logger.info("systemd watchdog: a ping every \(iv / 1_000_000) ms")
        }

        var events = [epoll_event](repeating: epoll_event(), count: 8)
        var lastScan = WallClock.monotonicNs()
        var lastStatus = lastScan
        var lastRecords: UInt64 = 0
        while !stopRequested.load(ordering: .acquiring) {
            let n = epoll_wait(epollFD, &events, Int32(events.count), Int32(config.pollIntervalMs))
            if n < 0 && errno != EINTR { break }
            pipeline.clock.refresh()
            if reloadRequested.exchange(false, ordering: .acquiring) {
                consumeRing()
                notifier.reloading()
                applyReload()
                notifier.reloaded(status: statusLine())
            }
            var rootsChanged = false
            for i in 0..<max(Int(n), 0) {
                switch events[i].data.u64 {
                case 2:
                    rootsChanged = true
                    drainInotify()
                case 3:
                    // Level-triggered: read the counter, or a reload request keeps waking us.
                    var count: UInt64 = 0
                    _ = read(stopFD, &count, 8)
                    recordRefusals()
                default:
                    break
                }
            }
            consumeRing()
            reportSinkDrops()
            let now = WallClock.monotonicNs()
            // inotify does not always report mkdir on cgroupfs; a rescan is one readdir per root.
            if rootsChanged || now - lastScan >= 250_000_000 {
                rescan()
                lastScan = now
            }
            recorder.flush()
            publish()
            // The loop is alive as long as it comes round: that is what the watchdog hears.
            if let iv = notifier.watchdogIntervalNs, now - lastWatchdog >= iv {
                notifier.watchdog()
                lastWatchdog = now
            }
            if let path = config.metricsTextfile, now - lastMetrics >= Int64(config.metricsIntervalS) * 1_000_000_000 {
                writeMetrics(path)
                lastMetrics = now
            }
            if notifier.enabled && now - lastNotifiedStatus >= 2_000_000_000 {
                notifier.status(statusLine())
                lastNotifiedStatus = now
            }
            if config.statusIntervalS > 0 && now - lastStatus >= Int64(config.statusIntervalS) * 1_000_000_000 {
                let c = counters
                let rate = Double(c.records - lastRecords) / (Double(now - lastStatus) / 1e9)
                logger.info("sessions \(c.sessions) · processes \(c.processes) · records \(c.records) (\(Int(rate))/s) · lost \(c.kernelDropped) · undecodable \(c.decodeRejected)")
                lastStatus = now
                lastRecords = c.records
            }
        }
        shutdown()
    }

    private func shutdown() {
        notifier.stopping(status: "stopping: draining the ring buffer and flushing the outputs")
        control?.stop()
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
        reportSinkDrops()
        let c = snapshot()
        recorder.agentRecord(.agentStop, unixNs: wallNow()) { j in
            j.key("version"); j.string(AgentVersion.string)
            j.raw(","); j.key("records"); j.uint(c.records)
            j.raw(","); j.key("kernel_dropped"); j.uint(c.kernelDropped)
            j.raw(","); j.key("decode_rejected"); j.uint(c.decodeRejected)
            j.raw(","); j.key("sessions"); j.uint(UInt64(c.sessions))
        }
        recorder.close()
        outputs?.stop()
        publish()
        _ = runtime.unlink("daemon.pid")
        logger.info("stopped: \(c.records + 1) records written to \(sinkDescription), \(c.kernelDropped) lost in the kernel")
    }

    /// Records a sink could not keep (its queue and spool full) become `agent.loss` records in
    /// the stream, naming the sink and the seq range, so every other sink shows the gap too.
    private func reportSinkDrops() {
        guard let outputs else { return }
        for (sink, drops) in outputs.takeDrops() {
            sinkDropped[sink, default: 0] += drops.records
            recorder.sinkLoss(sink: sink, drops: drops, unixNs: wallNow())
            logger.warning("sink \(sink): \(drops.records) records dropped (seq \(drops.firstSeq)-\(drops.lastSeq)): its queue and spool are full")
        }
    }

    private func watch(_ fd: Int32, tag: UInt64) {
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.u64 = tag
        epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &ev)
    }

    private func drainInotify() {
        var buf = [UInt8](repeating: 0, count: 4096)
        while buf.withUnsafeMutableBytes({ read(inotifyFD, $0.baseAddress, $0.count) }) > 0 {}
    }

    func consumeRing() {
        do {
            while try sensor.consume() > 0 {}
        } catch {
            logger.error("reading the ring buffer: \(error)")
        }
    }

    // MARK: sessions

    /// Sessions whose cgroup went while the ring buffer was being read: ended by the loop.
    private var endedWhileReading: [Session] = []

    /// Compares the session roots with the known sessions; announces new ones after the syscall
    /// hooks are attached, ends gone ones after their last records, and detaches the hooks when
    /// no session is left. Inside the ring buffer callback (`reading`), ending waits for the loop:
    /// the ring cannot be drained from within its own callback.
    func rescan(adopting: Bool = false, force: Set<UInt64> = [], reading: Bool = false) {
        syncRoots()
        let (started, gone) = registry.scan(nowNs: wallNow(), adopting: adopting, force: force)
        endedWhileReading += gone
        if !started.isEmpty || !gone.isEmpty { sessionsChanged = true }
        if !reading {
            // Sessions made through the control socket whose last process has gone.
            removeWhenEmpty.withLock { paths in
                for p in paths where rmdir(p) == 0 || errno == ENOENT { paths.remove(p) }
            }
        }
        if !started.isEmpty {
            attachSyscallHooks(because: "a session started")
            for s in started { announce(s, adopting: adopting) }
        }
        if reading { return }
        let ended = endedWhileReading
        endedWhileReading = []
        if !ended.isEmpty {
            consumeRing()
            for s in ended {
                pipeline.endSession(s, unixNs: wallNow())
                recorder.sessionRecord(.sessionEnd, s, unixNs: wallNow(), ended: true)
                table.removeSession(s.cgid)
                logger.info("session \(s.id) ended")
            }
        }
        if registry.sessions.isEmpty && !registry.hasPending && sensor.syscallHooksAttached
            && WallClock.monotonicNs() >= hooksHeldUntil {
            sensor.detachSyscallHooks()
            logger.info("no session left: syscall hooks detached")
        }
    }

    private func attachSyscallHooks(because reason: String) {
        guard !sensor.syscallHooksAttached else { return }
        do {
            try sensor.attachSyscallHooks()
            logger.info("syscall hooks attached: \(reason)")
        } catch {
            logger.error("attaching the syscall hooks failed: \(error)")
        }
    }

    private func watchRoot(_ path: String) {
        inotify_add_watch(inotifyFD, path, UInt32(IN_CREATE | IN_DELETE | IN_ATTRIB | IN_ONLYDIR | IN_MOVED_TO | IN_MOVED_FROM))
    }

    /// Roots found through patterns: into the kernel gate and under the socket hooks; the
    /// gone ones out. The kernel adds a root it sees made itself; this adds the ones that
    /// existed before the daemon started.
    private func syncRoots() {
        let (added, removed) = registry.discoverRoots()
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

    /// Until when the syscall hooks stay attached without a session: a root or a session
    /// directory was just made below a pattern, and its first process is moments away.
    private var hooksHeldUntil: Int64 = 0

    /// The kernel saw a root or a session directory made below a pattern (inside the ring
    /// buffer callback). Nothing waits on us here, unlike `agentwatch run`: attach the syscall
    /// hooks now, before the scope's first process execs.
    package func cgroupMade(_ notice: agent_cgroup) {
        if notice.op == AGENT_CGROUP_MOVED.rawValue {
            processMoved(notice)
            return
        }
        hooksHeldUntil = WallClock.monotonicNs() + 2_000_000_000
        attachSyscallHooks(because: "a cgroup was made below a session root pattern")
        let session = notice.op == AGENT_CGROUP_SESSION_ADDED.rawValue
        // Named now, while the directory is surely there, in case it is gone by the time its
        // first record is read.
        if session, !notice.nameTruncated {
            registry.noteMade(cgid: notice.cgid, .init(name: notice.nameBytes, uid: notice.uid, parent: notice.parent_cgid))
        }
        // The rescan finds the new root (syncRoots) and announces the session now.
        rescan(force: session ? [notice.cgid] : [], reading: true)
    }

    /// A process was moved to another cgroup. A session process moved out of its session (to
    /// no session, or to another) has left the record: an alert in the session it left. A
    /// user-scope session cannot prevent it (the user owns those cgroups), nor can root's.
    private func processMoved(_ n: agent_cgroup) {
        guard let p = table.byPID[n.moved_pid], p.sessionCgid != n.parent_cgid else { return }
        table.remove(pid: n.moved_pid)
        guard let s = registry.sessions[p.sessionCgid] else { return }
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

    private func announce(_ s: Session, adopting: Bool) {
        recorder.sessionRecord(.sessionStart, s, unixNs: s.startNs)
        logger.info("session \(s.id) started\(adopting ? " (already running)" : "") uid \(s.uid) cgroup \(s.cgroup)")
        if adopting {
            for pid in CgroupFS.processes(below: s.path) where pid > 0 {
                let p = table.adopt(pid: UInt32(pid), startNs: 0, session: s.cgid, clock: clock)
                recorder.processExec(s, p, tid: p.pid, previousExe: nil, argc: 0, unixNs: clock.wall(bootNs: p.startNs))
                s.counts[Int(RecordType.processExec.rawValue)] += 1
            }
        }
        CgroupFS.setxattr(s.path, SessionMetadata.watchedXattr, Array(String(getpid()).utf8))
    }

    /// The session of a record: known, found by a rescan, or, when its cgroup is already gone,
    /// a stand-in so that no record is dropped for want of a session.
    package func session(for cgid: UInt64) -> Session {
        if let s = registry.sessions[cgid] { return s }
        rescan(force: [cgid], reading: true)
        if let s = registry.sessions[cgid] { return s }
        let s = registry.fromNotice(cgid: cgid, nowNs: wallNow()) ?? registry.standIn(cgid: cgid, nowNs: wallNow())
        announce(s, adopting: false)
        return s
    }

    // MARK: helpers

    /// One line for systemd's STATUS (systemctl status shows it).
    func statusLine() -> String {
        let c = snapshot()
        return "\(c.sessions) sessions, \(c.processes) processes, \(c.records) records, \(c.kernelDropped) lost in the kernel"
    }

    private func snapshot() -> DaemonCounters {
        DaemonCounters(
            records: recorder.seq, sessions: registry.sessions.count, processes: table.count,
            kernelDropped: pipeline.kernelDropped.reduce(0, +), kernelDroppedByKind: pipeline.kernelDropped,
            decodeRejected: pipeline.decoder.counters.rejected, syscallHooksAttached: sensor.syscallHooksAttached,
            recordsByType: recorder.counts)
    }

    private func publish() {
        let c = snapshot()
        published.withLock { $0 = c }
        if sessionsChanged {
            sessionsChanged = false
            let list = registry.sessions.values.sorted { $0.startNs < $1.startNs }.map { s in
                SessionSummary(id: s.id, cgroup: s.cgroup, uid: s.uid, startNs: s.startNs, adopted: s.adopted, labels: s.labels)
            }
            publishedSessions.withLock { $0 = list }
        }
    }

    /// The counters in the Prometheus text exposition format, written to a temporary file and
    /// renamed over `path`, so the collector never reads half a file.
    func writeMetrics(_ path: String) {
        let c = snapshot()
        var t = ""
        func metric(_ name: String, _ kind: String, _ help: String, _ samples: [(labels: String, value: UInt64)]) {
            t += "# HELP agentwatch_\(name) \(help)\n# TYPE agentwatch_\(name) \(kind)\n"
            for s in samples { t += "agentwatch_\(name)\(s.labels.isEmpty ? "" : "{\(s.labels)}") \(s.value)\n" }
        }
        func label(_ v: String) -> String {
            v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        }
        metric("records_total", "counter", "Records written, by type.",
               RecordType.allCases.map { (labels: "type=\"\(String(describing: $0.name))\"", value: c.recordsByType[Int($0.rawValue)]) })
        metric("kernel_dropped_total", "counter", "Records the kernel could not put in the ring buffer.", [("", c.kernelDropped)])
        metric("decode_rejected_total", "counter", "Ring buffer records that did not decode.", [("", c.decodeRejected)])
        metric("sessions", "gauge", "Live sessions.", [("", UInt64(c.sessions))])
        metric("processes", "gauge", "Processes tracked in sessions.", [("", UInt64(c.processes))])
        metric("syscall_hooks_attached", "gauge", "1 while the syscall hooks are attached.", [("", c.syscallHooksAttached ? 1 : 0)])
        let workers = outputs?.workers ?? []
        let stats = workers.map { ($0.name, $0.counters, $0.backlogBytes) }
        metric("output_records_total", "counter", "Records delivered, by output.", stats.map { ("output=\"\(label($0.0))\"", $0.1.records) })
        metric("output_errors_total", "counter", "Failed opens and deliveries, by output.", stats.map { ("output=\"\(label($0.0))\"", $0.1.errors) })
        metric("output_dropped_total", "counter", "Records an output could not keep (queue and spool full).", stats.map { ("output=\"\(label($0.0))\"", sinkDropped[$0.0] ?? 0) })
        metric("output_spooled_bytes", "gauge", "Bytes waiting in an output's spool.", stats.map { ("output=\"\(label($0.0))\"", $0.1.spooledBytes) })
        metric("output_backlog_bytes", "gauge", "Bytes queued in memory for an output.", stats.map { ("output=\"\(label($0.0))\"", UInt64($0.2)) })
        metric("output_up", "gauge", "1 while an output's destination is open.", stats.map { ("output=\"\(label($0.0))\"", $0.1.connected ? 1 : 0) })
        // Written through its checked directory, by replacing the file: the collector never
        // reads half a file, and a link planted at either name is never followed.
        let (dir, name) = TrustedDirectory.split(path)
        if metricsDirectory?.path != dir {
            do {
                metricsDirectory = try TrustedDirectory(dir, purpose: "metrics_textfile")
            } catch {
                metricsDirectory = nil
                // Said once per reason, not at every interval.
                if error.message != metricsRefusal { logger.warning("not writing metrics: \(error.message)") }
                metricsRefusal = error.message
                return
            }
            metricsRefusal = nil
        }
        if metricsDirectory?.replace(name, with: Array(t.utf8), mode: 0o644) != true {
            logger.warning("cannot write metrics to \(path): \(String(cString: strerror(errno)))")
        }
    }

    // MARK: control requests (on the control thread)

    package func handle(_ request: [String: Any], peer: ControlPeer) -> [String: Any] {
        switch request["op"] as? String {
        case "start": return startSession(request, peer: peer)
        case "end": return endSession(request, peer: peer)
        case "sessions":
            let list: [[String: Any]] = publishedSessions.withLock { $0 }.map { s in
                ["id": s.id, "cgroup": s.cgroup, "uid": Int(s.uid), "start_ns": Int(s.startNs), "adopted": s.adopted,
                 "labels": Dictionary(s.labels.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })]
            }
            return ["ok": true, "sessions": list]
        case "status":
            let c = counters
            var outputs: [[String: Any]] = []
            for w in self.outputs?.workers ?? [] {
                let st = w.counters
                outputs.append(["name": w.name, "destination": w.destination.description, "records": Int(st.records), "errors": Int(st.errors),
                                "connected": st.connected, "spooled_bytes": Int(st.spooledBytes), "backlog_bytes": w.backlogBytes, "last_error": st.lastError])
            }
            return ["ok": true, "version": AgentVersion.string, "pid": Int(getpid()), "sessions": c.sessions, "processes": c.processes,
                    "records": Int(c.records), "kernel_dropped": Int(c.kernelDropped), "decode_rejected": Int(c.decodeRejected),
                    "syscall_hooks": c.syscallHooksAttached, "outputs": outputs]
        default:
            return ["ok": false, "error": "unknown op: start, end, sessions or status"]
        }
    }

    /// The session root whose session holds `path`, and that session's directory.
    private func sessionHolding(_ path: String) -> String? {
        for r in registry.roots.map(\.path) where path.hasPrefix(r + "/") {
            let rest = path.dropFirst(r.count + 1)
            return r + "/" + (rest.split(separator: "/").first.map(String.init) ?? "")
        }
        return nil
    }

    private func startSession(_ request: [String: Any], peer: ControlPeer) -> [String: Any] {
        // The pid must still be the process that connected, running as the caller.
        if let problem = peer.ownershipProblem() { return ["ok": false, "error": problem] }
        guard let current = ControlPeer.cgroup(of: peer.pid, mount: cgroupMount) else { return ["ok": false, "error": "cannot read the cgroup of process \(peer.pid)"] }
        let id = (request["session"] as? String) ?? SessionLauncher.generatedID()
        if let holding = sessionHolding(current) {
            // Never out of a session, nor into another: refused, and a SIEM hears of it.
            refusals.withLock { $0.append((peer, holding, id)) }
            var one: UInt64 = 1
            _ = write(stopFD, &one, 8)
            return ["ok": false, "error": "process \(peer.pid) is inside session \(String(holding.split(separator: "/").last ?? "")): a process never leaves its session; start new sessions from outside one"]
        }
        if let problem = validateSessionID(id) { return ["ok": false, "error": "session \(id): \(problem)"] }
        var labels: [(key: String, value: String)] = []
        for (k, v) in (request["labels"] as? [String: Any] ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let v = v as? String else { return ["ok": false, "error": "label \(k): the value must be a string"] }
            if let problem = validateLabel(k + "=" + v) { return ["ok": false, "error": "label \(k): \(problem)"] }
            labels.append((k, v))
        }
        // The session's user is the caller, and ~ is that user's home from passwd.
        let path: String
        do {
            path = try SessionLauncher.create(id: id, metadata: SessionMetadata(uid: peer.uid, labels: labels), root: controlRoot)
        } catch {
            return ["ok": false, "error": error.message]
        }
        if let problem = peer.move(into: path, refuseLeaving: { sessionHolding($0) != nil }) {
            rmdir(path)
            return ["ok": false, "error": problem]
        }
        removeWhenEmpty.withLock { _ = $0.insert(path) }
        let watched = SessionLauncher.waitUntilWatched(path: path, timeoutMs: 3000)
        logger.info("session \(id) started for uid \(peer.uid) (process \(peer.pid)) through the control socket")
        return ["ok": true, "session": id, "cgroup": path, "watched": watched]
    }

    private func endSession(_ request: [String: Any], peer: ControlPeer) -> [String: Any] {
        guard let id = request["session"] as? String, validateSessionID(id) == nil else { return ["ok": false, "error": "give the session id"] }
        let path = controlRoot + "/" + id
        guard access(path, F_OK) == 0 else { return ["ok": true, "ended": true] }
        let owner = CgroupFS.getxattr(path, SessionMetadata.xattr).map { SessionMetadata.decode($0).uid } ?? nil
        guard peer.uid == 0 || owner == peer.uid else { return ["ok": false, "error": "session \(id) is not yours"] }
        if rmdir(path) == 0 { return ["ok": true, "ended": true] }
        // Still has processes: it ends when they do.
        removeWhenEmpty.withLock { _ = $0.insert(path) }
        return ["ok": true, "ended": false]
    }

    /// Refused control requests, as alerts in the stream (on the loop thread).
    private func recordRefusals() {
        let pending = refusals.withLock { r in defer { r = [] }; return r }
        for (peer, holding, requested) in pending {
            var st = stat()
            guard stat(holding, &st) == 0 else { continue }
            let s = session(for: UInt64(st.st_ino))
            let p = table.byPID[UInt32(peer.pid)]
            recorder.daemonAlert(
                id: "agentwatch-session-escape", title: "A process in a session asked to be moved to another session",
                severity: .high, tags: ["attack.defense-evasion", "attack.t1562.001"],
                message: "process \(peer.pid) (uid \(peer.uid)) of session \(s.id) asked the control socket for session \(requested); refused",
                session: s, process: p, tid: UInt32(peer.pid), unixNs: wallNow())
            logger.warning("refused: process \(peer.pid) of session \(s.id) asked to start session \(requested)")
        }
    }

    func wallNow() -> Int64 { clock.wall(bootNs: WallClock.bootNow()) }

    private func writePidFile() {
        if !runtime.replace("daemon.pid", with: Array("\(getpid())\n".utf8), mode: 0o644) {
            logger.warning("cannot write \(runtime.path(of: "daemon.pid")): \(String(cString: strerror(errno)))")
        }
    }

    static func kernelRelease() -> String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: u.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }
}

/// A live session as `agentwatch sessions` lists it.
struct SessionSummary: Sendable {
    let id: String
    let cgroup: String
    let uid: UInt32
    let startNs: Int64
    let adopted: Bool
    let labels: [(key: String, value: String)]
}

/// What the daemon has done so far, for the console, `agentwatch status` and tests.
package struct DaemonCounters: Sendable, Equatable {
    package var records: UInt64 = 0
    package var sessions = 0
    package var processes = 0
    package var kernelDropped: UInt64 = 0
    package var kernelDroppedByKind: [UInt64] = []
    package var decodeRejected: UInt64 = 0
    package var syscallHooksAttached = false
    package var recordsByType: [UInt64] = []
}
