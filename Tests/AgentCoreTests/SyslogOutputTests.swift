@testable import AgentOutputs
import Foundation
import Glibc
import Logging
import Testing

/// The syslog output as the daemon runs it: Outputs → OutputWorker (queue, spool, retries) →
/// SyslogTransport → a real rsyslog on loopback.
@Suite("syslog output to a real rsyslog", .serialized)
struct SyslogSinkTests {
    static func outputs(_ rs: RsyslogHarness, _ input: RsyslogHarness.Input, timeoutS: Int = 10) throws -> Outputs {
        var s = rs.settings(input)
        s.timeoutS = timeoutS
        var o = OutputConfig(name: "siem", kind: .syslog(s))
        o.spoolDirectory = rs.dir + "/spool"
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let outputs = try Outputs([o], logger: logger)
        outputs.start()
        return outputs
    }

    /// Pushes `lines` (seq `first`...) into the outputs as the recorder does, `per` at a time.
    static func push(_ outputs: Outputs, _ range: ClosedRange<Int>, per: Int = 50) {
        let lines = syslogTestLines(range)
        for start in stride(from: 0, to: lines.count, by: per) {
            var chunk = lines[start..<min(start + per, lines.count)].joined(separator: "\n") + "\n"
            chunk.withUTF8 { outputs.write(UnsafeRawBufferPointer($0)) }
        }
    }

    @Test("every record arrives once, parses, in order", arguments: [RsyslogHarness.Input.unix, .udp, .tcp, .tls])
    func everyRecord(_ input: RsyslogHarness.Input) throws {
        let rs = try RsyslogHarness()
        defer { rs.stop() }
        let outputs = try Self.outputs(rs, input)
        Self.push(outputs, 1...3_000)
        let got = rs.waitFor(input, count: 3_000)
        outputs.stop()
        checkReceived(got, seqs: Array(1...3_000))
        #expect(outputs.takeDrops().isEmpty)
        if input == .udp { #expect(rs.udpDrops() == 0) }
    }

    /// rsyslog ends in the middle of a stream and comes back 10 s later. Plain TCP and TLS
    /// syslog have no acknowledgement: what sits unread in a receiver's socket when it dies is
    /// lost (docs/syslog.md). So the stream pauses until rsyslog has written what was sent,
    /// then rsyslog is stopped; everything after that, sent while it is down, waits in the
    /// spool and must arrive once, in order, when it is back.
    @Test("rsyslog down for 10 s in the middle of a stream: nothing lost, nothing duplicated", arguments: [RsyslogHarness.Input.tcp, .tls])
    func receiverDown(_ input: RsyslogHarness.Input) throws {
        let rs = try RsyslogHarness()
        defer { rs.stop() }
        let outputs = try Self.outputs(rs, input)
        var seq = 0
        func stream(for seconds: Double) {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                Self.push(outputs, (seq + 1)...(seq + 100))
                seq += 100
                usleep(50_000)
            }
        }
        stream(for: 2)
        #expect(rs.waitFor(input, count: seq).count == seq)
        rs.stop()
        let downAt = Date()
        stream(for: 10)
        let spooled = outputs.workers[0].counters.spooledBytes
        try rs.start()
        stream(for: 2)
        let got = rs.waitFor(input, count: seq, seconds: 60)
        outputs.stop()
        rs.stop()
        #expect(spooled > 0, "nothing went to the spool while rsyslog was down")
        #expect(Date().timeIntervalSince(downAt) >= 10)
        checkReceived(got, seqs: Array(1...seq))
        #expect(outputs.takeDrops().isEmpty)
    }

    /// rsyslog stalls (SIGSTOP) for 10 s while the stream goes on: the worker waits on the
    /// socket, records queue up behind it, the reader is never blocked, and all arrive once,
    /// in order.
    @Test("rsyslog stalled for 10 s under a continuous stream: nothing lost, nothing duplicated, the reader never waits")
    func receiverStalled() throws {
        let rs = try RsyslogHarness()
        defer { rs.stop() }
        let outputs = try Self.outputs(rs, .tcp, timeoutS: 30)
        var seq = 0
        var slowestPush = 0.0
        func stream(for seconds: Double) {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                let t = Date()
                Self.push(outputs, (seq + 1)...(seq + 200))
                slowestPush = max(slowestPush, Date().timeIntervalSince(t))
                seq += 200
                usleep(20_000)
            }
        }
        stream(for: 1)
        let resume = rs.pause(seconds: 10)
        stream(for: 11)
        #expect(Date() > resume)
        let got = rs.waitFor(.tcp, count: seq, seconds: 60)
        outputs.stop()
        checkReceived(got, seqs: Array(1...seq))
        #expect(outputs.takeDrops().isEmpty)
        // Pushing copies into the queue: it never waited for the stalled receiver.
        #expect(slowestPush < 0.5, "a push took \(slowestPush) s")
    }
}
