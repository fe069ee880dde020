import AgentSupport
import Glibc

/// Ships records to a syslog receiver, one message per record: RFC 5424 (or the legacy
/// RFC 3164) over the local socket, UDP, TCP with octet counting (RFC 6587) or TLS (RFC 5425).
/// Messages are written in batches, few system calls for many messages. docs/syslog.md has the
/// message layout.
package final class SyslogTransport: OutputTransport {
    package let settings: SyslogSettings
    package let description: String
    private var writer: SyslogMessageWriter
    private var link: (any SyslogLink)?
    /// The messages of the batch being written: their bytes, where each ends, and where the
    /// line it stands for (and any unrenderable lines after it) ends in the lines delivered.
    private var batch: [UInt8] = []
    private var messageEnds: [Int] = []
    private var lineEnds: [Int] = []

    /// A batch is written when it holds this many bytes (streams) or messages (datagrams).
    static let batchBytes = 256 << 10
    static let batchMessages = DatagramVectors.maxMessages

    /// Lines the formatter could not render: passed over, counted here.
    package private(set) var unrenderable: UInt64 = 0
    /// Messages whose MSG was cut to `maxMessageBytes`.
    package var truncated: UInt64 { writer.truncated }

    package init(settings: SyslogSettings, formatter: any RecordFormatter) {
        self.settings = settings
        // An unknown facility is reported by `open()`, which may throw.
        writer = SyslogMessageWriter(settings: settings, facility: Self.facilityCode(settings.facility) ?? 10, formatter: formatter)
        switch settings.transport {
        case .unix:
            description = "syslog+unix://\(settings.address)"
        case .udp, .tcp, .tls:
            let host = settings.address.contains(":") ? "[\(settings.address)]" : settings.address
            description = "syslog+\(settings.transport.rawValue)://\(host):\(settings.effectivePort)"
        }
        batch.reserveCapacity(Self.batchBytes + 16384)
    }

    /// The numeric code of a syslog facility name (`kern`...`local7`, `auth`, `authpriv`...), or
    /// nil when the name is none: for checking a configuration.
    package static func facilityCode(_ name: String) -> Int? {
        SyslogMessageWriter.facilityCode(name)
    }

    package func open() throws(AgentError) {
        close()
        guard Self.facilityCode(settings.facility) != nil else {
            throw AgentError("syslog: unknown facility '\(settings.facility)' (kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, audit, alert, clock, local0...local7)")
        }
        let timeout = max(1, settings.timeoutS)
        let label = settings.transport.rawValue
        switch settings.transport {
        case .unix:
            link = DatagramLink(socket: try SyslogSocket.unixDatagram(path: settings.address, timeoutS: timeout))
        case .udp:
            link = DatagramLink(socket: try SyslogSocket.inet(host: settings.address, port: settings.effectivePort, datagram: true, timeoutS: timeout, label: label))
        case .tcp:
            link = StreamLink(socket: try SyslogSocket.inet(host: settings.address, port: settings.effectivePort, datagram: false, timeoutS: timeout, label: label))
        case .tls:
            let socket = try SyslogSocket.inet(host: settings.address, port: settings.effectivePort, datagram: false, timeoutS: timeout, label: label)
            let tls = try TLSLink(socket: socket, settings: settings)
            try tls.handshake()
            link = tls
        }
    }

    package func deliver(_ lines: UnsafeRawBufferPointer) throws(DeliveryFailure) {
        guard let link else { throw DeliveryFailure(delivered: 0, reason: "\(description) is not open") }
        // The bytes of the lines whose messages were written whole.
        var delivered = 0
        var start = 0
        batch.removeAll(keepingCapacity: true)
        messageEnds.removeAll(keepingCapacity: true)
        lineEnds.removeAll(keepingCapacity: true)
        while start < lines.count {
            let newline = memchr(lines.baseAddress! + start, 0x0A, lines.count - start)
            let lineEnd = newline.map { lines.baseAddress!.distance(to: UnsafeRawPointer($0)) } ?? lines.count
            let next = min(lineEnd + 1, lines.count)
            let line = UnsafeRawBufferPointer(rebasing: lines[start..<lineEnd])
            if !line.isEmpty && writer.append(line, to: &batch) {
                messageEnds.append(batch.count)
                lineEnds.append(next)
            } else {
                // A line with no message is delivered with the message before it.
                if !line.isEmpty { unrenderable += 1 }
                if lineEnds.isEmpty { delivered = next } else { lineEnds[lineEnds.count - 1] = next }
            }
            start = next
            if batch.count >= Self.batchBytes || messageEnds.count >= Self.batchMessages {
                try send(link, &delivered)
            }
        }
        if !messageEnds.isEmpty { try send(link, &delivered) }
    }

    private func send(_ link: any SyslogLink, _ delivered: inout Int) throws(DeliveryFailure) {
        // A receiver that closed the connection would take a batch or two into a dead socket
        // without an error: ask before writing.
        if let dead = link.deadReason() {
            throw DeliveryFailure(delivered: delivered, reason: "\(description): \(dead)")
        }
        let r = batch.withUnsafeBytes { link.send($0, ends: messageEnds) }
        if r.messages > 0 { delivered = lineEnds[r.messages - 1] }
        if let failure = r.failure {
            throw DeliveryFailure(delivered: delivered, reason: "\(description): \(failure)")
        }
        batch.removeAll(keepingCapacity: true)
        messageEnds.removeAll(keepingCapacity: true)
        lineEnds.removeAll(keepingCapacity: true)
    }

    /// Sockets hold nothing back: what `deliver` wrote is with the kernel.
    package func flush() throws(DeliveryFailure) {}

    package func close() {
        link?.close()
        link = nil
    }
}
