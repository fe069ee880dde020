import CSupport
import Foundation
import Glibc
import Logging
import Synchronization

/// The daemon's control socket (`RUNTIME_DIR/control.sock`, root and the control group, 0660):
/// one JSON request line, one JSON answer line per connection, on a thread of its own.
///
/// - `{"op":"start","session":ID?,"labels":{K:V}}`: creates a session for the caller and moves
///   the calling process (SO_PEERCRED, never another one) into it; the session's user is the
///   caller's uid. A caller already inside a session is refused and an alert is recorded: a
///   process never leaves its session through agentwatch.
/// - `{"op":"end","session":ID}`: removes the session's cgroup (the caller's own sessions, or
///   any for root); a session still holding processes ends when they do.
/// - `{"op":"sessions"}`, `{"op":"status"}`: what `agentwatch sessions` and `status` print.
public final class ControlServer: @unchecked Sendable {
    public let path: String
    let fd: Int32
    let logger: Logger
    let handler: ControlHandler
    private let stopped = Atomic<Bool>(false)

    /// Binds the socket, replacing a stale one. `group`: who besides root may connect (the
    /// socket is 0600 when the group does not exist).
    public init(path: String, group: String?, handler: ControlHandler, logger: Logger) throws(AgentError) {
        self.path = path
        self.logger = logger
        self.handler = handler
        unlink(path)
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw AgentError("control socket: \(String(cString: strerror(errno)))") }
        guard let addr = UnixSocketAddress(path) else {
            close(s)
            throw AgentError("control socket path \(path) is too long: choose a shorter runtime_dir")
        }
        let old = umask(0o177)
        let rc = addr.withSockaddr { bind(s, $0, $1) }
        umask(old)
        guard rc == 0, listen(s, 16) == 0 else {
            let e = errno
            close(s)
            throw AgentError("control socket \(path): \(String(cString: strerror(e)))")
        }
        if let group, let gr = getgrnam(group) {
            chown(path, 0, gr.pointee.gr_gid)
            chmod(path, 0o660)
        } else if let group {
            logger.warning("group \(group) does not exist: only root can use the control socket \(path) (create the group to let users start sessions)")
        }
        fd = s
    }

    public func start() {
        startThread(name: "agentwatch-control") { [self] in
            while !stopped.load(ordering: .acquiring) {
                let c = accept(fd, nil, nil)
                if c < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    break
                }
                _ = fcntl(c, F_SETFD, FD_CLOEXEC)
                serve(c)
                close(c)
            }
        }
    }

    public func stop() {
        stopped.store(true, ordering: .releasing)
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }

    /// One request: bounded in size and time, answered, closed.
    func serve(_ c: Int32) {
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        guard aw_peer_cred(c, &pid, &uid, &gid) == 0 else { return }
        var request: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while request.count < 65536, !request.contains(0x0A) {
            let n = buf.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            request += buf[0..<n]
        }
        let answer: [String: Any]
        if let line = request.split(separator: 0x0A).first,
           let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] {
            answer = handler.handle(obj, peer: ControlPeer(pid: pid, uid: uid, gid: gid))
        } else {
            answer = ["ok": false, "error": "the request must be one line of JSON with an op"]
        }
        var out = (try? JSONSerialization.data(withJSONObject: answer, options: [.sortedKeys])) ?? Data("{\"ok\":false}".utf8)
        out.append(0x0A)
        _ = out.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
    }

    /// Sends one request to the daemon at `path` and returns its answer.
    public static func request(_ obj: [String: Any], path: String, timeoutS: Int = 10) throws(AgentError) -> [String: Any] {
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw AgentError("socket: \(String(cString: strerror(errno)))") }
        defer { close(s) }
        guard let addr = UnixSocketAddress(path) else { throw AgentError("control socket path \(path) is too long") }
        let rc = addr.withSockaddr { connect(s, $0, $1) }
        guard rc == 0 else {
            let e = errno
            if e == ENOENT || e == ECONNREFUSED { throw AgentError("no agentwatch daemon is listening on \(path): start it (systemctl start agentwatch)") }
            if e == EACCES { throw AgentError("not allowed to use \(path): add yourself to the agentwatch group (then log in again), or use sudo") }
            throw AgentError("cannot reach the daemon at \(path): \(String(cString: strerror(e)))")
        }
        var tv = timeval(tv_sec: timeoutS, tv_usec: 0)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard var data = try? JSONSerialization.data(withJSONObject: obj) else { throw AgentError("bad request") }
        data.append(0x0A)
        _ = data.withUnsafeBytes { write(s, $0.baseAddress, $0.count) }
        var reply: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(s, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            reply += buf[0..<n]
        }
        guard let obj = try? JSONSerialization.jsonObject(with: Data(reply)) as? [String: Any] else {
            throw AgentError("the daemon at \(path) gave no answer")
        }
        return obj
    }
}

/// Who is on the other end of a control connection, as the kernel says.
public struct ControlPeer: Sendable {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32
}

/// What answers control requests: the daemon.
public protocol ControlHandler: AnyObject, Sendable {
    func handle(_ request: [String: Any], peer: ControlPeer) -> [String: Any]
}
