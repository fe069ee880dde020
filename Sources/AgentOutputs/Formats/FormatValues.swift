import AgentRecords
import Glibc

/// Values the ECS and OCSF mappings derive from native fields: path parts, address kinds,
/// severities, argv joined into a command line.
enum FormatValues {
    /// The last component of a path, without the directory ("" for "/").
    static func baseName(_ path: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard let slash = path.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return UnsafeRawBufferPointer(rebasing: path[(slash + 1)...])
    }

    /// The directory of a path ("/" for a file in the root), or nil when there is none.
    static func directory(_ path: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard let slash = path.lastIndex(of: UInt8(ascii: "/")) else { return nil }
        return UnsafeRawBufferPointer(rebasing: path[0..<max(slash, 1)])
    }

    /// The part of a file name after its last dot, when it has one that is neither its first
    /// nor its last byte (".bashrc" and "notes." have none).
    static func fileExtension(_ name: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard let dot = name.lastIndex(of: UInt8(ascii: ".")), dot > 0, dot < name.count - 1 else { return nil }
        return UnsafeRawBufferPointer(rebasing: name[(dot + 1)...])
    }

    /// What an IP address text is, from the host's point of view.
    enum AddressScope {
        case invalid, loopback, privateNetwork, other
    }

    /// Parses `text` (inet_ntop output) without allocating.
    static func addressScope(_ text: UnsafeRawBufferPointer) -> AddressScope {
        guard text.count > 0, text.count < 64 else { return .invalid }
        var buf: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        var addr: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &buf) { b in
            b.copyMemory(from: text)
            b[text.count] = 0
            let cstr = b.baseAddress!.assumingMemoryBound(to: CChar.self)
            return withUnsafeMutableBytes(of: &addr) { a in
                if inet_pton(AF_INET, cstr, a.baseAddress) == 1 {
                    return scope4(a[0], a[1])
                }
                guard inet_pton(AF_INET6, cstr, a.baseAddress) == 1 else { return .invalid }
                var mappedV4 = a[10] == 0xFF && a[11] == 0xFF
                for k in 0..<10 where a[k] != 0 { mappedV4 = false }
                if mappedV4 { return scope4(a[12], a[13]) }
                var loopback = a[15] == 1
                for k in 0..<15 where a[k] != 0 { loopback = false }
                if loopback { return .loopback }
                if a[0] & 0xFE == 0xFC || (a[0] == 0xFE && a[1] & 0xC0 == 0x80) { return .privateNetwork }
                return .other
            }
        }
    }

    private static func scope4(_ a: UInt8, _ b: UInt8) -> AddressScope {
        if a == 127 { return .loopback }
        if a == 10 || (a == 172 && b & 0xF0 == 16) || (a == 192 && b == 168) || (a == 169 && b == 254) {
            return .privateNetwork
        }
        return .other
    }

    /// Rule severities as 1 (info) to 5 (critical), the scale OCSF's severity_id uses; 0 unknown.
    static func severity(_ line: FormatInput) -> UInt64 {
        if line.equals(.ruleSeverity, "info") { return 1 }
        if line.equals(.ruleSeverity, "low") { return 2 }
        if line.equals(.ruleSeverity, "medium") { return 3 }
        if line.equals(.ruleSeverity, "high") { return 4 }
        if line.equals(.ruleSeverity, "critical") { return 5 }
        return 0
    }

    /// IANA protocol keyword and number of a native transport that is an IP protocol.
    static func ipProtocol(_ line: FormatInput) -> (name: StaticString, number: UInt64)? {
        if line.equals(.netTransport, "tcp") { return ("tcp", 6) }
        if line.equals(.netTransport, "udp") { return ("udp", 17) }
        if line.equals(.netTransport, "icmp") { return ("icmp", 1) }
        if line.equals(.netTransport, "icmpv6") { return ("ipv6-icmp", 58) }
        if line.equals(.netTransport, "sctp") { return ("sctp", 132) }
        return nil
    }

    /// argv joined with spaces into `out` (cleared first): the command line as a shell showed it.
    static func commandLine(_ line: FormatInput, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        var first = true
        FormatInput.forEach(line.value(.argv), in: line.bytes) { _, e in
            if !first { out.append(UInt8(ascii: " ")) }
            first = false
            FormatInput.appendDecoded(e, in: line.bytes, to: &out)
        }
    }

    /// Number of argv elements.
    static func argvCount(_ line: FormatInput) -> UInt64 {
        var n: UInt64 = 0
        line.forEach(.argv) { _, _ in n += 1 }
        return n
    }
}
