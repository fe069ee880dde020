@testable import AgentDaemon
@testable import AgentSupport
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// A burst larger than the ring buffer: every open is either captured or counted as lost.
    @Suite("loss accounting")
    struct LossTests {
        /// A static program (no loader opens) that opens `path` N times.
        static func buildOpenLoop() throws -> String {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aw-openloop-\(getpid())").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let src = dir + "/openloop.c"
            try """
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
            """.write(toFile: src, atomically: true, encoding: .utf8)
            let bin = dir + "/openloop"
            let cc = runIn(nil, ["/usr/bin/cc", "-O2", "-static", "-o", bin, src])
            guard cc.status == 0 else { throw AgentError("cc -static failed: \(cc.status)") }
            return bin
        }

        @Test("captured + counted drops == opens performed, exactly; loss records sit in the stream")
        func burstLargerThanRing() throws {
            let bin = try Self.buildOpenLoop()
            let target = "/tmp/aw-loss-target-\(getpid())"
            FileManager.default.createFile(atPath: target, contents: Data())
            defer { unlink(target) }
            // A 16 KiB ring holds ~150 open records: a 50,000-open burst must overflow it.
            let d = try TestDaemon { $0.ringBufferKiB = 16 }
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
        }
    }
}
