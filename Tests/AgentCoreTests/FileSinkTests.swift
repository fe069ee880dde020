import Foundation
import Glibc
import Logging
import Testing
@testable import AgentCore

/// The file output through the daemon's own path: Recorder → Outputs → SinkWorker →
/// FileDestination, on real files.
@Suite("file sink")
struct FileSinkTests {
    static let host = HostIdentity(name: "h", id: "0123")

    static func outputs(_ settings: FileSettings, queueBytes: Int = 64 << 20) throws -> Outputs {
        var o = OutputConfig(name: "file", kind: .file(settings))
        o.queueBytes = queueBytes
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let outputs = try Outputs([o], logger: logger)
        outputs.start()
        return outputs
    }

    /// `count` records (agent.start, then heartbeats of ~200 bytes) through `recorder`.
    static func stream(_ recorder: Recorder, count: Int, pause: (Int) -> Void = { _ in }) {
        recorder.agentRecord(.agentStart, unixNs: 1_700_000_000_000_000_000) { j in
            j.key("version"); j.string("test")
            recorder.chainOrigin(into: &j)
        }
        for i in 1..<count {
            recorder.agentRecord(.agentHeartbeat, unixNs: 1_700_000_000_000_000_000 + Int64(i)) { j in
                j.key("note"); j.string(String(repeating: "x", count: 120 + i % 50))
            }
            if i % 500 == 0 {
                recorder.flush()
                pause(i)
            }
        }
        recorder.flush()
    }

    /// Every record line of the files, in order, gunzipping compressed ones.
    static func lines(_ paths: [String]) throws -> [String] {
        var out: [String] = []
        for p in paths {
            var text: String
            if p.hasSuffix(".gz") {
                let pipe = Pipe()
                let gz = Process()
                gz.executableURL = URL(fileURLWithPath: "/bin/gzip")
                gz.arguments = ["-dc", p]
                gz.standardOutput = pipe
                try gz.run()
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                gz.waitUntilExit()
                text = String(decoding: data, as: UTF8.self)
            } else {
                text = try String(contentsOfFile: p, encoding: .utf8)
            }
            #expect(text.isEmpty || text.hasSuffix("\n"), "\(p) ends in the middle of a line")
            out += text.split(separator: "\n").map(String.init)
        }
        return out
    }

    static func seqs(_ lines: [String]) -> [Int] {
        lines.compactMap { line in
            guard let r = line.range(of: "\"seq\":") else { return nil }
            return Int(line[r.upperBound...].prefix { $0.isNumber })
        }
    }

    @Test("rotation by size under a continuous stream: gzipped, in order, nothing lost or repeated, verify passes the set")
    func sizeRotation() throws {
        let dir = try ChainTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var f = FileSettings(path: dir + "/events.ndjson")
        f.rotateBytes = 64 << 10
        f.retain = 0
        f.compress = true
        let outputs = try Self.outputs(f)
        let recorder = Recorder(sink: outputs, host: Self.host)
        let n = 20_000
        Self.stream(recorder, count: n)
        outputs.stop()
        (outputs.workers[0].destination as! FileDestination).waitForCompression()

        let rotated = FileDestination.rotatedFiles(of: f.path)
        #expect(rotated.count >= 40)
        #expect(rotated.allSatisfy { $0.hasSuffix(".gz") })
        let st = try FileManager.default.attributesOfItem(atPath: f.path)
        #expect((st[.size] as! Int) <= 64 << 10)
        #expect((st[.posixPermissions] as! Int) == 0o640)
        #expect((st[.groupOwnerAccountName] as? String) == "adm")
        let all = try Self.lines(rotated + [f.path])
        #expect(Self.seqs(all).elementsEqual(1...n), "records missing, repeated or out of order")
        // Every file holds whole lines only, each no larger than the bound.
        let v = ChainVerifier.verify(paths: ChainVerifier.rotationOrder([f.path] + rotated))
        #expect(v.intact, "\(v.failure.map { "\($0)" } ?? "") \(v.gaps)")
        #expect(v.records == n && v.files == rotated.count + 1)
        // Without its first file the set is anchored: intact only as a partial set.
        let partial = ChainVerifier.verify(paths: Array(rotated.dropFirst()) + [f.path], allowAnchor: true)
        #expect(partial.intact && partial.anchor != nil)
        #expect(!ChainVerifier.verify(paths: Array(rotated.dropFirst()) + [f.path]).intact)
    }

    @Test("retention keeps the newest rotated files; rotation by time rotates an idle file")
    func retentionAndTime() throws {
        let dir = try ChainTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var f = FileSettings(path: dir + "/logs/events.ndjson")
        f.rotateBytes = 32 << 10
        f.retain = 3
        f.compress = false
        let outputs = try Self.outputs(f)
        let recorder = Recorder(sink: outputs, host: Self.host)
        Self.stream(recorder, count: 5_000)
        outputs.stop()
        let rotated = FileDestination.rotatedFiles(of: f.path)
        #expect(rotated.count == 3)
        // The directory it made: 0750 with the files' group, so that group reaches them.
        let logs = try FileManager.default.attributesOfItem(atPath: dir + "/logs")
        #expect((logs[.posixPermissions] as! Int) == 0o750 && (logs[.groupOwnerAccountName] as? String) == "adm")
        // The newest ones: the last rotated file ends right before the live file starts.
        let tail = Self.seqs(try Self.lines(rotated + [f.path]))
        #expect(tail.last == 5_000)
        #expect(tail.elementsEqual((tail.first ?? 0)...5_000), "the kept files are not the newest, in order")

        var t = FileSettings(path: dir + "/timed.ndjson")
        t.rotateIntervalS = 1
        t.compress = false
        let timed = try Self.outputs(t)
        let r2 = Recorder(sink: timed, host: Self.host)
        Self.stream(r2, count: 10)
        // Nothing more is written; the worker's timer rotates the file once it is a second old.
        let rotatedInTime = waitFor(timeout: 5) { FileDestination.rotatedFiles(of: t.path).count == 1 }
        timed.stop()
        #expect(rotatedInTime)
        #expect(try Self.seqs(Self.lines(FileDestination.rotatedFiles(of: t.path))).elementsEqual(1...10))
    }

    @Test("reopen after logrotate moved the file: the stream goes on in a new file and the pair verifies")
    func reopen() throws {
        let dir = try ChainTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let f = FileSettings(path: dir + "/events.ndjson")
        let outputs = try Self.outputs(f)
        let recorder = Recorder(sink: outputs, host: Self.host)
        Self.stream(recorder, count: 1_000) { i in
            guard i == 500 else { return }
            // What logrotate does: move the file, then signal (SIGHUP → reopen).
            _ = waitFor(timeout: 5) { (try? Self.lines([f.path]).count) == 500 }
            rename(f.path, dir + "/events.ndjson.1")
            outputs.reopen()
        }
        outputs.stop()
        let first = try Self.lines([dir + "/events.ndjson.1"])
        let second = try Self.lines([f.path])
        #expect(Self.seqs(first + second).elementsEqual(1...1_000), "records missing, repeated or out of order")
        #expect(ChainVerifier.verify(paths: [dir + "/events.ndjson.1", f.path]).intact)
    }

    @Test("a full disk: no half line, records kept in memory up to the bound, the rest dropped and counted by seq, delivery resumes when space returns")
    func fullDisk() throws {
        guard geteuid() == 0 else {
            if ProcessInfo.processInfo.environment["AGENTWATCH_REQUIRE_KERNEL"] == "1" { Issue.record("the full-disk test needs root to mount a small tmpfs") }
            return
        }
        let dir = try ChainTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let mnt = dir + "/small"
        mkdir(mnt, 0o755)
        #expect("size=1m".withCString { mount("tmpfs", mnt, "tmpfs", 0, $0) } == 0)
        defer { umount2(mnt, Int32(MNT_DETACH)) }
        // Fill most of it, leaving room for about 350 records of ~350 bytes; the filler's space
        // is more than the queue's bound, so all the queue holds fits once it is gone.
        let filler = mnt + "/filler"
        #expect(FileManager.default.createFile(atPath: filler, contents: Data(repeating: 0x41, count: 904 << 10)))
        var vfs = statvfs()
        statvfs(mnt, &vfs)
        #expect(Int(vfs.f_bavail) * Int(vfs.f_bsize) <= 128 << 10, "the small tmpfs is not as full as planned")
        var f = FileSettings(path: mnt + "/events.ndjson")
        f.rotateBytes = 0
        f.group = nil
        let outputs = try Self.outputs(f, queueBytes: 256 << 10)
        let recorder = Recorder(sink: outputs, host: Self.host)
        Self.stream(recorder, count: 4_000) { i in if i % 1000 == 0 { usleep(50_000) } }
        // The disk filled: the file ends with a whole line, and the queue overflowed.
        _ = waitFor(timeout: 5) { outputs.workers[0].counters.errors > 0 }
        let before = try Self.lines([f.path])
        #expect(!before.isEmpty && before.count < 4_000)
        let drops = outputs.takeDrops()
        #expect(drops.count == 1 && drops.first!.drops.records > 0)
        let dropped = drops.first?.drops ?? SinkDrops()
        // Space comes back: what the queue kept is delivered, in order; the daemon reports the
        // drop in the stream (as its loop does) and records go on after it.
        unlink(filler)
        recorder.sinkLoss(sink: "file", drops: dropped, unixNs: 1_800_000_000_000_000_000)
        for _ in 0..<10 {
            recorder.agentRecord(.agentHeartbeat, unixNs: 1_800_000_000_000_000_000) { j in j.key("after"); j.bool(true) }
        }
        recorder.flush()
        let total = 4_000 + 11
        let n = total - Int(dropped.records)
        let resumed = waitFor(timeout: 10) { (try? Self.lines([f.path]).count) == n }
        #expect(resumed, "delivery did not resume: \(outputs.workers[0].counters)")
        outputs.stop()
        let seqs = Self.seqs(try Self.lines([f.path]))
        #expect(seqs.count == n)
        #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count, "records out of order or repeated")
        // Exactly the reported range is missing.
        let missing = Set(1...total).subtracting(seqs)
        #expect(missing.count == Int(dropped.records))
        #expect(missing.min() == Int(dropped.firstSeq) && missing.max() == Int(dropped.lastSeq))
        // verify reports the hole, checks the chain on both sides of it, and counts the marker.
        let v = ChainVerifier.verify(paths: [f.path])
        #expect(v.failure == nil && v.gaps.count == 1 && !v.intact, "\(v.failure.map { "\($0)" } ?? "") \(v.gaps)")
        #expect(v.lossMarkers == 1 && v.queueDropped == dropped.records)
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` seconds pass.
func waitFor(timeout: Double, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}
