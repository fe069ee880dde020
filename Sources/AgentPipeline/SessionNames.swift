import AgentRecords
import CAgentEvents
import Glibc

/// The names a session resolved, by address: a DNS answer to a query the session sent binds
/// each A and AAAA address in it to the name the session asked for, for the record's TTL held
/// between `ttlFloorNs` and `ttlCeilingNs`, so that its later net.connect, net.flow and
/// net.send records carry `net.dname`. Only an answer to a query this table saw go out (the
/// same socket, id, name and server) binds: a datagram from port 53 nobody asked for names
/// nothing. Bounded: `capacity` names and `pendingCapacity` queries waiting for an answer; a
/// full table first drops what has expired, then what expires soonest.
final class SessionNames {
    static let capacity = 4096
    static let pendingCapacity = 256
    /// An answer with TTL 0 (or 1 s) is still what the connect right after it uses.
    static let ttlFloorNs: Int64 = 60 * 1_000_000_000
    /// A name held longer than a day is more likely reused for something else.
    static let ttlCeilingNs: Int64 = 24 * 3600 * 1_000_000_000
    /// How long a query waits for its answer.
    static let queryTimeoutNs: Int64 = 30 * 1_000_000_000

    /// An address as 16 bytes, an IPv4 address in its IPv4-mapped form (::ffff:a.b.c.d), so a
    /// connect to either form finds it.
    struct Address: Hashable {
        var hi: UInt64
        var lo: UInt64

        init?(_ bytes: UnsafeRawBufferPointer) {
            switch bytes.count {
            case 4:
                hi = 0
                lo = 0xFFFF_0000_0000 | UInt64(bytes[0]) << 24 | UInt64(bytes[1]) << 16 | UInt64(bytes[2]) << 8 | UInt64(bytes[3])
            case 16:
                hi = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self).bigEndian
                lo = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self).bigEndian
            default:
                return nil
            }
        }

        init?(_ bytes: [UInt8]) {
            guard let a = bytes.withUnsafeBytes({ Address($0) }) else { return nil }
            self = a
        }

        /// The address of a sockaddr_in or sockaddr_in6.
        init?(sockaddr a: UnsafeRawBufferPointer) {
            guard a.count >= 8 else { return nil }
            let family = Int32(a.loadUnaligned(as: UInt16.self))
            if family == AF_INET {
                self.init(UnsafeRawBufferPointer(rebasing: a[4..<8]))
            } else if family == AF_INET6, a.count >= 24 {
                self.init(UnsafeRawBufferPointer(rebasing: a[8..<24]))
            } else {
                return nil
            }
        }

        /// The address of a record's 16-byte field, `family` AF_INET (first 4 bytes) or AF_INET6.
        init?(family: UInt16, bytes: UnsafeRawBufferPointer) {
            switch Int32(family) {
            case AF_INET where bytes.count >= 4: self.init(UnsafeRawBufferPointer(rebasing: bytes[0..<4]))
            case AF_INET6 where bytes.count >= 16: self.init(UnsafeRawBufferPointer(rebasing: bytes[0..<16]))
            default: return nil
            }
        }
    }

    struct Query: Hashable {
        var cookie: UInt64
        var id: UInt16
    }

    private struct Pending {
        var name: String
        var server: Address
        var sentNs: Int64
    }

    private var names: [Address: (name: String, expiresNs: Int64)] = [:]
    private var pending: [Query: Pending] = [:]

    var count: Int { names.count }

    /// A query the session sent: its answer may bind.
    func query(cookie: UInt64, id: UInt16, name: String, server: Address, nowNs: Int64) {
        if pending.count >= Self.pendingCapacity {
            pending = pending.filter { nowNs - $0.value.sentNs < Self.queryTimeoutNs }
            if pending.count >= Self.pendingCapacity, let oldest = pending.min(by: { $0.value.sentNs < $1.value.sentNs }) {
                pending[oldest.key] = nil
            }
        }
        pending[Query(cookie: cookie, id: id)] = Pending(name: name, server: server, sentNs: nowNs)
    }

    /// An answer the session received: binds its addresses when it answers a query seen here.
    /// Returns false for an answer no query asked for.
    @discardableResult
    func answer(cookie: UInt64, message m: DNSMessage, server: Address, nowNs: Int64) -> Bool {
        let key = Query(cookie: cookie, id: m.id)
        guard let q = pending[key], q.server == server, nowNs - q.sentNs < Self.queryTimeoutNs, m.name == q.name else {
            return false
        }
        // A truncated answer (TC) is followed by the same query over TCP: keep waiting for it.
        if m.flagBits & 0x0200 == 0 { pending[key] = nil }
        guard m.rcode == 0 else { return true }
        for (address, ttl) in m.addresses {
            guard let a = Address(address) else { continue }
            bind(a, name: q.name, ttlNs: Int64(ttl) * 1_000_000_000, nowNs: nowNs)
        }
        return true
    }

    func bind(_ a: Address, name: String, ttlNs: Int64, nowNs: Int64) {
        let held = min(max(ttlNs, Self.ttlFloorNs), Self.ttlCeilingNs)
        if names[a] == nil && names.count >= Self.capacity {
            names = names.filter { $0.value.expiresNs > nowNs }
            if names.count >= Self.capacity, let soonest = names.min(by: { $0.value.expiresNs < $1.value.expiresNs }) {
                names[soonest.key] = nil
            }
        }
        names[a] = (name, nowNs + held)
    }

    /// The name the session resolved `a` from, while its binding holds.
    func name(for a: Address?, nowNs: Int64) -> String? {
        guard let a, let entry = names[a], entry.expiresNs > nowNs else { return nil }
        return entry.name
    }
}
