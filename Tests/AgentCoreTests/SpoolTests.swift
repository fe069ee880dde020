@testable import AgentOutputs
@testable import AgentPipeline
@testable import AgentRecords
@testable import AgentSupport
import Foundation
import Glibc
import Logging
import Synchronization
import Testing

/// A receiver that can be taken down and brought back, and that keeps what it got: the worker's
/// spooling and ordering without a network. (The rsyslog tests do the same against a real one.)
final class SwitchableDestination: OutputTransport, @unchecked Sendable {
    let up = Atomic<Bool>(true)
    /// Fail a delivery part way: after this many lines (once).
    let failAfterLines = Atomic<Int>(-1)
    private let received = Mutex<[UInt8]>([])
    let description = "switchable"

    func open() throws(AgentError) {
        guard up.load(ordering: .acquiring) else { throw AgentError("receiver down") }
    }

    func deliver(_ lines: UnsafeRawBufferPointer) throws(DeliveryFailure) {
        guard up.load(ordering: .acquiring) else { throw DeliveryFailure(delivered: 0, reason: "receiver down") }
        var end = lines.count
        let cut = failAfterLines.exchange(-1, ordering: .acquiringAndReleasing)
        if cut >= 0 {
            var n = 0
            end = 0
            RecorderLine.forEach(in: lines) { line in
                if n < cut { end = line.baseAddress! - lines.baseAddress! + line.count + 1 }
                n += 1
            }
        }
        received.withLock { $0.append(contentsOf: lines[0..<end]) }
        if end < lines.count { throw DeliveryFailure(delivered: end, reason: "connection reset") }
    }

    func flush() throws(DeliveryFailure) {}
    func close() {}

    var seqs: [Int] {
        received.withLock { FileSinkTests.seqs(String(decoding: $0, as: UTF8.self).split(separator: "\n").map(String.init)) }
    }
}

@Suite("spool")
struct SpoolTests {
    static func worker(_ d: SwitchableDestination, spool: String?, queueBytes: Int = 16 << 20, spoolBytes: Int = 64 << 20) throws -> (Outputs, Recorder) {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let w = try OutputWorker(name: "rx", destination: d, filter: .all, queueBytes: queueBytes,
                               spoolDirectory: spool, spoolBytes: spoolBytes, flushIntervalMs: 0, logger: logger)
        let outputs = Outputs(workers: [w])
        outputs.start()
        return (outputs, Recorder(sink: outputs, host: FileSinkTests.host))
    }

    @Test("a receiver down mid-stream: records spool to disk and arrive once, in order, when it is back")
    func downThenUp() throws {
        let dir = try ChainTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = SwitchableDestination()
        let (outputs, recorder) = try Self.worker(d, spool: dir + "/spool")
        FileSinkTests.stream(recorder, count: 6_000) { i in
            if i == 1_000 {
                _ = waitFor(timeout: 5) { d.seqs.count == 1_000 }
                d.up.store(false, ordering: .releasing)
            }
            if i == 3_000 { d.failAfterLines.store(7, ordering: .releasing) }
            if i == 4_000 {
                // Down for a while: what came meanwhile is on disk, not in memory.
                _ = waitFor(timeout: 5) { outputs.workers[0].counters.spooledBytes > 0 }
                #expect(outputs.workers[0].counters.spooledBytes > 0)
                d.up.store(true, ordering: .releasing)
            }
        }
        let all = waitFor(timeout: 20) { d.seqs.count >= 6_000 }
        outputs.stop()
        #expect(all, "got \(d.seqs.count) of 6000")
        #expect(d.seqs.elementsEqual(1...6_000), "records lost, repeated or out of order")
        #expect(outputs.takeDrops().isEmpty)
    }

    @Test("what is spooled when the daemon stops is delivered, once, by the next one")
    func spoolSurvivesARestart() throws {
        let dir = try ChainTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let down = SwitchableDestination()
        down.up.store(false, ordering: .releasing)
        let (first, r1) = try Self.worker(down, spool: dir + "/spool")
        FileSinkTests.stream(r1, count: 2_000)
        first.stop()
        #expect(down.seqs.isEmpty)
        let up = SwitchableDestination()
        let (second, r2) = try Self.worker(up, spool: dir + "/spool")
        // The next daemon's own records come after the spooled ones.
        r2.agentRecord(.agentHeartbeat, unixNs: 1) { j in j.key("next"); j.bool(true) }
        r2.flush()
        let all = waitFor(timeout: 10) { up.seqs.count == 2_001 }
        second.stop()
        #expect(all, "got \(up.seqs.count) of 2001")
        #expect(up.seqs.prefix(2_000).elementsEqual(1...2_000) && up.seqs.last == 1)
        // Nothing is left to deliver a third time.
        let third = SwitchableDestination()
        let (again, _) = try Self.worker(third, spool: dir + "/spool")
        usleep(300_000)
        again.stop()
        #expect(third.seqs.isEmpty)
    }

    @Test("a spool at its bound: the rest is dropped and counted with its seq range")
    func boundedSpool() throws {
        let dir = try ChainTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = SwitchableDestination()
        d.up.store(false, ordering: .releasing)
        let (outputs, recorder) = try Self.worker(d, spool: dir + "/spool", queueBytes: 64 << 10, spoolBytes: 256 << 10)
        FileSinkTests.stream(recorder, count: 5_000) { _ in usleep(20_000) }
        _ = waitFor(timeout: 5) { outputs.workers[0].backlogBytes == 0 }
        let drops = outputs.takeDrops().first?.drops ?? OutputDrops()
        d.up.store(true, ordering: .releasing)
        let kept = 5_000 - Int(drops.records)
        let arrived = waitFor(timeout: 10) { d.seqs.count == kept }
        outputs.stop()
        #expect(drops.records > 0 && arrived, "dropped \(drops.records), got \(d.seqs.count)")
        // What was kept arrives in order; exactly what was reported is missing.
        #expect(d.seqs == d.seqs.sorted())
        let missing = Set(1...5_000).subtracting(d.seqs)
        #expect(missing.count == Int(drops.records) && missing.min() == Int(drops.firstSeq) && missing.max() == Int(drops.lastSeq))
    }
}

/// The spool where others could plant a symbolic link (issue 12, item 5): its directory is
/// checked first and its segments and `position` opened without following one.
extension SpoolTests {
    static let lines = Array(#"{"v":1,"seq":1}"#.utf8 + [0x0A] + #"{"v":1,"seq":2}"#.utf8 + [0x0A])

    /// Appends, reads and consumes as the worker would; the message of a refusal, or nil.
    static func useSpool(_ dir: String) -> (refusal: String?, lost: Int, front: Int?) {
        var lost = 0, front: Int?
        let m = refusal {
            let s = try Spool(directory: dir, maxBytes: 1 << 20)
            lost = lines.withUnsafeBytes { s.append($0) }.count
            front = s.peek(max: 4096)
            if let front { s.consume(front) }
        }
        return (m, lost, front)
    }

    @Test("a spool directory others can write, links planted at a segment and at position.tmp: refused naming it and why, the target untouched")
    func spoolInOpenDirectory() throws {
        let base = try TestDirs.base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let victim = Victim.make(in: base)
        let open = TestDirs.make(base + "/open", mode: 0o777)
        for name in ["000000000001.spool", "000000000002.spool", "position.tmp"] { symlink(victim.path, open + "/" + name) }
        let r = Self.useSpool(open)
        #expect(r.refusal?.hasPrefix("spool_dir: \(open) is writable by others (mode 0777)") == true, "\(r.refusal ?? "accepted")")
        #expect(victim.untouched, "the spool wrote through a planted link")
    }

    @Test("links at a segment's name and at position.tmp in a good spool directory: not followed, not read, the target untouched")
    func spoolLinksInGoodDirectory() throws {
        let base = try TestDirs.base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let victim = Victim.make(in: base)
        let spool = TestDirs.make(base + "/spool", mode: 0o700)
        for name in ["000000000001.spool", "position.tmp"] { symlink(victim.path, spool + "/" + name) }
        let r = Self.useSpool(spool)
        #expect(r.refusal == nil)
        // Nothing of the target is read back as spooled records; what could not go in is lost (counted by the worker).
        #expect(r.front == nil && r.lost == Self.lines.count, "front \(r.front.map(String.init) ?? "nil"), lost \(r.lost)")
        #expect(victim.untouched, "the spool wrote through a planted link")
        // Without the links the same spool works: the position is saved in place.
        for name in ["000000000001.spool", "position.tmp"] { unlink(spool + "/" + name) }
        let ok = Self.useSpool(spool)
        #expect(ok.refusal == nil && ok.lost == 0 && ok.front == Self.lines.count)
        #expect(try String(contentsOfFile: spool + "/position", encoding: .utf8) == "0 0\n")
    }
}
