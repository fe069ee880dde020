@testable import AgentDaemon
import Foundation
import Glibc
import Testing

extension KernelSuite {
    @Suite("connect and identity")
    struct NetworkAndIdentityTests {
        @Test("connect over IPv4, IPv6, v4-mapped IPv6, unix path, abstract unix, non-blocking")
        func connectForms() throws {
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("net")
            let sock = "/tmp/aw-unix-\(getpid()).sock"
            unlink(sock)
            defer { unlink(sock) }
            let script = """
                import errno, socket
                l4 = socket.socket(); l4.bind(("127.0.0.1", 0)); l4.listen(8); p4 = l4.getsockname()[1]
                l6 = socket.socket(socket.AF_INET6); l6.bind(("::", 0)); l6.listen(8); p6 = l6.getsockname()[1]
                lu = socket.socket(socket.AF_UNIX); lu.bind("\(sock)"); lu.listen(8)
                la = socket.socket(socket.AF_UNIX); la.bind("\\0aw-abstract-\(getpid())"); la.listen(8)
                print(p4, p6)
                socket.create_connection(("127.0.0.1", p4)).close()
                s = socket.socket(socket.AF_INET6); s.connect(("::1", p6)); s.close()
                s = socket.socket(socket.AF_INET6); s.connect(("::ffff:127.0.0.1", p6)); s.close()
                s = socket.socket(socket.AF_UNIX); s.connect("\(sock)"); s.close()
                s = socket.socket(socket.AF_UNIX); s.connect("\\0aw-abstract-\(getpid())"); s.close()
                s = socket.socket(); s.setblocking(False); assert s.connect_ex(("127.0.0.1", p4)) == errno.EINPROGRESS; s.close()
                """
            let r = runIn(cg, ["/usr/bin/env", "python3", "-c", script])
            #expect(r.status == 0)
            let records = d.waitForRecords { $0.contains { $0.string("type") == "process.exit" && $0.int("process.pid") == Int(r.pid) } }
            let c = records.filter { $0.string("type") == "net.connect" && $0.int("process.pid") == Int(r.pid) }
            let v4 = c.filter { $0.string("net.family") == "ipv4" }
            #expect(v4.contains { $0.string("net.daddr") == "127.0.0.1" && $0.int("net.result") == 0 && $0.string("net.saddr") == "127.0.0.1" && ($0.int("net.sport") ?? 0) > 0 })
            // Non-blocking: the result is -EINPROGRESS, named.
            #expect(v4.contains { $0.string("net.error") == "EINPROGRESS" && $0.int("net.result") == -Int(EINPROGRESS) })
            let v6 = c.filter { $0.string("net.family") == "ipv6" }
            #expect(v6.contains { $0.string("net.daddr") == "::1" && $0.int("net.result") == 0 && $0.string("net.saddr") == "::1" && $0.string("net.transport") == "tcp" })
            #expect(v6.contains { $0.string("net.daddr") == "::ffff:127.0.0.1" && ($0[path: "net.v4_mapped"] as? Bool) == true })
            let unix = c.filter { $0.string("net.family") == "unix" }
            #expect(unix.contains { $0.string("net.path") == sock && $0.int("net.result") == 0 && $0.string("net.transport") == "stream" })
            #expect(unix.contains { $0.string("net.path") == "@aw-abstract-\(getpid())" && ($0[path: "net.abstract"] as? Bool) == true })
        }

        @Test("bytes sent and received are counted per socket in the kernel: net.flow at each MiB and a final one at close")
        func uploadAccounting() throws {
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("up")
            // A server outside the session that counts what it receives and answers with 1000 bytes.
            let script = """
                import socket, threading
                l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1); port = l.getsockname()[1]
                got = []
                def serve():
                    c, _ = l.accept(); n = 0
                    while True:
                        b = c.recv(1 << 16)
                        if not b: break
                        n += len(b)
                        if n >= 5 * 1048576 + 77 and not got: c.sendall(b"r" * 1000); got.append(n)
                    c.close()
                t = threading.Thread(target=serve); t.start()
                s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"x" * (5 * 1048576 + 77))
                r = 0
                while r < 1000: r += len(s.recv(4096))
                s.shutdown(socket.SHUT_WR); t.join(); s.close()
                # A second upload closed at once: the kernel still sends the queued bytes after close.
                done = []
                def drain():
                    c, _ = l.accept(); n = 0
                    while True:
                        b = c.recv(1 << 16)
                        if not b: break
                        n += len(b)
                    done.append(n); c.close()
                t = threading.Thread(target=drain); t.start()
                s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"y" * (3 * 1048576 + 5)); s.close(); t.join()
                assert done[0] == 3 * 1048576 + 5
                """
            let r = runIn(cg, ["/usr/bin/env", "python3", "-c", script])
            #expect(r.status == 0)
            let records = d.waitForRecords { $0.filter { $0.string("type") == "net.flow" && ($0[path: "net.final"] as? Bool) == true }.count >= 2 }
            let finals = records.filter { $0.string("type") == "net.flow" && ($0[path: "net.final"] as? Bool) == true }
            #expect(finals.map { $0.int("net.bytes_sent") ?? 0 }.sorted() == [3 * 1048576 + 5, 5 * 1048576 + 77])
            let firstPort = finals.first { $0.int("net.bytes_sent") == 5 * 1048576 + 77 }?.int("net.sport")
            let flows = records.filter { $0.string("type") == "net.flow" && $0.int("net.sport") == firstPort && $0.int("process.pid") == Int(r.pid) }
            let final = try #require(flows.last)
            #expect(final[path: "net.final"] as? Bool == true)
            // Exactly the payload: a retransmitted segment counts once (loopback does retransmit
            // under load), the FIN's sequence number not at all.
            let sent = final.int("net.bytes_sent") ?? 0
            #expect(sent == 5 * 1048576 + 77)
            #expect(final.int("net.bytes_received") == 1000)
            #expect(final.string("net.transport") == "tcp")
            // One record per MiB sent, then the final one; the deltas add up to the total.
            #expect(flows.count >= 5 && flows.count <= 7)
            let deltas: [Int] = flows.compactMap { $0.int("net.bytes_sent_delta") }
            let total: Int = deltas.reduce(0, +)
            #expect(total == sent)
            #expect(flows.dropLast().allSatisfy { ($0[path: "net.final"] as? Bool) == false })
            let connect = records.first { $0.string("type") == "net.connect" && $0.int("process.pid") == Int(r.pid) }
            let flowEntity = flows.first?.string("process.entity_id")
            #expect(flowEntity != nil)
            #expect(flowEntity == connect?.string("process.entity_id"))
        }

        @Test("a pid reused while the daemon runs gets a new entity id")
        func pidReuse() throws {
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("reuse")
            // Make the kernel hand out the same pid again (ns_last_pid), retrying if another
            // process on the host takes it first.
            var pair: (pid_t, pid_t)?
            for _ in 0..<20 {
                let first = runIn(cg, ["/bin/true"]).pid
                let fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY)
                guard fd >= 0 else { break }
                let text = Array("\(first - 1)".utf8)
                _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
                let second = runIn(cg, ["/bin/true"]).pid
                if second == first { pair = (first, second); break }
            }
            let (pid, _) = try #require(pair, "could not get the kernel to reuse a pid")
            let records = d.waitForRecords { rs in rs.filter { $0.string("type") == "process.exit" && $0.int("process.pid") == Int(pid) }.count >= 2 }
            let execs = records.filter { $0.string("type") == "process.exec" && $0.int("process.pid") == Int(pid) && $0.string("process.exe") == "/usr/bin/true" }
            #expect(execs.count >= 2)
            let ids = Set(execs.compactMap { $0.string("process.entity_id") })
            #expect(ids.count == execs.count)
        }
    }
}
