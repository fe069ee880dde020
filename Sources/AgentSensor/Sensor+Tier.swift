import AgentProbes
import AgentSupport
import BPFKit
import Glibc

/// How the open and connect syscalls are hooked, best first. Each tier gives the same records
/// (bpf/file.bpf.c, bpf/net.bpf.c); they differ in what they cost the rest of the host and in
/// what they see beyond the hooked syscalls:
/// - `lsm`: the fentry tier's programs and two BPF LSM hooks, where `bpf` is an active LSM:
///   `file_open` records every open no syscall program decodes (ia32 syscalls, a pty peer opened
///   by ioctl, ...; `file.via` `other`), `socket_connect` gives a connect's record the address
///   the kernel connected to, not what the caller's memory held at entry.
/// - `fentry`: fexit (and for connect fentry) programs on the syscalls' own kernel functions,
///   through BPF trampolines: only callers of those syscalls pay.
/// - `kprobe`: kprobes on the same functions (ksyscall/kretsyscall): only their callers pay,
///   more than on the fentry tier.
/// - `tracepoint`: the syscalls' tracepoints: while attached, every task on the host takes the
///   slow syscall path, whatever it calls.
/// Exec, fork, exit, io_uring and the socket hooks are the same on every tier.
package enum SensorTier: String, CaseIterable, Sendable {
    case lsm, fentry, kprobe, tracepoint
}

/// The tier a sensor runs on: forced by the `sensor` setting, or the best the kernel takes.
package struct SensorChoice: Sendable, Equatable {
    /// A better tier the kernel refused, with its error.
    package struct Refusal: Sendable, Equatable {
        package var tier: SensorTier
        package var error: String

        package init(tier: SensorTier, error: String) {
            self.tier = tier
            self.error = error
        }
    }

    package var tier: SensorTier
    /// Whether `sensor` forced the tier (no probing).
    package var forced: Bool
    /// The better tiers the kernel refused, best first.
    package var refused: [Refusal]

    package init(tier: SensorTier, forced: Bool, refused: [Refusal]) {
        self.tier = tier
        self.forced = forced
        self.refused = refused
    }
}

/// What a session's record can and cannot see on this kernel and tier, as `session.start` says
/// it: the channels recorded (`agent.start`'s features), and those of `Sensor.tierChannels`
/// (which depend on the kernel and the tier) that are not.
package struct SensorSight: Sendable, Equatable {
    package var tier: SensorTier
    package var sees: [String]
    package var blind: [String]

    package init(tier: SensorTier, sees: [String], blind: [String]) {
        self.tier = tier
        self.sees = sees
        self.blind = blind
    }
}

extension Sensor {
    /// The channels some kernel or tier records and another may not, as features name them:
    /// open(2) and creat(2) (x86_64 has them), io_uring opens and connects (the kernel's
    /// io_uring tracepoints), ia32 opens (x86_64: the kernel's ia32 functions), opens no syscall
    /// program decodes (`other_open`: a file_open hook, every tier but the tracepoint one), and
    /// a connect's address as the kernel copied it (`connect_kernel_address`: the LSM tier).
    package static var tierChannels: [String] {
        #if arch(x86_64)
        ["open", "creat", "io_uring_open", "ia32_open", "other_open", "io_uring_connect", "connect_kernel_address"]
        #else
        ["io_uring_open", "other_open", "io_uring_connect", "connect_kernel_address"]
        #endif
    }

    /// What this sensor's sessions see given every feature the daemon records.
    package func sight(features: [String]) -> SensorSight {
        SensorSight(tier: choice.tier, sees: features, blind: Self.tierChannels.filter { !features.contains($0) })
    }

    /// Every tier's syscall programs, open(2) and creat(2) included where the architecture has
    /// none: those of the tiers not chosen are not loaded.
    package static var allSyscallPrograms: [AgentProbes.Program] {
        SensorTier.allCases.flatMap { syscallPrograms($0) + (hasOpenAndCreat ? [] : openAndCreatPrograms($0)) }
    }

    /// `forced`, or the first tier whose probe loads and attaches: the tracepoint tier, which
    /// every kernel agentwatch runs on has, is not probed. A forced tier the kernel refuses
    /// fails here, at start, not when the first session begins.
    static func chooseTier(_ forced: SensorTier?, objectBytes: [UInt8]?, btfPath: String?) throws(BPFError) -> SensorChoice {
        if let forced {
            if forced != .tracepoint { try probe(forced, objectBytes: objectBytes, btfPath: btfPath) }
            return SensorChoice(tier: forced, forced: true, refused: [])
        }
        var refused: [SensorChoice.Refusal] = []
        for tier in SensorTier.allCases where tier != .tracepoint {
            do {
                try probe(tier, objectBytes: objectBytes, btfPath: btfPath)
                return SensorChoice(tier: tier, forced: false, refused: refused)
            } catch {
                refused.append(SensorChoice.Refusal(tier: tier, error: "\(error)"))
            }
        }
        return SensorChoice(tier: .tracepoint, forced: false, refused: refused)
    }

    /// Loads `tier`'s openat exit program alone (a small ring buffer, no other program) and
    /// attaches it for as long as that takes: what the kernel refuses (fentry without BPF
    /// trampolines, kprobes compiled out) fails here, before the real load.
    static func probe(_ tier: SensorTier, objectBytes: [UInt8]?, btfPath: String?) throws(BPFError) {
        if tier == .lsm { try requireBPFLSM() }
        let object = try ProbeSkeleton(bytes: objectBytes, btfPath: btfPath)
        let program: AgentProbes.Program = switch tier {
        case .lsm: .lsm_file_open
        case .fentry: .fexit_openat
        case .kprobe: .kretprobe_openat
        case .tracepoint: .on_openat_exit
        }
        for p in AgentProbes.Program.allCases where p != program { try object.program(p).setAutoload(false) }
        try object.map(.events).setMaxEntries(UInt32(getpagesize()))
        try object.load()
        _ = try object.program(program).attach()
    }

    /// The active LSMs, where securityfs says (mounted here when it is not).
    static let lsmList = "/sys/kernel/security/lsm"

    /// A kernel built with BPF LSM attaches an LSM program even when `bpf` is not among the
    /// active LSMs (the `lsm=` boot list), and then never runs it: a tier that would see
    /// nothing. It is taken only where the list names `bpf`.
    static func requireBPFLSM() throws(BPFError) {
        if access(lsmList, R_OK) != 0 {
            _ = mount("securityfs", "/sys/kernel/security", "securityfs", 0, nil)
        }
        let list: String
        do { list = try readFile(lsmList) } catch { throw BPFError("\(error)", errno: ENOENT) }
        let active = list.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        guard active.split(separator: ",").contains("bpf") else {
            throw BPFError("bpf is not an active LSM (\(lsmList): \(active))", errno: EOPNOTSUPP)
        }
    }

    /// Every hook as `agent.start` names it, each program's attach point (its section): those
    /// always attached, those on each session root, and those attached while a session exists.
    package var hooks: [String] {
        (Self.processPrograms + (hasPatterns ? Self.rootPrograms : []) + Self.cgroupPrograms + sessionPrograms)
            .map { object.program($0).section }
    }
}
