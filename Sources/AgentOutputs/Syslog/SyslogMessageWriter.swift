import AgentRecords
import Glibc

/// Renders native record lines as syslog messages: RFC 5424 with the record's seq, type,
/// session (and rule, for alerts) as structured data, or the legacy RFC 3164 line. Each message
/// is bounded to `maxBytes`; a longer MSG is cut at a character boundary and says so. The MSG
/// is the record in the sink's format.
struct SyslogMessageWriter {
    /// The SD-ID of our structured data. 32473 is the Private Enterprise Number that RFC 5612
    /// sets aside for documentation and examples; a site with its own PEN can change it here.
    static let sdID: StaticString = "agentwatch@32473"
    /// The smallest bound we keep to: RFC 3164's limit, and room for the longest header this
    /// writer makes (host name 255, SD values cut to 64 bytes before escaping) plus some MSG.
    static let minimumBytes = 1024
    /// Longest SD value before escaping (session id, rule id), and longest severity and type.
    static let sdValueBytes = 64
    static let tokenBytes = 32

    let framing: SyslogSettings.Framing
    let facility: Int
    /// The longest message, header included (the `LEN SP` of octet counting not counted).
    let maxBytes: Int
    /// Prefix each message with `LEN SP` (RFC 6587 octet counting, RFC 5425).
    let octetCounted: Bool
    let appName: [UInt8]
    let procID: [UInt8]
    var formatter: any RecordFormatter
    /// Messages whose MSG was cut to fit `maxBytes`.
    private(set) var truncated: UInt64 = 0

    // Reused per message.
    private var body: [UInt8] = []
    private var head: [UInt8] = []
    private var value: [UInt8] = []
    private var spans: [JSONSpan] = []

    init(settings: SyslogSettings, facility: Int, formatter: any RecordFormatter, procID: Int32 = getpid()) {
        framing = settings.framing
        self.facility = facility
        var bound = max(settings.maxMessageBytes, Self.minimumBytes)
        // The largest UDP payload over IPv4; a longer message could never be sent.
        if settings.transport == .udp { bound = min(bound, 65507) }
        maxBytes = bound
        octetCounted = settings.transport == .tcp || settings.transport == .tls
        // APP-NAME is 1*48 PRINTUSASCII; RFC 3164's TAG at most 32 characters.
        let printable = settings.appName.utf8.filter(Self.isPrintable).prefix(settings.framing == .rfc3164 ? 32 : 48)
        appName = printable.isEmpty ? [UInt8(ascii: "-")] : Array(printable)
        self.procID = Array(String(procID).utf8)
        self.formatter = formatter
        body.reserveCapacity(4096)
        head.reserveCapacity(512)
    }

    /// The numeric code of a syslog facility name (RFC 5424 table 1, with the names syslog.h
    /// and rsyslog give them), or nil for a name that is none.
    static func facilityCode(_ name: String) -> Int? {
        switch name.lowercased() {
        case "kern": 0
        case "user": 1
        case "mail": 2
        case "daemon": 3
        case "auth", "security": 4
        case "syslog": 5
        case "lpr": 6
        case "news": 7
        case "uucp": 8
        case "cron": 9
        case "authpriv": 10
        case "ftp": 11
        case "ntp": 12
        case "audit": 13
        case "alert": 14
        case "clock": 15
        case "local0": 16
        case "local1": 17
        case "local2": 18
        case "local3": 19
        case "local4": 20
        case "local5": 21
        case "local6": 22
        case "local7": 23
        default: nil
        }
    }

    /// The syslog severity of a record: an alert's from its rule's severity, `agent.loss` a
    /// warning, anything else informational.
    static func severity(type: UnsafeRawBufferPointer, ruleSeverity: UnsafeRawBufferPointer?) -> Int {
        if bytesEqual(type, "alert") {
            guard let s = ruleSeverity else { return 4 }
            if bytesEqual(s, "critical") { return 2 }
            if bytesEqual(s, "high") { return 3 }
            if bytesEqual(s, "medium") { return 4 }
            if bytesEqual(s, "low") { return 5 }
            if bytesEqual(s, "info") { return 6 }
            return 4
        }
        return bytesEqual(type, "agent.loss") ? 4 : 6
    }

    /// Appends the message for one record line (without its newline) to `out`, framed for the
    /// transport. False, leaving `out` as it was, when the formatter cannot render the line.
    mutating func append(_ line: UnsafeRawBufferPointer, to out: inout [UInt8]) -> Bool {
        body.removeAll(keepingCapacity: true)
        guard formatter.render(line, into: &body) else { return false }
        let fields = SyslogRecordFields(scanning: line, spans: &spans)
        let type = fields.type.map { fields.bytes($0) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
        let severity = Self.severity(type: type, ruleSeverity: fields.severity.map { fields.bytes($0) })
        head.removeAll(keepingCapacity: true)
        head.append(UInt8(ascii: "<"))
        appendDecimal(facility * 8 + severity, to: &head)
        head.append(UInt8(ascii: ">"))
        let cut: Int
        switch framing {
        case .rfc5424:
            writeHeader5424(fields)
            let fits = head.count + 1 + 1 + body.count <= maxBytes
            if !fits {
                appendLiteral(" truncated=\"true\" length=\"", to: &head)
                appendDecimal(body.count, to: &head)
                head.append(UInt8(ascii: "\""))
            }
            head.append(UInt8(ascii: "]"))
            cut = fits ? body.count : Self.characterBoundary(body, max(0, maxBytes - head.count - 1))
        case .rfc3164:
            writeHeader3164(fields)
            if head.count + body.count > maxBytes {
                appendLiteral("[truncated length=", to: &head)
                appendDecimal(body.count, to: &head)
                appendLiteral("] ", to: &head)
                cut = Self.characterBoundary(body, max(0, maxBytes - head.count))
            } else {
                cut = body.count
            }
        }
        if cut < body.count { truncated += 1 }
        // RFC 5424: `SP MSG` only when there is a MSG; in RFC 3164 the header ends with its space.
        let separator = framing == .rfc5424 && cut > 0 ? 1 : 0
        if octetCounted {
            appendDecimal(head.count + separator + cut, to: &out)
            out.append(UInt8(ascii: " "))
        }
        out.append(contentsOf: head)
        if separator == 1 { out.append(UInt8(ascii: " ")) }
        body.withUnsafeBytes { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[0..<cut])) }
        return true
    }

    /// `1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [agentwatch@32473 seq=.. type=.. session=..`
    /// (the SD element left open for the truncation parameters).
    private mutating func writeHeader5424(_ f: SyslogRecordFields) {
        appendLiteral("1 ", to: &head)
        if let t = f.time, Self.appendTimestamp5424(f.bytes(t), to: &head) {
        } else {
            head.append(UInt8(ascii: "-"))
        }
        appendHostAndApp(f)
        head.append(UInt8(ascii: " "))
        head.append(contentsOf: procID)
        head.append(UInt8(ascii: " "))
        Self.appendToken(f.type, f, max: Self.tokenBytes, to: &head)
        head.append(UInt8(ascii: " "))
        head.append(UInt8(ascii: "["))
        Self.sdID.withUTF8Buffer { head.append(contentsOf: $0) }
        if let seq = f.seq, seq.count <= 20 {
            appendLiteral(" seq=\"", to: &head)
            head.append(contentsOf: f.bytes(seq))
            head.append(UInt8(ascii: "\""))
        }
        appendParam(" type=\"", f.type, f, max: Self.tokenBytes)
        appendParam(" session=\"", f.sessionID, f, max: Self.sdValueBytes)
        appendParam(" rule=\"", f.ruleID, f, max: Self.sdValueBytes)
        appendParam(" severity=\"", f.severity, f, max: Self.tokenBytes)
    }

    /// `Mmm dd hh:mm:ss HOSTNAME TAG[PID]: ` — the time is the record's, in UTC.
    private mutating func writeHeader3164(_ f: SyslogRecordFields) {
        var fieldsOK = false
        if let t = f.time {
            fieldsOK = Self.appendTimestamp3164(f.bytes(t), to: &head)
        }
        if !fieldsOK {
            // A record without a readable time: the time it is sent.
            var now = time(nil)
            var tm = Glibc.tm()
            gmtime_r(&now, &tm)
            Self.appendTimestamp3164(month: Int(tm.tm_mon) + 1, day: Int(tm.tm_mday), hour: Int(tm.tm_hour),
                                     minute: Int(tm.tm_min), second: Int(tm.tm_sec), to: &head)
        }
        appendHostAndApp(f)
        head.append(UInt8(ascii: "["))
        head.append(contentsOf: procID)
        appendLiteral("]: ", to: &head)
    }

    /// ` HOSTNAME APP-NAME`, as both formats have them after the time.
    private mutating func appendHostAndApp(_ f: SyslogRecordFields) {
        head.append(UInt8(ascii: " "))
        Self.appendToken(f.hostName, f, max: 255, to: &head)
        head.append(UInt8(ascii: " "))
        head.append(contentsOf: appName)
    }

    /// A header field of printable ASCII (HOSTNAME, MSGID): the decoded value when it is one
    /// and at most `max` long, else the NILVALUE `-`.
    private static func appendToken(_ r: Range<Int>?, _ s: SyslogRecordFields, max: Int, to out: inout [UInt8]) {
        let start = out.count
        if let r { s.decode(r, into: &out) }
        let value = out[start...]
        if value.isEmpty || value.count > max || !value.allSatisfy(Self.isPrintable) {
            out.removeSubrange(start...)
            out.append(UInt8(ascii: "-"))
        }
    }

    /// ` name="value"`: the decoded value cut to `max` bytes at a character boundary, with `"`,
    /// `\` and `]` escaped as RFC 5424 section 6.3.3 requires. Nothing when the field is absent.
    private mutating func appendParam(_ prefix: StaticString, _ r: Range<Int>?, _ s: SyslogRecordFields, max: Int) {
        guard let r else { return }
        appendLiteral(prefix, to: &head)
        value.removeAll(keepingCapacity: true)
        s.decode(r, into: &value)
        let n = Self.characterBoundary(value, max)
        Self.appendEscapedParamValue(value[0..<n], to: &head)
        head.append(UInt8(ascii: "\""))
    }

    static func appendEscapedParamValue<C: Collection<UInt8>>(_ value: C, to out: inout [UInt8]) {
        for b in value {
            if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") || b == UInt8(ascii: "]") { out.append(UInt8(ascii: "\\")) }
            out.append(b)
        }
    }

    /// The record's RFC 3339 time as an RFC 5424 TIMESTAMP: fractions of a second cut to the
    /// six digits RFC 5424 allows. False, appending nothing, when `t` is not an RFC 3339 time.
    static func appendTimestamp5424(_ t: UnsafeRawBufferPointer, to out: inout [UInt8]) -> Bool {
        guard isDateTime(t) else { return false }
        var end = 19
        var fraction = 0
        if t.count > 19, t[19] == UInt8(ascii: ".") {
            end = 20
            while end < t.count, isDigit(t[end]) { end += 1 }
            fraction = end - 20
            guard fraction > 0 else { return false }
        }
        let zone = UnsafeRawBufferPointer(rebasing: t[end...])
        let zulu = zone.count == 1 && (zone[0] == UInt8(ascii: "Z") || zone[0] == UInt8(ascii: "z"))
        let offset = zone.count == 6 && (zone[0] == UInt8(ascii: "+") || zone[0] == UInt8(ascii: "-")) && isDigit(zone[1])
            && isDigit(zone[2]) && zone[3] == UInt8(ascii: ":") && isDigit(zone[4]) && isDigit(zone[5])
        guard zulu || offset else { return false }
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: t[0..<(fraction > 0 ? 20 + min(fraction, 6) : 19)]))
        if zulu { out.append(UInt8(ascii: "Z")) } else { out.append(contentsOf: zone) }
        return true
    }

    /// `Mmm dd hh:mm:ss` from the date and time as the record writes them (UTC).
    static func appendTimestamp3164(_ t: UnsafeRawBufferPointer, to out: inout [UInt8]) -> Bool {
        guard isDateTime(t) else { return false }
        func number(_ at: Int, _ n: Int) -> Int { (at..<(at + n)).reduce(0) { $0 * 10 + Int(t[$1] - UInt8(ascii: "0")) } }
        let month = number(5, 2)
        guard month >= 1 && month <= 12 else { return false }
        appendTimestamp3164(month: month, day: number(8, 2), hour: number(11, 2), minute: number(14, 2), second: number(17, 2), to: &out)
        return true
    }

    static func appendTimestamp3164(month: Int, day: Int, hour: Int, minute: Int, second: Int, to out: inout [UInt8]) {
        let names: StaticString = "JanFebMarAprMayJunJulAugSepOctNovDec"
        names.withUTF8Buffer { out.append(contentsOf: $0[(month - 1) * 3..<month * 3]) }
        out.append(UInt8(ascii: " "))
        // The day is space-padded: `Nov  1`.
        out.append(day < 10 ? UInt8(ascii: " ") : UInt8(ascii: "0") + UInt8(day / 10))
        out.append(UInt8(ascii: "0") + UInt8(day % 10))
        for (i, v) in [hour, minute, second].enumerated() {
            out.append(i == 0 ? UInt8(ascii: " ") : UInt8(ascii: ":"))
            out.append(UInt8(ascii: "0") + UInt8(v / 10))
            out.append(UInt8(ascii: "0") + UInt8(v % 10))
        }
    }

    /// `YYYY-MM-DDThh:mm:ss` at the start of `t`.
    static func isDateTime(_ t: UnsafeRawBufferPointer) -> Bool {
        guard t.count >= 20 else { return false }
        for i in 0..<19 {
            switch i {
            case 4, 7: if t[i] != UInt8(ascii: "-") { return false }
            case 10: if t[i] != UInt8(ascii: "T") && t[i] != UInt8(ascii: "t") { return false }
            case 13, 16: if t[i] != UInt8(ascii: ":") { return false }
            default: if !isDigit(t[i]) { return false }
            }
        }
        return true
    }

    /// The largest length ≤ `limit` that ends `bytes` at a UTF-8 character boundary.
    static func characterBoundary<C: RandomAccessCollection<UInt8>>(_ bytes: C, _ limit: Int) -> Int where C.Index == Int {
        guard limit < bytes.count else { return bytes.count }
        var n = limit
        // A continuation byte (10xxxxxx) at n means n is inside a character.
        while n > 0, bytes[bytes.startIndex + n] & 0xC0 == 0x80 { n -= 1 }
        return n
    }

    @inline(__always) static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
    @inline(__always) static func isPrintable(_ b: UInt8) -> Bool { b >= 33 && b <= 126 }

    static func bytesEqual(_ b: UnsafeRawBufferPointer, _ s: StaticString) -> Bool {
        s.withUTF8Buffer { b.elementsEqual($0) }
    }
}

@inline(__always)
private func appendLiteral(_ s: StaticString, to out: inout [UInt8]) {
    s.withUTF8Buffer { out.append(contentsOf: $0) }
}

@inline(__always)
private func appendDecimal(_ v: Int, to out: inout [UInt8]) {
    if v >= 10 { appendDecimal(v / 10, to: &out) }
    out.append(UInt8(ascii: "0") + UInt8(v % 10))
}
