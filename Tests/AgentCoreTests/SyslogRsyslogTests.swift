@testable import AgentDetector
@testable import AgentOutputs
@testable import AgentSupport
import Foundation
import Glibc
import Testing

/// Record lines seq `range`, of the kinds a stream carries: file opens (some with non-ASCII
/// paths), execs, alerts of every severity, a loss marker now and then.
func syslogTestLines(_ range: ClosedRange<Int>) -> [String] {
    range.map { seq in
        switch seq {
        case _ where seq % 97 == 0: sampleRecord(seq: seq, type: "agent.loss", session: nil)
        case _ where seq % 50 == 0: sampleRecord(seq: seq, type: "alert", rule: ("cred-read", ["critical", "high", "medium", "low", "info"][seq / 50 % 5]))
        case _ where seq % 3 == 0: sampleRecord(seq: seq, type: "process.exec", session: "session-\(seq % 7)")
        default: sampleRecord(seq: seq, path: seq % 5 == 0 ? "/home/dév/naïve-\(seq).txt" : "/home/dev/src/file-\(seq).swift")
        }
    }
}

/// Hands `lines` to the destination `per` lines at a time, as a sink's worker does.
func deliverLines(_ d: SyslogTransport, _ lines: [String], per: Int = 100) throws {
    for start in stride(from: 0, to: lines.count, by: per) {
        var chunk = lines[start..<min(start + per, lines.count)].joined(separator: "\n") + "\n"
        try chunk.withUTF8 { try d.deliver(UnsafeRawBufferPointer($0)) }
    }
}

/// The syslog severity each test record should carry.
func expectedSeverity(_ record: [String: Any]) -> Int {
    switch record["type"] as? String {
    case "alert":
        ["critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6][(record["rule"] as? [String: Any])?["severity"] as? String ?? ""] ?? 4
    case "agent.loss": 4
    default: 6
    }
}

/// Every record of `seqs` (made by `syslogTestLines`) arrived exactly once and in this order, its
/// MSG the record line byte for byte, its header and structured data matching the record.
func checkReceived(_ got: [RsyslogHarness.Received], seqs: [Int], framing: SyslogSettings.Framing = .rfc5424,
                   inOrder: Bool = true, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    var order: [Int] = []
    var malformed = 0
    for r in got {
        // RFC 3164 gives no MSGID or SD; rsyslog keeps the space after the TAG in MSG.
        let text = framing == .rfc3164 && r.msg.hasPrefix(" ") ? String(r.msg.dropFirst()) : r.msg
        guard let record = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
              let seq = record["seq"] as? Int, let type = record["type"] as? String else {
            malformed += 1
            continue
        }
        order.append(seq)
        if text != syslogTestLines(seq...seq)[0] {
            Issue.record("seq \(seq): MSG is not the record line byte for byte", sourceLocation: sourceLocation)
        }
        if r.pri != 10 * 8 + expectedSeverity(record) || r.hostname != "build-7" || r.appName != "agentwatch" || r.procID != String(getpid()) {
            Issue.record("seq \(seq): header \(r.pri) \(r.hostname) \(r.appName) \(r.procID)", sourceLocation: sourceLocation)
        }
        if framing == .rfc5424 {
            let p = r.params
            if r.msgID != type || p["seq"] != String(seq) || p["type"] != type
                || p["session"] != ((record["session"] as? [String: Any])?["id"] as? String)
                || p["rule"] != ((record["rule"] as? [String: Any])?["id"] as? String)
                || !r.timestamp.hasPrefix("2026-11-21T22:50:01.123456") {
                Issue.record("seq \(seq): MSGID \(r.msgID), SD \(r.structuredData), time \(r.timestamp)", sourceLocation: sourceLocation)
            }
        }
    }
    #expect(malformed == 0, "\(malformed) messages whose MSG is not a record", sourceLocation: sourceLocation)
    let counts = Dictionary(order.map { ($0, 1) }, uniquingKeysWith: +)
    let missing = seqs.filter { counts[$0] == nil }
    let duplicated = counts.filter { $0.value > 1 }.keys.sorted()
    #expect(missing.isEmpty, "\(missing.count) records missing, first \(missing.prefix(10))", sourceLocation: sourceLocation)
    #expect(duplicated.isEmpty, "\(duplicated.count) records duplicated, first \(duplicated.prefix(10))", sourceLocation: sourceLocation)
    #expect(order.count == seqs.count, sourceLocation: sourceLocation)
    if inOrder {
        #expect(order == seqs, "records out of order", sourceLocation: sourceLocation)
    }
}

@Suite("Syslog to a real rsyslog", .serialized)
struct SyslogRsyslogTests {
    /// 2,000 records through each transport (UDP included: the input's receive buffer holds a
    /// whole burst, and the kernel's drop counter for its socket is checked to be 0).
    @Test(arguments: RsyslogHarness.Input.allCases)
    func everyRecordArrivesOnceInOrder(input: RsyslogHarness.Input) throws {
        let rs = try RsyslogHarness()
        var settings = rs.settings(input)
        if input == .tls { settings.serverName = nil } // the certificate's IP SAN, 127.0.0.1
        let d = SyslogTransport(settings: settings, formatter: NativeFormatter())
        try d.open()
        let n = 2000
        try deliverLines(d, syslogTestLines(1...n))
        d.close()
        let got = rs.waitFor(input, count: n)
        if input == .udp {
            #expect(rs.udpDrops() == 0, "the kernel dropped datagrams at rsyslog's UDP socket")
        }
        checkReceived(got, seqs: Array(1...n))
        if got.count != n { print(rs.log) }
    }

    @Test func rfc3164OverTheLocalSocket() throws {
        let rs = try RsyslogHarness()
        var settings = rs.settings(.unix)
        settings.framing = .rfc3164
        let d = SyslogTransport(settings: settings, formatter: NativeFormatter())
        try d.open()
        try deliverLines(d, syslogTestLines(1...300))
        let got = rs.waitFor(.unix, count: 300)
        checkReceived(got, seqs: Array(1...300), framing: .rfc3164)
    }

    /// A record longer than the bound arrives cut, flagged, and whole to rsyslog: with the bound
    /// at rsyslog's default maxMessageSize (8096 bytes, not 8192), rsyslog does not cut again.
    @Test func longRecordArrivesCutAndFlagged() throws {
        let rs = try RsyslogHarness()
        var settings = rs.settings(.tcp)
        settings.maxMessageBytes = 8096
        let d = SyslogTransport(settings: settings, formatter: NativeFormatter())
        try d.open()
        let long = sampleRecord(seq: 2, path: "/" + String(repeating: "é", count: 10_000))
        try deliverLines(d, [sampleRecord(seq: 1), long, sampleRecord(seq: 3)])
        let got = rs.waitFor(.tcp, count: 3)
        try #require(got.count == 3)
        #expect(got[1].params["truncated"] == "true" && got[1].params["length"] == String(long.utf8.count))
        #expect(got[1].params["seq"] == "2")
        #expect(long.hasPrefix(got[1].msg) && got[1].msg.utf8.count > 7800)
        #expect(got[0].params["truncated"] == nil && got[2].params["truncated"] == nil)
        #expect(d.truncated == 1)
    }

    @Test func tlsWithTheWrongServerNameFailsOpen() throws {
        let rs = try RsyslogHarness()
        var settings = rs.settings(.tls)
        settings.serverName = "wrong.example"
        let d = SyslogTransport(settings: settings, formatter: NativeFormatter())
        let error = #expect(throws: AgentError.self) { try d.open() }
        #expect(error?.message.contains("certificate verify failed") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("hostname mismatch") == true, "\(error?.message ?? "")")
    }

    @Test func tlsWithAnUntrustedCAFailsOpen() throws {
        let rs = try RsyslogHarness()
        var settings = rs.settings(.tls)
        settings.caFile = rs.otherCAFile
        let d = SyslogTransport(settings: settings, formatter: NativeFormatter())
        let error = #expect(throws: AgentError.self) { try d.open() }
        #expect(error?.message.contains("certificate verify failed") == true, "\(error?.message ?? "")")
        // The chain rsyslog sends ends in a CA we do not trust.
        #expect(error?.message.contains("self-signed certificate in certificate chain") == true || error?.message.contains("local issuer") == true,
                "\(error?.message ?? "")")
    }

    /// A plain TCP listener never answers the ClientHello: the handshake times out.
    @Test func tlsHandshakeWithAPlainListenerTimesOut() throws {
        let rs = try RsyslogHarness()
        var settings = rs.settings(.tls)
        settings.port = rs.tcpPort
        settings.timeoutS = 1
        let d = SyslogTransport(settings: settings, formatter: NativeFormatter())
        let start = Date()
        let error = #expect(throws: AgentError.self) { try d.open() }
        #expect(error?.message.contains("handshake with 127.0.0.1:\(rs.tcpPort) timed out after 1 s") == true, "\(error?.message ?? "")")
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test func nothingListeningFailsOpenOrDeliver() throws {
        var settings = SyslogSettings()
        settings.transport = .tcp
        settings.address = "127.0.0.1"
        settings.port = try RsyslogHarness.freePort(datagram: false)
        let tcp = SyslogTransport(settings: settings, formatter: NativeFormatter())
        let error = #expect(throws: AgentError.self) { try tcp.open() }
        #expect(error?.message == "syslog tcp: connect refused to 127.0.0.1:\(settings.port!)")

        // UDP: the ICMP port unreachable answering the first datagram fails the next send.
        settings.transport = .udp
        settings.port = try RsyslogHarness.freePort(datagram: true)
        let udp = SyslogTransport(settings: settings, formatter: NativeFormatter())
        try udp.open()
        var lines = syslogTestLines(1...10).joined(separator: "\n") + "\n"
        // The answer to the first datagram may come after the first batch: two batches.
        var failure: DeliveryFailure?
        for _ in 0..<2 where failure == nil {
            do {
                try lines.withUTF8 { try udp.deliver(UnsafeRawBufferPointer($0)) }
            } catch let error as DeliveryFailure {
                failure = error
            }
        }
        #expect(failure?.reason.contains("refused (ICMP port unreachable") == true, "\(failure?.reason ?? "no failure")")
        // Whole lines: the datagrams that went out before the refusal was known.
        let ends = syslogTestLines(1...10).reduce(into: [0]) { $0.append($0.last! + $1.utf8.count + 1) }
        #expect(failure.map { ends.dropLast().contains($0.delivered) } == true, "delivered \(failure?.delivered ?? -1)")

        settings.transport = .unix
        settings.address = "/nonexistent/agentwatch.sock"
        let unix = SyslogTransport(settings: settings, formatter: NativeFormatter())
        let unixError = #expect(throws: AgentError.self) { try unix.open() }
        #expect(unixError?.message == "syslog unix: cannot connect to /nonexistent/agentwatch.sock: No such file or directory")
    }

    /// rsyslog stopped (SIGSTOP) for 4 s in the middle of a stream, within the destination's
    /// 10 s timeout: the send waits for room and goes on; every record arrives once, in order.
    @Test func tcpReceiverStoppedWithinTimeout() throws {
        let rs = try RsyslogHarness()
        let d = SyslogTransport(settings: rs.settings(.tcp), formatter: NativeFormatter())
        try d.open()
        var seq = 0
        var longest = 0.0
        var resumeAt: Date?
        // Records keep coming while rsyslog is stopped, until its buffers and ours are full and
        // the send waits; then until 10,000 are sent.
        while resumeAt.map({ Date() < $0.addingTimeInterval(0.5) }) ?? true || seq < 10_000 {
            let start = Date()
            try deliverLines(d, syslogTestLines((seq + 1)...(seq + 200)), per: 200)
            longest = max(longest, Date().timeIntervalSince(start))
            seq += 200
            if seq == 2000 { resumeAt = rs.pause(seconds: 4) }
        }
        d.close()
        let got = rs.waitFor(.tcp, count: seq, seconds: 60)
        checkReceived(got, seqs: Array(1...seq))
        #expect(longest > 2, "no send waited for the stopped receiver (longest deliver \(longest) s)")
        print("tcpReceiverStoppedWithinTimeout: \(seq) records, longest deliver \(String(format: "%.1f", longest)) s")
    }

    /// rsyslog stopped for 4 s with a 1 s timeout: deliver fails, saying how many lines went out
    /// whole; the test, as the sink's worker would, reopens and delivers the rest. Every record
    /// arrives exactly once; each connection's records in order (across a reconnect the order
    /// holds only when the receiver read the old connection to its end first: docs/syslog.md).
    @Test func tcpReceiverStoppedBeyondTimeout() throws {
        let rs = try RsyslogHarness()
        var settings = rs.settings(.tcp)
        settings.timeoutS = 1
        let d = SyslogTransport(settings: settings, formatter: NativeFormatter())
        try d.open()
        var pending: [String] = []
        var seq = 0
        var runs: [[Int]] = [[]] // the seqs delivered on each connection
        var failures = 0
        var resumeAt: Date?
        let give = Date().addingTimeInterval(90)
        while (resumeAt.map({ Date() < $0.addingTimeInterval(0.5) }) ?? true || seq < 10_000 || !pending.isEmpty) && Date() < give {
            if resumeAt.map({ Date() < $0.addingTimeInterval(0.5) }) ?? true || seq < 10_000 {
                pending += syslogTestLines((seq + 1)...(seq + 200))
                seq += 200
            }
            var chunk = pending.joined(separator: "\n") + "\n"
            do {
                try chunk.withUTF8 { try d.deliver(UnsafeRawBufferPointer($0)) }
                runs[runs.count - 1] += pending.map(seqOf)
                pending.removeAll()
            } catch let error as DeliveryFailure {
                failures += 1
                // `delivered` covers whole lines: exactly the first k.
                var bytes = 0, k = 0
                while bytes < error.delivered {
                    bytes += pending[k].utf8.count + 1
                    k += 1
                }
                #expect(bytes == error.delivered, "delivered \(error.delivered) is not a line boundary")
                runs[runs.count - 1] += pending[0..<k].map(seqOf)
                pending.removeFirst(k)
                d.close()
                runs.append([])
                while (try? d.open()) == nil && Date() < give { usleep(100_000) }
            }
            if seq == 2000 && resumeAt == nil { resumeAt = rs.pause(seconds: 4) }
        }
        d.close()
        #expect(pending.isEmpty)
        #expect(failures > 0, "no deliver failed although the receiver was stopped beyond the timeout")
        let got = rs.waitFor(.tcp, count: seq, seconds: 60)
        checkReceived(got, seqs: Array(1...seq), inOrder: false)
        // Within a connection, rsyslog wrote the records in the order they were sent.
        var position: [Int: Int] = [:]
        for (i, r) in got.enumerated() {
            if let s = Int(r.params["seq"] ?? "") { position[s] = i }
        }
        for run in runs where run.count > 1 {
            let p = run.compactMap { position[$0] }
            #expect(p == p.sorted(), "records of one connection out of order")
        }
        print("tcpReceiverStoppedBeyondTimeout: \(seq) records, \(failures) failed delivers, \(runs.count) connections, in order overall: \(got.compactMap { Int($0.params["seq"] ?? "") } == Array(1...seq))")
    }

    /// rsyslog ends (SIGTERM) while the connection is idle and starts again on the same port:
    /// the next deliver finds the connection closed before writing (delivered 0) rather than
    /// writing into it; after open() again, everything arrives.
    @Test(arguments: [RsyslogHarness.Input.tcp, .tls])
    func closedConnectionIsNoticed(input: RsyslogHarness.Input) throws {
        let rs = try RsyslogHarness()
        let d = SyslogTransport(settings: rs.settings(input), formatter: NativeFormatter())
        try d.open()
        try deliverLines(d, syslogTestLines(1...100))
        #expect(rs.waitFor(input, count: 100).count == 100)
        rs.stop()
        try rs.start()
        var batch = syslogTestLines(101...200).joined(separator: "\n") + "\n"
        do {
            try batch.withUTF8 { try d.deliver(UnsafeRawBufferPointer($0)) }
            Issue.record("deliver wrote into a closed connection without noticing")
        } catch let error as DeliveryFailure {
            #expect(error.delivered == 0)
            #expect(error.reason.contains("closed the connection") || error.reason.contains("ended the TLS session"), "\(error.reason)")
        }
        d.close()
        try d.open()
        try batch.withUTF8 { try d.deliver(UnsafeRawBufferPointer($0)) }
        d.close()
        checkReceived(rs.waitFor(input, count: 200), seqs: Array(1...200))
    }
}

private func seqOf(_ line: String) -> Int {
    let s = line.utf8.split(separator: UInt8(ascii: ","))[1]
    return Int(String(decoding: s.dropFirst(6), as: UTF8.self))!
}

/// Messages per second through `SyslogTransport` over TCP (release build, AGENTWATCH_BENCH=1):
/// to a loopback reader that only counts bytes (our side's cost, one thread; its CPU time is
/// measured too), and to the real rsyslog (plain TCP and TLS) writing to a file.
@Suite("Syslog benchmark", .enabled(if: getenv("AGENTWATCH_BENCH") != nil, "set AGENTWATCH_BENCH=1 (release build) to run"), .serialized)
struct SyslogBenchmarkTests {
    /// A TCP listener on loopback whose thread accepts one connection and reads it to its end.
    final class CountingReader: @unchecked Sendable {
        let port: Int
        private let listener: Int32
        private let done = DispatchSemaphore(value: 0)
        private(set) var bytes = 0

        init() throws {
            (listener, port) = try RsyslogHarness.bindLoopback(datagram: false)
            guard listen(listener, 4) == 0 else { throw RsyslogHarness.Failure("listen: \(errnoText())") }
            Thread.detachNewThread { self.readAll() }
        }

        private func readAll() {
            let fd = accept(listener, nil, nil)
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                bytes += n
            }
            close(fd)
            close(listener)
            done.signal()
        }

        func wait() { done.wait() }
    }

    static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// 1,000 distinct records (about 600 bytes each), delivered `rounds` times in batches of 1,000.
    static func run(_ d: SyslogTransport, rounds: Int) throws -> (wall: Double, cpu: Double) {
        var batch = syslogTestLines(1...1000).joined(separator: "\n") + "\n"
        let start = Date(), cpu = threadCPUSeconds()
        for _ in 0..<rounds {
            try batch.withUTF8 { try d.deliver(UnsafeRawBufferPointer($0)) }
        }
        let cpuUsed = threadCPUSeconds() - cpu
        d.close()
        return (Date().timeIntervalSince(start), cpuUsed)
    }

    @Test func tcpToACountingReader() throws {
        let reader = try CountingReader()
        var settings = SyslogSettings()
        settings.transport = .tcp
        settings.address = "127.0.0.1"
        settings.port = reader.port
        let d = SyslogTransport(settings: settings, formatter: NativeFormatter())
        try d.open()
        let rounds = 1000
        let t = try Self.run(d, rounds: rounds)
        reader.wait()
        let n = Double(rounds * 1000)
        print("syslog tcp → loopback reader: \(Int(n / t.wall)) msgs/s wall, \(Int(n / t.cpu)) msgs per CPU-second of the sending thread (\(rounds * 1000) records, \(reader.bytes / (rounds * 1000)) bytes a frame)")
        #expect(reader.bytes > rounds * 1000 * 500)
    }

    @Test(arguments: [RsyslogHarness.Input.tcp, .tls])
    func toRsyslog(input: RsyslogHarness.Input) throws {
        let rs = try RsyslogHarness()
        let d = SyslogTransport(settings: rs.settings(input), formatter: NativeFormatter())
        try d.open()
        let rounds = 200
        let start = Date()
        let t = try Self.run(d, rounds: rounds)
        let got = rs.waitFor(input, count: rounds * 1000, seconds: 120)
        let all = Date().timeIntervalSince(start)
        let n = Double(rounds * 1000)
        print("syslog \(input) → rsyslog: sent at \(Int(n / t.wall)) msgs/s (\(Int(n / t.cpu)) per CPU-second of the sending thread), all \(got.count) written by rsyslog at \(Int(Double(got.count) / all)) msgs/s")
        #expect(got.count == rounds * 1000)
    }
}
