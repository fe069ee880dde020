import AgentSupport
import Foundation
import Glibc

/// Asks the daemon's control socket (what `agentwatch sessions`, `status` and `run` use): one
/// request, one answer, all of it within a deadline; a daemon that went away mid-request is an
/// error, never a SIGPIPE.
package enum ControlClient {
    package static func status(path: String, timeoutS: Int = 10) throws(AgentError) -> ControlReply<DaemonStatus> {
        try ask(.status, path: path, timeoutS: timeoutS)
    }

    package static func sessions(path: String, timeoutS: Int = 10) throws(AgentError) -> ControlReply<SessionList> {
        try ask(.sessions, path: path, timeoutS: timeoutS)
    }

    package static func start(_ request: StartRequest, path: String, timeoutS: Int = 10) throws(AgentError) -> ControlReply<SessionStarted> {
        try ask(.start(request), path: path, timeoutS: timeoutS)
    }

    package static func end(session: String, path: String, timeoutS: Int = 10) throws(AgentError) -> ControlReply<SessionEnded> {
        try ask(.end(session: session), path: path, timeoutS: timeoutS)
    }

    /// Sends `request` and reads the answer as `Payload` (what that request answers).
    package static func ask<Payload>(_ request: ControlRequest, path: String, timeoutS: Int) throws(AgentError) -> ControlReply<Payload> {
        let answer = try exchange(request.line(), path: path, timeoutS: timeoutS)
        guard let reply = try? JSONDecoder().decode(ControlReply<Payload>.self, from: Data(answer)) else {
            throw AgentError("the daemon at \(path) gave no answer")
        }
        return reply
    }

    /// Sends `line` to the daemon at `path` and returns what it answered, all of it within
    /// `timeoutS` (connect, send and answer together).
    static func exchange(_ line: [UInt8], path: String, timeoutS: Int) throws(AgentError) -> [UInt8] {
        let deadline = WallClock.monotonicNs() + Int64(timeoutS) * 1_000_000_000
        let late = AgentError("the daemon at \(path) did not answer within \(timeoutS) s")
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw AgentError("socket: \(String(cString: strerror(errno)))") }
        defer { close(s) }
        guard let addr = UnixSocketAddress(path) else { throw AgentError("control socket path \(path) is too long") }
        // A unix connect waits for room in the listener's backlog, bounded by SO_SNDTIMEO.
        var tv = timeval(tv_sec: timeoutS, tv_usec: 0)
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = addr.withSockaddr { connect(s, $0, $1) }
        guard rc == 0 else {
            let e = errno
            if e == ENOENT || e == ECONNREFUSED { throw AgentError("no agentwatch daemon is listening on \(path): start it (systemctl start agentwatch)") }
            if e == EACCES { throw AgentError("not allowed to use \(path): add yourself to the agentwatch group (then log in again), or use sudo") }
            if e == EAGAIN || e == EINPROGRESS { throw late }
            throw AgentError("cannot reach the daemon at \(path): \(String(cString: strerror(e)))")
        }
        _ = fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK)
        var sent = 0
        // A daemon that refuses (busy) closes at once: the refusal is still there to read.
        while sent < line.count {
            let n = line.withUnsafeBytes { send(s, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                guard wait(s, POLLOUT, until: deadline) else { throw late }
                continue
            }
            break
        }
        var reply: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(s, $0.baseAddress, $0.count, 0) }
            if n > 0 { reply += buf[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                guard wait(s, POLLIN, until: deadline) else { throw late }
                continue
            }
            break
        }
        return reply
    }

    /// Waits for `events` on `fd` until `deadline` (CLOCK_MONOTONIC ns); false when it passed.
    private static func wait(_ fd: Int32, _ events: Int32, until deadline: Int64) -> Bool {
        while true {
            let left = deadline - WallClock.monotonicNs()
            if left <= 0 { return false }
            var p = pollfd(fd: fd, events: Int16(events), revents: 0)
            let n = poll(&p, 1, Int32((left + 999_999) / 1_000_000))
            if n > 0 { return true }
            if n < 0 && errno != EINTR { return false }
        }
    }
}
