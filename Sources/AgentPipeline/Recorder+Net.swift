import AgentRecords
import AgentSessions
import CAgentEvents
import Glibc

/// The net records the socket hooks write: unconnected sends (`net.send`) and DNS messages
/// (`net.dns`), and the destination name the other net records carry.
extension Recorder {
    /// `,"dname":"NAME"` when the session resolved the destination from a name.
    func dnameMember(_ dname: String?) {
        guard let dname else { return }
        buffer.raw(",\"dname\":")
        buffer.string(dname)
    }

    /// A send aggregate's last record: its socket was released, or its slot taken.
    static func sendIsFinal(_ x: agent_send) -> Bool {
        x.reason == UInt8(AGENT_SEND_FINAL.rawValue) || x.reason == UInt8(AGENT_SEND_EVICTED.rawValue)
    }

    /// A record's destination and source (16-byte fields, ports in host order) as the
    /// sockaddr_in or sockaddr_in6 a connect carries, for `SocketAddress`.
    static func sockaddrs<T>(family: UInt16, daddr: T, dport: UInt16, saddr: T, sport: UInt16) -> (remote: [UInt8], local: [UInt8]) {
        (sockaddr(family: family, daddr, port: dport), sockaddr(family: family, saddr, port: sport))
    }

    private static func sockaddr<T>(family: UInt16, _ address: T, port: UInt16) -> [UInt8] {
        var address = address
        return withUnsafeBytes(of: &address) { a -> [UInt8] in
            let v6 = Int32(family) == AF_INET6
            var out = [UInt8](repeating: 0, count: v6 ? 28 : 16)
            out[0] = UInt8(truncatingIfNeeded: family)
            out[1] = UInt8(truncatingIfNeeded: family >> 8)
            out[2] = UInt8(port >> 8)
            out[3] = UInt8(port & 0xFF)
            if v6 {
                for i in 0..<16 where i < a.count { out[8 + i] = a[i] }
            } else {
                for i in 0..<4 where i < a.count { out[4 + i] = a[i] }
            }
            return out
        }
    }

    private func packetAddresses<T>(family: UInt16, daddr: T, dport: UInt16, saddr: T, sport: UInt16, sockType: UInt16, protocol proto: UInt16) {
        let (remote, local) = Self.sockaddrs(family: family, daddr: daddr, dport: dport, saddr: saddr, sport: sport)
        remote.withUnsafeBytes { r in
            local.withUnsafeBytes { l in
                SocketAddress.write(into: &buffer, remote: r, local: l, sockType: sockType, protocol: proto)
            }
        }
    }

    /// `net.send`: what a socket sent to one destination without a connection, so far.
    /// `firstNs`/`lastNs`: the first and last datagram's wall time.
    func netSend(_ s: Session, _ p: ProcessInfo, _ x: agent_send, dname: String?, firstNs: Int64, lastNs: Int64, unixNs: Int64) {
        begin(.netSend, unixNs: unixNs)
        sessionAndProcess(s, p, tid: x.hdr.tid)
        buffer.raw(",\"net\":{")
        packetAddresses(family: x.family, daddr: x.daddr, dport: x.dport, saddr: x.saddr, sport: x.sport, sockType: x.sock_type, protocol: x.protocol)
        dnameMember(dname)
        buffer.raw(",\"bytes_sent\":")
        buffer.uint(x.bytes)
        buffer.raw(",\"bytes_sent_delta\":")
        buffer.uint(x.bytes_delta)
        buffer.raw(",\"datagrams\":")
        buffer.uint(x.datagrams)
        buffer.raw(",\"datagrams_delta\":")
        buffer.uint(x.datagrams_delta)
        buffer.raw(",\"first_time\":")
        buffer.timestamp(unixNanoseconds: firstNs)
        buffer.raw(",\"last_time\":")
        buffer.timestamp(unixNanoseconds: lastNs)
        buffer.raw(",\"final\":")
        buffer.bool(Self.sendIsFinal(x))
        if x.reason == UInt8(AGENT_SEND_EVICTED.rawValue) { buffer.raw(",\"evicted\":true") }
        buffer.raw("}")
        end(.netSend)
    }

    /// `net.dns`: a DNS message a session socket sent (query) or received (answer). `message`
    /// nil: too short to read (the header names nothing). `cut`: the kernel copied part of it.
    /// `unmatched`: an answer to no query the session was seen to send.
    func netDNS(_ s: Session, _ p: ProcessInfo, _ d: agent_dns, _ message: DNSMessage?, cut: Bool, unmatched: Bool, unixNs: Int64) {
        begin(.netDNS, unixNs: unixNs)
        sessionAndProcess(s, p, tid: d.hdr.tid)
        buffer.raw(",\"net\":{")
        packetAddresses(family: d.family, daddr: d.daddr, dport: d.dport, saddr: d.saddr, sport: d.sport, sockType: 0, protocol: UInt16(d.transport))
        let answer = d.direction == UInt8(AGENT_DNS_ANSWER.rawValue)
        buffer.raw("},\"dns\":{\"direction\":")
        buffer.raw(answer ? "\"answer\"" : "\"query\"")
        if let m = message {
            buffer.raw(",\"id\":")
            buffer.uint(UInt64(m.id))
            if let name = m.name {
                buffer.raw(",\"name\":")
                buffer.string(name)
            }
            if let qtype = m.qtype {
                buffer.raw(",\"type\":")
                buffer.string(DNSMessage.typeName(qtype))
            }
            buffer.raw(",\"flags\":")
            buffer.stringArray(m.flagNames)
            if answer {
                buffer.raw(",\"rcode\":")
                buffer.string(DNSMessage.rcodeName(m.rcode))
                buffer.raw(",\"answers\":[")
                for (i, a) in m.answers.enumerated() {
                    if i > 0 { buffer.raw(",") }
                    buffer.raw("{\"name\":")
                    buffer.string(a.name)
                    buffer.raw(",\"type\":")
                    buffer.string(DNSMessage.typeName(a.type))
                    buffer.raw(",\"ttl\":")
                    buffer.uint(UInt64(a.ttl))
                    if let data = a.data {
                        buffer.raw(",\"data\":")
                        buffer.string(data)
                    }
                    buffer.raw("}")
                }
                buffer.raw("],\"resolved_ip\":")
                buffer.stringArray(m.addresses.map { DNSMessage.addressText($0.address) })
            }
            if !m.complete || cut { buffer.raw(",\"cut\":true") }
        } else if cut {
            buffer.raw(",\"cut\":true")
        }
        if unmatched { buffer.raw(",\"unmatched\":true") }
        buffer.raw("}")
        end(.netDNS)
    }
}
