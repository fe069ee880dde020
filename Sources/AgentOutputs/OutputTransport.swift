import AgentSupport
import Glibc

/// The format a sink writes records in.
package enum OutputFormat: String, Sendable, CaseIterable {
    /// NDJSON v1, the record line as the recorder wrote it (hash chain included).
    case native
    /// Elastic Common Schema.
    case ecs
    /// Open Cybersecurity Schema Framework 1.8.0.
    case ocsf
}

/// Renders native v1 record lines in another format. Each sink's worker thread owns one, so a
/// formatter may keep state across records (a session's first process, say).
package protocol RecordFormatter {
    /// Appends the rendering of `line` (one native v1 record, without its newline) to `out`,
    /// without a newline. Returns false, leaving `out` as it was, when `line` is not a record it
    /// can render; the sink counts such lines.
    mutating func render(_ line: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool
}

/// The native format: the line itself.
package struct NativeFormatter: RecordFormatter {
    package init() {}
    package mutating func render(_ line: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        out.append(contentsOf: line)
        return true
    }
}

/// Why a delivery stopped, and how far it got: `delivered` leading bytes of the lines handed
/// over (always a whole number of lines) reached the destination.
package struct DeliveryFailure: Error, CustomStringConvertible {
    package var delivered: Int
    package var reason: String
    package init(delivered: Int, reason: String) {
        self.delivered = delivered
        self.reason = reason
    }
    package var description: String { reason }
}

/// Where a sink's worker delivers records: a file, a syslog receiver. Called from that worker's
/// thread only.
package protocol OutputTransport: AnyObject {
    /// For logs and `agent.start`: `file:/var/log/...`, `syslog+tcp://host:port`.
    var description: String { get }
    /// Makes the destination ready: opens the file, connects, does the TLS handshake. Throws,
    /// saying why, when it cannot; the worker keeps the records and tries again later.
    func open() throws(AgentError)
    /// Delivers whole native v1 lines (each ending with a newline), in order. Returns when all
    /// were delivered; otherwise throws how many leading bytes were, and the worker closes the
    /// destination, keeps the rest and delivers it after the next successful `open`.
    func deliver(_ lines: UnsafeRawBufferPointer) throws(DeliveryFailure)
    /// Pushes out what the destination holds back (fsync for a file). At intervals and at stop.
    func flush() throws(DeliveryFailure)
    /// Work due with time rather than records (a file rotated by age). On the worker's timer.
    func maintain() throws(DeliveryFailure)
    func close()
}

extension OutputTransport {
    package func maintain() throws(DeliveryFailure) {}
}

/// How a syslog sink reaches its receiver and frames its messages.
package struct SyslogSettings: Sendable, Equatable {
    package enum Transport: String, Sendable, CaseIterable {
        /// A local datagram socket (`/dev/log`, or `address`).
        case unix
        case udp
        /// RFC 6587 octet counting: `LEN SP MSG`.
        case tcp
        /// RFC 5425: octet counting inside TLS, the server's certificate verified.
        case tls
    }
    package enum Framing: String, Sendable, CaseIterable {
        case rfc5424
        /// The legacy BSD format, for receivers that know no other.
        case rfc3164
    }
    package var transport = Transport.unix
    /// A socket path for `unix`; a host name or address for the others.
    package var address = "/dev/log"
    /// 514 for udp and tcp, 6514 for tls when not given.
    package var port: Int? = nil
    package var framing = Framing.rfc5424
    /// The syslog facility, by name (`auth`, `authpriv`, `daemon`, `local0`...).
    package var facility = "authpriv"
    package var appName = "agentwatch"
    /// Longest message sent, header included: rsyslog's default maxMessageSize (8096 bytes in
    /// its source, though documented as 8k); longer ones are cut and say so.
    package var maxMessageBytes = 8096
    /// The MSG part: the record in this format.
    package var format = OutputFormat.native
    /// PEM files: the CAs that sign the receiver's certificate (the system's when nil), and an
    /// optional client certificate and key for mutual TLS.
    package var caFile: String? = nil
    package var certFile: String? = nil
    package var keyFile: String? = nil
    /// The name the receiver's certificate must carry; `address` when nil.
    package var serverName: String? = nil
    /// Seconds to wait for a connection, a handshake or a stalled send.
    package var timeoutS = 10

    package init() {}

    package var effectivePort: Int { port ?? (transport == .tls ? 6514 : 514) }
}
