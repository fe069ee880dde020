@testable import AgentDaemon
@testable import AgentSensor
@testable import AgentSupport
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// Unconnected sends (net.send), connects through io_uring (net.via), DNS (net.dns) and the
    /// names it binds (net.dname): real programs in a real session, as an ordinary user (nobody),
    /// against servers on loopback this test starts outside the session, each bounded in time.
    @Suite("unconnected sends, io_uring connects and DNS")
    struct SendAndDNSTests {
        static let nobody: [String] = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        static let python = "/usr/bin/python3"

        /// Tests/support/net_sends.c built for this test, in a directory anyone can read.
        static func helper() throws -> String {
            let dir = "/tmp/aw-net-sends-\(getpid())"
            mkdir(dir, 0o755)
            chmod(dir, 0o755)
            let bin = dir + "/net_sends"
            if access(bin, X_OK) == 0 { return bin }
            let cc = runIn(nil, ["/usr/bin/cc", "-O1", "-Wall", "-o", bin, KernelEnv.packageRoot + "/Tests/support/net_sends.c"])
            guard cc.status == 0 else { throw AgentError("cc Tests/support/net_sends.c failed: \(cc.status)") }
            return bin
        }

        /// A server outside the session: a Python script that prints its ports on its first line
        /// and exits on its own after `seconds`.
        final class Server {
            let process = Process()
            let ports: [Int]

            init(_ script: String, seconds: Int = 60) throws {
                process.executableURL = URL(fileURLWithPath: SendAndDNSTests.python)
                // A timer of its own: the test process's signal dispositions (inherited) may leave
                // SIGALRM and SIGTERM without effect.
                process.arguments = ["-c", "import os, threading; threading.Timer(\(seconds), os._exit, [0]).start()\n" + script]
                let out = Pipe()
                process.standardOutput = out
                try process.run()
                var line: [UInt8] = []
                let h = out.fileHandleForReading
                while let byte = try h.read(upToCount: 1), let b = byte.first, b != UInt8(ascii: "\n") { line.append(b) }
                ports = String(decoding: line, as: UTF8.self).split(separator: " ").compactMap { Int($0) }
            }

            deinit {
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                process.waitUntilExit()
            }
        }

        /// A UDP socket on 127.0.0.1 nobody reads: what is sent to it is counted on the way out.
        final class UDPSink {
            let fd: Int32
            let port: Int

            init() {
                let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
                self.fd = fd
                var addr = sockaddr_in()
                addr.sin_family = sa_family_t(AF_INET)
                addr.sin_addr.s_addr = inet_addr("127.0.0.1")
                var len = socklen_t(MemoryLayout<sockaddr_in>.size)
                withUnsafeMutablePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        _ = bind(fd, $0, len)
                        _ = getsockname(fd, $0, &len)
                    }
                }
                port = Int(UInt16(bigEndian: addr.sin_port))
            }

            deinit { close(fd) }
        }

        /// A TCP server on 127.0.0.1 that reads what it is sent until the client closes.
        static let drain = """
            import socket, threading
            l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("127.0.0.1", 0)); l.listen(16)
            print(l.getsockname()[1], flush=True)
            def serve(c):
                while c.recv(1 << 16): pass
                c.close()
            while True:
                c, _ = l.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
            """

        static func sends(_ records: [[String: Any]], pid: pid_t, dport: Int) -> [[String: Any]] {
            records.filter { $0.string("type") == "net.send" && $0.int("process.pid") == Int(pid) && $0.int("net.dport") == dport }
        }

        static func isFinal(_ r: [String: Any]) -> Bool { r[path: "net.final"] as? Bool == true }

        /// The records of one socket and destination: the first at its first datagram, the last
        /// final, the deltas adding up to the totals.
        static func expectAggregate(_ rs: [[String: Any]], bytes: Int, datagrams: Int, first: Int, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(rs.count >= 2, "\(rs)", sourceLocation: sourceLocation)
            guard let head = rs.first, let last = rs.last else { return }
            #expect(head.int("net.datagrams") == 1 && head.int("net.bytes_sent") == first && !isFinal(head), "\(head)", sourceLocation: sourceLocation)
            #expect(isFinal(last) && last.int("net.bytes_sent") == bytes && last.int("net.datagrams") == datagrams, "\(last)", sourceLocation: sourceLocation)
            #expect(rs.dropLast().allSatisfy { !isFinal($0) }, sourceLocation: sourceLocation)
            #expect(rs.compactMap { $0.int("net.bytes_sent_delta") }.reduce(0, +) == bytes, sourceLocation: sourceLocation)
            #expect(rs.compactMap { $0.int("net.datagrams_delta") }.reduce(0, +) == datagrams, sourceLocation: sourceLocation)
            #expect(last.string("net.transport") == "udp" && last.string("net.daddr") == "127.0.0.1" && last.string("net.saddr") == "127.0.0.1",
                    sourceLocation: sourceLocation)
            #expect((last.int("net.sport") ?? 0) > 0, sourceLocation: sourceLocation)
            #expect(last.string("net.first_time") == head.string("net.first_time"), sourceLocation: sourceLocation)
        }

        @Test("UDP sendto to one and to two destinations: one aggregate each, exact bytes and datagrams, a final record at close")
        func udpSendto() throws {
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("sendto")
            let a = UDPSink(), b = UDPSink()
            let script = """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for i in range(10): s.sendto(b"a" * 100, ("127.0.0.1", \(a.port)))
                s.close()
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for i in range(10): s.sendto(b"a" * 100, ("127.0.0.1", \(a.port))); s.sendto(b"b" * 50, ("127.0.0.1", \(b.port)))
                s.sendmsg([b"c" * 25, b"d" * 25], [], 0, ("127.0.0.1", \(b.port)))
                s.close()
                """
            let r = runIn(cg, Self.nobody + [Self.python, "-c", script])
            #expect(r.status == 0)
            let records = d.waitForRecords { rs in Self.sends(rs, pid: r.pid, dport: b.port).contains(where: Self.isFinal) && Self.sends(rs, pid: r.pid, dport: a.port).filter(Self.isFinal).count == 2 }
            let toA = Self.sends(records, pid: r.pid, dport: a.port)
            let sockets = Dictionary(grouping: toA) { $0.int("net.sport") ?? 0 }
            #expect(sockets.count == 2, "two sockets sent to a")
            for (_, rs) in sockets { Self.expectAggregate(rs, bytes: 1000, datagrams: 10, first: 100) }
            // The second socket's datagrams to b, sendmsg's included: 10 of 50 bytes and one of 50.
            Self.expectAggregate(Self.sends(records, pid: r.pid, dport: b.port), bytes: 550, datagrams: 11, first: 50)
            // Never a record per datagram: the first, the final (no threshold was crossed).
            #expect(toA.count == 4)
            #expect(records.first { $0.string("type") == "net.send" }?.int("process.uid") == 65534)
            try expectValidAgainstSchema(d.output)
        }

        @Test("a socket sending to more destinations than the kernel keeps: the least recently used ends its aggregate (evicted), nothing is lost")
        func destinationsEvicted() throws {
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("evict")
            let sinks = (0..<10).map { _ in UDPSink() }
            let ports = sinks.map(\.port)
            let script = """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for p in \(ports):
                    s.sendto(b"e" * 10, ("127.0.0.1", p)); s.sendto(b"e" * 30, ("127.0.0.1", p))
                s.close()
                """
            let r = runIn(cg, Self.nobody + [Self.python, "-c", script])
            #expect(r.status == 0)
            let records = d.waitForRecords { rs in ports.allSatisfy { Self.sends(rs, pid: r.pid, dport: $0).contains(where: Self.isFinal) } }
            for (i, port) in ports.enumerated() {
                let rs = Self.sends(records, pid: r.pid, dport: port)
                Self.expectAggregate(rs, bytes: 40, datagrams: 2, first: 10)
                #expect(rs.filter(Self.isFinal).count == 1)
                // 8 destinations are kept: the 9th and 10th took the places of the 1st and 2nd.
                #expect((rs.last?[path: "net.evicted"] as? Bool == true) == (i < 2), "destination \(i): \(rs.last ?? [:])")
            }
        }

        @Test("sendmmsg and io_uring sendmsg: each datagram counted once, in one aggregate")
        func sendmmsgAndUring() throws {
            let helper = try Self.helper()
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("mmsg")
            let a = UDPSink(), b = UDPSink()
            let mm = runIn(cg, Self.nobody + [helper, "sendmmsg", "127.0.0.1", "\(a.port)", "20", "64"])
            #expect(mm.status == 0)
            let ur = runIn(cg, Self.nobody + [helper, "sendmsg", "127.0.0.1", "\(b.port)", "12", "200"])
            #expect(ur.status == 0)
            let records = d.waitForRecords { rs in
                Self.sends(rs, pid: mm.pid, dport: a.port).contains(where: Self.isFinal) && Self.sends(rs, pid: ur.pid, dport: b.port).contains(where: Self.isFinal)
            }
            Self.expectAggregate(Self.sends(records, pid: mm.pid, dport: a.port), bytes: 1280, datagrams: 20, first: 64)
            Self.expectAggregate(Self.sends(records, pid: ur.pid, dport: b.port), bytes: 2400, datagrams: 12, first: 200)
        }

        @Test("io_uring connect: a net.connect with via io_uring, its result and local address, and the flow's bytes")
        func uringConnect() throws {
            let helper = try Self.helper()
            let server = try Server(Self.drain)
            let port = try #require(server.ports.first)
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("uring")
            let r = runIn(cg, Self.nobody + [helper, "connect", "127.0.0.1", "\(port)", "300000"])
            #expect(r.status == 0)
            // Linked after a connect submitted with IOSQE_CQE_SKIP_SUCCESS: no completion for the
            // connect, so the socket's first payload reports it.
            let skip = runIn(cg, Self.nobody + [helper, "connect", "127.0.0.1", "\(port)", "200000", "skip"])
            #expect(skip.status == 0)
            let records = d.waitForRecords { rs in
                [r.pid, skip.pid].allSatisfy { pid in rs.contains { $0.string("type") == "net.flow" && $0.int("process.pid") == Int(pid) && Self.isFinal($0) } }
            }
            for (pid, bytes) in [(r.pid, 300_000), (skip.pid, 200_000)] {
                // setpriv asks nscd for the user first (a unix connect): the inet connect is the helper's.
                let connects = records.filter { $0.string("type") == "net.connect" && $0.int("process.pid") == Int(pid) && $0.string("net.family") == "ipv4" }
                #expect(connects.count == 1, "\(connects)")
                let c = try #require(connects.first)
                #expect(c.string("net.via") == "io_uring")
                #expect(c.int("net.result") == 0 && c.string("net.error") == nil)
                #expect(c.string("net.daddr") == "127.0.0.1" && c.int("net.dport") == port)
                #expect(c.string("net.saddr") == "127.0.0.1" && (c.int("net.sport") ?? 0) > 0)
                #expect(c.string("net.transport") == "tcp")
                #expect((c.int("net.fd") ?? -1) >= 3)
                let flows = records.filter { $0.string("type") == "net.flow" && $0.int("process.pid") == Int(pid) && $0.int("net.sport") == c.int("net.sport") }
                let final = try #require(flows.last)
                #expect(Self.isFinal(final))
                #expect(final.int("net.bytes_sent") == bytes)
                #expect(final.string("process.entity_id") == c.string("process.entity_id"))
            }
            // connect(2) says so too.
            let plain = runIn(cg, Self.nobody + [Self.python, "-c", "import socket; socket.create_connection(('127.0.0.1', \(port))).close()"])
            let after = d.waitForRecords { $0.contains { $0.string("type") == "net.connect" && $0.int("process.pid") == Int(plain.pid) && $0.string("net.family") == "ipv4" } }
            #expect(after.first { $0.string("type") == "net.connect" && $0.int("process.pid") == Int(plain.pid) && $0.string("net.family") == "ipv4" }?.string("net.via") == "connect")
            try expectValidAgainstSchema(d.output)
        }

        /// A DNS server on port 53 (127.0.0.53, as systemd-resolved's stub, when free), over UDP
        /// and TCP: names under example.test have the address 127.9.9.9, others do not exist. Also
        /// a TCP server on 127.9.9.9 that reads what it is sent. Prints the DNS address's last
        /// byte and the TCP port.
        static let dnsServer = """
            import socket, struct, threading
            def answer(q):
                i = 12
                labels = []
                while q[i] != 0:
                    labels.append(q[i + 1:i + 1 + q[i]].decode()); i += 1 + q[i]
                question = q[12:i + 5]
                name = ".".join(labels).lower()
                if name.endswith("example.test"):
                    rr = b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 30, 4) + socket.inet_aton("127.9.9.9")
                    return q[:2] + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + question + rr
                return q[:2] + struct.pack(">HHHHH", 0x8183, 1, 0, 0, 0) + question
            for host in ("127.0.0.53", "127.5.5.53"):
                try:
                    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((host, 53))
                    t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind((host, 53)); t.listen(8)
                    break
                except OSError:
                    pass
            l = socket.socket(); l.bind(("127.9.9.9", 0)); l.listen(8)
            print(host.split(".")[3], host.split(".")[1], l.getsockname()[1], flush=True)
            def udp():
                while True:
                    q, peer = u.recvfrom(4096); u.sendto(answer(q), peer)
            def tcp():
                while True:
                    c, _ = t.accept(); n = struct.unpack(">H", c.recv(2))[0]; q = b""
                    while len(q) < n: q += c.recv(n - len(q))
                    a = answer(q); c.sendall(struct.pack(">H", len(a)) + a); c.close()
            def sink():
                while True:
                    c, _ = l.accept()
                    while c.recv(65536): pass
                    c.close()
            for f in (udp, tcp, sink): threading.Thread(target=f, daemon=True).start()
            threading.Event().wait()
            """

        @Test("DNS over UDP and TCP: query and answer recorded, the answered address named in the connect and flow that follow")
        func dnsNames() throws {
            let server = try Server(Self.dnsServer)
            try #require(server.ports.count == 3)
            let resolver = "127.\(server.ports[1]).\(server.ports[1]).\(server.ports[0])"
            let port = server.ports[2]
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("dns")
            let client = """
                import socket, struct
                def q(name, qid, qtype=1):
                    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\\0" + struct.pack(">HH", qtype, 1)
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
                s.sendto(q("Exfil.Example.test", 0x1234), ("\(resolver)", 53))
                a, _ = s.recvfrom(4096); ip = socket.inet_ntoa(a[-4:])
                s.sendto(q("nothing.invalid", 0x2345), ("\(resolver)", 53)); s.recvfrom(4096)
                s.close()
                t = socket.create_connection(("\(resolver)", 53), timeout=5); m = q("tcp.example.test", 0x4321)
                t.sendall(struct.pack(">H", len(m)) + m); n = struct.unpack(">H", t.recv(2))[0]; r = b""
                while len(r) < n: r += t.recv(n - len(r))
                t.close()
                c = socket.create_connection((ip, \(port)), timeout=5); c.sendall(b"x" * 5000); c.close()
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b"y" * 300, (ip, 9)); u.close()
                print(ip)
                """
            let r = runIn(cg, Self.nobody + [Self.python, "-c", client])
            #expect(r.status == 0)
            let records = d.waitForRecords { rs in
                rs.contains { $0.string("type") == "net.flow" && $0.int("process.pid") == Int(r.pid) && Self.isFinal($0) && $0.string("net.daddr") == "127.9.9.9" }
                    && rs.contains { $0.string("type") == "net.send" && $0.int("process.pid") == Int(r.pid) && $0.int("net.dport") == 9 && Self.isFinal($0) }
            }
            let dns = records.filter { $0.string("type") == "net.dns" && $0.int("process.pid") == Int(r.pid) }
            let queries = dns.filter { $0.string("dns.direction") == "query" }
            let answers = dns.filter { $0.string("dns.direction") == "answer" }
            #expect(queries.count == 3 && answers.count == 3, "\(dns)")
            let q = try #require(queries.first { $0.int("dns.id") == 0x1234 })
            #expect(q.string("dns.name") == "exfil.example.test" && q.string("dns.type") == "A")
            #expect(q.string("net.daddr") == resolver && q.int("net.dport") == 53 && q.string("net.transport") == "udp")
            #expect(q[path: "dns.rcode"] == nil)
            let a = try #require(answers.first { $0.int("dns.id") == 0x1234 })
            #expect(a.string("dns.name") == "exfil.example.test" && a.string("dns.rcode") == "NOERROR")
            #expect(a[path: "dns.resolved_ip"] as? [String] == ["127.9.9.9"])
            #expect(a[path: "dns.unmatched"] == nil)
            let nx = try #require(answers.first { $0.int("dns.id") == 0x2345 })
            #expect(nx.string("dns.rcode") == "NXDOMAIN" && nx[path: "dns.resolved_ip"] as? [String] == [])
            let tcp = try #require(answers.first { $0.int("dns.id") == 0x4321 })
            #expect(tcp.string("net.transport") == "tcp" && tcp.string("dns.name") == "tcp.example.test")
            #expect(queries.contains { $0.int("dns.id") == 0x4321 && $0.string("net.transport") == "tcp" })
            // The connect, its flow and a datagram to the answered address carry the name. The
            // TCP answer came last and named the same address.
            let connect = try #require(records.first { $0.string("type") == "net.connect" && $0.int("process.pid") == Int(r.pid) && $0.string("net.daddr") == "127.9.9.9" })
            #expect(connect.string("net.dname") == "tcp.example.test")
            let flow = try #require(records.last { $0.string("type") == "net.flow" && $0.int("process.pid") == Int(r.pid) && $0.string("net.daddr") == "127.9.9.9" })
            #expect(flow.string("net.dname") == "tcp.example.test" && flow.int("net.bytes_sent") == 5000)
            let send = try #require(records.last { $0.string("type") == "net.send" && $0.int("process.pid") == Int(r.pid) && $0.int("net.dport") == 9 })
            #expect(send.string("net.dname") == "tcp.example.test" && send.int("net.bytes_sent") == 300)
            // The resolver itself was not named.
            #expect(records.filter { $0.int("process.pid") == Int(r.pid) && $0.string("net.daddr") == resolver }.allSatisfy { $0[path: "net.dname"] == nil })
            try expectValidAgainstSchema(d.output)
        }

        @Test("a large UDP upload raises net-large-upload from net.send records")
        func largeUDPUpload() throws {
            let d = try TestDaemon { $0.rules = [KernelEnv.packageRoot + "/rules"] }
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("udp-up")
            let sink = UDPSink()
            // 11 MiB in 192 datagrams: over the rule's 10 MiB within 60 s.
            let script = """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                chunk = b"z" * 60072
                for i in range(192): s.sendto(chunk, ("127.0.0.1", \(sink.port)))
                s.close()
                """
            let r = runIn(cg, Self.nobody + [Self.python, "-c", script])
            #expect(r.status == 0)
            let records = d.waitForRecords { $0.contains { $0.string("type") == "alert" && $0.string("rule.id") == "net-large-upload" } }
            let sends = Self.sends(records, pid: r.pid, dport: sink.port)
            // One record at the first datagram, one per MiB after, the final one.
            #expect(sends.count >= 11 && sends.count <= 13, "\(sends.count) net.send records")
            let alert = try #require(records.first { $0.string("type") == "alert" && $0.string("rule.id") == "net-large-upload" })
            #expect(alert.int("process.pid") == Int(r.pid))
            let final = d.waitForRecords { rs in Self.sends(rs, pid: r.pid, dport: sink.port).contains(where: Self.isFinal) }
            #expect(Self.sends(final, pid: r.pid, dport: sink.port).last?.int("net.bytes_sent") == 192 * 60072)
        }
    }
}
