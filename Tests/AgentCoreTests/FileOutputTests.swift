@testable import AgentOutputs
@testable import AgentPipeline
@testable import AgentRecords
@testable import AgentReplay
import Foundation
import Glibc
import Logging
import Testing

/// The file output through the daemon's own path: Recorder → Outputs → OutputWorker →
/// FileTransport, on real files.
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
        (outputs.workers[0].destination as! FileTransport).waitForCompression()

        let rotated = RotatedFiles.files(of: f.path)
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
        // As `verify events.ndjson*` gets them: a glob sorts bytewise, the live file first and,
        // within one second, X-1.gz before X.gz and X-10 before X-2.
        let glob = ([f.path] + rotated).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        #expect(rotated.contains { $0.hasSuffix("Z-10.gz") }, "the stream rotated fewer than 11 times in one second: \(rotated.suffix(3))")
        #expect(glob != rotated + [f.path])
        let fromGlob = ChainVerifier.verify(paths: ChainVerifier.rotationOrder(glob))
        #expect(fromGlob.intact && fromGlob.records == n, "\(fromGlob.failure.map { "\($0)" } ?? "")")
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
        let rotated = RotatedFiles.files(of: f.path)
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
        let rotatedInTime = waitFor(timeout: 5) { RotatedFiles.files(of: t.path).count == 1 }
        timed.stop()
        #expect(rotatedInTime)
        #expect(try Self.seqs(Self.lines(RotatedFiles.files(of: t.path))).elementsEqual(1...10))
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
        // mode=0755: a tmpfs root is 1777 by default, a directory the output refuses.
        #expect("size=1m,mode=0755".withCString { mount("tmpfs", mnt, "tmpfs", 0, $0) } == 0)
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
        let dropped = drops.first?.drops ?? OutputDrops()
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

/// The output file where others could plant a symbolic link: the directory is checked first and
/// the file opened without following one (issue 12, item 5); leftovers of a rotation a stop cut
/// short are finished at start, so a set never verifies as tampered for that (item 6).
extension FileSinkTests {
    static let oneLine = Array(#"{"v":1,"seq":1,"type":"agent.heartbeat"}"#.utf8) + [0x0A]

    /// Starts `settings` as a daemon's output named `main` would, opens it and writes a line.
    static func startAndWrite(_ settings: FileSettings, lines: Int = 1) throws -> FileTransport {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let w = try OutputConfig(name: "main", kind: .file(settings)).makeWorker(logger: logger)
        let d = w.destination as! FileTransport
        try d.open()
        for _ in 0..<lines { try oneLine.withUnsafeBytes { try d.deliver($0) } }
        return d
    }

    @Test("an output directory others can write (0777, or owned by nobody) with a link at the file: refused naming it and why, the target untouched")
    func outputInOpenDirectory() throws {
        let base = try TestDirs.base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let victim = Victim.make(in: base)
        let open = TestDirs.make(base + "/open", mode: 0o777)
        let nobodys = TestDirs.make(base + "/nobodys", mode: 0o755, uid: TestDirs.nobody)
        for dir in [open, nobodys] {
            symlink(victim.path, dir + "/events.ndjson")
            let m = refusal { _ = try Self.startAndWrite(FileSettings(path: dir + "/events.ndjson")) }
            let why = dir == open ? "is writable by others (mode 0777)" : "is owned by nobody (uid 65534)"
            #expect(m?.hasPrefix("output main: \(dir) \(why): make it owned by root") == true, "\(m ?? "accepted")")
        }
        #expect(victim.untouched, "the target of the planted link was written, chowned or chmodded")
    }

    @Test("a link at the output's name in a good directory: not followed, the target untouched")
    func outputLinkInGoodDirectory() throws {
        let base = try TestDirs.base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let victim = Victim.make(in: base)
        let logs = TestDirs.make(base + "/logs", mode: 0o755)
        symlink(victim.path, logs + "/events.ndjson")
        let m = refusal { _ = try Self.startAndWrite(FileSettings(path: logs + "/events.ndjson")) }
        #expect(m?.contains("\(logs)/events.ndjson is a symbolic link") == true, "\(m ?? "accepted")")
        #expect(victim.untouched, "the target of the planted link was written, chowned or chmodded")
    }

    @Test("links planted at the gzip temporary names: in a directory others can write refused; in a good one not followed, and the rotation completes")
    func gzipTemporaryLinks() throws {
        let base = try TestDirs.base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let victim = Victim.make(in: base)
        func plant(_ dir: String) {
            // The names of this minute's rotations: the test cannot know the second.
            let now = Int64(time(nil))
            for s in (now - 2)...(now + 60) {
                symlink(victim.path, dir + "/events.ndjson." + RotatedFiles.stamp(s * 1_000_000_000) + ".gz.tmp")
            }
        }
        var f = FileSettings(path: "")
        f.rotateBytes = Self.oneLine.count + 1
        f.compress = true
        f.retain = 0

        let open = TestDirs.make(base + "/open", mode: 0o777)
        plant(open)
        f.path = open + "/events.ndjson"
        let m = refusal {
            let d = try Self.startAndWrite(f, lines: 3)
            d.waitForCompression()
        }
        #expect(m?.hasPrefix("output main: \(open) is writable by others (mode 0777)") == true, "\(m ?? "accepted")")
        #expect(victim.untouched, "compression wrote through a planted link")

        let good = TestDirs.make(base + "/good", mode: 0o755)
        f.path = good + "/events.ndjson"
        let d = try Self.startAndWrite(f, lines: 1)
        plant(good)
        for _ in 0..<2 { try Self.oneLine.withUnsafeBytes { try d.deliver($0) } }
        d.waitForCompression()
        #expect(victim.untouched, "compression wrote through a planted link")
        let rotated = RotatedFiles.files(of: f.path)
        #expect(rotated.count == 2 && rotated.allSatisfy { $0.hasSuffix(".gz") }, "\(rotated)")
        #expect(try Self.lines(rotated + [f.path]).count == 3)
    }

    @Test("a stop during rotation left a partial .gz.tmp, an uncompressed rotated file and a file beside its .gz: the next start finishes them and the set verifies")
    func rotationLeftovers() throws {
        let base = try TestDirs.base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        var f = FileSettings(path: base + "/events.ndjson")
        f.rotateBytes = 16 << 10
        f.compress = false
        f.retain = 0
        let n = 600
        let outputs = try Self.outputs(f)
        Self.stream(Recorder(sink: outputs, host: Self.host), count: n)
        outputs.stop()
        // One stamp a second apart each: names from one second (`-N`) sort in a glob unlike in
        // rotation (`X-1.gz` before `X.gz`), which is not what this test is about.
        let made = RotatedFiles.files(of: f.path)
        #expect(made.count >= 4 && made.count <= 60)
        let rotated = made.enumerated().map { i, p in
            let name = base + "/events.ndjson.20260101T0000" + (i < 10 ? "0" : "") + String(i) + "Z"
            rename(p, name)
            return name
        }
        func gzip(_ args: [String], output: String? = nil) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "gzip " + args.joined(separator: " ") + (output.map { " > '\($0)'" } ?? "")]
            try p.run()
            p.waitUntilExit()
        }
        // The first: compressed, renamed in place, then the stop before the original was removed.
        try gzip(["-k", "'\(rotated[0])'"])
        // The second: the stop cut its compression short.
        try gzip(["-c", "'\(rotated[1])'", "| head -c 200"], output: rotated[1] + ".gz.tmp")
        // The third: rotated, the stop before compression began. The fourth: done.
        try gzip(["'\(rotated[3])'"])
        func listed() throws -> [String] {
            // What `verify events.ndjson*` gets from the shell.
            try FileManager.default.contentsOfDirectory(atPath: base).filter { $0.hasPrefix("events.ndjson") }.sorted().map { base + "/" + $0 }
        }
        #expect(try listed().count == rotated.count + 3)

        f.compress = true
        let d = try FileTransport(settings: f)
        d.waitForCompression()
        let expected = rotated.map { $0 + ".gz" } + [f.path]
        #expect(try listed() == expected.sorted())
        let v = ChainVerifier.verify(paths: ChainVerifier.rotationOrder(try listed()))
        #expect(v.intact && v.records == n, "\(v.failure.map { "\($0)" } ?? "") \(v.gaps) \(v.records)")
        #expect(d.leftovers.removedPartial == [rotated[1] + ".gz.tmp"]) // reported
        #expect(d.leftovers.removedCompressed == [rotated[0]]) // reported
        #expect(d.leftovers.compressing == [rotated[1], rotated[2]] + rotated.dropFirst(4)) // reported
    }

    @Test("a directory loosened after the start (0777, a link where logrotate moved the file): the reopen refuses it, the target untouched")
    func loosenedAfterStart() throws {
        let base = try TestDirs.base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let victim = Victim.make(in: base)
        let logs = TestDirs.make(base + "/logs", mode: 0o755)
        let d = try Self.startAndWrite(FileSettings(path: logs + "/events.ndjson"))
        rename(logs + "/events.ndjson", logs + "/events.ndjson.1")
        chmod(logs, 0o777)
        symlink(victim.path, logs + "/events.ndjson")
        d.close()
        let m = refusal { try d.open() }
        #expect(m?.hasPrefix("output main: \(logs) is writable by others (mode 0777)") == true, "\(m ?? "accepted")")
        #expect(victim.untouched, "the reopen wrote through a planted link")
    }
}
