@testable import AgentReplay
import CAgentEvents
import Testing

/// A replay of the net records of issue 14: unconnected sends, DNS messages and the names they
/// bind, connects through io_uring, as the real pipeline writes them.
@Suite("replay of net.send, net.dns and named destinations")
struct NetReplayTests {
    static func capture() -> RecordedCapture {
        let c = RecordedCapture()
        c.sessionStart("s", cgid: 0x61)
        c.exec(session: 0x61, pid: 300, ppid: 1, exe: "/usr/bin/python3", argv: ["python3", "x.py"])
        c.dns(session: 0x61, pid: 300, cookie: 1, direction: AGENT_DNS_QUERY, server: "127.0.0.53",
              message: DNSWire.query(id: 5, name: "drop.example.test"))
        c.dns(session: 0x61, pid: 300, cookie: 1, direction: AGENT_DNS_ANSWER, server: "127.0.0.53",
              message: DNSWire.answer(id: 5, name: "drop.example.test", addresses: [DNSWire.v4("198.51.100.8")]))
        c.connect(session: 0x61, pid: 300, daddr: "198.51.100.8", dport: 443, cookie: 2)
        c.send(session: 0x61, pid: 300, cookie: 3, daddr: "198.51.100.8", dport: 4500, bytes: 3 << 20, datagrams: 2500,
               bytesDelta: 3 << 20, datagramsDelta: 2500, reason: AGENT_SEND_FINAL)
        c.dns(session: 0x61, pid: 300, cookie: 4, direction: AGENT_DNS_ANSWER, server: "10.0.0.1",
              message: DNSWire.answer(id: 77, name: "spoof.example.test", addresses: [DNSWire.v4("203.0.113.1")]))
        c.exit(session: 0x61, pid: 300, ppid: 1, comm: "python3", status: 0)
        c.sessionEnd(0x61)
        return c
    }

    @Test("the timeline names each send, query, answer and the name a destination was resolved from")
    func timeline() throws {
        let (report, _, summary) = replay([("net.ndjson", Self.capture().bytes)]) { $0.format = .timeline }
        #expect(summary.intact, "\(summary.line)")
        #expect(report.contains("dns query to 127.0.0.53:53: A drop.example.test"))
        #expect(report.contains("dns answer from 127.0.0.53:53: A drop.example.test NOERROR → 198.51.100.8"))
        #expect(report.contains("connect tcp 198.51.100.8:443 (drop.example.test)"))
        #expect(report.contains("send udp → 198.51.100.8:4500 (drop.example.test) 3.0 MiB in 2500 datagrams, closed"), "\(report)")
        #expect(report.contains("(answers no query seen)"))
        // The session's end counts the new types.
        #expect(report.contains("2 net.dns") || report.contains("3 net.dns"))
        #expect(report.contains("1 net.send"))
    }

    @Test("the HTML report shows the send, the DNS messages and the resolved name")
    func html() throws {
        let (report, _, _) = replay([("net.ndjson", Self.capture().bytes)]) { $0.format = .html }
        #expect(report.contains("send udp → 198.51.100.8:4500 (drop.example.test)"), "\(report.suffix(2000))")
        #expect(report.contains("dns query to 127.0.0.53:53: A drop.example.test"))
        #expect(report.contains("connect tcp 198.51.100.8:443 (drop.example.test)"))
    }

    @Test("the tree lists the sends and counts their bytes with the process's")
    func tree() throws {
        let (report, _, _) = replay([("net.ndjson", Self.capture().bytes)]) { $0.format = .tree }
        #expect(report.contains("send udp → 198.51.100.8:4500"), "\(report)")
    }
}
