import AgentSupport
import CSupport
import Glibc

/// A connected, non-blocking socket to a syslog receiver, closed when released. Every wait on
/// it is bounded by `timeoutS`; a wait that runs out is a failure that says so.
final class SyslogSocket {
    let fd: Int32
    /// `host:port` or the socket path, for messages.
    let peer: String
    let timeoutS: Int
    /// Bytes read from the receiver, reused.
    private var scratch = [UInt8](repeating: 0, count: 16384)

    private init(fd: Int32, peer: String, timeoutS: Int) {
        self.fd = fd
        self.peer = peer
        self.timeoutS = timeoutS
    }

    deinit { Glibc.close(fd) }

    /// A datagram socket connected to the local socket at `path` (`/dev/log`).
    static func unixDatagram(path: String, timeoutS: Int) throws(AgentError) -> SyslogSocket {
        guard let addr = UnixSocketAddress(path) else {
            throw AgentError("syslog unix: socket path \(path.isEmpty ? "is empty" : "is too long: \(path)")")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw AgentError("syslog unix: cannot make a socket: \(errnoText())") }
        let s = SyslogSocket(fd: fd, peer: path, timeoutS: timeoutS)
        let rc = addr.withSockaddr { Glibc.connect(fd, $0, $1) }
        guard rc == 0 else { throw AgentError("syslog unix: cannot connect to \(path): \(errnoText())") }
        return s
    }

    /// A UDP or TCP socket connected to `host` (a name resolved with getaddrinfo, IPv4 or IPv6,
    /// or an address), trying each address in turn within `timeoutS`.
    package static func inet(host: String, port: Int, datagram: Bool, timeoutS: Int, label: String) throws(AgentError) -> SyslogSocket {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(datagram ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0 else {
            throw AgentError("syslog \(label): cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        let deadline = Deadline(seconds: timeoutS)
        var failures: [String] = []
        var next = list
        while let ai = next?.pointee {
            next = ai.ai_next
            let peer = addressText(ai.ai_addr, port: port, host: host)
            let fd = socket(ai.ai_family, ai.ai_socktype | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), ai.ai_protocol)
            guard fd >= 0 else {
                failures.append("\(peer): \(errnoText())")
                continue
            }
            let s = SyslogSocket(fd: fd, peer: peer, timeoutS: timeoutS)
            if let failure = s.connect(ai.ai_addr, ai.ai_addrlen, deadline) {
                failures.append(failure)
                continue
            }
            var one: Int32 = 1
            if !datagram {
                // Batches are written whole; the last part of one should not wait for an ACK.
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            } else if ai.ai_family == AF_INET6 {
                setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_RECVERR, &one, socklen_t(MemoryLayout<Int32>.size))
            } else {
                // ICMP errors (port unreachable) queue on the socket, where `queuedError` finds
                // them: sendmmsg(2) drops the error of a message after the first.
                setsockopt(fd, Int32(SOL_IP), IP_RECVERR, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            return s
        }
        throw AgentError("syslog \(label): " + (failures.isEmpty ? "no address for \(host)" : failures.joined(separator: "; ")))
    }

    private func connect(_ addr: UnsafeMutablePointer<sockaddr>?, _ len: socklen_t, _ deadline: Deadline) -> String? {
        if Glibc.connect(fd, addr, len) == 0 { return nil }
        guard errno == EINPROGRESS else { return connectFailure(errno) }
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let n = poll(&p, 1, deadline.remainingMs)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return "connect to \(peer): \(errnoText())" }
            if n == 0 { return "connect to \(peer) timed out after \(timeoutS) s" }
            break
        }
        var e: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len)
        return e == 0 ? nil : connectFailure(e)
    }

    private func connectFailure(_ e: Int32) -> String {
        e == ECONNREFUSED ? "connect refused to \(peer)" : "connect to \(peer): \(errnoText(e))"
    }

    /// Writes `bytes` with as few send(2) calls as the kernel allows, waiting for room when the
    /// socket is full. Returns how many bytes went out and, when not all did, why.
    func sendAll(_ bytes: UnsafeRawBufferPointer) -> (sent: Int, failure: String?) {
        transmit(bytes.count) { off in send(fd, bytes.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
    }

    /// Sends each message of `bytes` (`ends[i]` the end of message i) as one datagram, many per
    /// sendmmsg(2) call. Returns how many messages went out and, when not all did, why.
    func sendDatagrams(_ bytes: UnsafeRawBufferPointer, ends: [Int], vectors: inout DatagramVectors) -> (sent: Int, failure: String?) {
        transmit(ends.count, check: queuedError) { sent in vectors.send(fd, bytes, ends: ends, from: sent) }
    }

    /// Calls `attempt(done)` (a send of what is left, returning how much went out or -1 with
    /// errno) until `total` went out, waiting for room when the socket is full; `check` may stop
    /// it before each attempt. Returns how much went out and, when not all did, why.
    private func transmit(_ total: Int, check: () -> String? = { nil }, _ attempt: (Int) -> Int) -> (sent: Int, failure: String?) {
        var done = 0
        while done < total {
            if let failure = check() { return (done, failure) }
            let n = attempt(done)
            if n > 0 {
                done += n
                continue
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK:
                if let failure = waitWritable() { return (done, failure) }
            case ECONNREFUSED:
                return (done, "send to \(peer): refused (no receiver listening)")
            default:
                return (done, "send to \(peer): \(errnoText())")
            }
        }
        return (done, nil)
    }

    /// A UDP receiver's host answered a datagram with an ICMP error (port unreachable: nothing
    /// listens there); reading the socket's error queue empties it. Nil when none came.
    func queuedError() -> String? {
        var failure: String?
        var payload: UInt8 = 0
        var control = [UInt8](repeating: 0, count: 256)
        while true {
            let n = withUnsafeMutablePointer(to: &payload) { p in
                control.withUnsafeMutableBytes { c in
                    var iov = iovec(iov_base: p, iov_len: 1)
                    return withUnsafeMutablePointer(to: &iov) { iov in
                        var msg = msghdr()
                        msg.msg_iov = iov
                        msg.msg_iovlen = 1
                        msg.msg_control = c.baseAddress
                        msg.msg_controllen = c.count
                        return recvmsg(fd, &msg, Int32(MSG_ERRQUEUE) | Int32(MSG_DONTWAIT))
                    }
                }
            }
            if n < 0 { return failure }
            // One cmsghdr (16 bytes), then struct sock_extended_err, ee_errno first.
            let e = control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: MemoryLayout<cmsghdr>.size, as: UInt32.self) }
            if failure == nil {
                failure = e == UInt32(ECONNREFUSED)
                    ? "send to \(peer): refused (ICMP port unreachable: nothing listens there)"
                    : "send to \(peer): \(errnoText(Int32(bitPattern: e))) (ICMP)"
            }
        }
    }

    /// Waits until the socket takes more bytes; the reason when it does not within the timeout.
    private func waitWritable() -> String? {
        let deadline = Deadline(seconds: timeoutS)
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let n = poll(&p, 1, deadline.remainingMs)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return "poll on \(peer): \(errnoText())" }
            // POLLERR or POLLHUP: the next send says what happened.
            return n == 0 ? "send to \(peer) stalled for \(timeoutS) s (the receiver reads nothing)" : nil
        }
    }

    /// Reads what has arrived, waiting until `deadline` for something. Returns the bytes read
    /// (to be used before the next call), or why nothing could be read.
    func receive(until deadline: Deadline) -> Result<UnsafeRawBufferPointer, SocketFailure> {
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, deadline.remainingMs)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .failure(.error("poll on \(peer): \(errnoText())")) }
            if n == 0 { return .failure(.timedOut) }
            let r = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if r > 0 { return .success(scratch.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[0..<r]) }) }
            if r == 0 { return .failure(.closed) }
            if errno == EAGAIN || errno == EINTR { continue }
            return .failure(.error("receive from \(peer): \(errnoText())"))
        }
    }

    enum SocketFailure: Error {
        case timedOut, closed
        case error(String)
    }

    /// Why the receiver can no longer be written to, or nil: a non-blocking peek that finds the
    /// connection closed (0 bytes) or broken (an error). Whatever the receiver did send is read
    /// and handed to `received` (TLS records, for OpenSSL), which may itself find the end.
    func peerGone(_ received: (UnsafeRawBufferPointer) -> String?) -> String? {
        while true {
            var probe: UInt8 = 0
            let n = recv(fd, &probe, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
            if n == 0 { return "the receiver \(peer) closed the connection" }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
                return "connection to \(peer): \(errnoText())"
            }
            let r = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if r > 0, let why = scratch.withUnsafeBytes({ received(UnsafeRawBufferPointer(rebasing: $0[0..<r])) }) { return why }
        }
    }

    /// Ends the connection in order: our side is closed (FIN after everything written), then we
    /// wait, within the timeout, for the receiver to close its side, which it does once it has
    /// read all we sent. So a reconnect does not race the old connection's last messages.
    func finish() {
        shutdown(fd, Int32(SHUT_WR))
        let deadline = Deadline(seconds: timeoutS)
        while case .success = receive(until: deadline) {}
    }
}

/// A point in time on the monotonic clock, for bounded waits.
struct Deadline {
    let endMs: Int64

    init(seconds: Int) { endMs = (WallClock.monotonicNs() / 1_000_000) + Int64(seconds) * 1000 }

    /// Milliseconds left, for poll(2); 0 once passed.
    var remainingMs: Int32 { Int32(clamping: max(0, endMs - (WallClock.monotonicNs() / 1_000_000))) }
}

/// The iovecs of one sendmmsg(2) call (through CSupport), reused across batches.
struct DatagramVectors {
    /// CSupport sends at most this many datagrams a call.
    static let maxMessages = 64

    private var iov: [iovec] = []

    /// Sends messages `from`... of `bytes`; returns how many went out (≥ 1), or -1 with errno.
    mutating func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, ends: [Int], from first: Int) -> Int {
        let count = min(ends.count - first, Self.maxMessages)
        let base = UnsafeMutableRawPointer(mutating: bytes.baseAddress!)
        if iov.count < count { iov = [iovec](repeating: iovec(), count: count) }
        return iov.withUnsafeMutableBufferPointer { iov in
            for k in 0..<count {
                let start = first + k == 0 ? 0 : ends[first + k - 1]
                iov[k] = iovec(iov_base: base + start, iov_len: ends[first + k] - start)
            }
            return Int(aw_send_datagrams(fd, iov.baseAddress, UInt32(count), Int32(MSG_NOSIGNAL)))
        }
    }
}

func errnoText(_ e: Int32 = errno) -> String { String(cString: strerror(e)) }

/// `host:port` for messages: the address tried, and the name it was resolved from when that
/// differs (`[::1]:514`, `loghost (10.0.0.5):514`).
private func addressText(_ sa: UnsafeMutablePointer<sockaddr>?, port: Int, host: String) -> String {
    guard let sa else { return "\(host):\(port)" }
    var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    let family = Int32(sa.pointee.sa_family)
    let ok: Bool = family == AF_INET
        ? sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a in withUnsafePointer(to: a.pointee.sin_addr) { inet_ntop(AF_INET, $0, &text, socklen_t(text.count)) != nil } }
        : sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a in withUnsafePointer(to: a.pointee.sin6_addr) { inet_ntop(AF_INET6, $0, &text, socklen_t(text.count)) != nil } }
    guard ok else { return "\(host):\(port)" }
    let address = String(decoding: text.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let shown = family == AF_INET6 ? "[\(address)]" : address
    return address == host ? "\(shown):\(port)" : "\(host) (\(shown)):\(port)"
}
