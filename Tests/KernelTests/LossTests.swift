@testable import AgentDaemon
@testable import AgentSupport
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// A burst larger than the ring buffer: with `overflow: drop` every open is either captured
    /// or counted as lost; with `throttle` (the default) every open is captured, the session
    /// paused while the daemon catches up, and a process outside it runs on.
    @Suite("loss accounting")
    struct LossTests {
        /// `source` compiled static (no loader opens) into a scratch directory of its own.
        static func buildStatic(_ name: String, _ source: String) throws -> String {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aw-\(name)-\(getpid())").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let src = dir + "/\(name).c"
            try source.write(toFile: src, atomically: true, encoding: .utf8)
            let bin = dir + "/" + name
            let cc = runIn(nil, ["/usr/bin/cc", "-O2", "-static", "-o", bin, src])
            guard cc.status == 0 else { throw AgentError("cc -static \(name).c failed: \(cc.status)") }
            return bin
        }

        /// A program that opens `path` N times.
        static func buildOpenLoop() throws -> String {
            try buildStatic("openloop", """
                #include <fcntl.h>
                #include <stdlib.h>
                #include <unistd.h>
                int main(int argc, char **argv) {
                    long n = atol(argv[2]);
                    for (long i = 0; i < n; i++) {
                        int fd = openat(AT_FDCWD, argv[1], O_RDONLY);
                        if (fd < 0) return 1;
                        close(fd);
                    }
                    return 0;
                }
                """)
        }

        @Test("captured + counted drops == opens performed, exactly; loss records sit in the stream")
        func burstLargerThanRing() throws {
            let bin = try Self.buildOpenLoop()
            let target = "/tmp/aw-loss-target-\(getpid())"
            FileManager.default.createFile(atPath: target, contents: Data())
            defer { unlink(target) }
            // A 16 KiB ring holds ~150 open records: a 50,000-open burst must overflow it.
            let d = try TestDaemon {
                $0.ringBufferKiB = 16
                $0.overflow = .drop
            }
            d.start()
            let cg = d.makeSession("burst")
            _ = d.waitForRecords { $0.contains { $0.string("type") == "session.start" } }
            let n = 50_000
            let r = runIn(cg, [bin, target, String(n)])
            #expect(r.status == 0)
            // The burst has exited, so all its records are in the ring or counted as dropped (its
            // own exit record may be one of them): stopping drains the ring and reports the rest.
            d.stop()

            // Count by text: the stream is large.
            let text = try String(contentsOfFile: d.output, encoding: .utf8)
            var captured = 0
            var lossRecords = 0
            var droppedOpens = 0
            let needle = "\"file\":{\"path\":\"\(target)\""
            for line in text.split(separator: "\n") {
                if line.contains("\"type\":\"file.open\"") && line.contains(needle) { captured += 1 }
                if line.contains("\"type\":\"agent.loss\"") {
                    lossRecords += 1
                    let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                    droppedOpens += obj.int("loss.kernel_dropped.open") ?? 0
                }
            }
            let counters = d.daemon.counters
            print("burst: \(n) opens, \(captured) captured, \(droppedOpens) dropped (\(lossRecords) loss records), daemon counted \(counters.kernelDropped)")
            #expect(droppedOpens > 0, "the burst did not overflow the ring; the test proves nothing")
            #expect(captured + droppedOpens == n)
            #expect(lossRecords > 0)
            #expect(counters.kernelDropped >= UInt64(droppedOpens))
            #expect(counters.throttle == nil, "overflow: drop has no throttle: \(String(describing: counters.throttle))")
        }

        /// A static program outside sessions that counts up in the first 8 bytes of `file`
        /// (shared with the test through the page cache) until killed.
        static func buildTicker() throws -> String {
            try buildStatic("ticker", """
                #include <fcntl.h>
                #include <stdint.h>
                #include <sys/mman.h>
                #include <unistd.h>
                int main(int argc, char **argv) {
                    int fd = open(argv[1], O_RDWR);
                    if (fd < 0 || ftruncate(fd, 4096) != 0) return 1;
                    volatile uint64_t *n = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                    if (n == MAP_FAILED) return 1;
                    for (;;) (*n)++;
                }
                """)
        }

        @Test("throttle: a burst many times the ring loses nothing; its session is paused and resumed, a process outside runs on")
        func throttledBurst() throws {
            let bin = try Self.buildOpenLoop()
            let ticker = try Self.buildTicker()
            let target = "/tmp/aw-throttle-target-\(getpid())"
            let tick = "/tmp/aw-throttle-tick-\(getpid())"
            FileManager.default.createFile(atPath: target, contents: Data())
            FileManager.default.createFile(atPath: tick, contents: Data())
            defer { unlink(target); unlink(tick) }
            // 4 MiB: pauses long enough (the drain from a quarter of the ring to a sixteenth)
            // to be seen from here; the longest pause well beyond any of them.
            let d = try TestDaemon {
                $0.ringBufferKiB = 4096
                $0.throttleMaxPauseMs = 600_000
            }
            d.start()
            let cg = d.makeSession("burst")
            _ = d.waitForRecords { $0.contains { $0.string("type") == "session.start" } }

            let outside = startIn(nil, [ticker, tick])
            defer { kill(outside, SIGKILL); var st: Int32 = 0; waitpid(outside, &st, 0) }
            let tickFD = open(tick, O_RDONLY)
            defer { close(tickFD) }
            func ticks() -> UInt64 {
                var v: UInt64 = 0
                _ = pread(tickFD, &v, 8, 0)
                return v
            }
            let n = 100_000
            let burst = startIn(cg, [bin, target, String(n)])
            // Until the burst exits: is the session frozen (the kernel's word, cgroup.events),
            // and does the outside process count on while it is?
            var status: Int32 = 0
            var frozenSeen = 0, tickedWhileFrozen: UInt64 = 0
            var wasFrozen = false, ticksThen: UInt64 = 0
            let events = cg + "/cgroup.events"
            while waitpid(burst, &status, WNOHANG) == 0 {
                let frozen = ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").contains("frozen 1")
                let t = ticks()
                if frozen {
                    frozenSeen += 1
                    if wasFrozen { tickedWhileFrozen += t &- ticksThen }
                }
                wasFrozen = frozen
                ticksThen = t
                usleep(1000)
            }
            #expect(status == 0, "the burst exited \(status)")
            removeCgroupTree(cg)
            #expect(waitUntil(timeout: 30) { d.daemon.counters.sessions == 0 }, "the session did not end")
            let counters = d.daemon.counters
            d.stop()

            // The stream is large: grep counts it, the rotated parts included, and the few
            // records read here go to a file of their own for the schema.
            let dir = (d.output as NSString).deletingLastPathComponent
            let all = "cd '\(dir)' && { for f in records.ndjson.*.gz; do [ -e \"$f\" ] && gzip -dc \"$f\"; done; cat records.ndjson; }"
            let needle = "\"file\":{\"path\":\"\(target)\""
            let captured = Int(commandOutput(["/bin/sh", "-c", all + " | grep -F '\"type\":\"file.open\"' | grep -cF \"$1\"", "sh", needle])
                .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            let few = dir + "/few.ndjson"
            _ = commandOutput(["/bin/sh", "-c", all + " | grep -E '\"type\":\"(session.end|agent.stop|agent.loss)\"' > \"$1\"", "sh", few])
            var lossRecords = 0
            var end: [String: Any]?, stop: [String: Any]?
            for line in try String(contentsOfFile: few, encoding: .utf8).split(separator: "\n") {
                let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                switch obj?.string("type") {
                case "session.end": end = obj
                case "agent.stop": stop = obj
                default: lossRecords += 1
                }
            }
            let pauses = end?.int("session.throttle.pauses") ?? 0
            print("throttled burst: \(n) opens, \(captured) captured, \(lossRecords) loss records; session paused \(pauses) times, \(end?.int("session.throttle.paused_ms") ?? 0) ms; frozen in \(frozenSeen) samples, the outside process ticked \(tickedWhileFrozen) times meanwhile; \(String(describing: counters.throttle))")
            #expect(pauses > 0, "the session was never paused: the daemon kept up, and the test proves nothing")
            #expect(frozenSeen > 0, "cgroup.events never showed the session frozen")
            #expect(captured == n, "every open is recorded")
            #expect(lossRecords == 0 && counters.kernelDropped == 0)
            #expect(tickedWhileFrozen > 0, "the process outside the session did not run while the session was paused")
            #expect(stop?.int("agent.throttle.pauses") == pauses, "agent.stop counts the pauses: \(String(describing: stop?[path: "agent.throttle"]))")
            #expect(stop?.int("agent.throttle.forced_resumes") == 0)
            #expect(counters.throttle?.pausedNow == 0)
            // Nothing is left paused, and the runtime directory's list is gone with the pauses.
            #expect(access(d.daemon.config.runtimeDir + "/throttled", F_OK) != 0)
            try expectValidAgainstSchema(few)
        }
    }
}
