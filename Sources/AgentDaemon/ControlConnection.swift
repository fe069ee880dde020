import Glibc

/// One control connection as the server's event loop keeps it: its non-blocking socket, the
/// peer bound at accept, what has been read of the request, the answer being written, and the one
/// deadline of the phase it is in.
struct ControlConnection {
    enum Phase {
        /// Reading the request line; deadline: the whole request, from accept.
        case reading
        /// A worker has the request (and the socket and pidfd) until it hands the answer back.
        case handling
        /// Writing the answer; deadline: the whole answer, from when it was ready.
        case writing
    }

    let fd: Int32
    let peer: ControlPeer
    let acceptedNs: Int64
    var deadlineNs: Int64
    var phase = Phase.reading
    var input: [UInt8] = []
    var output: [UInt8] = []
    var written = 0

    /// What reading found.
    enum ReadOutcome {
        case needMore
        /// A line (or everything up to end of file), without its newline.
        case request([UInt8])
        case tooLarge
        /// The peer reset the connection: nothing to answer.
        case failed
    }

    /// Reads what has arrived, without blocking.
    mutating func readAvailable(limit: Int) -> ReadOutcome {
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n == 0 { return .request(input) }
            if n < 0 {
                if errno == EINTR { continue }
                return errno == EAGAIN || errno == EWOULDBLOCK ? .needMore : .failed
            }
            let start = input.count
            input += buf[0..<n]
            if let nl = input[start...].firstIndex(of: 0x0A) { return .request(Array(input[..<nl])) }
            if input.count > limit { return .tooLarge }
        }
    }

    /// Writes what it can of the answer without blocking; true once all of it is out or the peer
    /// has gone (either way the connection is done).
    mutating func flush() -> Bool {
        while written < output.count {
            let n = output.withUnsafeBytes { send(fd, $0.baseAddress! + written, $0.count - written, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                return !(errno == EAGAIN || errno == EWOULDBLOCK)
            }
            written += n
        }
        return true
    }

    /// Sends a one-line refusal without waiting (a peer that does not read loses it) and closes
    /// `fd`: for connections the server will not serve.
    static func refuse(_ fd: Int32, _ message: String) {
        let line = ControlAnswer.refused(message).line()
        _ = line.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
        close(fd)
    }
}
