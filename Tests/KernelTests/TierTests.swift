@testable import AgentDaemon
import AgentProbes
@testable import AgentSensor
@testable import AgentSupport
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// The sensor tiers (Sensor+Tier.swift) give the same records: one scripted session
    /// (Tests/support/tier-session.c: exec, relative and dirfd opens, open, creat, openat2, a
    /// failed open, an io_uring open, a connect, a UDP send, a DNS query and its answer) runs on
    /// every tier the kernel takes, and what each tier recorded is compared field by field with
    /// what the tracepoint tier recorded, after taking out what differs between any two runs
    /// (times, ids, pids, ports, inodes). The kernel matrix (.ci/matrix.sh) sets
    /// AGENTWATCH_REQUIRE_TIERS on kernels that must take a tier, so a tier refused there fails
    /// instead of being left out.
    @Suite("sensor tiers")
    struct TierTests {
        static let required: [SensorTier] = (ProcessInfo.processInfo.environment["AGENTWATCH_REQUIRE_TIERS"] ?? "")
            .split(separator: ",").compactMap { SensorTier(rawValue: String($0)) }

        /// The tiers this kernel takes, the tracepoint tier first (the reference), each other
        /// one as the daemon's own probe finds it; a required tier refused is an issue.
        static func tiers() -> [SensorTier] {
            var tiers: [SensorTier] = [.tracepoint]
            for tier in SensorTier.allCases where tier != .tracepoint {
                do {
                    try Sensor.probe(tier, objectBytes: nil, btfPath: nil)
                    tiers.append(tier)
                } catch {
                    #expect(!required.contains(tier), "the \(tier.rawValue) tier is required on this kernel and was refused: \(error)")
                    print("tier \(tier.rawValue) refused here: \(error)")
                }
            }
            return tiers
        }

        /// Keys whose values differ between two runs of the same session whatever the tier.
        static let volatile: Set<String> = [
            "time", "seq", "prev", "hash", "pid", "ppid", "tid", "entity_id", "parent_entity_id", "start_time",
            "inode", "mount_id", "cookie", "sport", "dport", "duration_ms", "ended", "id", "dns_id", "chain",
            "first_time", "last_time", "cgroup", "ino",
        ]

        /// One run of the script on `tier`: the session's records, each normalized to a line
        /// of sorted JSON with `dir` written as $DIR and volatile keys taken out, in order.
        static func run(_ tier: SensorTier, helper: String) throws -> (records: [String], ia32: Bool) {
            let dir = "/tmp/aw-tier-\(tier.rawValue)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try "a\n".write(toFile: dir + "/a.txt", atomically: false, encoding: .utf8)
            try "b\n".write(toFile: dir + "/sub/b.txt", atomically: false, encoding: .utf8)

            let d = try TestDaemon { $0.sensor = tier }
            d.start()
            defer { d.stop() }
            let start = d.waitForRecords { $0.contains { $0.string("type") == "agent.start" } }.first { $0.string("type") == "agent.start" }
            #expect(start?.string("agent.sensor.tier") == tier.rawValue, "agent.start names the tier: \(String(describing: start?[path: "agent.sensor"]))")
            #expect((start?[path: "agent.sensor.forced"] as? Bool) == true)
            let cg = d.makeSession("t")
            let r = runIn(cg, [helper, dir])
            #expect(r.status == 0, "tier-session exited \(r.status >> 8) on the \(tier.rawValue) tier")
            let records = d.waitForRecords {
                $0.contains { $0.string("type") == "process.exit" && $0.int("process.pid") == Int(r.pid) }
                    && $0.contains { $0.string("type") == "net.dns" && $0.string("session.id") == "t" && $0[path: "dns.answers"] != nil }
            }
            let ia32 = FileManager.default.fileExists(atPath: dir + "/ia32.ok")
            // The session's end counts the ia32 connect, which no program decodes, on every tier.
            removeCgroupTree(cg)
            let all = d.waitForRecords { $0.contains { $0.string("type") == "session.end" && $0.string("session.id") == "t" } }
            let end = all.first { $0.string("type") == "session.end" && $0.string("session.id") == "t" }
            #expect(end?.int("session.undecoded.ia32_connect") == (ia32 ? 1 : nil),
                    "the \(tier.rawValue) tier's session.end: \(String(describing: end?[path: "session.undecoded"]))")
            try expectValidAgainstSchema(d.output)
            // session.start says what this session's record can and cannot see here.
            let sessionStart = records.first { $0.string("type") == "session.start" && $0.string("session.id") == "t" }
            #expect(sessionStart?.string("session.sensor.tier") == tier.rawValue)
            let sees = sessionStart?[path: "session.sensor.sees"] as? [String] ?? []
            let blind = sessionStart?[path: "session.sensor.blind"] as? [String] ?? []
            #expect(sees.contains("other_open") == (tier != .tracepoint) && blind.contains("other_open") == (tier == .tracepoint), "\(sees) \(blind)")
            #expect(blind.contains("connect_kernel_address") == (tier != .lsm), "\(blind)")
            #expect(!ia32 || (sees.contains("ia32_open") && !blind.contains("ia32_open")), "ia32 opens are recorded here: \(sees) \(blind)")
            #expect(Set(sees).isDisjoint(with: blind))
            let kinds: Set<String> = ["process.exec", "file.open", "net.connect", "net.send", "net.dns"]
            let got = records.filter { $0.string("session.id") == "t" && kinds.contains($0.string("type") ?? "") }
                .map { normalized($0, dir: dir) }
            return (got, ia32)
        }

        static func normalized(_ record: [String: Any], dir: String) -> String {
            func clean(_ v: Any) -> Any {
                if let d = v as? [String: Any] {
                    var out: [String: Any] = [:]
                    for (k, v) in d where !volatile.contains(k) { out[k] = clean(v) }
                    // An open's mode is what the register held: the kernel reads it only to create.
                    if let flags = d["flags"] as? [String], !flags.contains("O_CREAT"), !flags.contains("O_TMPFILE") {
                        out["mode"] = nil
                    }
                    return out
                }
                if let a = v as? [Any] { return a.map(clean) }
                if let s = v as? String { return s.replacingOccurrences(of: dir, with: "$DIR") }
                return v
            }
            let data = (try? JSONSerialization.data(withJSONObject: clean(record), options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }

        @Test("one scripted session gives the same records on every tier the kernel takes")
        func sameRecords() throws {
            let build = "/tmp/aw-tier-helper-\(getpid())"
            try FileManager.default.createDirectory(atPath: build, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: build) }
            let helper = build + "/tier-session"
            let cc = runIn(nil, ["/usr/bin/cc", "-O1", "-Wall", "-Werror", "-o", helper, KernelEnv.packageRoot + "/Tests/support/tier-session.c"])
            guard cc.status == 0 else { throw AgentError("cc Tests/support/tier-session.c failed: \(cc.status)") }

            let tiers = Self.tiers()
            print("tiers taken here: \(tiers.map(\.rawValue))")
            var reference: [String] = []
            for tier in tiers {
                let (all, ia32) = try Self.run(tier, helper: helper)
                // The open no syscall program decodes (the pty peer): recorded, once, by every
                // tier with a file_open hook (all but the tracepoint one), not also overlayfs'
                // open of the file below where /tmp is an overlay; the rest must agree with
                // every other tier.
                let isOther = { (r: String) in r.contains(#""type":"file.open""#) && r.contains(#""via":"other""#) }
                let beyond = all.filter(isOther)
                let got = all.filter { !isOther($0) }
                if ia32 {
                    // The int $0x80 open of a.txt, decoded on every tier, marked ia32.
                    #expect(got.filter { $0.contains(#""ia32":true"#) && $0.contains(#""path":"$DIR\/a.txt""#) && $0.contains(#""via":"open""#) }.count == 1,
                            "the \(tier.rawValue) tier records the ia32 open of a.txt once: \(got.filter { $0.contains("ia32") })")
                }
                if tier != .tracepoint {
                    #expect(beyond.count == 1 && beyond.allSatisfy { $0.contains(#""path":"\/dev\/pts\/"#) },
                            "the \(tier.rawValue) tier records the pty peer opened by ioctl, once, and nothing else via other: \(beyond)")
                    #expect(beyond.allSatisfy { $0.contains(#""result_unseen":true"#) && !$0.contains("requested_path") }, "\(beyond)")
                } else {
                    #expect(beyond.isEmpty, "the tracepoint tier has no file_open hook: \(beyond)")
                }
                // What the script does is there on every tier, whatever the others say.
                let has = { (fragment: String) in got.contains { $0.contains(fragment) } }
                for fragment in [
                    #""path":"$DIR\/a.txt""#, #""path":"$DIR\/sub\/b.txt""#, #""path":"$DIR\/c.txt""#, #""path":"$DIR\/missing.txt""#,
                    #""via":"open""#, #""via":"creat""#, #""via":"openat2""#, #""via":"io_uring""#, #""error":"ENOENT""#,
                    #""type":"net.connect""#, #""type":"net.send""#, #""type":"net.dns""#, #""exe":"\/usr\/bin\/true""#,
                ] {
                    #expect(has(fragment), "the \(tier.rawValue) tier recorded nothing with \(fragment): \(got.joined(separator: "\n"))")
                }
                if let dump = ProcessInfo.processInfo.environment["AGENTWATCH_TIER_DUMP"] {
                    try got.joined(separator: "\n").write(toFile: "\(dump).\(tier.rawValue)", atomically: true, encoding: .utf8)
                }
                if tier == .tracepoint {
                    reference = got
                    continue
                }
                let missing = reference.filter { !got.contains($0) }
                let extra = got.filter { !reference.contains($0) }
                #expect(missing.isEmpty && extra.isEmpty && got.count == reference.count,
                        "the \(tier.rawValue) tier differs from the tracepoint tier:\nonly on tracepoint: \(missing.joined(separator: "\n"))\nonly on \(tier.rawValue): \(extra.joined(separator: "\n"))")
            }
        }

        @Test("auto takes the best tier the kernel has and names the refused ones in agent.start")
        func autoChoice() throws {
            let d = try TestDaemon { $0.sensor = nil }
            d.start()
            defer { d.stop() }
            let start = d.waitForRecords { $0.contains { $0.string("type") == "agent.start" } }.first { $0.string("type") == "agent.start" }
            let best = Self.tiers().filter { $0 != .tracepoint }.first ?? .tracepoint
            #expect(start?.string("agent.sensor.tier") == best.rawValue)
            #expect((start?[path: "agent.sensor.forced"] as? Bool) == false)
            let refused = (start?[path: "agent.sensor.refused"] as? [[String: Any]])?.compactMap { $0["tier"] as? String } ?? []
            #expect(refused == SensorTier.allCases.prefix { $0 != best }.map(\.rawValue))
            let hooks = start?[path: "agent.sensor.hooks"] as? [String] ?? []
            #expect(hooks.contains("tp_btf/sched_process_exec"))
            let syscallHooks = hooks.filter { $0.hasPrefix("tracepoint/syscalls/") }
            #expect(best == .tracepoint ? !syscallHooks.isEmpty : syscallHooks.isEmpty, "\(hooks)")

            // While a session exists, what the kernel has loaded: a syscall tracepoint program
            // (bpftool's type "tracepoint": the daemon's other tracepoints are tp_btf, type
            // "tracing") only on the tracepoint tier.
            d.makeSession("a")
            let json = commandOutput(["/usr/sbin/bpftool", "prog", "show", "--json"])
            let progs = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [[String: Any]] ?? []
            #expect(!progs.isEmpty, "bpftool prog show listed nothing: \(json.prefix(200))")
            // The kernel keeps a program's first 15 characters as its name.
            let names = Set(AgentProbes.Program.allCases.map { String($0.rawValue.prefix(15)) })
            let tracepoints = progs.filter { $0["type"] as? String == "tracepoint" }.compactMap { $0["name"] as? String }
                .filter(names.contains)
            #expect(best == .tracepoint ? !tracepoints.isEmpty : tracepoints.isEmpty,
                    "syscall tracepoint programs loaded: \(tracepoints); bpftool listed \(progs.compactMap { $0["name"] as? String })")
        }

    }
}
