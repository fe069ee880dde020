import Glibc

/// Writes the `net` fields of a connect from the raw sockaddr the process passed and the local
/// address the kernel chose.
package enum SocketAddress {
    package static func write(into j: inout JSONBuffer, remote: UnsafeRawBufferPointer, local: UnsafeRawBufferPointer, sockType: UInt16, protocol proto: UInt16) {
        let family = remote.count >= 2 ? remote.loadUnaligned(as: UInt16.self) : 0
        j.raw("\"family\":")
        switch Int32(family) {
        case AF_INET: j.raw("\"ipv4\"")
        case AF_INET6: j.raw(mappedV4(remote) ? "\"ipv6\",\"v4_mapped\":true" : "\"ipv6\"")
        case AF_UNIX: j.raw("\"unix\"")
        case AF_UNSPEC: j.raw("\"unspec\"")
        default: j.string("af_\(family)")
        }
        j.raw(",\"transport\":")
        j.raw(transport(family: Int32(family), sockType: sockType, protocol: proto))
        switch Int32(family) {
        case AF_INET, AF_INET6:
            inet(remote) { addr, port in
                j.raw(",\"daddr\":"); j.string(addr)
                j.raw(",\"dport\":"); j.uint(UInt64(port))
            }
            inet(local) { addr, port in
                j.raw(",\"saddr\":"); j.string(addr)
                j.raw(",\"sport\":"); j.uint(UInt64(port))
            }
        case AF_UNIX:
            // sun_path: a path, or an abstract name when it starts with NUL (shown as '@name').
            let path = remote.count > 2 ? UnsafeRawBufferPointer(rebasing: remote[2...]) : UnsafeRawBufferPointer(start: nil, count: 0)
            if let first = path.first, first == 0 {
                j.raw(",\"abstract\":true,\"path\":")
                var name: [UInt8] = [UInt8(ascii: "@")]
                name.append(contentsOf: path.dropFirst())
                j.string(name)
            } else if !path.isEmpty {
                j.raw(",\"path\":")
                j.string(UnsafeRawBufferPointer(rebasing: path.prefix(while: { $0 != 0 })))
            }
        default:
            break
        }
    }

    static func mappedV4(_ a: UnsafeRawBufferPointer) -> Bool {
        guard a.count >= 24 else { return false }
        for i in 8..<18 where a[i] != 0 { return false }
        return a[18] == 0xff && a[19] == 0xff
    }

    /// The address text (on the stack) and port of a sockaddr_in or sockaddr_in6, if it is one.
    @inline(__always)
    package static func inet(_ a: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer, UInt16) -> Void) {
        guard a.count >= 8 else { return }
        let family = Int32(a.loadUnaligned(as: UInt16.self))
        let port = UInt16(a[2]) << 8 | UInt16(a[3])
        var text: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &text) { t in
            let out = t.baseAddress!.assumingMemoryBound(to: CChar.self)
            if family == AF_INET {
                guard inet_ntop(AF_INET, a.baseAddress! + 4, out, socklen_t(t.count)) != nil else { return }
            } else if family == AF_INET6, a.count >= 24 {
                guard inet_ntop(AF_INET6, a.baseAddress! + 8, out, socklen_t(t.count)) != nil else { return }
            } else {
                return
            }
            body(UnsafeRawBufferPointer(start: t.baseAddress, count: strlen(out)), port)
        }
    }

    package static func transport(family: Int32, sockType: UInt16, protocol proto: UInt16) -> StaticString {
        switch Int32(proto) {
        case Int32(IPPROTO_TCP) where family != AF_UNIX: return "\"tcp\""
        case Int32(IPPROTO_UDP) where family != AF_UNIX: return "\"udp\""
        case Int32(IPPROTO_ICMP) where family != AF_UNIX: return "\"icmp\""
        case Int32(IPPROTO_ICMPV6) where family != AF_UNIX: return "\"icmpv6\""
        case Int32(IPPROTO_SCTP) where family != AF_UNIX: return "\"sctp\""
        default: break
        }
        switch Int32(sockType) {
        case Int32(SOCK_STREAM.rawValue): return "\"stream\""
        case Int32(SOCK_DGRAM.rawValue): return "\"dgram\""
        case Int32(SOCK_SEQPACKET.rawValue): return "\"seqpacket\""
        case Int32(SOCK_RAW.rawValue): return "\"raw\""
        default: return "\"unknown\""
        }
    }
}
