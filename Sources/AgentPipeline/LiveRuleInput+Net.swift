import AgentDetector
import AgentRecords
import CAgentEvents
import Glibc

/// The values of net.send and net.dns records as rules see them live: what the Recorder
/// writes for them (Recorder+Net.swift), computed from the same kernel record.
extension LiveRuleInput {
    /// net.via as the record writes it.
    static func viaName(_ via: UInt8) -> StaticString {
        switch UInt32(via) {
        case AGENT_CONNECT_VIA_IO_URING.rawValue: "io_uring"
        case AGENT_CONNECT_VIA_OTHER.rawValue: "other"
        default: "connect"
        }
    }

    func sendValue(_ field: RuleField, _ x: agent_send, dname: String?) -> RuleValue? {
        switch field {
        case .netBytesSent: return .int(Int64(bitPattern: x.bytes))
        case .netBytesSentDelta: return .int(Int64(bitPattern: x.bytes_delta))
        case .netDatagrams: return .int(Int64(bitPattern: x.datagrams))
        case .netDatagramsDelta: return .int(Int64(bitPattern: x.datagrams_delta))
        case .netFinal: return .bool(Recorder.sendIsFinal(x))
        case .netDname: return dname.map { .string($0) }
        default:
            let (remote, local) = Recorder.sockaddrs(family: x.family, daddr: x.daddr, dport: x.dport, saddr: x.saddr, sport: x.sport)
            return Self.addressValue(field, remote: remote, local: local, sockType: x.sock_type, protocol: x.protocol)
        }
    }

    func dnsValue(_ field: RuleField, _ d: agent_dns, _ m: DNSMessage?, unmatched: Bool) -> RuleValue? {
        let answer = d.direction == UInt8(AGENT_DNS_ANSWER.rawValue)
        switch field {
        case .dnsDirection: return .string(answer ? "answer" : "query")
        case .dnsID: return m.map { .int(Int64($0.id)) }
        case .dnsName: return m?.name.map { .string($0) }
        case .dnsType: return m?.qtype.map { .string(DNSMessage.typeName($0)) }
        case .dnsFlags: return m.map { .list($0.flagNames) }
        case .dnsRcode: return answer ? m.map { .string(DNSMessage.rcodeName($0.rcode)) } : nil
        case .dnsResolvedIP: return answer ? m.map { .list($0.addresses.map { DNSMessage.addressText($0.address) }) } : nil
        case .dnsUnmatched: return unmatched ? .bool(true) : nil
        default:
            let (remote, local) = Recorder.sockaddrs(family: d.family, daddr: d.daddr, dport: d.dport, saddr: d.saddr, sport: d.sport)
            return Self.addressValue(field, remote: remote, local: local, sockType: 0, protocol: UInt16(d.transport))
        }
    }

    /// family, transport, daddr, dport, saddr, sport of a record made of two sockaddrs.
    static func addressValue(_ field: RuleField, remote: [UInt8], local: [UInt8], sockType: UInt16, protocol proto: UInt16) -> RuleValue? {
        let family = remote.count >= 2 ? Int32(remote.withUnsafeBytes { $0.loadUnaligned(as: UInt16.self) }) : 0
        switch field {
        case .netFamily: return .string(family == AF_INET6 ? "ipv6" : "ipv4")
        case .netTransport:
            let quoted = "\(SocketAddress.transport(family: family, sockType: sockType, protocol: proto))"
            return .string(String(quoted.dropFirst().dropLast()))
        case .netDaddr, .netDport, .netSaddr, .netSport:
            let a = field == .netDaddr || field == .netDport ? remote : local
            var out: RuleValue?
            a.withUnsafeBytes { raw in
                SocketAddress.inet(raw) { text, port in
                    out = field == .netDport || field == .netSport ? .int(Int64(port)) : .string(String(decoding: text, as: UTF8.self))
                }
            }
            return out
        default: return nil
        }
    }
}
