@testable import AgentDaemon
@testable import AgentSessions
@testable import AgentSupport
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// The throttle's guarantees that do not depend on how fast the daemon reads
    /// (`SessionThrottle`): a pause ends by its deadline whatever the loop does, and a session
    /// a killed daemon left paused is resumed by the next one. The throttle at work under a
    /// burst: LossTests.
    @Suite("throttle")
    struct ThrottleTests {
        static func frozen(_ cgroup: String) -> Bool {
            ((try? String(contentsOfFile: cgroup + "/cgroup.events", encoding: .utf8)) ?? "").contains("frozen 1")
        }

        @Test("a pause the loop does not end is ended by the guard's own thread at its deadline, and reported once")
        func guardEndsAPause() throws {
            let d = try TestDaemon()
            let cg = d.root + "/guarded"
            #expect(mkdir(cg, 0o755) == 0)
            defer { removeCgroupTree(cg) }
            let sleeper = startIn(cg, ["/bin/sleep", "60"])
            defer { kill(sleeper, SIGKILL); var st: Int32 = 0; waitpid(sleeper, &st, 0) }
            #expect(waitUntil { CgroupFS.processes(below: cg).contains(sleeper) })

            let g = PauseGuard()
            defer { g.stop() }
            let now = WallClock.monotonicNs()
            #expect(g.pause(cgid: 1, path: cg, nowNs: now, deadlineNs: now + 300_000_000) == nil)
            #expect(waitUntil { Self.frozen(cg) }, "the cgroup did not freeze")
            #expect(g.paths == [cg])
            #expect(waitUntil { !Self.frozen(cg) }, "the guard did not thaw the cgroup at its deadline")
            #expect(WallClock.monotonicNs() - now >= 300_000_000, "thawed before the deadline")
            let forced = g.takeForced()
            #expect(forced.count == 1 && forced.first?.path == cg)
            #expect(g.takeForced().isEmpty, "reported twice")
            // The loop's own resume of a pause the guard ended does nothing.
            #expect(!g.resume(cgid: 1))
            #expect(g.pause(cgid: 2, path: d.root + "/missing", nowNs: now, deadlineNs: now) != nil, "a missing cgroup is an error")
            d.stop()
        }

        static func openDescriptors() -> Int {
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
        }

        /// The ring handler holds the throttle; the throttle must not hold the sensor back.
        @Test("daemons started and stopped leave no descriptor open behind them (the BPF object's, the ring's, the guard's)")
        func noDescriptorsLeft() throws {
            // One first: what stays for the process's life (libbpf's, the test harness's) opens.
            let first = try TestDaemon()
            first.start()
            first.stop()
            let before = Self.openDescriptors()
            for _ in 0..<3 {
                let d = try TestDaemon()
                d.start()
                d.stop()
            }
            var after = Self.openDescriptors()
            _ = waitUntil(timeout: 5) {
                after = Self.openDescriptors()
                return after <= before
            }
            #expect(after <= before, "\(after - before) descriptors more after three daemons came and went")
        }

        @Test("the sessions a killed daemon left paused (runtime_dir/throttled) are resumed at start; a listed cgroup outside the roots is left alone")
        func leftPausedResumed() throws {
            let d = try TestDaemon()
            let cg = d.sessionPath("left")
            #expect(mkdir(cg, 0o755) == 0)
            defer { removeCgroupTree(cg) }
            let outside = CgroupFS.mountPoint()! + "/aw-throttle-outside-\(getpid())"
            #expect(mkdir(outside, 0o755) == 0)
            defer { removeCgroupTree(outside) }
            var sleepers: [pid_t] = []
            defer { for p in sleepers { kill(p, SIGKILL); var st: Int32 = 0; waitpid(p, &st, 0) } }
            for c in [cg, outside] {
                let p = startIn(c, ["/bin/sleep", "60"])
                sleepers.append(p)
                #expect(waitUntil { CgroupFS.processes(below: c).contains(p) })
                try "1\n".write(toFile: c + "/cgroup.freeze", atomically: false, encoding: .utf8)
                #expect(waitUntil { Self.frozen(c) })
            }
            let list = d.daemon.config.runtimeDir + "/throttled"
            try "\(cg)\n\(outside)\n\(d.root)/../\(outside.split(separator: "/").last!)\n".write(toFile: list, atomically: false, encoding: .utf8)
            d.start()
            #expect(waitUntil { !Self.frozen(cg) }, "the session left paused was not resumed")
            #expect(Self.frozen(outside), "a cgroup outside the session roots was thawed")
            #expect(access(list, F_OK) != 0, "the list is not removed")
            d.stop()
            try "0\n".write(toFile: outside + "/cgroup.freeze", atomically: false, encoding: .utf8)
        }
    }
}
