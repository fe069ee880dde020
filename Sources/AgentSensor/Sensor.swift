import AgentProbes
import BPFKit
import CAgentEvents
import CLibbpf
import Glibc

/// Settings the kernel programs are loaded with.
package struct SensorSettings: Sendable {
    /// (cgroup id, level) of each session root, at most AGENT_MAX_ROOTS.
    package var roots: [(cgid: UInt64, level: UInt32)]
    package var ringBufferBytes: UInt32
    package var argsMax: UInt32
    package var wakeupBytes: UInt64
    /// Kernel BTF to relocate against, when not /sys/kernel/btf/vmlinux.
    package var btfPath: String?
    /// Session root directories: the byte-counting cgroup programs attach to each.
    package var rootPaths: [String] = []
    /// A flow record each time a socket has sent this many more bytes.
    package var flowReportBytes: UInt64 = 1 << 20
    /// Resolve open paths in the kernel (off only to measure what resolution costs).
    package var resolvePaths = true
    /// Session-root patterns, each as the kernel reads it (`struct agent_pattern`): roots
    /// matching them are added at run time (`addRoot`).
    package var patterns: [[UInt8]] = []
    /// The syscall hooks' tier (`sensor` setting); nil: the best one the kernel takes.
    package var tier: SensorTier?

    package init(roots: [(cgid: UInt64, level: UInt32)], ringBufferBytes: UInt32, argsMax: UInt32, wakeupBytes: UInt64, btfPath: String? = nil) {
        self.btfPath = btfPath
        self.roots = roots
        self.ringBufferBytes = ringBufferBytes
        self.argsMax = argsMax
        self.wakeupBytes = wakeupBytes
    }
}

/// The kernel side as the daemon sees it: the loaded programs, their attachments, the ring
/// buffer and the loss counters. Process hooks stay attached, and so do the syscall hooks of the
/// tiers that cost only their callers; the tracepoint tier's syscall hooks and the io_uring ones
/// are attached only while a session exists, because a syscall tracepoint slows every task on
/// the host.
package final class Sensor {
    /// Always attached: scheduler tracepoints, no syscall slow path.
    package static let processPrograms: [AgentProbes.Program] = [.on_exec, .on_fork, .on_exit, .flow_tcp_close, .on_cgroup_attach_task]
    /// The syscall hooks (opens and connects) of `tier`, attached only while at least one
    /// session exists: bpf/file.bpf.c and bpf/net.bpf.c give each call the same record on every tier.
    package static func syscallPrograms(_ tier: SensorTier) -> [AgentProbes.Program] {
        let common: [AgentProbes.Program]
        switch tier {
        case .lsm:
            common = [.fexit_openat, .fexit_openat2, .fexit_open_by_handle_at, .fentry_connect, .fexit_connect,
                      .lsm_file_open, .lsm_socket_connect]
        case .fentry:
            common = [.fexit_openat, .fexit_openat2, .fexit_open_by_handle_at, .fentry_connect, .fexit_connect, .fentry_file_open,
                      .fentry_socket_connect]
        case .kprobe:
            common = [.kprobe_openat, .kretprobe_openat, .kprobe_openat2, .kretprobe_openat2,
                      .kprobe_open_by_handle_at, .kretprobe_open_by_handle_at, .kprobe_connect, .kretprobe_connect, .kprobe_file_open,
                      .kprobe_socket_connect]
        case .tracepoint:
            common = [.on_openat_enter, .on_openat_exit, .on_openat2_enter, .on_openat2_exit,
                      .on_open_by_handle_at_enter, .on_open_by_handle_at_exit, .on_connect_enter, .on_connect_exit]
        }
        return common + (hasOpenAndCreat ? openAndCreatPrograms(tier) : [])
    }

    /// open(2) and creat(2): x86_64 has them; arm64 (the generic syscall table) has openat only,
    /// and nothing to attach these to, so there they are not loaded.
    #if arch(x86_64)
    package static let hasOpenAndCreat = true
    #else
    package static let hasOpenAndCreat = false
    #endif

    /// `tier`'s programs for open(2) and creat(2), whether or not this architecture has them.
    static func openAndCreatPrograms(_ tier: SensorTier) -> [AgentProbes.Program] {
        switch tier {
        case .lsm, .fentry: return [.fexit_open, .fexit_creat]
        case .kprobe: return [.kprobe_open, .kretprobe_open, .kprobe_creat, .kretprobe_creat]
        case .tracepoint: return [.on_open_enter, .on_open_exit, .on_creat_enter, .on_creat_exit]
        }
    }

    /// io_uring opens and connects (bpf/uring_file.bpf.c, bpf/uring_net.bpf.c): the submission
    /// hook this kernel has (renamed in 6.4) and the completion hook. Attached with the syscall hooks, only while a session
    /// exists: they run for every io_uring request and completion on the host, not only for
    /// opens. A kernel without io_uring's tracepoints (CONFIG_IO_URING off, or no BTF for them)
    /// has none of them loaded: its io_uring opens are not seen, and nothing else is lost.
    package static let uringPrograms: [(program: AgentProbes.Program, tracepoint: String)] = [
        (.on_uring_submit_req, "io_uring_submit_req"), (.on_uring_submit_sqe, "io_uring_submit_sqe"),
        (.on_uring_complete, "io_uring_complete"),
        (.uring_net_submit_req, "io_uring_submit_req"), (.uring_net_submit_sqe, "io_uring_submit_sqe"),
        (.uring_net_complete, "io_uring_complete"),
    ]

    /// Attached when session-root patterns are configured: they find new roots at mkdir.
    package static let rootPrograms: [AgentProbes.Program] = [.on_cgroup_mkdir, .on_cgroup_rmdir]

    /// Attached to every session root: they run only for sockets of session processes.
    package static let cgroupPrograms: [AgentProbes.Program] = [.flow_connect4, .flow_connect6, .flow_egress, .flow_ingress, .flow_release,
                                                                     .send_sock_create, .send_sendmsg4, .send_sendmsg6]

    /// The programs' object through its generated skeleton: programs, maps and settings by name.
    package let object: ProbeSkeleton
    /// How the syscall hooks are attached on this kernel, and why better tiers were not taken.
    package let choice: SensorChoice
    private let rootPaths: [String]
    let hasPatterns: Bool
    /// The socket hooks of each root found through a pattern, by the root's cgroup id.
    private var rootLinks: [UInt64: [BPFLink]] = [:]
    private var processLinks: [BPFLink] = []
    private var syscallLinks: [BPFLink] = []
    private var ring: RingBuffer?
    /// The io_uring programs loaded on this kernel (`uringPrograms`), attached with the
    /// syscall hooks; empty where io_uring opens cannot be seen.
    package let uringLoaded: [AgentProbes.Program]
    /// The ia32 open programs loaded (`ia32Programs`), attached with the syscall hooks; empty
    /// where the kernel has no ia32 emulation (or this is not x86_64).
    package let ia32Loaded: [AgentProbes.Program]
    /// What the net hooks capture on this kernel, as `agent.start`'s features name it.
    package let netFeatures: [String]

    /// Opens and loads the embedded programs (or `objectBytes`) with `settings`.
    package init(settings: SensorSettings, objectBytes: [UInt8]? = nil) throws(BPFError) {
        choice = try Self.chooseTier(settings.tier, objectBytes: objectBytes, btfPath: settings.btfPath)
        object = try ProbeSkeleton(bytes: objectBytes, btfPath: settings.btfPath)
        rootPaths = settings.rootPaths
        hasPatterns = !settings.patterns.isEmpty
        let kernel = KernelBTF.running()
        uringLoaded = Self.uringChoice(tracepoints: Self.kernelTracepoints(Self.uringPrograms.map(\.tracepoint), in: kernel))
        ia32Loaded = Self.ia32Choice(choice.tier, kernel: kernel)
        let relocation = settings.btfPath.map(KernelBTF.init(path:))
        netFeatures = Self.netFeatures(uring: uringLoaded, btf: relocation ?? kernel)
        relocation?.release()
        kernel.release()
        guard settings.roots.count <= Int(AGENT_MAX_ROOTS) else {
            throw BPFError("more than \(AGENT_MAX_ROOTS) session roots", errno: EINVAL)
        }
        for (i, root) in settings.roots.enumerated() {
            object.rodata.root_cgid[i] = root.cgid
            object.rodata.root_level[i] = root.level
        }
        object.rodata.nroots = UInt32(settings.roots.count)
        guard settings.patterns.count <= Int(AGENT_MAX_PATTERNS) else {
            throw BPFError("more than \(AGENT_MAX_PATTERNS) session-root patterns", errno: EINVAL)
        }
        guard settings.patterns.allSatisfy({ $0.count == MemoryLayout<agent_pattern>.size }) else {
            throw BPFError("a session-root pattern is not \(MemoryLayout<agent_pattern>.size) bytes", errno: EINVAL)
        }
        for (i, pattern) in settings.patterns.enumerated() {
            object.rodata.patterns[i] = pattern.withUnsafeBytes { $0.loadUnaligned(as: agent_pattern.self) }
        }
        object.rodata.npatterns = UInt32(settings.patterns.count)
        if !hasPatterns {
            for p in Self.rootPrograms { try object.program(p).setAutoload(false) }
        }
        let hooks = Self.syscallPrograms(choice.tier)
        for p in Self.allSyscallPrograms where !hooks.contains(p) { try object.program(p).setAutoload(false) }
        for (p, _) in Self.uringPrograms where !uringLoaded.contains(p) { try object.program(p).setAutoload(false) }
        for p in SensorTier.allCases.flatMap(Self.ia32Programs) where !ia32Loaded.contains(p) { try object.program(p).setAutoload(false) }
        object.rodata.ia32_hooked = ia32Loaded.isEmpty ? 0 : 1
        object.rodata.args_max = min(settings.argsMax, UInt32(AGENT_ARGS_MAX))
        object.rodata.wakeup_bytes = settings.wakeupBytes
        object.rodata.flow_report_bytes = settings.flowReportBytes
        object.rodata.resolve_paths = settings.resolvePaths ? 1 : 0
        try object.map(.events).setMaxEntries(settings.ringBufferBytes)
        try object.load()
    }

    /// Attaches the process hooks and starts reading the ring buffer into `handler`.
    package func start(handler: @escaping RingBuffer.Handler) throws(BPFError) {
        ring = try RingBuffer(map: object.map(.events), handler: handler)
        for p in Self.processPrograms + (hasPatterns ? Self.rootPrograms : []) {
            processLinks.append(try object.program(p).attach())
        }
        for path in rootPaths {
            processLinks += try attachCgroupPrograms(path)
        }
        for p in alwaysAttached {
            processLinks.append(try object.program(p).attach())
        }
    }

    private func attachCgroupPrograms(_ path: String) throws(BPFError) -> [BPFLink] {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw BPFError("open(\(path))", errno: errno) }
        defer { close(fd) }
        var links: [BPFLink] = []
        for p in Self.cgroupPrograms {
            links.append(try object.program(p).attachCgroup(fd: fd, path: path))
        }
        return links
    }

    /// A root found through pattern `pattern`: into the gate (the kernel may have put it there
    /// at mkdir already), and the socket hooks onto its directory.
    package func addRoot(cgid: UInt64, path: String, pattern: Int) throws(BPFError) {
        try object.map(.dyn_roots).update(key: cgid, value: UInt32(pattern))
        try bumpRootsGeneration()
        if rootLinks[cgid] == nil {
            rootLinks[cgid] = try attachCgroupPrograms(path)
        }
    }

    /// A root found through a pattern went: out of the gate, its hooks released.
    package func removeRoot(cgid: UInt64) {
        try? object.map(.dyn_roots).delete(key: cgid)
        try? bumpRootsGeneration()
        rootLinks[cgid] = nil
    }

    /// The gate's per-CPU answers were computed with the old roots: make them misses. The
    /// kernel adds 1 at each mkdir and rmdir of a root; this adds 2^32 to what it read, after
    /// the map change. The counter only grows, each write gives a value never seen before (a
    /// kernel increment between the read and the write is overtaken, not undone), so no answer
    /// stamped before a root change can match again.
    private func bumpRootsGeneration() throws(BPFError) {
        let map = object.map(.roots_gen)
        let before = map.lookup(key: UInt32(0), as: UInt64.self) ?? 0
        try map.update(key: UInt32(0), value: before &+ (1 << 32))
    }

    /// Whether the kernel gate holds `cgid` as a root found through a pattern.
    package func gateHoldsRoot(cgid: UInt64) -> Bool {
        object.map(.dyn_roots).lookup(key: cgid, as: UInt32.self) != nil
    }

    package private(set) var syscallHooksAttached = false

    /// The chosen tier's syscall programs, this kernel's io_uring ones and its ia32 ones.
    package var sessionPrograms: [AgentProbes.Program] { Self.syscallPrograms(choice.tier) + uringLoaded + ia32Loaded }

    /// Attached at start, for the daemon's life: on every tier but the tracepoint one, its
    /// syscall and ia32 programs. They cost only their callers (a trampoline or a kprobe and the
    /// gate), so the first opens of a session made without `agentwatch run` are seen too, and
    /// the kernel does not patch hot functions' entries each time the first session begins and
    /// the last one ends.
    package var alwaysAttached: [AgentProbes.Program] {
        choice.tier == .tracepoint ? [] : Self.syscallPrograms(choice.tier) + ia32Loaded
    }

    /// What `attachSyscallHooks` attaches while a session exists: the rest of `sessionPrograms`:
    /// the tracepoint tier's syscall programs (each slows every syscall on the host), the io_uring
    /// programs (they run for every io_uring request on the host).
    package var onDemandPrograms: [AgentProbes.Program] {
        let always = alwaysAttached
        return sessionPrograms.filter { !always.contains($0) }
    }

    /// The ways of opening a file seen beyond openat and openat2, as `agent.start` names them:
    /// `open_by_handle_at`, `open` and `creat` where the architecture has them, `io_uring_open`
    /// where the kernel's io_uring hooks loaded, `ia32_open` where ia32 opens are hooked,
    /// `other_open` on every tier but the tracepoint one (file_open: opens no syscall program decodes).
    package var openFeatures: [String] {
        ["open_by_handle_at"] + (Self.hasOpenAndCreat ? ["open", "creat"] : []) + (uringLoaded.isEmpty ? [] : ["io_uring_open"])
            + (ia32Loaded.isEmpty ? [] : ["ia32_open"]) + (choice.tier == .tracepoint ? [] : ["other_open"])
    }

    /// What the kernel side captures on this kernel and tier beyond what every one does, as
    /// `agent.start`'s features name it.
    package var features: [String] {
        openFeatures + netFeatures + (choice.tier == .lsm ? ["connect_kernel_address"] : [])
    }

    package func attachSyscallHooks() throws(BPFError) {
        guard !syscallHooksAttached else { return }
        var links: [BPFLink] = []
        for p in onDemandPrograms {
            links.append(try object.program(p).attach())
        }
        syscallLinks = links
        syscallHooksAttached = true
    }

    package func detachSyscallHooks() {
        syscallLinks.removeAll()
        syscallHooksAttached = false
    }

    /// Detaches every hook; records already in the ring can still be consumed.
    package func detachAll() {
        syscallLinks.removeAll()
        syscallHooksAttached = false
        processLinks.removeAll()
        rootLinks.removeAll()
    }

    /// The io_uring programs to load given the raw tracepoints the kernel has: the submission
    /// hook it has (io_uring_submit_req, or before 6.4 io_uring_submit_sqe) and the completion
    /// hook, or none when either is missing.
    package static func uringChoice(tracepoints: Set<String>) -> [AgentProbes.Program] {
        guard tracepoints.contains("io_uring_complete") else { return [] }
        if tracepoints.contains("io_uring_submit_req") {
            return [.on_uring_submit_req, .on_uring_complete, .uring_net_submit_req, .uring_net_complete]
        }
        if tracepoints.contains("io_uring_submit_sqe") {
            return [.on_uring_submit_sqe, .on_uring_complete, .uring_net_submit_sqe, .uring_net_complete]
        }
        return []
    }

    /// Which of `names` the running kernel's BTF has as raw tracepoints (`btf_trace_NAME`):
    /// what a tp_btf program attaches to. libbpf resolves those against this BTF whatever BTF
    /// the object is relocated with. None without kernel BTF.
    package static func kernelTracepoints(_ names: [String], in kernel: KernelBTF = .running()) -> Set<String> {
        Set(names.filter { kernel.has("btf_trace_" + $0, kind: BTF_KIND_TYPEDEF) })
    }

    /// Which of `names` the running kernel's BTF has as functions: what fexit and kprobe
    /// programs attach to. None without kernel BTF.
    package static func kernelFunctions(_ names: [String], in kernel: KernelBTF = .running()) -> Set<String> {
        Set(names.filter { kernel.has($0, kind: BTF_KIND_FUNC) })
    }

    /// The ia32 open calls' kernel functions (bpf/file.bpf.c): where the kernel's BTF has them
    /// all, it has ia32 emulation, and ia32 opens are hooked on every tier.
    static let ia32Functions = ["__ia32_compat_sys_openat", "__ia32_compat_sys_open", "__ia32_sys_creat", "__ia32_sys_openat2",
                                "__ia32_compat_sys_open_by_handle_at"]

    /// `tier`'s programs for ia32 opens: on the function of each call, or on the tracepoint
    /// tier one raw tracepoint at every syscall's exit that picks them out.
    package static func ia32Programs(_ tier: SensorTier) -> [AgentProbes.Program] {
        switch tier {
        case .lsm, .fentry:
            [.fexit_ia32_openat, .fexit_ia32_open, .fexit_ia32_creat, .fexit_ia32_openat2, .fexit_ia32_open_by_handle_at]
        case .kprobe:
            [.kprobe_ia32_openat, .kretprobe_ia32_openat, .kprobe_ia32_open, .kretprobe_ia32_open, .kprobe_ia32_creat, .kretprobe_ia32_creat,
             .kprobe_ia32_openat2, .kretprobe_ia32_openat2, .kprobe_ia32_open_by_handle_at, .kretprobe_ia32_open_by_handle_at]
        case .tracepoint:
            [.ia32_sys_exit]
        }
    }

    /// The ia32 programs to load: `tier`'s on x86_64 where the kernel has ia32 emulation, none elsewhere.
    static func ia32Choice(_ tier: SensorTier, kernel: KernelBTF) -> [AgentProbes.Program] {
        #if arch(x86_64)
        kernelFunctions(ia32Functions, in: kernel).count == ia32Functions.count ? ia32Programs(tier) : []
        #else
        []
        #endif
    }

    /// The uses by session `cgid` of channels the programs saw and could not decode, by channel
    /// name, taken out of the kernel's counts (at the session's end).
    package func takeUndecoded(session cgid: UInt64) -> [(channel: String, count: UInt64)] {
        let map = object.map(.undecoded)
        var out: [(channel: String, count: UInt64)] = []
        for channel in 0..<AGENT_UNDECODED_COUNT.rawValue {
            let key = agent_undecoded_key(session: cgid, channel: channel, _pad0: 0)
            guard let n = map.lookup(key: key, as: UInt64.self), n > 0 else { continue }
            try? map.delete(key: key)
            out.append((Self.undecodedName(channel), n))
        }
        return out
    }

    static func undecodedName(_ channel: UInt32) -> String {
        switch channel {
        case AGENT_UNDECODED_IA32_CONNECT.rawValue: "ia32_connect"
        default: "unknown"
        }
    }

    /// Every process on the host with its exact start time, from the task iterator.
    package func taskStartTimes() throws(BPFError) -> [UInt32: UInt64] {
        let bytes = try object.program(.task_starts).readIterator()
        let size = MemoryLayout<agent_task_start>.size
        var starts: [UInt32: UInt64] = [:]
        starts.reserveCapacity(bytes.count / size)
        bytes.withUnsafeBytes { raw in
            var at = 0
            while at + size <= raw.count {
                let t = raw.loadUnaligned(fromByteOffset: at, as: agent_task_start.self)
                starts[t.pid] = t.start_ns
                at += size
            }
        }
        return starts
    }

    package var ringEpollFD: Int32 { ring?.epollFD ?? -1 }

    @discardableResult
    package func consume() throws(BPFError) -> Int {
        try ring?.consume() ?? 0
    }

    /// Bytes waiting in the ring buffer, and its size: read from its mapped pages, no system call.
    package var ringFill: (waiting: UInt64, size: UInt64) {
        guard let ring else { return (0, 0) }
        return (ring.waiting, ring.size)
    }

    /// Drops counted in the kernel and not yet reported in the stream, per kind, summed over
    /// CPUs; also the total ever dropped.
    package func lossCounters() throws(BPFError) -> (unreported: [UInt64], dropped: [UInt64]) {
        let size = MemoryLayout<agent_loss_counters>.size
        let perCPU = try object.map(.loss_counters).lookupPerCPU(key: 0, valueSize: size)
        let kinds = Int(AGENT_KIND_COUNT.rawValue)
        var unreported = [UInt64](repeating: 0, count: kinds)
        var dropped = [UInt64](repeating: 0, count: kinds)
        for cpu in perCPU {
            let c = cpu.withUnsafeBytes { $0.loadUnaligned(as: agent_loss_counters.self) }
            withUnsafeBytes(of: c.dropped) { d in
                withUnsafeBytes(of: c.reported) { r in
                    for k in 0..<kinds {
                        let dv = d.loadUnaligned(fromByteOffset: k * 8, as: UInt64.self)
                        let rv = r.loadUnaligned(fromByteOffset: k * 8, as: UInt64.self)
                        dropped[k] += dv
                        unreported[k] += dv &- rv
                    }
                }
            }
        }
        return (unreported, dropped)
    }
}
