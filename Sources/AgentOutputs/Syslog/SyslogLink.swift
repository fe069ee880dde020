/// An open connection to a syslog receiver, as `SyslogTransport` writes batches of framed
/// messages to it.
protocol SyslogLink: AnyObject {
    /// Stream connections: a receiver that has closed the connection, found before writing into
    /// a dead socket. Nil while the connection stands.
    func deadReason() -> String?
    /// Sends a batch of messages, message i ending at `ends[i]`. Returns how many leading
    /// messages were completely written and, when not all were, why.
    func send(_ bytes: UnsafeRawBufferPointer, ends: [Int]) -> (messages: Int, failure: String?)
    /// Closes in order (what is written is still delivered), within the timeout.
    func close()
}

extension SyslogLink {
    /// How many messages of a batch lie completely within its first `written` bytes.
    static func completeMessages(_ ends: [Int], written: Int) -> Int {
        // The ends rise: the first one beyond `written`, by bisection.
        var lo = 0, hi = ends.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ends[mid] <= written { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

/// The local socket or UDP: one datagram a message, many datagrams per system call.
final class DatagramLink: SyslogLink {
    let socket: SyslogSocket
    private var vectors = DatagramVectors()

    init(socket: SyslogSocket) { self.socket = socket }

    func deadReason() -> String? { nil }

    func send(_ bytes: UnsafeRawBufferPointer, ends: [Int]) -> (messages: Int, failure: String?) {
        let r = socket.sendDatagrams(bytes, ends: ends, vectors: &vectors)
        return (r.sent, r.failure)
    }

    func close() {}
}

/// TCP with octet-counted frames (RFC 6587): the batch is one byte stream.
final class StreamLink: SyslogLink {
    let socket: SyslogSocket

    init(socket: SyslogSocket) { self.socket = socket }

    func deadReason() -> String? {
        // A syslog receiver sends nothing on the connection; anything it does is dropped.
        socket.peerGone { _ in nil }
    }

    func send(_ bytes: UnsafeRawBufferPointer, ends: [Int]) -> (messages: Int, failure: String?) {
        let r = socket.sendAll(bytes)
        return (Self.completeMessages(ends, written: r.sent), r.failure)
    }

    func close() { socket.finish() }
}
