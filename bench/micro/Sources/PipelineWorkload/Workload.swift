import AgentDetector
import AgentOutputs
import AgentPipeline
import AgentRecords
import AgentSessions
import AgentSupport
import CAgentEvents
import Glibc

/// splitmix64: the same stream for the same seed, on every machine.
public struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Records laid out back to back as the ring buffer lays them out: each record starts 8-byte
/// aligned and hdr.size is its exact length. Never freed: a benchmark process builds one.
public struct RecordBlob: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let offsets: UnsafeMutableBufferPointer<Int>
    let lengths: UnsafeMutableBufferPointer<Int>
    public let count: Int
    public let bytes: Int

    init(_ records: [[UInt8]]) {
        var size = 0
        for r in records { size = (size + 7) & ~7; size += r.count }
        bytes = size
        base = UnsafeMutableRawPointer.allocate(byteCount: max(size, 8), alignment: 64)
        offsets = .allocate(capacity: max(records.count, 1))
        lengths = .allocate(capacity: max(records.count, 1))
        count = records.count
        var at = 0
        for (i, r) in records.enumerated() {
            at = (at + 7) & ~7
            r.withUnsafeBytes { (base + at).copyMemory(from: $0.baseAddress!, byteCount: r.count) }
            offsets[i] = at
            lengths[i] = r.count
            at += r.count
        }
    }

    @inline(__always)
    public subscript(i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + offsets[i], count: lengths[i])
    }
}

/// The mix of a synthetic stream, counted as it was generated.
public struct StreamMix: Sendable, CustomStringConvertible {
    public var exec = 0, fork = 0, exit = 0, open = 0, connect = 0
    public var openBytes = 0
    public var total: Int { exec + fork + exit + open + connect }
    public var description: String {
        func pct(_ n: Int) -> String {
            let t = max(total, 1)
            let tenths = (n * 1000 + t / 2) / t
            return "\(tenths / 10).\(tenths % 10)%"
        }
        return "\(total) records: file.open \(pct(open)) (paths avg \(openBytes / max(open, 1)) B), net.connect \(pct(connect)), "
            + "fork \(pct(fork)), exec \(pct(exec)), exit \(pct(exit))"
    }
}

/// A realistic agent session as kernel records. `prologue` execs the long-lived processes
/// (shell, agent, language server, build tool) so the process table knows them; `cycle` is a
/// stream dominated by file.open with some connects and short-lived children (fork, exec, a
/// few opens, exit). The cycle leaves the process table as it found it, so it can be replayed
/// forever: it is what the benchmarks measure.
public struct Workload: Sendable {
    public let prologue: RecordBlob
    public let cycle: RecordBlob
    public let mix: StreamMix
    public let longLived: [SyntheticProcess]

    public static let cwd = "/home/dev/work/agentwatch"

    public init(cycleRecords: Int = 16_384, seed: UInt64 = 0x5EED) {
        var rng = SplitMix64(seed: seed)
        var ktime = WallClock.bootNow() &- 60_000_000_000
        func tick() -> UInt64 { ktime &+= 1_500; return ktime }

        let leader = SyntheticProcess(pid: 41_000, startNs: ktime - 50_000_000_000, ppid: 1, parentStartNs: 0,
                                      comm: "bash", exe: "/usr/bin/bash", cwd: Self.cwd, argv: ["bash", "-l"])
        func child(_ pid: UInt32, _ offset: UInt64, comm: String, exe: String, argv: [String], of parent: SyntheticProcess) -> SyntheticProcess {
            SyntheticProcess(pid: pid, startNs: leader.startNs + offset, ppid: parent.pid, parentStartNs: parent.startNs,
                             comm: comm, exe: exe, cwd: Self.cwd, argv: argv)
        }
        let agent = child(41_001, 1_000_000, comm: "node", exe: "/usr/bin/node",
                          argv: ["node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js", "--model", "opus"], of: leader)
        let lsp = child(41_002, 2_000_000, comm: "sourcekit-lsp", exe: "/opt/swift/usr/bin/sourcekit-lsp",
                        argv: ["sourcekit-lsp", "--log-level", "info"], of: agent)
        let build = child(41_003, 3_000_000, comm: "swift-build", exe: "/opt/swift/usr/bin/swift-build",
                          argv: ["swift-build", "-c", "release", "--jobs", "2"], of: agent)
        let longLived = [leader, agent, lsp, build]
        self.longLived = longLived
        prologue = RecordBlob(longLived.map { RecordFactory.exec($0, ktime: tick()) })

        let paths = PathPool(rng: &rng)
        var records: [[UInt8]] = []
        records.reserveCapacity(cycleRecords + 16)
        var mix = StreamMix()

        // Children the agent and the build tool spawn: (comm, exe, argv).
        let tools: [(String, String, [String])] = [
            ("git", "/usr/bin/git", ["git", "status", "--porcelain=v2"]),
            ("rg", "/usr/bin/rg", ["rg", "-n", "--json", "func handle", "Sources"]),
            ("cat", "/usr/bin/cat", ["cat", "Package.swift"]),
            ("sh", "/usr/bin/dash", ["sh", "-c", "ls -la Sources/AgentCore | head -50"]),
            ("swift-frontend", "/opt/swift/usr/bin/swift-frontend", ["swift-frontend", "-frontend", "-c", "-primary-file", "Sources/AgentCore/Daemon/Pipeline.swift", "-O"]),
            ("clang", "/opt/swift/usr/bin/clang-17", ["clang", "-target", "bpf", "-O2", "-g", "-c", "bpf/file.bpf.c", "-o", "file.bpf.o"]),
        ]
        var nextChild: UInt32 = 50_000

        func openRecord(_ p: SyntheticProcess) -> [UInt8] {
            let path = paths.pick(&rng)
            let roll = Int.random(in: 0..<100, using: &rng)
            var requested = path, resolved = path
            var ret = Int64(Int.random(in: 3...40, using: &rng)), dfd: Int32 = -100, hdrFlags: UInt8 = 0
            let relative = path.starts(with: Self.cwdPrefix)
            switch roll {
            case 0..<65: break  // absolute request, opened
            case 65..<80 where relative:  // relative request, opened: requested_path differs
                requested = Array(path.dropFirst(Self.cwdPrefix.count))
                if roll < 70 { dfd = 5 }
            case 80..<92:  // absolute request, failed: not resolved
                resolved = []
                ret = -2
            case 92..<95 where relative:  // relative request, failed: the kernel gives the base directory
                requested = Array(path.dropFirst(Self.cwdPrefix.count))
                resolved = Array(Self.cwd.utf8)
                ret = -2
                hdrFlags = UInt8(AGENT_F_PATH_IS_BASE.rawValue)
            default: break
            }
            let flagRoll = Int.random(in: 0..<100, using: &rng)
            let flags: Int32, mode: UInt32
            switch flagRoll {
            case 0..<70: flags = O_RDONLY | O_CLOEXEC; mode = 0
            case 70..<80: flags = O_RDONLY | O_CLOEXEC | O_DIRECTORY | O_NONBLOCK; mode = 0
            case 80..<95: flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC; mode = 0o644
            default: flags = O_RDWR | O_CLOEXEC; mode = 0
            }
            mix.open += 1
            mix.openBytes += requested.count + resolved.count
            return RecordFactory.open(p, requested: requested, path: resolved, flags: flags, mode: mode,
                                      ret: ret, dfd: dfd, hdrFlags: hdrFlags, ktime: tick())
        }

        func connectRecord(_ p: SyntheticProcess) -> [UInt8] {
            mix.connect += 1
            let sport = UInt16.random(in: 32_768...60_999, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0, 1:  // TCP over IPv4, non-blocking
                return RecordFactory.connect(p, addr: RecordFactory.sockaddrIn((192, 0, 2, 10), port: 443),
                                             local: RecordFactory.sockaddrIn((10, 0, 0, 7), port: sport),
                                             sockType: 1, proto: 6, ret: -115, fd: 21, ktime: tick())
            case 2:  // TCP over IPv6 loopback
                var lo = [UInt8](repeating: 0, count: 16); lo[15] = 1
                return RecordFactory.connect(p, addr: RecordFactory.sockaddrIn6(lo, port: 8080),
                                             local: RecordFactory.sockaddrIn6(lo, port: sport),
                                             sockType: 1, proto: 6, ret: 0, fd: 22, ktime: tick())
            default:  // a unix socket
                return RecordFactory.connect(p, addr: RecordFactory.sockaddrUn(Array("/run/user/1000/bus".utf8)),
                                             local: [], sockType: 1, proto: 0, ret: 0, fd: 23, ktime: tick())
            }
        }

        while records.count < cycleRecords {
            let roll = Int.random(in: 0..<1000, using: &rng)
            if roll < 12 {
                // A short-lived child: fork, exec, a few opens (and maybe a connect), exit.
                let parent = Int.random(in: 0..<3, using: &rng) == 0 ? build : agent
                let t = tools[Int.random(in: 0..<tools.count, using: &rng)]
                let c = child(nextChild, 10_000_000 + UInt64(nextChild) * 1_000, comm: t.0, exe: t.1, argv: t.2, of: parent)
                nextChild += 1
                records.append(RecordFactory.fork(parent: parent, child: c, ktime: tick())); mix.fork += 1
                records.append(RecordFactory.exec(c, ktime: tick())); mix.exec += 1
                for _ in 0..<Int.random(in: 1...4, using: &rng) { records.append(openRecord(c)) }
                if Int.random(in: 0..<4, using: &rng) == 0 { records.append(connectRecord(c)) }
                records.append(RecordFactory.exit(c, status: Int.random(in: 0..<8, using: &rng) == 0 ? 1 << 8 : 0, ktime: tick()))
                mix.exit += 1
            } else if roll < 12 + 50 {
                records.append(connectRecord(longLived[Int.random(in: 1..<longLived.count, using: &rng)]))
            } else {
                records.append(openRecord(longLived[Int.random(in: 0..<longLived.count, using: &rng)]))
            }
        }
        cycle = RecordBlob(records)
        self.mix = mix
    }

    static let cwdPrefix = Array((cwd + "/").utf8)
}

/// File paths of 20 to 80 bytes, as an agent working on a Swift repository opens them.
struct PathPool {
    let paths: [[UInt8]]

    init(rng: inout SplitMix64, count: Int = 512) {
        let dirs = [
            Workload.cwd + "/Sources/AgentCore/Recorder",
            Workload.cwd + "/Sources/AgentCore/Daemon",
            Workload.cwd + "/Tests/AgentCoreTests",
            Workload.cwd + "/.build/release",
            Workload.cwd + "/bpf",
            Workload.cwd,
            "/usr/lib/x86_64-linux-gnu",
            "/usr/share/zoneinfo/Europe",
            "/home/dev/.claude/projects",
            "/etc/ssl/certs",
            "/opt/swift/usr/lib/swift/linux",
            "/proc/self",
        ]
        let stems = ["JSONBuffer", "Pipeline", "Recorder", "config", "index", "libc", "ld", "package", "main",
                     "ProcessTable", "agent_events", "status", "cgroup", "session", "Berlin", "ca-certificates"]
        let exts = [".swift", ".json", ".h", ".c", ".so.6", ".o", ".yaml", ".md", ".ndjson", ""]
        var out: [[UInt8]] = []
        while out.count < count {
            let d = dirs[Int.random(in: 0..<dirs.count, using: &rng)]
            let s = stems[Int.random(in: 0..<stems.count, using: &rng)]
            let e = exts[Int.random(in: 0..<exts.count, using: &rng)]
            let suffix = Int.random(in: 0..<3, using: &rng) == 0 ? "-\(Int.random(in: 1...999, using: &rng))" : ""
            let p = Array("\(d)/\(s)\(suffix)\(e)".utf8)
            if (20...80).contains(p.count) { out.append(p) }
        }
        paths = out
    }

    func pick(_ rng: inout SplitMix64) -> [UInt8] {
        paths[Int.random(in: 0..<paths.count, using: &rng)]
    }
}
