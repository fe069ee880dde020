@testable import AgentPipeline
@testable import AgentReplay
import CAgentEvents
import Foundation
import Glibc
import Testing

/// The capture reader under mutated captures: byte flips, bytes JSON cares about, cuts,
/// deletions, duplicated and spliced ranges, repeated and swapped lines, deep nesting, long
/// runs. Seeded, so a failure repeats. Each input is small, so many fit in the time: the point
/// is the number and variety of broken shapes, not their size (sizes have their own tests).
@Suite("replay fuzz")
struct ReplayFuzzTests {
    /// `AGENTWATCH_REPLAY_FUZZ_INPUTS` changes the count (a quick run, or a long one).
    static let inputs = ProcessInfo.processInfo.environment["AGENTWATCH_REPLAY_FUZZ_INPUTS"].flatMap { Int($0) } ?? 100_000
    /// An input taking longer than this is a hang: the watchdog stops the run and says which.
    static let hangSeconds = 20.0

    /// Small valid captures the mutations start from: a session with alerts, loss, a restart,
    /// escaped and non-ASCII text, written by the real pipeline; and one with members of odd
    /// types, which the recorder never writes, crafted by hand.
    static func bases() -> [[UInt8]] {
        let a = RecordedCapture(rules: ReplayTests.rules)
        a.sessionStart("s", cgid: 0x51)
        a.exec(session: 0x51, pid: 10, ppid: 1, exe: "/usr/bin/cat", argv: ["cat", "/home/dev/.aws/credentials"])
        a.open(session: 0x51, pid: 10, requested: "/home/dev/.aws/credentials", resolved: "/home/dev/.aws/credentials")
        a.exit(session: 0x51, pid: 10, ppid: 1, comm: "cat", status: 0)
        a.sessionEnd(0x51)

        let b = RecordedCapture()
        b.sessionStart("t", cgid: 0x52)
        b.connect(session: 0x52, pid: 20, daddr: "203.0.113.9", dport: 4444, cookie: 9)
        b.kernelLoss(AGENT_KIND_OPEN, count: 3)
        b.flow(session: 0x52, pid: 20, cookie: 9, sent: 1 << 24, received: 10, sentDelta: 1 << 24, final: true)
        b.outputLoss("siem", first: 2, last: 3)
        b.restart()
        b.heartbeat()

        let u = RecordedCapture()
        u.sessionStart("u\u{1B}", cgid: 0x53, labels: [("k\n", "v\u{1B}")])
        u.exec(session: 0x53, pid: 30, ppid: 30, exe: "/bin/\u{1B}[31m\u{202E}", argv: ["a\"b", "ü€𝄞", ""])
        u.open(session: 0x53, pid: 30, requested: "/t/\\x\u{7F}", resolved: nil, result: -13)

        var c = CaptureBuilder(start: false)
        c.add("session.start", #""session":{"id":"u","homes":["/h\udcff"],"labels":{"k\n":"v\u001b"}}"#)
        c.add("process.exit", #""session":{"id":"u"},"process":{"entity_id":[],"pid":1e2,"signal":9,"core_dumped":true,"duration_ns":1.5}"#)
        c.add("alert", #""session":{"id":"u"},"rule":{"id":"x","severity":"high"},"message":"m","evidence":[1,2,99999999999999999999]"#)
        return [a.bytes, b.bytes, u.bytes, c.bytes]
    }

    /// One mutation of `bytes`, chosen by `rng`; `other` is another capture to splice from.
    static func mutate(_ bytes: inout [UInt8], other: [UInt8], _ rng: inout SeededGenerator) {
        let special: [UInt8] = Array("\"\\{}[]:,\n0-e.u".utf8) + [0x00, 0x1F, 0x7F, 0x80, 0xC3, 0xED, 0xF4, 0xFF]
        func at() -> Int { bytes.isEmpty ? 0 : Int(rng.next() % UInt64(bytes.count)) }
        func range() -> Range<Int> {
            let a = at(), len = Int(rng.next() % 64)
            return a..<min(bytes.count, a + len)
        }
        /// The byte ranges of the lines, newline included (the last one may have none).
        func lineRanges() -> [Range<Int>] {
            var out: [Range<Int>] = []
            var start = 0
            bytes.withUnsafeBytes { raw in
                while start < raw.count {
                    let end = memchr(raw.baseAddress! + start, 0x0A, raw.count - start).map { raw.baseAddress!.distance(to: UnsafeRawPointer($0)) + 1 } ?? raw.count
                    out.append(start..<end)
                    start = end
                }
            }
            return out
        }
        func pick(_ l: [Range<Int>]) -> Range<Int> { l[Int(rng.next() % UInt64(l.count))] }
        switch rng.next() % 12 {
        case 0:
            for _ in 0...(rng.next() % 8) where !bytes.isEmpty { bytes[at()] ^= UInt8(1 << (rng.next() % 8)) }
        case 1:
            if !bytes.isEmpty { bytes[at()] = special[Int(rng.next() % UInt64(special.count))] }
        case 2:
            bytes.removeSubrange(at()...)
        case 3:
            bytes.removeSubrange(range())
        case 4:
            let r = range()
            bytes.insert(contentsOf: bytes[r], at: at())
        case 5:
            let a = other.isEmpty ? 0 : Int(rng.next() % UInt64(other.count))
            bytes.insert(contentsOf: other[a..<min(other.count, a + Int(rng.next() % 200))], at: at())
        case 6:
            // A whole line repeated (a duplicated record).
            let l = lineRanges()
            if l.count > 1 { bytes.insert(contentsOf: bytes[pick(l)], at: pick(l).lowerBound) }
        case 7:
            // Two lines swapped (reordered records).
            let l = lineRanges()
            if l.count > 2 {
                let (a, b) = (pick(l), pick(l))
                if a.upperBound <= b.lowerBound {
                    bytes = Array(bytes[..<a.lowerBound] + bytes[b] + bytes[a.upperBound..<b.lowerBound] + bytes[a] + bytes[b.upperBound...])
                }
            }
        case 8:
            // A line dropped (a removed record).
            let l = lineRanges()
            if l.count > 1 { bytes.removeSubrange(pick(l)) }
        case 9:
            let open = rng.next() % 2 == 0 ? UInt8(ascii: "[") : UInt8(ascii: "{")
            bytes.insert(contentsOf: [UInt8](repeating: open, count: Int(rng.next() % 300)), at: at())
        case 10:
            bytes.insert(contentsOf: [UInt8](repeating: special[Int(rng.next() % UInt64(special.count))], count: Int(rng.next() % 512)), at: at())
        default:
            // A number made huge, negative or fractional.
            if let digit = bytes.indices.dropFirst(at()).first(where: { (48...57).contains(bytes[$0]) }) {
                let forms = ["99999999999999999999999", "-1", "1.5", "1e308", "0", "18446744073709551615", "-9223372036854775808"]
                bytes.replaceSubrange(digit...digit, with: Array(forms[Int(rng.next() % UInt64(forms.count))].utf8))
            }
        }
    }

    /// glibc's malloc_trim(3), which the Glibc module does not show.
    static let mallocTrim: (@convention(c) (Int) -> Int32)? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim")
        .map { unsafeBitCast($0, to: (@convention(c) (Int) -> Int32).self) }

    static func residentBytes() -> Int {
        // Heap the process has freed (in glibc's per-thread arenas) handed back first: what
        // stays resident is what is still held, which is what a leak would grow.
        _ = mallocTrim?(0)
        guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = s.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }

    /// What the watchdog sees: how many inputs are done, and the one being read.
    final class Progress: @unchecked Sendable {
        let lock = NSLock()
        var done = 0
        var current: [UInt8] = []
        var finished = false
    }

    /// Set in the process of its own that `mutatedCaptures` runs the loop in.
    static let aloneVariable = "AGENTWATCH_REPLAY_FUZZ_ALONE"

    /// The loop runs in a test process of its own (this test binary again, filtered to this
    /// test), so that its memory bound measures replay's memory and not that of the suites
    /// running beside it: in one shared process their heap showed as up to 260 MB of growth.
    @Test("100,000 mutated captures: no crash, no hang, memory bounded; never more lenient than verify")
    func mutatedCaptures() throws {
        if ProcessInfo.processInfo.environment[Self.aloneVariable] == "1" {
            try fuzzLoop()
            return
        }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        child.arguments = ["--testing-library", "swift-testing", "--filter", "ReplayFuzzTests/mutatedCaptures"]
        var environment = ProcessInfo.processInfo.environment
        environment[Self.aloneVariable] = "1"
        child.environment = environment
        let pipe = Pipe()
        child.standardOutput = pipe
        child.standardError = pipe
        try child.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        child.waitUntilExit()
        let text = String(decoding: output, as: UTF8.self)
        let summary = text.split(separator: "\n").filter { $0.hasPrefix("replay fuzz:") }
        for line in summary { print(line) }
        #expect(child.terminationStatus == 0 && child.terminationReason == .exit,
                "the fuzz process ended with \(child.terminationReason == .exit ? "status" : "signal") \(child.terminationStatus):\n\(text.suffix(4000))")
        // It ran: a filter that matched nothing would pass with 0 tests.
        #expect(summary.contains { $0.contains(" inputs (") }, "the fuzz process did not run the loop:\n\(text.suffix(4000))")
    }

    func fuzzLoop() throws {
        let bases = Self.bases()
        var rng = SeededGenerator(seed: 0x5EED_2026_1121)
        let devNull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(devNull) }
        let out = ReplayOutput(fd: devNull)
        let progress = Progress()
        // The watchdog: an input still being read after `hangSeconds` is a hang. It is shown
        // (base64, to make a regression test of) and the run is stopped, never left hanging.
        let watchdog = Thread {
            var last = -1
            var since = Date()
            while true {
                Thread.sleep(forTimeInterval: 1)
                progress.lock.lock()
                let (done, finished, current) = (progress.done, progress.finished, progress.current)
                progress.lock.unlock()
                if finished { return }
                if done != last {
                    last = done
                    since = Date()
                } else if Date().timeIntervalSince(since) > Self.hangSeconds {
                    print("replay fuzz: input \(done) still being read after \(Int(Self.hangSeconds)) s: \(Data(current).base64EncodedString())")
                    fatalError("replay fuzz: hang")
                }
            }
        }
        watchdog.start()
        defer {
            progress.lock.lock()
            progress.finished = true
            progress.lock.unlock()
        }

        let start = Date()
        var slowest = 0.0
        var rssAfterWarmUp = 0
        var notIntact = 0, compared = 0
        var lines = 0
        for i in 0..<Self.inputs {
            var bytes = bases[i % bases.count]
            let other = bases[(i + 1) % bases.count]
            for _ in 0...(rng.next() % 3) { Self.mutate(&bytes, other: other, &rng) }
            progress.lock.lock()
            progress.done = i
            progress.current = bytes
            progress.lock.unlock()
            var options = ReplayOptions()
            // HTML renders what the others show; it gets every eighth input.
            options.format = i % 8 == 7 ? .html : [ReplayOptions.Format.tree, .timeline, .ndjson][i % 3]
            if i % 64 == 0 { options.rules = ReplayTests.rules }
            let t0 = Date()
            let summary = CaptureReplay(options: options, output: out) { _ in }.run(captures: [("fuzz", bytes)])
            slowest = max(slowest, Date().timeIntervalSince(t0))
            lines += summary.lines
            if !summary.intact { notIntact += 1 }
            let newlines = bytes.withUnsafeBytes { raw in raw.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) } }
            #expect(summary.lines <= newlines + 1)
            // Whatever verify finds wrong, the replay finds wrong too.
            if i % 64 == 0 {
                var v = ChainVerifier()
                v.check(bytes: bytes, name: "fuzz")
                compared += 1
                if !v.intact && summary.intact {
                    Issue.record("verify finds \(v.failure.map { "\($0)" } ?? "a gap or an anchor") in input \(i) but replay finds it intact: \(Data(bytes).base64EncodedString())")
                }
            }
            if i == 1_000 { rssAfterWarmUp = Self.residentBytes() }
        }
        let elapsed = Date().timeIntervalSince(start)
        let growth = Self.residentBytes() - rssAfterWarmUp
        print("replay fuzz: \(Self.inputs) inputs (\(lines) lines, \(notIntact) not intact) in \(String(format: "%.1f", elapsed)) s; slowest \(String(format: "%.3f", slowest)) s; \(compared) compared with verify; resident memory grew \(growth >> 10) KiB after the first 1,000")
        #expect(slowest < 2, "an input took \(slowest) s")
        // Resident size of this process, which runs this loop alone: it grew by 736 KiB over
        // 99,000 inputs here. A leak of 256 bytes per input would show as ~24 MiB.
        #expect(growth < 16 << 20, "resident memory grew by \(growth >> 20) MiB")
        #expect(notIntact > Self.inputs / 2, "the mutations break most captures")
        #expect(Self.inputs >= 100_000 || ProcessInfo.processInfo.environment["AGENTWATCH_REPLAY_FUZZ_INPUTS"] != nil)
    }
}
