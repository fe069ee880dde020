import AgentDetector
import AgentOutputs
import AgentSensor
import AgentSessions
import AgentSupport
import Glibc
import Logging

/// What `agentwatch daemon` checks and makes ready before it runs: privileges, the kernel's BTF,
/// cgroup2 and tracefs, the session roots, the rules, `runtime_dir`, and last the kernel
/// programs, loaded. Every failure is one `AgentError` line that says what to do.
struct Preflight {
    let registry: SessionRegistry
    let rules: RuleSet?
    /// `runtime_dir`, checked: the pid file and the control socket are made through it.
    let runtime: TrustedDirectory
    let sensor: Sensor

    init(config: DaemonConfig, outputs: Outputs?, logger: Logger, objectBytes: [UInt8]?) throws(AgentError) {
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
        rules = try Self.loadRules(config.rules ?? RuleSet.defaultPaths())
        // Root writes here: a directory others could change would let them plant a link.
        runtime = try TrustedDirectory(config.runtimeDir, purpose: "runtime_dir", create: 0o755)
        for w in outputs?.workers ?? [] {
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
        settings.tier = config.sensor
        do {
            sensor = try Sensor(settings: settings, objectBytes: objectBytes)
        } catch {
            // A forced tier first: a kernel without BPF trampolines refuses fentry with EPERM,
            // which is not a missing privilege.
            if let tier = config.sensor, tier != .tracepoint {
                throw AgentError("loading the BPF programs on the \(tier.rawValue) tier (sensor: \(tier.rawValue)) failed: \(error): set sensor: auto to take the best tier this kernel has")
            }
            if error.errno == EPERM || error.errno == EACCES {
                throw AgentError("the kernel refused to load the BPF programs (\(error)): run as root, or grant CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_CHOWN (packaging/CAPABILITIES.md)")
            }
            throw AgentError("loading the BPF programs failed: \(error)")
        }
    }

    /// Invalid rules stop the daemon before it loads anything: a SIEM must not believe a host is
    /// covered by rules that never loaded. No paths: no rules.
    static func loadRules(_ paths: [String]) throws(AgentError) -> RuleSet? {
        guard !paths.isEmpty else { return nil }
        do {
            return try RuleSet.load(paths: paths)
        } catch {
            let first = error.diagnostics.first.map { "\($0)" } ?? "\(error)"
            let more = error.diagnostics.count > 1 ? " (and \(error.diagnostics.count - 1) more)" : ""
            throw AgentError("invalid rules, not starting: \(first)\(more); agentwatch rules check \(paths.joined(separator: " ")) lists every error")
        }
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

    /// `uname -r`, for `agent.start`.
    static func kernelRelease() -> String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: u.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }
}
