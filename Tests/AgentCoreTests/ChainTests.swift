@testable import AgentOutputs
@testable import AgentPipeline
@testable import AgentRecords
@testable import AgentReplay
@testable import AgentSupport
import Foundation
import Logging
import Testing

/// The record hash chain: what the Recorder writes, and what the verifier accepts and rejects.
@Suite("chain")
struct ChainTests {
    static let host = HostIdentity(name: "h", id: "0123")

    /// Writes `count` heartbeats and loss markers with a few awkward bytes in them.
    /// The daemon's file output (rotation off), started; `write` stops it, so the file is
    /// complete when `write` returns.
    static func fileOutputs(_ path: String) throws -> Outputs {
        var o = OutputConfig.file(path)
        o.kind = .file(FileSettings(path: path))
        let outputs = try Outputs([o], logger: Logger(label: "test"))
        outputs.start()
        return outputs
    }

    static func write(_ recorder: Recorder, count: Int, start: Bool = true) {
        if start {
            recorder.agentRecord(.agentStart, unixNs: 1_700_000_000_000_000_000) { j in
                j.key("version"); j.string("test")
                recorder.chainOrigin(into: &j)
            }
        }
        for i in 0..<count {
            if i % 5 == 4 {
                recorder.agentLoss(kernelDropped: [3, 0, 1], queueDropped: 2, cpuReported: true, unixNs: 1_700_000_000_000_000_000 + Int64(i))
            } else {
                recorder.agentRecord(.agentHeartbeat, unixNs: 1_700_000_000_000_000_000 + Int64(i)) { j in
                    j.key("note"); j.string([0x22, 0x5C, 0x0A, 0xFF, 0xE2, 0x82, 0xAC, UInt8(truncatingIfNeeded: i)])
                }
            }
        }
        recorder.flush()
        (recorder.sink as? Outputs)?.stop()
    }

    static func lines(count: Int = 20) -> [String] {
        let sink = MemoryOutput()
        write(Recorder(sink: sink, host: host), count: count)
        return sink.lines
    }

    static func verify(_ lines: [String], name: String = "mem") -> ChainVerifier {
        var v = ChainVerifier()
        v.check(bytes: Array((lines.joined(separator: "\n") + "\n").utf8), name: name)
        return v
    }

    /// SHA-256 by an implementation that is not ours: coreutils' sha256sum.
    static func sha256sum(_ data: [UInt8]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(Data(data))
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: out.prefix(64), as: UTF8.self)
    }

    static func chain(of line: String) -> String { String(line.suffix(66).prefix(64)) }

    static func tempDir() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("chain-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("every record ends with its chain, SHA-256 over the previous chain and the line without it")
    func recordChain() throws {
        let lines = Self.lines(count: 6)
        #expect(lines.count == 7)
        var prev = String(repeating: "0", count: 64)
        for line in lines {
            let suffix = ",\"chain\":\"\(Self.chain(of: line))\"}"
            #expect(line.hasSuffix(suffix))
            #expect(Self.chain(of: line).allSatisfy { "0123456789abcdef".contains($0) })
            let covered = Array(prev.utf8) + Array(line.utf8.dropLast(suffix.utf8.count)) + [UInt8(ascii: "}")]
            #expect(try Self.sha256sum(covered) == Self.chain(of: line))
            // The line without the chain is still one JSON object.
            let stripped = String(line.dropLast(suffix.count)) + "}"
            #expect(ChainVerifier.parse(Array(stripped.utf8)) != nil)
            prev = Self.chain(of: line)
        }
        #expect(lines[0].contains("\"chain_start\":true"))
    }

    @Test("an untouched stream verifies: records, loss markers and their counts")
    func intact() {
        let v = Self.verify(Self.lines(count: 20))
        #expect(v.intact, "\(v.failure.map { "\($0)" } ?? "") \(v.gaps)")
        #expect(v.records == 21)
        #expect(v.lossMarkers == 4)
        #expect(v.kernelDropped == 16 && v.queueDropped == 8)
        #expect(v.restarts.isEmpty)
        #expect(v.summary.hasPrefix("intact: 21 records in 1 file"))
    }

    @Test("an edited byte breaks the chain at that record")
    func editedByte() {
        var lines = Self.lines()
        lines[7] = lines[7].replacingOccurrences(of: "\"version\"", with: "\"versioN\"")
            .replacingOccurrences(of: "\"note\":\"", with: "\"note\":\"x")
        let v = Self.verify(lines)
        #expect(!v.intact)
        #expect(v.failure?.description == "mem:8: seq 8: chain mismatch (record edited, inserted, removed or reordered here)")
        #expect(v.records == 7)
    }

    @Test("an edited chain is caught too")
    func editedChain() {
        var lines = Self.lines()
        var bytes = Array(lines[3].utf8)
        bytes[bytes.count - 3] = bytes[bytes.count - 3] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        lines[3] = String(decoding: bytes, as: UTF8.self)
        #expect(Self.verify(lines).failure?.line == 4)
    }

    @Test("a removed line breaks the chain at the record after it")
    func removedLine() {
        var lines = Self.lines()
        lines.remove(at: 10)
        let v = Self.verify(lines)
        #expect(!v.intact && v.failure == nil)
        #expect(v.gaps.map(\.description) == ["mem:11: seq 12 follows seq 10: 1 records missing; the chain resumes after them"])
    }

    @Test("a removed first record is caught: the stream no longer starts from zeros")
    func removedFirstLine() {
        var lines = Self.lines()
        lines.removeFirst()
        let v = Self.verify(lines)
        #expect(!v.intact && v.anchor?.line == 1)
        // Said to be a set whose start was rotated away, it checks out from there.
        var partial = ChainVerifier()
        partial.allowAnchor = true
        partial.check(bytes: Array((lines.joined(separator: "\n") + "\n").utf8), name: "mem")
        #expect(partial.intact && partial.records == lines.count)
    }

    @Test("a swapped pair of lines: a gap where the first stands, a chain break at the second")
    func swappedLines() {
        var lines = Self.lines()
        lines.swapAt(5, 6)
        let v = Self.verify(lines)
        #expect(!v.intact)
        #expect(v.gaps.map(\.description) == ["mem:6: seq 7 follows seq 5: 1 records missing; the chain resumes after them"])
        #expect(v.failure?.description == "mem:7: seq 6: chain mismatch (record edited, inserted, removed or reordered here)")
    }

    @Test("an inserted line breaks the chain where it stands, even a copy of a real record")
    func insertedLine() {
        var lines = Self.lines()
        lines.insert(lines[2], at: 9)
        #expect(Self.verify(lines).failure?.line == 10)
        var forged = Self.lines()
        forged.insert(#"{"v":1,"seq":5,"type":"agent.heartbeat","chain":"\#(String(repeating: "a", count: 64))"}"#, at: 4)
        #expect(Self.verify(forged).failure?.description == "mem:5: seq 5: chain mismatch (record edited, inserted, removed or reordered here)")
    }

    @Test("a set split across two files verifies as one stream, in order only")
    func splitFiles() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lines = Self.lines(count: 30)
        let a = dir + "/records.ndjson.1", b = dir + "/records.ndjson"
        try (lines[..<12].joined(separator: "\n") + "\n").write(toFile: a, atomically: false, encoding: .utf8)
        try (lines[12...].joined(separator: "\n") + "\n").write(toFile: b, atomically: false, encoding: .utf8)
        let v = ChainVerifier.verify(paths: [a, b])
        #expect(v.intact && v.records == 31 && v.files == 2)
        let reversed = ChainVerifier.verify(paths: [b, a])
        #expect(!reversed.intact && reversed.anchor?.description.hasPrefix("\(b):1: seq 13: the set starts here") == true)
    }

    @Test("a second recorder on the same file continues the chain; the verifier sees one restart")
    func continuation() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/records.ndjson"
        let first = Recorder(sink: try Self.fileOutputs(path), host: Self.host)
        #expect(first.chainPrev == nil)
        Self.write(first, count: 4)
        let lastChain = String(decoding: first.chain, as: UTF8.self)
        let second = Recorder(sink: try Self.fileOutputs(path), host: Self.host)
        #expect(second.chainPrev == lastChain)
        Self.write(second, count: 3)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("\"chain_prev\":\"\(lastChain)\""))
        let v = ChainVerifier.verify(paths: [path])
        #expect(v.intact, "\(v.failure.map { "\($0)" } ?? "")")
        #expect(v.records == 9)
        // The first run wrote no agent.stop: a killed run, an unclean stop.
        #expect(v.restarts.map(\.description) == ["\(path):6: seq 1: daemon restart after an unclean stop: the run before ended at seq 5 (2023-11-14T22:13:20.000000003Z) without agent.stop; records it had not written are missing"])
        // Removing the first run's last record is caught at the restart.
        var lines = text.split(separator: "\n").map(String.init)
        lines.remove(at: 4)
        #expect(Self.verify(lines).failure?.line == 5)
    }

    @Test("malformed lines are findings with their line number, never a crash")
    func malformed() {
        let good = Self.lines(count: 3)
        let bad = good[0] + "\n" + "not json at all\n"
        var v = ChainVerifier()
        v.check(bytes: Array(bad.utf8), name: "f")
        #expect(v.failure?.description == "f:2: malformed record: the line does not end with a \"chain\" member")
        v = ChainVerifier()
        v.check(bytes: Array((good[0] + "\n" + "[1,\"chain\":\"\(String(repeating: "0", count: 64))\"}\n").utf8), name: "f")
        #expect(v.failure?.description == "f:2: malformed record: not a JSON object")
        v = ChainVerifier()
        v.check(bytes: Array((good[0] + "\n" + good[1]).utf8), name: "f")
        #expect(v.failure?.line == 2 && v.failure?.message.hasPrefix("incomplete last line") == true)
        v = ChainVerifier()
        v.check(bytes: Array((good[0] + "\n").utf8) + [UInt8](repeating: UInt8(ascii: "["), count: ChainVerifier.maxLineBytes + 10) + [0x0A], name: "f")
        #expect(v.failure?.description == "f:2: malformed record: line longer than 4 MiB")
        #expect(v.records == 1)
        let deep = String(repeating: "[", count: 200_000) + ",\"chain\":\"\(String(repeating: "0", count: 64))\"}\n"
        v = ChainVerifier()
        v.check(bytes: Array(deep.utf8), name: "f")
        #expect(v.failure?.description == "f:1: malformed record: not a JSON object")
    }
}

@Suite("verify's fast path")
struct ChainFastPathTests {
    /// What a verifier concluded, for comparing two.
    static func outcome(_ v: ChainVerifier) -> String {
        "\(v.failure?.description ?? "-")|\(v.gaps.map(\.description))|\(v.anchor?.description ?? "-")|\(v.restarts.map(\.description))|\(v.records)|\(v.lossMarkers)|\(v.kernelDropped)|\(v.queueDropped)|\(v.intact)"
    }

    static func verify(_ lines: [String], alwaysParse: Bool) -> ChainVerifier {
        var v = ChainVerifier()
        v.alwaysParse = alwaysParse
        v.check(bytes: Array((lines.joined(separator: "\n") + "\n").utf8), name: "cap")
        return v
    }

    /// Ordinary records skip the JSON parser when their chain matches; every mutated capture
    /// must still get exactly the findings of the full path.
    @Test("ordinary lines checked by header and chain give the same findings as parsing every line, over 400 mutated captures")
    func sameFindingsAsFullParse() {
        var c = CaptureBuilder()
        c.sessionStart("s1")
        for i in 0..<60 {
            let pid = 100 + i % 7
            c.exec("s1", pid, ppid: 1, exe: "/usr/bin/cat", argv: ["cat", "/etc/x\(i)"])
            c.open("s1", pid, ppid: 1, exe: "/usr/bin/cat", path: "/etc/x\(i)")
            if i % 10 == 3 { c.connect("s1", pid, ppid: 1, exe: "/usr/bin/curl", daddr: "10.0.0.\(i)", dport: 443) }
            if i % 17 == 5 { c.kernelLoss(open: i) }
            c.exit("s1", pid, ppid: 1, exe: "/usr/bin/cat")
        }
        c.sinkLoss(sink: "siem", first: 900, last: 910)
        c.add("agent.stop", #""agent":{"version":"test"}"#)
        c.restart()
        c.sessionStart("s2")
        for i in 0..<20 { c.open("s2", 300, ppid: 1, exe: "/usr/bin/git", path: "/repo/f\(i)") }
        let base = c.lines
        let clean = Self.verify(base, alwaysParse: false)
        #expect(clean.intact && clean.failure == nil)
        #expect(Self.outcome(clean) == Self.outcome(Self.verify(base, alwaysParse: true)))

        var rng = SeededGenerator(seed: 0xC4A1)
        for round in 0..<400 {
            var lines = base
            let at = Int.random(in: 1..<lines.count, using: &rng)
            switch round % 5 {
            case 0:  // one byte changed
                var b = Array(lines[at].utf8)
                let i = Int.random(in: 0..<b.count, using: &rng)
                b[i] = UInt8.random(in: 0x20...0x7E, using: &rng)
                lines[at] = String(decoding: b, as: UTF8.self)
            case 1: lines.remove(at: at)
            case 2: lines.swapAt(at, Int.random(in: 1..<lines.count, using: &rng))
            case 3: lines.insert(lines[Int.random(in: 0..<lines.count, using: &rng)], at: at)
            default: lines.removeFirst(Int.random(in: 1..<20, using: &rng))  // older records rotated away
            }
            let fast = Self.outcome(Self.verify(lines, alwaysParse: false))
            let full = Self.outcome(Self.verify(lines, alwaysParse: true))
            #expect(fast == full, "round \(round)")
        }
    }

    @Test(arguments: [
        (#"{"v":1,"seq":12,"time":"2026-01-01T00:00:00Z","type":"file.open","host":{}"#, UInt64(12)),
        (#"{"v":1,"seq":012,"time":"2026-01-01T00:00:00Z","type":"file.open","host":{}"#, nil),
        (#"{"v":1,"seq":0,"time":"2026-01-01T00:00:00Z","type":"file.open","host":{}"#, nil),
        (#"{"v":1,"seq":5,"time":"2026-01-01T00:00:00Z","type":"agent.loss","host":{}"#, nil),
        (#"{"v":1,"seq":5,"time":"2026\"-01","type":"file.open","host":{}............"#, nil),
        (#"{"v":2,"seq":5,"time":"2026-01-01T00:00:00Z","type":"file.open","host":{}"#, nil),
        (#"{"v":1,"seq":99999999999999999999,"time":"2026-01-01T00:00:00Z","type":"file.open"}"#, nil),
    ])
    func ordinaryHeader(_ line: String, _ seq: UInt64?) {
        let padded = line + String(repeating: " ", count: 40)
        #expect(Array(padded.utf8).withUnsafeBytes { ChainVerifier.ordinarySeq($0)?.seq } == seq)
    }
}

/// Unclean stops, fresh chains in the middle of a set and rotation leftovers (issue 12, item 6):
/// a lost stretch of records is evidence of its own, never tampering and never "intact".
@Suite("chain: unclean stops and leftovers")
struct UncleanStopChainTests {
    typealias C = ChainTests

    /// A run on `path` that ends with `agent.stop` when `clean`, else just stops writing (killed).
    static func run(on path: String, count: Int, clean: Bool) throws -> Recorder {
        let r = Recorder(sink: try C.fileOutputs(path), host: C.host)
        r.agentRecord(.agentStart, unixNs: 1_700_000_000_000_000_000) { j in
            j.key("version"); j.string("test")
            r.chainOrigin(into: &j)
        }
        for i in 0..<count {
            r.agentRecord(.agentHeartbeat, unixNs: 1_700_000_001_000_000_000 + Int64(i)) { j in j.key("n"); j.uint(UInt64(i)) }
        }
        if clean {
            r.agentRecord(.agentStop, unixNs: 1_700_000_002_000_000_000) { j in j.key("version"); j.string("test") }
        }
        r.flush()
        (r.sink as? Outputs)?.stop()
        return r
    }

    static func fileLines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    @Test("a run killed before agent.stop: the next agent.start says so, verify reports an unclean stop (exit 2), not tampering")
    func uncleanStop() throws {
        let dir = try C.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/records.ndjson"
        _ = try Self.run(on: path, count: 4, clean: false)
        let second = try Self.run(on: path, count: 2, clean: true)
        #expect(second.previousRun?.ended == "unclean")
        let lines = try Self.fileLines(path)
        #expect(lines[5].contains(#""previous_run":{"ended":"unclean","last_seq":5,"last_time":"2023-11-14T22:13:21.000000003Z","last_type":"agent.heartbeat"}"#), "\(lines[5])")
        let v = ChainVerifier.verify(paths: [path])
        #expect(v.intact && v.failure == nil)
        #expect(v.restarts.map(\.description) == ["\(path):6: seq 1: daemon restart after an unclean stop: the run before ended at seq 5 (2023-11-14T22:13:21.000000003Z) without agent.stop; records it had not written are missing"])
        #expect(v.uncleanStops.count == 1 && v.exitStatus == 2)
        #expect(v.summary.hasPrefix("intact chain but 1 unclean stop (records lost): 9 records in 1 file"), "\(v.summary)")
        // Given from the restart on (the killed run's records in a file not given), the restart's
        // own previous_run still tells of the unclean stop.
        let later = C.verify(Array(lines[5...]))
        #expect(later.uncleanStops.map(\.message) == ["seq 1: daemon start continuing chain \(C.chain(of: lines[4]).prefix(16))… from records before this file, after an unclean stop: the run before ended at seq 5 (2023-11-14T22:13:21.000000003Z) without agent.stop, as this record declares; records it had not written are missing"])
        #expect(later.exitStatus == 2)
    }

    @Test("a run that ended with agent.stop: previous_run says clean, the restart is plain, exit 0")
    func cleanStop() throws {
        let dir = try C.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/records.ndjson"
        let first = try Self.run(on: path, count: 3, clean: true)
        #expect(first.previousRun?.ended == nil)
        #expect(!(try Self.fileLines(path))[0].contains("previous_run"))
        _ = try Self.run(on: path, count: 1, clean: true)
        #expect((try Self.fileLines(path))[5].contains(#""previous_run":{"ended":"clean","last_seq":5,"last_time":"2023-11-14T22:13:22.000000000Z","last_type":"agent.stop"}"#))
        let v = ChainVerifier.verify(paths: [path])
        #expect(v.restarts.map(\.message) == ["seq 1: daemon restart, chain continued"])
        #expect(v.intact && v.uncleanStops.isEmpty && v.exitStatus == 0)
    }

    @Test("a last write cut short by the kill: the chain continues from the record before it, and verify reads the cut line as part of the unclean stop")
    func cutLastWrite() throws {
        let dir = try C.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/records.ndjson"
        let first = try Self.run(on: path, count: 2, clean: false)
        let fh = try #require(FileHandle(forWritingAtPath: path))
        fh.seekToEndOfFile()
        fh.write(Data(#"{"v":1,"seq":4,"ti"#.utf8))
        try fh.close()
        let second = try Self.run(on: path, count: 1, clean: true)
        #expect(second.chainPrev == String(decoding: first.chain, as: UTF8.self))
        let lines = try Self.fileLines(path)
        #expect(lines[3] == #"{"v":1,"seq":4,"ti"#)
        #expect(lines[4].contains(#""previous_run":{"ended":"unclean","last_seq":3,"last_time":"2023-11-14T22:13:21.000000001Z","last_type":"agent.heartbeat","cut_bytes":18}"#), "\(lines[4])")
        let v = ChainVerifier.verify(paths: [path])
        #expect(v.failure == nil && v.intact && v.exitStatus == 2)
        #expect(v.uncleanStops.map(\.description) == ["\(path):5: seq 1: daemon restart after an unclean stop: the run before ended at seq 3 (2023-11-14T22:13:21.000000001Z) without agent.stop; its last write was cut short (line 4, 18 bytes); records it had not written are missing"])
        // The same line anywhere else, or with another length declared, is a malformed record.
        var moved = lines
        moved.insert(moved.remove(at: 3), at: 2)
        #expect(C.verify(moved).failure?.description == "mem:3: malformed record: the line does not end with a \"chain\" member")
        var longer = lines
        longer[3] += "x"
        #expect(C.verify(longer).failure?.description == "mem:4: malformed record: the line does not end with a \"chain\" member")
    }

    @Test("repro b: a capture cut after line N with a fresh agent.start appended is a break (exit 1); after an agent.stop a fresh chain is a plain restart")
    func freshChainMidSet() {
        let original = C.lines(count: 20)
        let appended = C.lines(count: 3)
        let forged = Array(original[..<8]) + appended
        let v = C.verify(forged)
        #expect(!v.intact)
        #expect(v.failure?.description == "mem:9: seq 1: the chain starts afresh after seq 8, which is not an agent.stop: nothing vouches for the records before it (the set may have been cut here and continued)")
        #expect(v.exitStatus == 1)

        let sink = MemoryOutput()
        let r = Recorder(sink: sink, host: C.host)
        C.write(r, count: 2)
        r.agentRecord(.agentStop, unixNs: 1_700_000_002_000_000_000) { j in j.key("version"); j.string("test") }
        r.flush()
        let clean = C.verify(sink.lines + appended)
        #expect(clean.intact && clean.exitStatus == 0)
        #expect(clean.restarts.map(\.message) == ["seq 1: daemon restart, chain started fresh"])
    }

    @Test("exit status: 0 intact, 1 not intact, 2 intact with unclean stops")
    func exitStatus() {
        let lines = C.lines(count: 10)
        #expect(C.verify(lines).exitStatus == 0)
        var gap = lines
        gap.remove(at: 4)
        #expect(C.verify(gap).exitStatus == 1)
        var edited = lines
        edited[3] = edited[3].replacingOccurrences(of: "\"note\":\"", with: "\"note\":\"x")
        #expect(C.verify(edited).exitStatus == 1)
        // A killed run then a restart continuing its chain: 2; with a gap after it too: 1.
        let sink = MemoryOutput()
        let first = Recorder(sink: sink, host: C.host)
        C.write(first, count: 3)
        let killed = sink.lines
        let restarted = MemoryOutput()
        let second = Recorder(sink: ChainedMemory(restarted, tail: first), host: C.host)
        C.write(second, count: 4)
        let both = killed + restarted.lines
        #expect(C.verify(both).exitStatus == 2)
        var both2 = both
        both2.remove(at: both.count - 2)
        #expect(C.verify(both2).exitStatus == 1)
    }

    /// A memory sink that says it holds what `tail` wrote last, as a file sink does after a run.
    final class ChainedMemory: RecordOutput {
        let inner: MemoryOutput
        let chainTail: RecordTail?
        var description: String { "memory" }
        init(_ inner: MemoryOutput, tail: Recorder) {
            self.inner = inner
            var t = RecordTail()
            t.empty = false
            t.chain = tail.chain
            t.lastSeq = tail.seq
            t.lastType = "agent.heartbeat"
            t.lastTime = "2023-11-14T22:13:20Z"
            chainTail = t
        }
        func write(_ lines: UnsafeRawBufferPointer) { inner.write(lines) }
        func flush() {}
    }

    /// A rotated set (two rotated files and the live one), as a shell glob lists it.
    static func rotatedSet(_ dir: String) throws -> (x1: String, x2: String, live: String, lines: [String]) {
        let lines = C.lines(count: 30)
        let live = dir + "/events.ndjson", x1 = live + ".20261201T000000Z", x2 = live + ".20261201T010000Z"
        try (lines[..<10].joined(separator: "\n") + "\n").write(toFile: x1, atomically: false, encoding: .utf8)
        try (lines[10..<20].joined(separator: "\n") + "\n").write(toFile: x2, atomically: false, encoding: .utf8)
        try (lines[20...].joined(separator: "\n") + "\n").write(toFile: live, atomically: false, encoding: .utf8)
        _ = FileTransport.gzip(try TrustedDirectory(dir, purpose: "test"), TrustedDirectory.split(x1).name)
        return (x1, x2, live, lines)
    }

    /// `path` gzipped as a rotation does, then put back as it was (a rotation stopped after
    /// its rename, before removing the original); returns the compressed bytes.
    static func gzipKeepingPlain(_ path: String) throws -> Data {
        let plain = try String(contentsOfFile: path, encoding: .utf8)
        let (dir, name) = TrustedDirectory.split(path)
        _ = FileTransport.gzip(try TrustedDirectory(dir, purpose: "test"), name)
        try plain.write(toFile: path, atomically: false, encoding: .utf8)
        return try #require(FileManager.default.contents(atPath: path + ".gz"))
    }

    @Test("repro c: X beside its X.gz (a rotation stopped before removing X) is set aside as a duplicate, not a chain mismatch")
    func duplicateRotation() throws {
        let dir = try C.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try Self.rotatedSet(dir)
        _ = try Self.gzipKeepingPlain(s.x2)
        let glob = [s.live, s.x1 + ".gz", s.x2, s.x2 + ".gz"]
        let v = ChainVerifier.verify(paths: ChainVerifier.rotationOrder(glob))
        #expect(v.failure == nil && v.intact && v.exitStatus == 0, "\(v.failure.map { "\($0)" } ?? "")")
        #expect(v.records == 31 && v.files == 3)
        #expect(v.setAside.map(\.description) == ["\(s.x2): skipped: a duplicate of \(s.x2).gz, its compressed copy, with the same records (a rotation stopped before removing it)"])
        // The two differ: one was changed; that is reported and the .gz is checked.
        try String(contentsOfFile: s.x2, encoding: .utf8).replacingOccurrences(of: "\"note\":\"", with: "\"note\":\"x").write(toFile: s.x2, atomically: false, encoding: .utf8)
        let changed = ChainVerifier.verify(paths: ChainVerifier.rotationOrder(glob))
        #expect(!changed.intact && changed.exitStatus == 1 && changed.failure == nil)
        #expect(changed.conflicts.map(\.description) == ["\(s.x2): differs from \(s.x2).gz, its compressed copy: one of the two was changed (\(s.x2).gz is the one checked)"])
    }

    @Test("repro c: a partial X.gz.tmp (a rotation's gzip stopped) is skipped with a line saying what it is")
    func partialGzip() throws {
        let dir = try C.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let s = try Self.rotatedSet(dir)
        // What the gzip had written when it was stopped: the start of the compressed copy.
        let gz = try Self.gzipKeepingPlain(s.x2)
        try gz.prefix(gz.count / 2).write(to: URL(fileURLWithPath: s.x2 + ".gz.tmp"))
        try FileManager.default.removeItem(atPath: s.x2 + ".gz")
        let glob = [s.live, s.x1 + ".gz", s.x2, s.x2 + ".gz.tmp"]
        let v = ChainVerifier.verify(paths: ChainVerifier.rotationOrder(glob))
        #expect(v.failure == nil && v.intact && v.exitStatus == 0, "\(v.failure.map { "\($0)" } ?? "")")
        #expect(v.records == 31 && v.files == 3)
        #expect(v.setAside.map(\.description) == ["\(s.x2).gz.tmp: skipped: a partial compressed copy left by an interrupted rotation, not a record file (\(s.x2) holds its records)"])
        #expect(v.summary.contains("1 leftover file set aside"))
    }
}
