@testable import AgentDaemon
@testable import AgentSupport
import CSupport
import Foundation
import Glibc
import Logging
import Synchronization
import Testing

/// The control server's own rules, on a real socket in this process with a handler that answers
/// at once (or, for `start`, after a wait like the daemon's): deadlines, bounds, no SIGPIPE, and
/// the peer's identity checks. The test runner keeps SIGPIPE's default action, so a send without
/// MSG_NOSIGNAL would end the run here.
@Suite("control server")
struct ControlServerTests {
    /// Answers status at once and start after `startDelayMs`, counting what it was asked.
    final class Answering: ControlHandler, @unchecked Sendable {
        let startDelayMs: UInt32
        let asked = Atomic<Int>(0)
        init(startDelayMs: UInt32 = 0) { self.startDelayMs = startDelayMs }
        func handle(_ request: ControlRequest, peer: ControlPeer) -> ControlAnswer {
            asked.add(1, ordering: .relaxed)
            switch request {
            case .start:
                usleep(startDelayMs * 1000)
                return .started(SessionStarted(session: "s", cgroup: "", watched: true))
            case .status:
                return .status(DaemonStatus(version: "test", pid: peer.pid, sessions: 0, processes: 0, records: 0, kernelDropped: 0,
                                            decodeRejected: 0, syscallHooks: false, outputs: []))
            case .sessions: return .sessions(SessionList(sessions: []))
            case .end: return .ended(SessionEnded(ended: true))
            }
        }
    }

    static func server(_ handler: ControlHandler, limits: ControlServer.Limits = .init()) throws -> ControlServer {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aw-ctlsrv-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let s = try ControlServer(path: dir + "/control.sock", group: nil, handler: handler, logger: logger, limits: limits)
        s.start()
        return s
    }

    /// A raw connection to `path`, as a hostile client holds it.
    static func connect(_ path: String) -> Int32 {
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let rc = UnixSocketAddress(path)!.withSockaddr { Glibc.connect(s, $0, $1) }
        #expect(rc == 0)
        return s
    }

    /// What arrives on `fd` until end of file or `timeoutMs`.
    static func readAll(_ fd: Int32, timeoutMs: Int32 = 3000) -> String {
        var got: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while poll(&p, 1, timeoutMs) > 0 {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            got += buf[0..<n]
        }
        return String(decoding: got, as: UTF8.self)
    }

    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let t0 = WallClock.monotonicNs()
        try body()
        return Double(WallClock.monotonicNs() - t0) / 1e9
    }

    @Test("a start that takes 1.5 s does not hold status: status is answered meanwhile, then the start")
    func startDoesNotBlock() throws {
        let s = try Self.server(Answering(startDelayMs: 1500))
        defer { s.stop() }
        let started = Mutex<Bool?>(nil)
        let done = DispatchSemaphore(value: 0)
        let path = s.path
        Thread.detachNewThread {
            let a = try? ControlClient.start(StartRequest(session: nil, labels: [:]), path: path)
            started.withLock { $0 = a?.isOK }
            done.signal()
        }
        usleep(100_000)
        var status: ControlReply<DaemonStatus> = .refused("not asked")
        let t = try Self.seconds { status = try ControlClient.status(path: path) }
        #expect(status.isOK == true)
        #expect(t < 0.5, "status took \(t) s while a start waited")
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(started.withLock { $0 } == true)
    }

    @Test("one uid gets two session starts under way at once; a third is told busy at once while the two are answered")
    func startsPerUser() throws {
        let s = try Self.server(Answering(startDelayMs: 1000))
        defer { s.stop() }
        let line = "{\"op\":\"start\"}\n"
        let starts = (0..<3).map { _ in
            let c = Self.connect(s.path)
            _ = send(c, line, line.utf8.count, Int32(MSG_NOSIGNAL))
            usleep(50_000)
            return c
        }
        defer { starts.forEach { close($0) } }
        var third = ""
        let t = Self.seconds { third = Self.readAll(starts[2]) }
        #expect(third.contains("busy") && third.contains("2 session starts under way"), "the third start: \(third)")
        #expect(t < 0.5, "the refusal took \(t) s")
        #expect(Self.readAll(starts[0]).contains("\"ok\":true"))
        #expect(Self.readAll(starts[1]).contains("\"ok\":true"))
    }

    @Test("when the connections are all taken, the oldest one still sending its request is told busy and an honest status is answered")
    func oldestIncompleteGivesWay() throws {
        var limits = ControlServer.Limits()
        limits.connections = 4
        let s = try Self.server(Answering(), limits: limits)
        defer { s.stop() }
        let idle = (0..<4).map { _ in Self.connect(s.path) }
        defer { idle.forEach { close($0) } }
        usleep(100_000)
        let status = try ControlClient.status(path: s.path, timeoutS: 2)
        #expect(status.isOK == true)
        let first = Self.readAll(idle[0], timeoutMs: 1000)
        #expect(first.contains("\"ok\":false") && first.contains("busy"), "the oldest idle connection got: \(first)")
    }

    @Test("a request trickling in is cut off at its one deadline from accept, however often bytes come")
    func wholeDeadline() throws {
        var limits = ControlServer.Limits()
        limits.requestMs = 400
        let s = try Self.server(Answering(), limits: limits)
        defer { s.stop() }
        let c = Self.connect(s.path)
        defer { close(c) }
        var cutAfter = -1.0
        let t0 = WallClock.monotonicNs()
        for _ in 0..<20 {
            _ = send(c, "{", 1, Int32(MSG_NOSIGNAL))
            var p = pollfd(fd: c, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 100) > 0 { cutAfter = Double(WallClock.monotonicNs() - t0) / 1e9; break }
        }
        #expect(cutAfter > 0.3 && cutAfter < 1.5, "cut off after \(cutAfter) s (deadline 0.4 s)")
        #expect(Self.readAll(c).contains("did not arrive within 400 ms"))
    }

    @Test("an oversized request, garbage, and clients that close before the answer: each refused or dropped, the server goes on (no SIGPIPE)")
    func badClients() throws {
        let handler = Answering()
        let s = try Self.server(handler)
        defer { s.stop() }
        let big = Self.connect(s.path)
        let chunk = [UInt8](repeating: UInt8(ascii: "{"), count: 70_000)
        _ = chunk.withUnsafeBytes { send(big, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        #expect(Self.readAll(big).contains("larger than 65536 bytes"))
        close(big)
        let garbage = Self.connect(s.path)
        _ = send(garbage, "\u{1}\u{2}xx\n", 5, Int32(MSG_NOSIGNAL))
        #expect(Self.readAll(garbage).contains("one line of JSON"))
        close(garbage)
        for _ in 0..<50 {
            let c = Self.connect(s.path)
            let line = "{\"op\":\"status\"}\n"
            _ = send(c, line, line.utf8.count, Int32(MSG_NOSIGNAL))
            close(c)
        }
        for _ in 0..<50 { close(Self.connect(s.path)) }
        usleep(200_000)
        #expect(try ControlClient.status(path: s.path, timeoutS: 2).isOK == true)
        #expect(handler.asked.load(ordering: .relaxed) >= 1)
    }

    @Test("the request client gives up at its whole deadline against a server that never answers")
    func clientDeadline() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aw-ctlcli-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/mute.sock"
        unlink(path)
        let l = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(l); unlink(path) }
        _ = UnixSocketAddress(path)!.withSockaddr { bind(l, $0, $1) }
        listen(l, 4)
        var message = ""
        let t = Self.seconds {
            do { _ = try ControlClient.status(path: path, timeoutS: 1) } catch { message = (error as? AgentError)?.message ?? "\(error)" }
        }
        #expect(t >= 0.9 && t < 2, "gave up after \(t) s")
        #expect(message.contains("did not answer within 1 s"), "\(message)")
    }

    // MARK: the peer

    static func startSleep() -> pid_t {
        var pid: pid_t = 0
        let argv = [strdup("/bin/sleep"), strdup("30"), nil]
        defer { argv.forEach { free($0) } }
        #expect(posix_spawn(&pid, "/bin/sleep", nil, nil, argv, environ) == 0)
        return pid
    }

    @Test("a peer is the process it was bound to: alive and its own it passes; exited, another start time, or another uid, it is refused")
    func peerIdentity() throws {
        let child = Self.startSleep()
        let pidfd = aw_pidfd_open(child)
        #expect(pidfd >= 0)
        defer { close(pidfd) }
        let start = ControlPeer.startTime(of: child)
        #expect(start != nil)
        let me = getuid()
        let bound = ControlPeer(pid: child, uid: me, gid: getgid(), pidfd: pidfd, startTime: start)
        #expect(bound.ownershipProblem() == nil)
        #expect(ControlPeer.fdinfoPid(pidfd) == child)
        #expect(ControlPeer(pid: child, uid: me, gid: 0, pidfd: pidfd, startTime: start! + 1).ownershipProblem()?.contains("not the process that connected") == true)
        if me == 0 {
            #expect(ControlPeer(pid: child, uid: 4242, gid: 0, pidfd: pidfd, startTime: start).ownershipProblem()?.contains("no longer runs as uid 4242") == true)
        }
        #expect(ControlPeer(pid: child, uid: me, gid: 0).ownershipProblem()?.contains("is gone") == true)
        kill(child, SIGKILL)
        var st: Int32 = 0
        waitpid(child, &st, 0)
        #expect(bound.ownershipProblem()?.contains("is gone") == true)
        #expect(bound.move(into: "/nonexistent", refuseLeaving: { _ in false })?.contains("is gone") == true)
    }

    @Test("SO_PEERPIDFD (or its pidfd_open stand-in) binds the connecting process at accept")
    func peerOfSocket() throws {
        var pair: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { close(pair[0]); close(pair[1]) }
        var pid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
        #expect(aw_peer_cred(pair[0], &pid, &uid, &gid) == 0)
        let peer = ControlPeer.bind(socket: pair[0], pid: pid, uid: uid, gid: gid)
        defer { if peer.pidfd >= 0 { close(peer.pidfd) } }
        #expect(peer.pidfd >= 0)
        #expect(ControlPeer.fdinfoPid(peer.pidfd) == getpid())
        #expect(peer.ownershipProblem() == nil)
    }
}
