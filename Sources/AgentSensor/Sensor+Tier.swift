import AgentProbes
import BPFKit
import Glibc

/// How the open and connect syscalls are hooked, best first. Each tier gives the same records
/// (bpf/file.bpf.c, bpf/net.bpf.c); they differ in what they cost the rest of the host:
/// - `fentry`: fexit (and for connect fentry) programs on the syscalls' own kernel functions,
///   through BPF trampolines: only callers of those syscalls pay.
/// - `kprobe`: kprobes on the same functions (ksyscall/kretsyscall): only their callers pay,
///   more than on the fentry tier.
/// - `tracepoint`: the syscalls' tracepoints: while attached, every task on the host takes the
///   slow syscall path, whatever it calls.
/// Exec, fork, exit, io_uring and the socket hooks are the same on every tier.
package enum SensorTier: String, CaseIterable, Sendable {
    case fentry, kprobe, tracepoint
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

extension Sensor {
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
        let object = try ProbeSkeleton(bytes: objectBytes, btfPath: btfPath)
        let program: AgentProbes.Program = tier == .fentry ? .fexit_openat : tier == .kprobe ? .kretprobe_openat : .on_openat_exit
        for p in AgentProbes.Program.allCases where p != program { try object.program(p).setAutoload(false) }
        try object.map(.events).setMaxEntries(UInt32(getpagesize()))
        try object.load()
        _ = try object.program(program).attach()
    }

    /// Every hook as `agent.start` names it, each program's attach point (its section): those
    /// always attached, those on each session root, and those attached while a session exists.
    package var hooks: [String] {
        (Self.processPrograms + (hasPatterns ? Self.rootPrograms : []) + Self.cgroupPrograms + sessionPrograms)
            .map { object.program($0).section }
    }
}
