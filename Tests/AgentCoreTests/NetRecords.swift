import CAgentEvents
import Glibc

/// net.send and net.dns kernel records as the socket programs (bpf/flow.bpf.c) write them, for
/// the tests that feed the pipeline.
enum NetRecords {
    /// 16 bytes of an address field: IPv4 in the first 4.
    static func address(_ text: String) -> (family: UInt16, bytes: [UInt8]) {
        var out = [UInt8](repeating: 0, count: 16)
        if text.contains(":") {
            var a = in6_addr()
            inet_pton(AF_INET6, text, &a)
            withUnsafeBytes(of: a) { for i in 0..<16 { out[i] = $0[i] } }
            return (UInt16(AF_INET6), out)
        }
        var a = in_addr()
        inet_pton(AF_INET, text, &a)
        withUnsafeBytes(of: a) { for i in 0..<4 { out[i] = $0[i] } }
        return (UInt16(AF_INET), out)
    }

    static func send(_ hdr: agent_hdr, cookie: UInt64, daddr: String, dport: UInt16, saddr: String, sport: UInt16,
                     bytes: UInt64, datagrams: UInt64, bytesDelta: UInt64, datagramsDelta: UInt64,
                     reason: agent_send_reason, firstNs: UInt64, lastNs: UInt64, sockType: UInt16 = 2, proto: UInt16 = 17) -> [UInt8] {
        var x = agent_send()
        x.hdr = hdr
        x.hdr.kind = UInt8(AGENT_KIND_SEND.rawValue)
        x.hdr.size = UInt16(MemoryLayout<agent_send>.size)
        x.cookie = cookie
        x.first_ns = firstNs
        x.last_ns = lastNs
        x.bytes = bytes
        x.datagrams = datagrams
        x.bytes_delta = bytesDelta
        x.datagrams_delta = datagramsDelta
        x.uid = 1000
        x.gid = 1000
        let d = address(daddr), s = address(saddr)
        x.family = d.family
        x.dport = dport
        x.sport = sport
        x.sock_type = sockType
        x.protocol = proto
        x.reason = UInt8(reason.rawValue)
        withUnsafeMutableBytes(of: &x.daddr) { for i in 0..<16 { $0[i] = d.bytes[i] } }
        withUnsafeMutableBytes(of: &x.saddr) { for i in 0..<16 { $0[i] = s.bytes[i] } }
        return rawBytes(of: x)
    }

    /// A DNS message `message` a session socket sent to (query) or got from (answer) `server`.
    static func dns(_ hdr: agent_hdr, cookie: UInt64, direction: agent_dns_direction, server: String, local: String = "127.0.0.1",
                    localPort: UInt16 = 40053, transport: UInt8 = 17, message: [UInt8], msgLen: Int? = nil) -> [UInt8] {
        var d = agent_dns()
        d.hdr = hdr
        d.hdr.kind = UInt8(AGENT_KIND_DNS.rawValue)
        d.hdr.size = UInt16(MemoryLayout<agent_dns>.size + message.count)
        d.cookie = cookie
        let srv = address(server), loc = address(local)
        d.family = srv.family
        d.sport = localPort
        d.dport = 53
        d.direction = UInt8(direction.rawValue)
        d.transport = transport
        d.len = UInt16(message.count)
        d.msg_len = UInt16(msgLen ?? message.count)
        withUnsafeMutableBytes(of: &d.saddr) { for i in 0..<16 { $0[i] = loc.bytes[i] } }
        withUnsafeMutableBytes(of: &d.daddr) { for i in 0..<16 { $0[i] = srv.bytes[i] } }
        return rawBytes(of: d) + message
    }
}
