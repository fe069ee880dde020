import AgentSupport
import CLibbpf  // eventfd
import CSupport
import Foundation
import Glibc
import Logging
import Synchronization

/// The daemon's control socket (`RUNTIME_DIR/control.sock`, root and the control group, 0660):
/// one JSON request line, one JSON answer line per connection (`ControlRequest`,
/// `ControlAnswer`: ControlProtocol.swift).
///
/// - `{"op":"start","session":ID?,"labels":{K:V}}`: creates a session for the caller and moves
///   the calling process (the one that connected, held by a pidfd, never another one) into it;
///   the session's user is the caller's uid. A caller already inside a session is refused and an
///   alert is recorded: a process never leaves its session through agentwatch.
/// - `{"op":"end","session":ID}`: removes the session's cgroup (the caller's own sessions, or
///   any for root); a session still holding processes ends when they do.
/// - `{"op":"sessions"}`, `{"op":"status"}`: what `agentwatch sessions` and `status` print.
///
/// No client can stop it or hold it: one event loop thread serves every connection on
/// non-blocking sockets with one whole deadline per request and per answer, up to a bound of
/// connections (per user, and in all); `start`, which waits for the kernel, runs on a few worker
/// threads so that the loop (and `status`) never waits on it.
package final class ControlServer: @unchecked Sendable {
    /// How much the server gives any client.
    package struct Limits: Sendable {
        /// Connections served at once; past it the oldest one still sending its request is cut off.
        package var connections = 128
        /// Connections of one uid other than root at once; past it new ones are refused.
        package var perUser = 32
        /// From accept to the end of the request line.
        package var requestMs = 2_000
        /// From the answer being ready to its last byte written.
        package var answerMs = 1_000
        package var requestBytes = 65_536
        package var startThreads = 4
        package var startQueue = 16
        /// Session starts of one uid (root too) waiting or running at once: one user cannot fill
        /// the queue and keep everyone else's `agentwatch run` out.
        package var startsPerUser = 2
        package init() {}
    }

    package let path: String
    let fd: Int32
    let logger: Logger
    let handler: ControlHandler
    let limits: Limits
    private let stopped = Atomic<Bool>(false)
    private let wake: Int32
    private let workers: ControlWorkers

    /// The directory the socket is in (runtime_dir), checked: the socket is made, owned and
    /// removed through it, never by a path someone else could redirect.
    let directory: TrustedDirectory
    let name: String

    /// Binds `path` in a directory checked here (see `TrustedDirectory`).
    package convenience init(path: String, group: String?, handler: ControlHandler, logger: Logger, limits: Limits = Limits()) throws(AgentError) {
        let (dir, name) = TrustedDirectory.split(path)
        try self.init(directory: TrustedDirectory(dir, purpose: "runtime_dir"), name: name, group: group, handler: handler, logger: logger, limits: limits)
    }

    /// Binds the socket `name` in `directory`, replacing a stale one. `group`: who besides root
    /// may connect (the socket is 0600 when the group does not exist).
    package init(directory: TrustedDirectory, name: String = "control.sock", group: String?, handler: ControlHandler, logger: Logger,
                limits: Limits = Limits()) throws(AgentError) {
        self.directory = directory
        self.name = name
        self.path = directory.path(of: name)
        self.logger = logger
        self.handler = handler
        self.limits = limits
        _ = directory.unlink(name)
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard s >= 0 else { throw AgentError("control socket: \(String(cString: strerror(errno)))") }
        // Bound through the directory's descriptor: the name resolves to the checked directory
        // whatever happens to its path.
        guard let addr = UnixSocketAddress(directory.descriptorPath(name)) else {
            close(s)
            throw AgentError("control socket path \(path) is too long: choose a shorter runtime_dir")
        }
        let old = umask(0o177)
        let rc = addr.withSockaddr { bind(s, $0, $1) }
        umask(old)
        // A deep backlog: a flood of connects is drained at once by the loop, and an honest
        // client's connect does not wait behind it.
        guard rc == 0, listen(s, SOMAXCONN) == 0 else {
            let e = errno
            close(s)
            throw AgentError("control socket \(path): \(String(cString: strerror(e)))")
        }
        if let group, let gr = getgrnam(group) {
            guard directory.setOwner(name, uid: 0, gid: gr.pointee.gr_gid), directory.setMode(name, 0o660) else {
                let e = errno
                close(s)
                throw AgentError("control socket \(path): setting its group and mode: \(String(cString: strerror(e)))")
            }
        } else if let group {
            logger.warning("group \(group) does not exist: only root can use the control socket \(path) (create the group to let users start sessions)")
        }
        fd = s
        wake = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        workers = ControlWorkers(threads: limits.startThreads, queueLimit: limits.startQueue, wake: wake, handler: handler)
    }

    package func start() {
        workers.start()
        startThread(name: "agentwatch-control") { [self] in
            var loop = ControlLoop(server: self)
            loop.run()
        }
    }

    deinit { close(wake) }

    package func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
        _ = directory.unlink(name)
    }

    var isStopped: Bool { stopped.load(ordering: .acquiring) }

    /// The loop's state and steps; it lives on the loop thread only.
    struct ControlLoop {
        let server: ControlServer
        var connections: [Int32: ControlConnection] = [:]
        var perUID: [UInt32: Int] = [:]
        /// Accepting pauses briefly when the daemon is out of file descriptors, rather than spin.
        var acceptPausedUntilNs: Int64 = 0
        var lastFDWarningNs: Int64 = 0

        init(server: ControlServer) { self.server = server }

        var limits: Limits { server.limits }

        mutating func run() {
            var fds: [pollfd] = []
            while !server.isStopped {
                let now = WallClock.monotonicNs()
                expire(now)
                fds.removeAll(keepingCapacity: true)
                fds.append(pollfd(fd: server.wake, events: Int16(POLLIN), revents: 0))
                let listening = now >= acceptPausedUntilNs
                fds.append(pollfd(fd: listening ? server.fd : -1, events: Int16(POLLIN), revents: 0))
                var next = now + 1_000_000_000
                if !listening { next = min(next, acceptPausedUntilNs) }
                for c in connections.values where c.phase != .handling {
                    fds.append(pollfd(fd: c.fd, events: Int16(c.phase == .reading ? POLLIN : POLLOUT), revents: 0))
                    next = min(next, c.deadlineNs)
                }
                let timeoutMs = Int32(max(0, (next - now + 999_999) / 1_000_000))
                let n = poll(&fds, nfds_t(fds.count), timeoutMs)
                if n < 0 && errno != EINTR { break }
                if n <= 0 { continue }
                if fds[0].revents != 0 { takeAnswers() }
                if fds[1].revents != 0 { acceptAll() }
                for p in fds[2...] where p.revents != 0 { ready(p.fd) }
            }
            // What the workers give back is the loop's to close; a request a worker is still
            // answering is closed by that worker.
            let givenBack = Set(server.workers.loopEnded())
            for c in connections.values where c.phase != .handling || givenBack.contains(c.fd) { ControlWorkers.release(c.fd, c.peer) }
            // The eventfd stays open until the server goes: stop() may still be writing to it.
            close(server.fd)
        }

        /// Cuts off connections past their deadline: a request that did not come in time is
        /// told so (if it can hear it); an answer not taken in time is dropped.
        mutating func expire(_ now: Int64) {
            for c in connections.values where c.phase != .handling && c.deadlineNs <= now {
                if c.phase == .reading {
                    drop(c.fd, refusal: "the request did not arrive within \(limits.requestMs) ms of connecting: send one line of JSON at once")
                } else {
                    drop(c.fd)
                }
            }
        }

        mutating func acceptAll() {
            // A bounded batch per wake-up: the loop goes back to the clients it already has.
            for _ in 0..<64 {
                let c = aw_accept_nonblock(server.fd)
                if c < 0 {
                    let e = errno
                    if e == EINTR || e == ECONNABORTED { continue }
                    if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM {
                        let now = WallClock.monotonicNs()
                        acceptPausedUntilNs = now + 100_000_000
                        if now - lastFDWarningNs > 10_000_000_000 {
                            lastFDWarningNs = now
                            server.logger.warning("control socket: cannot accept (\(String(cString: strerror(e)))) with \(connections.count) connections open; pausing accept")
                        }
                    }
                    return
                }
                admit(c)
            }
        }

        mutating func admit(_ c: Int32) {
            var pid: Int32 = 0
            var uid: UInt32 = 0
            var gid: UInt32 = 0
            guard aw_peer_cred(c, &pid, &uid, &gid) == 0 else { close(c); return }
            // Refused before the pidfd is taken: a flood costs one accept and one send each.
            if uid != 0, perUID[uid, default: 0] >= limits.perUser {
                ControlConnection.refuse(c, "busy: uid \(uid) already has \(limits.perUser) control connections open; try again")
                return
            }
            if connections.count >= limits.connections {
                // The oldest connection still sending its request gives way: a slow or silent
                // client cannot keep an honest one out.
                guard let oldest = connections.values.filter({ $0.phase == .reading }).min(by: { $0.acceptedNs < $1.acceptedNs }) else {
                    ControlConnection.refuse(c, "busy: \(limits.connections) control requests are being served; try again")
                    return
                }
                drop(oldest.fd, refusal: "busy: \(limits.connections) control connections are open and this one had not sent its request; try again")
            }
            let peer = ControlPeer.bind(socket: c, pid: pid, uid: uid, gid: gid)
            let now = WallClock.monotonicNs()
            connections[c] = ControlConnection(fd: c, peer: peer, acceptedNs: now, deadlineNs: now + Int64(limits.requestMs) * 1_000_000)
            perUID[uid, default: 0] += 1
            // Most requests are already there.
            ready(c)
        }

        mutating func ready(_ fd: Int32) {
            guard var c = connections[fd] else { return }
            switch c.phase {
            case .handling:
                return
            case .writing:
                if c.flush() { drop(fd) } else { connections[fd] = c }
            case .reading:
                let outcome = c.readAvailable(limit: limits.requestBytes)
                connections[fd] = c
                switch outcome {
                case .needMore: return
                case .failed: drop(fd)
                case .tooLarge: answer(fd, .refused("the request is larger than \(limits.requestBytes) bytes"))
                case .request(let line): dispatch(fd, line)
                }
            }
        }

        mutating func dispatch(_ fd: Int32, _ line: [UInt8]) {
            guard let c = connections[fd] else { return }
            let request: ControlRequest
            do {
                request = try JSONDecoder().decode(ControlRequest.self, from: Data(line))
            } catch is ControlRequest.UnknownOp {
                answer(fd, .refused("unknown op: start, end, sessions or status"))
                return
            } catch {
                answer(fd, .refused("the request must be one line of JSON with an op"))
                return
            }
            guard case .start = request else {
                // The other requests read counters and lists under short locks, or remove a
                // directory: quick enough for the loop itself.
                answer(fd, server.handler.handle(request, peer: c.peer))
                return
            }
            let uid = c.peer.uid
            if connections.values.lazy.filter({ $0.phase == .handling && $0.peer.uid == uid }).count >= limits.startsPerUser {
                answer(fd, .refused("busy: uid \(uid) already has \(limits.startsPerUser) session starts under way; try again"))
                return
            }
            guard server.workers.submit(ControlWorkers.Job(fd: fd, peer: c.peer, request: request)) else {
                answer(fd, .refused("busy: \(limits.startQueue) session starts are waiting; try again"))
                return
            }
            connections[fd]?.phase = .handling
        }

        mutating func takeAnswers() {
            var count: UInt64 = 0
            _ = read(server.wake, &count, 8)
            for done in server.workers.takeDone() where connections[done.fd] != nil {
                write(done.fd, done.answer)
            }
        }

        mutating func answer(_ fd: Int32, _ answer: ControlAnswer) {
            write(fd, answer.line())
        }

        package mutating func write(_ fd: Int32, _ bytes: [UInt8]) {
            guard var c = connections[fd] else { return }
            c.phase = .writing
            c.output = bytes
            c.written = 0
            c.deadlineNs = WallClock.monotonicNs() + Int64(limits.answerMs) * 1_000_000
            if c.flush() { connections[fd] = c; drop(fd) } else { connections[fd] = c }
        }

        /// Closes connection `fd` (with a last one-line refusal, when given) and forgets it.
        mutating func drop(_ fd: Int32, refusal: String? = nil) {
            guard let c = connections.removeValue(forKey: fd) else { return }
            perUID[c.peer.uid, default: 1] -= 1
            if perUID[c.peer.uid] == 0 { perUID[c.peer.uid] = nil }
            if c.peer.pidfd >= 0 { close(c.peer.pidfd) }
            if let refusal { ControlConnection.refuse(c.fd, refusal) } else { close(c.fd) }
        }
    }
}

/// What answers control requests: the daemon (`DaemonControl`). `start` is asked on a worker
/// thread, the others on the server's loop thread.
package protocol ControlHandler: AnyObject, Sendable {
    func handle(_ request: ControlRequest, peer: ControlPeer) -> ControlAnswer
}
