@testable import AgentDaemon
@testable import AgentDetector
@testable import AgentOutputs
@testable import AgentPipeline
import AgentSensor
@testable import AgentSessions
@testable import AgentSupport
import Foundation
import Glibc
import Logging
import Synchronization
import Testing

/// Whether kernel tests can run here, and whether they must (CI sets AGENTWATCH_REQUIRE_KERNEL=1,
/// which turns "cannot run" into a failure instead of a skip).
enum KernelEnv {
    static let required = ProcessInfo.processInfo.environment["AGENTWATCH_REQUIRE_KERNEL"] == "1"

    /// How much longer than on hardware a wait may take: the kernel matrix runs the tests under
    /// emulation (.ci/matrix.sh sets AGENTWATCH_TEST_TIME_SCALE), where loading the programs
    /// alone takes seconds. It stretches deadlines only; no test measures speed.
    static let timeScale: Double = ProcessInfo.processInfo.environment["AGENTWATCH_TEST_TIME_SCALE"].flatMap(Double.init) ?? 1

    static let unavailableReason: String? = {
        if geteuid() != 0 { return "kernel tests need root" }
        if access("/sys/kernel/btf/vmlinux", R_OK) != 0 { return "kernel tests need BTF (/sys/kernel/btf/vmlinux)" }
        if CgroupFS.mountPoint() == nil { return "kernel tests need a cgroup2 mount" }
        return nil
    }()

    /// Run when possible, or when required (then a missing kernel fails the test).
    static var enabled: Bool {
        if let reason = unavailableReason, !required {
            print("skipping kernel test: \(reason)")
            return false
        }
        return true
    }

    /// The tier every in-process daemon of the kernel tests is forced onto
    /// (AGENTWATCH_TEST_SENSOR=fentry|kprobe|tracepoint, set by the kernel matrix); unset: auto.
    static let forcedTier: SensorTier? = {
        guard let v = ProcessInfo.processInfo.environment["AGENTWATCH_TEST_SENSOR"], !v.isEmpty, v != "auto" else { return nil }
        guard let tier = SensorTier(rawValue: v) else { fatalError("AGENTWATCH_TEST_SENSOR=\(v): not a tier (auto, \(SensorTier.allCases.map(\.rawValue).joined(separator: ", ")))") }
        return tier
    }()

    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
}

/// Every kernel suite is nested here and runs one test at a time: the tests share the host's pid
/// space (one rewinds `ns_last_pid`), its CPUs (one floods a ring buffer) and its tracefs, and a
/// test must not see another's side effects.
@Suite("kernel", .serialized, .enabled(if: KernelEnv.enabled))
enum KernelSuite {}

/// A daemon running in this process on a session root of its own, writing to a file: the
/// daemon's own service group (without signals), run on `ServiceThread`.
final class TestDaemon: @unchecked Sendable {
    let root: String
    let rootName: String
    let output: String
    let daemon: Daemon
    /// Ends the service group `start` ran (nil before).
    private var shutDown: (@Sendable () async -> Void)?
    private let finished = DispatchSemaphore(value: 0)
    private(set) var runError: Error?

    /// `output`: a file to append to (another daemon's, for restart tests); default a new one.
    init(output: String? = nil, configure: (inout DaemonConfig) -> Void = { _ in }) throws {
        if let reason = KernelEnv.unavailableReason { throw AgentError(reason) }
        rootName = "agentwatch-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let mount = CgroupFS.mountPoint()!
        root = mount + "/" + rootName
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(rootName).path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        self.output = output ?? dir + "/records.ndjson"
        var config = DaemonConfig()
        config.sessionRoots = [rootName]
        config.output = self.output
        config.pollIntervalMs = 20
        config.statusIntervalS = 0
        config.runtimeDir = dir
        config.rules = []
        config.sensor = KernelEnv.forcedTier
        // Under emulation a catalog scan is as much slower as everything else.
        config.catalogScanBudgetMs = Int(Double(config.catalogScanBudgetMs) * KernelEnv.timeScale)
        configure(&config)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        daemon = try Daemon(config: config, sink: try Outputs(config.effectiveOutputs, logger: logger), logger: logger)
    }

    func start() {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let group = daemon.serviceGroup(signals: false, logger: logger)
        shutDown = { await group.triggerGracefulShutdown() }
        Task(executorPreference: ServiceThread.shared) { [self] in
            do { try await group.run() } catch { runError = error }
            finished.signal()
        }
        // The daemon is ready once agent.start is out and the process hooks are attached.
        let ready = waitUntil(timeout: 30) { self.daemon.counters.records >= 1 || self.runError != nil }
        #expect(ready && runError == nil, "daemon not ready: \(runError.map { "\($0)" } ?? "no agent.start within 30 s")")
    }

    /// Stops the daemon and, unless `keepCgroups` (a test that starts another daemon on the same
    /// sessions), removes its root and sessions.
    func stop(keepCgroups: Bool = false) {
        if let shutDown {
            Task(executorPreference: ServiceThread.shared) { await shutDown() }
            finished.wait()
        }
        if keepCgroups { return }
        // Leave no cgroup behind: sessions first (children), then the root.
        for s in CgroupFS.subdirectories(of: root) { removeCgroupTree(root + "/" + s) }
        rmdir(root)
    }

    func sessionPath(_ id: String) -> String { root + "/" + id }

    /// Makes a session cgroup and, as `agentwatch run` does, waits until the daemon watches it
    /// (its syscall hooks are attached).
    @discardableResult
    func makeSession(_ id: String) -> String {
        let p = sessionPath(id)
        mkdir(p, 0o755)
        let watched = SessionLauncher.waitUntilWatched(path: p, timeoutMs: 30_000)
        #expect(watched, "session \(id) not watched within 30 s; daemon: \(daemon.counters)")
        return p
    }

    /// Records written so far, parsed.
    func records() -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: output) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap {
            try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any]
        }
    }

    /// Waits until `condition` over the records holds; returns the records. A timeout is an
    /// issue of its own that says what the daemon had written, so a failure explains itself.
    @discardableResult
    func waitForRecords(
        timeout: Double = 20, sourceLocation: Testing.SourceLocation = #_sourceLocation,
        _ condition: ([[String: Any]]) -> Bool
    ) -> [[String: Any]] {
        var last: [[String: Any]] = []
        let held = waitUntil(timeout: timeout) {
            last = self.records()
            return condition(last)
        }
        if !held {
            Issue.record("records awaited for \(Int(timeout)) s did not come; \(summary(last))", sourceLocation: sourceLocation)
        }
        return last
    }

    /// What the daemon wrote, in a few lines: counts by type, the last records, its counters.
    func summary(_ records: [[String: Any]]) -> String {
        var byType: [String: Int] = [:]
        for r in records { byType[r.string("type") ?? "?", default: 0] += 1 }
        let tail = records.suffix(8).map { r in
            [r.string("type"), r.int("process.pid").map { "pid \($0)" }, r.string("process.exe"), r.string("file.path"), r.string("session.id").map { "session \($0)" }]
                .compactMap { $0 }.joined(separator: " ")
        }
        return "\(records.count) records \(byType.sorted { $0.key < $1.key }); last: \(tail); counters: \(daemon.counters); error: \(runError.map { "\($0)" } ?? "none")"
    }
}

/// A thread of its own for the services of the daemons the tests run in this process. The
/// test runner's cooperative pool has as many threads as cores (two here), and tests that
/// block theirs (waiting for records) must not hold up a daemon's services: its metrics, its
/// control socket's start, its graceful shutdown.
final class ServiceThread: TaskExecutor, @unchecked Sendable {
    static let shared = ServiceThread()
    private let jobs = Mutex<[UnownedJob]>([])
    private let ready = DispatchSemaphore(value: 0)

    private init() {
        startThread(name: "test-services") { [self] in
            while true {
                ready.wait()
                let job = jobs.withLock { $0.removeFirst() }
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
        ready.signal()
    }
}

func removeCgroupTree(_ path: String) {
    for s in CgroupFS.subdirectories(of: path) { removeCgroupTree(path + "/" + s) }
    // Move stragglers out so the directory can go.
    for pid in CgroupFS.processes(below: path) { kill(pid, SIGKILL) }
    for _ in 0..<100 {
        if rmdir(path) == 0 || errno == ENOENT { return }
        usleep(20_000)
    }
}

@discardableResult
func waitUntil(timeout: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout * KernelEnv.timeScale)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

/// Runs `argv` in cgroup `cgroup` (nil: where the test runs), waits, returns pid and status.
@discardableResult
func runIn(_ cgroup: String?, _ argv: [String]) -> (pid: pid_t, status: Int32) {
    let pid = startIn(cgroup, argv)
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (pid, status)
}

/// Starts `argv` in cgroup `cgroup` (nil: where the test runs) without waiting: the caller
/// reaps it.
func startIn(_ cgroup: String?, _ argv: [String]) -> pid_t {
    var full = ["/bin/sh", "-c"]
    if let cgroup {
        full.append("echo $$ > '\(cgroup)/cgroup.procs' && exec \"$@\"")
    } else {
        full.append("exec \"$@\"")
    }
    full.append("sh")
    full += argv
    return spawn(full)
}

/// What `argv` wrote to standard output, run to its end (outside any session).
func commandOutput(_ argv: [String]) -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0])
    p.arguments = Array(argv.dropFirst())
    let pipe = Pipe()
    p.standardOutput = pipe
    try? p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

func spawn(_ argv: [String]) -> pid_t {
    var pid: pid_t = 0
    let cargs = argv.map { strdup($0) } + [nil]
    defer { cargs.forEach { free($0) } }
    let rc = posix_spawn(&pid, argv[0], nil, nil, cargs, environ)
    precondition(rc == 0, "posix_spawn \(argv[0]): \(rc)")
    return pid
}

/// A TCP listener on 127.0.0.1 that accepts and closes connections, for connect tests.
final class LoopbackListener {
    let fd: Int32
    let port: UInt16

    init() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                _ = bind(fd, $0, len)
                _ = listen(fd, 64)
                _ = getsockname(fd, $0, &len)
            }
        }
        port = UInt16(bigEndian: addr.sin_port)
    }

    deinit { close(fd) }
}

extension Dictionary where Key == String, Value == Any {
    /// A value by dotted path: "process.pid".
    subscript(path path: String) -> Any? {
        var current: Any? = self
        for part in path.split(separator: ".") {
            current = (current as? [String: Any])?[String(part)]
        }
        return current
    }

    func string(_ path: String) -> String? { self[path: path] as? String }
    func int(_ path: String) -> Int? { (self[path: path] as? NSNumber)?.intValue }
}

/// Checks every record of `file` against the record schema with `schema/validate.py`.
func expectValidAgainstSchema(_ file: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
    let validate = Process()
    validate.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    validate.arguments = ["python3", KernelEnv.packageRoot + "/schema/validate.py", file]
    let out = Pipe()
    validate.standardOutput = out
    validate.standardError = out
    try validate.run()
    let report = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    validate.waitUntilExit()
    #expect(validate.terminationStatus == 0, "schema validation: \(report)", sourceLocation: sourceLocation)
}
