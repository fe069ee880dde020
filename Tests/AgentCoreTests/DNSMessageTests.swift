@testable import AgentPipeline
@testable import AgentRecords
import Glibc
import Testing

/// DNS messages as a resolver writes them, for the tests (RFC 1035 wire format).
enum DNSWire {
    static func name(_ n: String) -> [UInt8] {
        var out: [UInt8] = []
        for label in n.split(separator: ".") {
            out.append(UInt8(label.utf8.count))
            out += Array(label.utf8)
        }
        return out + [0]
    }

    static func u16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    static func u32(_ v: UInt32) -> [UInt8] { u16(UInt16(v >> 16)) + u16(UInt16(v & 0xFFFF)) }

    static func header(id: UInt16, flags: UInt16, qd: UInt16, an: UInt16, ns: UInt16 = 0, ar: UInt16 = 0) -> [UInt8] {
        u16(id) + u16(flags) + u16(qd) + u16(an) + u16(ns) + u16(ar)
    }

    static func query(id: UInt16, name n: String, type: UInt16 = 1) -> [UInt8] {
        header(id: id, flags: 0x0100, qd: 1, an: 0) + name(n) + u16(type) + u16(1)
    }

    /// An answer to `name`: a CNAME to `alias` first when given (compressed against the
    /// question), then each address as an A or AAAA record owned by the alias or the name.
    static func answer(id: UInt16, name n: String, type: UInt16 = 1, alias: String? = nil, addresses: [[UInt8]], ttl: UInt32 = 300,
                       rcode: UInt16 = 0) -> [UInt8] {
        let count = UInt16(addresses.count + (alias == nil ? 0 : 1))
        var m = header(id: id, flags: 0x8180 | rcode, qd: 1, an: count) + name(n) + u16(type) + u16(1)
        var owner: [UInt8] = [0xC0, 12]
        if let alias {
            let target = name(alias)
            m += owner + u16(5) + u16(1) + u32(ttl) + u16(UInt16(target.count)) + []
            let at = m.count
            m += target
            owner = [0xC0 | UInt8(at >> 8), UInt8(at & 0xFF)]
        }
        for a in addresses {
            m += owner + u16(a.count == 4 ? 1 : 28) + u16(1) + u32(ttl) + u16(UInt16(a.count)) + a
        }
        return m
    }

    static func v4(_ text: String) -> [UInt8] {
        var a = in_addr()
        inet_pton(AF_INET, text, &a)
        return withUnsafeBytes(of: a) { Array($0) }
    }

    static func v6(_ text: String) -> [UInt8] {
        var a = in6_addr()
        inet_pton(AF_INET6, text, &a)
        return withUnsafeBytes(of: a) { Array($0) }
    }
}

@Suite("DNS messages (hostile input)")
struct DNSMessageTests {
    func parse(_ b: [UInt8]) -> DNSMessage? { b.withUnsafeBytes { DNSMessage.parse($0) } }

    @Test func query() throws {
        let m = try #require(parse(DNSWire.query(id: 0xBEEF, name: "Exfil.Example.TEST", type: 28)))
        #expect(m.id == 0xBEEF && !m.isResponse && m.questionCount == 1 && m.answerCount == 0)
        #expect(m.name == "exfil.example.test")
        #expect(m.qtype == 28 && m.qclass == 1)
        #expect(m.flagNames == ["RD"])
        #expect(m.complete && m.answers.isEmpty)
    }

    @Test func answerWithCompressionAndCNAME() throws {
        let msg = DNSWire.answer(id: 7, name: "www.example.com", alias: "edge.cdn.example.net",
                                 addresses: [DNSWire.v4("93.184.216.34"), DNSWire.v6("2001:db8::1")], ttl: 42)
        let m = try #require(parse(msg))
        #expect(m.isResponse && m.rcode == 0 && m.complete)
        #expect(m.flagNames == ["RD", "RA"])
        #expect(m.name == "www.example.com")
        #expect(m.answers.map(\.type) == [5, 1, 28])
        #expect(m.answers[0].name == "www.example.com" && m.answers[0].data == "edge.cdn.example.net")
        #expect(m.answers[1].name == "edge.cdn.example.net" && m.answers[1].data == "93.184.216.34" && m.answers[1].ttl == 42)
        #expect(m.answers[2].data == "2001:db8::1")
        #expect(m.addresses.map(\.address) == [DNSWire.v4("93.184.216.34"), DNSWire.v6("2001:db8::1")])
        #expect(DNSMessage.typeName(28) == "AAAA" && DNSMessage.typeName(4242) == "TYPE4242")
        #expect(DNSMessage.rcodeName(3) == "NXDOMAIN" && DNSMessage.rcodeName(15) == "RCODE15")
    }

    @Test("odd label bytes are escaped, never trusted")
    func escaping() throws {
        var q = DNSWire.header(id: 1, flags: 0x0100, qd: 1, an: 0)
        q += [5] + Array("a.b\\c".utf8) + [3, 0x00, 0xFF, 0x22] + [0] + DNSWire.u16(1) + DNSWire.u16(1)
        let m = try #require(parse(q))
        #expect(m.name == "a\\.b\\\\c.\\000\\255\\\"")
        // The root.
        let root = try #require(parse(DNSWire.header(id: 2, flags: 0, qd: 1, an: 0) + [0] + DNSWire.u16(2) + DNSWire.u16(1)))
        #expect(root.name == ".")
    }

    @Test("a pointer loop, a forward pointer and a pointer to itself end the parse")
    func pointerLoops() throws {
        // The question's name is a pointer to itself.
        var selfLoop = DNSWire.header(id: 1, flags: 0x8180, qd: 1, an: 0) + [0xC0, 12] + DNSWire.u16(1) + DNSWire.u16(1)
        var m = try #require(parse(selfLoop))
        #expect(m.name == nil && !m.complete)
        // Two labels pointing at each other: "a" -> offset 15 ("b") -> back to 12.
        selfLoop = DNSWire.header(id: 1, flags: 0x8180, qd: 1, an: 0) + [1, 0x61, 0xC0, 15, 1, 0x62, 0xC0, 12]
        m = try #require(parse(selfLoop))
        #expect(m.name == nil && !m.complete)
        // A forward pointer (legal pointers go backward only).
        let forward = DNSWire.header(id: 1, flags: 0x8180, qd: 1, an: 0) + [0xC0, 20] + DNSWire.u16(1) + DNSWire.u16(1) + [0, 0, 0, 0, 1, 0x61, 0]
        m = try #require(parse(forward))
        #expect(m.name == nil)
        // Reserved label types 0x40 and 0x80.
        m = try #require(parse(DNSWire.header(id: 1, flags: 0, qd: 1, an: 0) + [0x41, 0]))
        #expect(m.name == nil)
    }

    @Test("names past 255 bytes or 127 labels are refused")
    func longNames() throws {
        let long = String(repeating: "a", count: 63)
        let name = [long, long, long, long, long].joined(separator: ".")
        let m = try #require(parse(DNSWire.query(id: 1, name: name)))
        #expect(m.name == nil && !m.complete)
        // 128 one-byte labels via a pointer chain is refused by the same bounds.
        var labels: [UInt8] = []
        for _ in 0..<130 { labels += [1, 0x61] }
        let n = try #require(parse(DNSWire.header(id: 1, flags: 0, qd: 1, an: 0) + labels + [0] + DNSWire.u16(1) + DNSWire.u16(1)))
        #expect(n.name == nil)
    }

    @Test("counts larger than the message, and cut messages, give what was read")
    func truncated() throws {
        let full = DNSWire.answer(id: 9, name: "x.test", addresses: [DNSWire.v4("10.0.0.1"), DNSWire.v4("10.0.0.2")])
        for cut in 0..<full.count {
            let m = parse(Array(full.prefix(cut)))
            if cut < 12 {
                #expect(m == nil)
            } else {
                let m = try #require(m)
                #expect(m.id == 9)
                #expect(m.answers.count <= 2)
                if cut < full.count { #expect(!m.complete || m.answers.count == 2) }
            }
        }
        // An answer count of 65535 with no answers: nothing read, nothing trapped.
        var lying = DNSWire.query(id: 3, name: "y.test")
        lying[6] = 0xFF
        lying[7] = 0xFF
        let m = try #require(parse(lying))
        #expect(m.answers.isEmpty && !m.complete && m.name == "y.test")
        // An RDLENGTH past the end.
        var bad = DNSWire.answer(id: 4, name: "z.test", addresses: [DNSWire.v4("10.1.1.1")])
        bad[bad.count - 6] = 0x7F
        #expect(try #require(parse(bad)).answers.isEmpty)
        // An A record whose RDLENGTH is not 4: kept, without an address.
        var odd = DNSWire.answer(id: 5, name: "z.test", addresses: [DNSWire.v4("10.1.1.1")])
        odd[odd.count - 5] = 3
        let o = try #require(parse(Array(odd.dropLast())))
        #expect(o.answers.count == 1 && o.answers[0].address == nil && o.addresses.isEmpty)
    }

    @Test("50,000 random and mutated messages: no crash, no hang")
    func fuzz() {
        var rng = SeededGenerator(seed: 0xD115_0000_0000_0053)
        let seeds = [
            DNSWire.query(id: 1, name: "a.b.example.com"),
            DNSWire.answer(id: 2, name: "www.example.com", alias: "cdn.example.net",
                           addresses: [DNSWire.v4("1.2.3.4"), DNSWire.v6("::1")]),
        ]
        var parsed = 0
        for i in 0..<50_000 {
            var b: [UInt8]
            if i % 3 == 0 {
                b = rng.bytes(Int(rng.next() % 600))
            } else {
                b = seeds[i % 2]
                for _ in 0..<(1 + Int(rng.next() % 6)) where !b.isEmpty {
                    let at = Int(rng.next() % UInt64(b.count))
                    // Pointers and lengths are where parsers break: favour them.
                    b[at] = rng.next() % 4 == 0 ? 0xC0 | UInt8(rng.next() % 4) : UInt8(truncatingIfNeeded: rng.next())
                }
                if rng.next() % 4 == 0 { b = Array(b.prefix(Int(rng.next() % UInt64(b.count + 1)))) }
            }
            if let m = parse(b) {
                parsed += 1
                #expect(m.answers.count <= DNSMessage.maxAnswers)
                for a in m.answers { #expect(a.name.utf8.count < 255 * 4 + 1) }
            }
        }
        #expect(parsed > 30_000)
    }

    @Test("an answer binds its addresses to the query's name only when the session sent that query")
    func names() throws {
        let t = SessionNames()
        let server = try #require(SessionNames.Address(DNSWire.v4("127.0.0.53")))
        let answer = try #require(parse(DNSWire.answer(id: 77, name: "exfil.example.test", alias: "x.cdn.test",
                                                       addresses: [DNSWire.v4("203.0.113.9"), DNSWire.v6("2001:db8::9")], ttl: 0)))
        // No query seen: nothing bound.
        #expect(!t.answer(cookie: 5, message: answer, server: server, nowNs: 1_000))
        #expect(t.name(for: SessionNames.Address(DNSWire.v4("203.0.113.9")), nowNs: 1_000) == nil)
        // A query from another socket, or to another server, does not match either.
        t.query(cookie: 6, id: 77, name: "exfil.example.test", server: server, nowNs: 1_000)
        #expect(!t.answer(cookie: 5, message: answer, server: server, nowNs: 2_000))
        t.query(cookie: 5, id: 77, name: "exfil.example.test", server: try #require(SessionNames.Address(DNSWire.v4("10.0.0.1"))), nowNs: 1_000)
        #expect(!t.answer(cookie: 5, message: answer, server: server, nowNs: 2_000))
        t.query(cookie: 5, id: 77, name: "exfil.example.test", server: server, nowNs: 1_000)
        #expect(t.answer(cookie: 5, message: answer, server: server, nowNs: 2_000))
        // The name asked, not the CNAME's target; TTL 0 is held for the floor.
        #expect(t.name(for: SessionNames.Address(DNSWire.v4("203.0.113.9")), nowNs: 3_000) == "exfil.example.test")
        #expect(t.name(for: SessionNames.Address(DNSWire.v6("2001:db8::9")), nowNs: 3_000) == "exfil.example.test")
        // An IPv4-mapped IPv6 destination is the same address.
        #expect(t.name(for: SessionNames.Address(DNSWire.v6("::ffff:203.0.113.9")), nowNs: 3_000) == "exfil.example.test")
        #expect(t.name(for: SessionNames.Address(DNSWire.v4("203.0.113.9")), nowNs: 2_000 + SessionNames.ttlFloorNs + 1) == nil)
        // The answer was used up: replaying it binds nothing more.
        #expect(!t.answer(cookie: 5, message: answer, server: server, nowNs: 4_000))
        // A TTL beyond a day is held a day.
        t.bind(try #require(SessionNames.Address(DNSWire.v4("198.51.100.1"))), name: "long.test", ttlNs: 1 << 62, nowNs: 0)
        #expect(t.name(for: SessionNames.Address(DNSWire.v4("198.51.100.1")), nowNs: SessionNames.ttlCeilingNs - 1) == "long.test")
        #expect(t.name(for: SessionNames.Address(DNSWire.v4("198.51.100.1")), nowNs: SessionNames.ttlCeilingNs + 1) == nil)
    }

    @Test("the name table and the pending queries stay bounded")
    func bounded() throws {
        let t = SessionNames()
        for i in 0..<(SessionNames.capacity + 500) {
            let a = try #require(SessionNames.Address([10, UInt8(i >> 16 & 0xFF), UInt8(i >> 8 & 0xFF), UInt8(i & 0xFF)]))
            t.bind(a, name: "n\(i).test", ttlNs: Int64(i + 1) * 1_000_000_000 * 60, nowNs: 0)
        }
        #expect(t.count == SessionNames.capacity)
        // The soonest to expire went first; the latest are there.
        let last = SessionNames.capacity + 499
        #expect(t.name(for: SessionNames.Address([10, UInt8(last >> 16 & 0xFF), UInt8(last >> 8 & 0xFF), UInt8(last & 0xFF)]), nowNs: 0) != nil)
        #expect(t.name(for: SessionNames.Address([10, 0, 0, 0]), nowNs: 0) == nil)
        let server = try #require(SessionNames.Address(DNSWire.v4("127.0.0.53")))
        for i in 0..<(SessionNames.pendingCapacity * 3) {
            t.query(cookie: UInt64(i), id: UInt16(i & 0xFFFF), name: "q.test", server: server, nowNs: Int64(i))
        }
        // The newest query still matches its answer.
        let n = SessionNames.pendingCapacity * 3 - 1
        let a = try #require(parse(DNSWire.answer(id: UInt16(n & 0xFFFF), name: "q.test", addresses: [DNSWire.v4("10.9.9.9")])))
        #expect(t.answer(cookie: UInt64(n), message: a, server: server, nowNs: Int64(n) + 1))
    }
}
