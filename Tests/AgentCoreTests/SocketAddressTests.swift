@testable import AgentPipeline
@testable import AgentRecords
import Foundation
import Glibc
import Testing

private func sockaddrIn(_ ip: String, _ port: UInt16) throws -> [UInt8] {
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET)
    sin.sin_port = port.bigEndian
    try #require(inet_pton(AF_INET, ip, &sin.sin_addr) == 1)
    return rawBytes(of: sin)
}

private func sockaddrIn6(_ ip: String, _ port: UInt16) throws -> [UInt8] {
    var sin6 = sockaddr_in6()
    sin6.sin6_family = sa_family_t(AF_INET6)
    sin6.sin6_port = port.bigEndian
    try #require(inet_pton(AF_INET6, ip, &sin6.sin6_addr) == 1)
    return rawBytes(of: sin6)
}

/// sun_family and the first `length` bytes of sun_path, as connect(2) would get them.
private func sockaddrUn(path: [UInt8]) -> [UInt8] {
    rawBytes(of: sa_family_t(AF_UNIX)) + path
}

/// What SocketAddress writes, as raw JSON text between braces.
private func render(remote: [UInt8], local: [UInt8] = [], sockType: Int32 = 0, proto: Int32 = 0) -> [UInt8] {
    var j = JSONBuffer(capacity: 128)
    j.raw("{")
    remote.withUnsafeBytes { r in
        local.withUnsafeBytes { l in
            SocketAddress.write(into: &j, remote: r, local: l, sockType: UInt16(sockType), protocol: UInt16(proto))
        }
    }
    j.raw("}")
    return j.bytes
}

/// The same, parsed: it must be a JSON object.
private func fields(remote: [UInt8], local: [UInt8] = [], sockType: Int32 = 0, proto: Int32 = 0) throws -> [String: Any] {
    let text = render(remote: remote, local: local, sockType: sockType, proto: proto)
    let object = try JSONSerialization.jsonObject(with: Data(text))
    return try #require(object as? [String: Any], "not an object: \(String(decoding: text, as: UTF8.self))")
}

private let stream = Int32(SOCK_STREAM.rawValue)
private let dgram = Int32(SOCK_DGRAM.rawValue)
private let tcp = Int32(IPPROTO_TCP)
private let udp = Int32(IPPROTO_UDP)

@Suite("SocketAddress")
struct SocketAddressTests {
    @Test func ipv4WithLocalAddress() throws {
        let f = try fields(remote: try sockaddrIn("93.184.216.34", 443), local: try sockaddrIn("10.0.0.5", 51000),
                           sockType: stream, proto: tcp)
        #expect(f["family"] as? String == "ipv4")
        #expect(f["transport"] as? String == "tcp")
        #expect(f["daddr"] as? String == "93.184.216.34")
        #expect(f["dport"] as? Int == 443)
        #expect(f["saddr"] as? String == "10.0.0.5")
        #expect(f["sport"] as? Int == 51000)
        #expect(f["v4_mapped"] == nil)
        #expect(f.count == 6)
    }

    @Test func ipv4WithoutLocalAddress() throws {
        let f = try fields(remote: try sockaddrIn("127.0.0.1", 53), sockType: dgram, proto: udp)
        #expect(f["transport"] as? String == "udp")
        #expect(f["daddr"] as? String == "127.0.0.1")
        #expect(f["dport"] as? Int == 53)
        #expect(f["saddr"] == nil)
        #expect(f["sport"] == nil)
    }

    @Test func portIsReadInNetworkOrder() throws {
        let f = try fields(remote: try sockaddrIn("1.2.3.4", 0x0102))
        #expect(f["dport"] as? Int == 258)
        let g = try fields(remote: try sockaddrIn("1.2.3.4", 65535))
        #expect(g["dport"] as? Int == 65535)
    }

    @Test func ipv6() throws {
        let f = try fields(remote: try sockaddrIn6("2001:db8::1", 8080), local: try sockaddrIn6("fe80::1:2", 40000),
                           sockType: stream, proto: tcp)
        #expect(f["family"] as? String == "ipv6")
        #expect(f["transport"] as? String == "tcp")
        #expect(f["daddr"] as? String == "2001:db8::1")
        #expect(f["dport"] as? Int == 8080)
        #expect(f["saddr"] as? String == "fe80::1:2")
        #expect(f["sport"] as? Int == 40000)
        #expect(f["v4_mapped"] == nil)
    }

    @Test func ipv4MappedIPv6() throws {
        let f = try fields(remote: try sockaddrIn6("::ffff:10.1.2.3", 22), sockType: stream, proto: tcp)
        #expect(f["family"] as? String == "ipv6")
        #expect(f["v4_mapped"] as? Bool == true)
        #expect(f["daddr"] as? String == "::ffff:10.1.2.3")
        #expect(f["dport"] as? Int == 22)
    }

    @Test(arguments: ["::1", "::", "::ffff:0:1.2.3.4", "64:ff9b::1.2.3.4", "::fffe:1.2.3.4", "1::ffff:1.2.3.4"])
    func notV4Mapped(_ ip: String) throws {
        let f = try fields(remote: try sockaddrIn6(ip, 1))
        #expect(f["family"] as? String == "ipv6")
        #expect(f["v4_mapped"] == nil)
    }

    @Test func unixPath() throws {
        let path = Array("/run/docker.sock".utf8)
        let f = try fields(remote: sockaddrUn(path: path + [0]), sockType: stream)
        #expect(f["family"] as? String == "unix")
        #expect(f["transport"] as? String == "stream")
        #expect(f["path"] as? String == "/run/docker.sock")
        #expect(f["abstract"] == nil)
        #expect(f["daddr"] == nil)
    }

    /// A full sockaddr_un: the path ends at its NUL, whatever follows.
    @Test func unixPathStopsAtNul() throws {
        var sun = sockaddr_un()
        sun.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sun.sun_path) { p in
            for (i, b) in "/tmp/s\0garbage".utf8.enumerated() { p[i] = b }
        }
        let f = try fields(remote: rawBytes(of: sun), sockType: dgram)
        #expect(f["path"] as? String == "/tmp/s")
        #expect(f["transport"] as? String == "dgram")
    }

    /// An IP protocol number means nothing for a unix socket: the socket type names it.
    @Test func unixIgnoresIPProtocol() throws {
        let f = try fields(remote: sockaddrUn(path: Array("/s".utf8)), sockType: stream, proto: tcp)
        #expect(f["transport"] as? String == "stream")
    }

    @Test func abstractUnixName() throws {
        let f = try fields(remote: sockaddrUn(path: [0] + Array("my-agent.sock".utf8)), sockType: stream)
        #expect(f["family"] as? String == "unix")
        #expect(f["abstract"] as? Bool == true)
        #expect(f["path"] as? String == "@my-agent.sock")
    }

    /// Abstract names are bytes, NULs and all; they are escaped like any other string.
    @Test func abstractNameWithNulAndInvalidBytes() {
        let text = String(decoding: render(remote: sockaddrUn(path: [0, 0x61, 0x00, 0xFF, 0x62])), as: UTF8.self)
        #expect(text == #"{"family":"unix","transport":"unknown","abstract":true,"path":"@a\u0000\udcffb"}"#)
    }

    @Test func unnamedUnixSocketHasNoPath() throws {
        let f = try fields(remote: sockaddrUn(path: []), sockType: stream)
        #expect(f["family"] as? String == "unix")
        #expect(f["path"] == nil)
        #expect(f["abstract"] == nil)
    }

    @Test func unspecDisconnects() throws {
        let f = try fields(remote: rawBytes(of: sa_family_t(AF_UNSPEC)) + [UInt8](repeating: 0, count: 14), sockType: dgram)
        #expect(f["family"] as? String == "unspec")
        #expect(f["transport"] as? String == "dgram")
        #expect(f["daddr"] == nil)
    }

    @Test func otherFamiliesAreNamedByNumber() throws {
        let f = try fields(remote: rawBytes(of: sa_family_t(AF_NETLINK)) + [0, 0, 0, 0], sockType: Int32(SOCK_RAW.rawValue))
        #expect(f["family"] as? String == "af_\(AF_NETLINK)")
        #expect(f["transport"] as? String == "raw")
    }

    @Test func emptyOrShortAddresses() throws {
        let empty = try fields(remote: [])
        #expect(empty["family"] as? String == "unspec")
        #expect(empty["transport"] as? String == "unknown")
        #expect(empty.count == 2)
        let one = try fields(remote: [2])
        #expect(one["family"] as? String == "unspec")
        // Family says IPv4 but the address is cut: no address rather than a wrong one.
        let v4 = try fields(remote: Array(try sockaddrIn("1.2.3.4", 80).prefix(7)))
        #expect(v4["family"] as? String == "ipv4")
        #expect(v4["daddr"] == nil)
        let v6 = try fields(remote: Array(try sockaddrIn6("::ffff:1.2.3.4", 80).prefix(23)))
        #expect(v6["family"] as? String == "ipv6")
        #expect(v6["daddr"] == nil)
        #expect(v6["v4_mapped"] == nil)
    }

    @Test(arguments: [
        (Int32(AF_INET), Int32(IPPROTO_ICMP), Int32(SOCK_DGRAM.rawValue), "icmp"),
        (Int32(AF_INET6), Int32(IPPROTO_ICMPV6), Int32(SOCK_DGRAM.rawValue), "icmpv6"),
        (Int32(AF_INET), Int32(IPPROTO_SCTP), Int32(SOCK_STREAM.rawValue), "sctp"),
        (Int32(AF_INET), 0, Int32(SOCK_SEQPACKET.rawValue), "seqpacket"),
        (Int32(AF_INET), 0, 0, "unknown"),
        (Int32(AF_UNIX), Int32(IPPROTO_UDP), Int32(SOCK_DGRAM.rawValue), "dgram"),
    ])
    func transport(_ family: Int32, _ proto: Int32, _ sockType: Int32, _ expected: String) {
        let name = SocketAddress.transport(family: family, sockType: UInt16(sockType), protocol: UInt16(proto))
        #expect(name.description == "\"\(expected)\"")
    }

    /// Random bytes behind each family never crash and always give a JSON object.
    @Test func randomAddressesGiveValidJSON() throws {
        var rng = SeededGenerator(seed: 110)
        for _ in 0..<2000 {
            let family = [AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC, AF_PACKET][Int(rng.next() % 5)]
            var remote = rng.bytes(Int(rng.next() % 113))
            if remote.count >= 2 { remote.replaceSubrange(0..<2, with: rawBytes(of: sa_family_t(family))) }
            let local = rng.bytes(Int(rng.next() % 33))
            let text = render(remote: remote, local: local, sockType: Int32(rng.next() % 6), proto: Int32(rng.next() % 140))
            #expect(String(validating: text, as: UTF8.self) != nil)
            // The unix path may carry \udcXX escapes, which a strict parser may refuse; the
            // rest must parse.
            if !text.contains(UInt8(ascii: "\\")) {
                #expect((try? JSONSerialization.jsonObject(with: Data(text))) is [String: Any],
                        "\(String(decoding: text, as: UTF8.self))")
            }
        }
    }
}

@Suite("Open flags and errno names")
struct FlagNameTests {
    private func names(_ flags: Int32) throws -> [String] {
        try names(UInt64(UInt32(bitPattern: flags)))
    }

    private func names(_ flags: UInt64) throws -> [String] {
        var cache: [UInt64: [UInt8]] = [:]
        let json = OpenFlags.json(flags, cache: &cache)
        return try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String])
    }

    @Test func readOnlyCloexec() throws {
        #expect(try names(O_RDONLY | O_CLOEXEC) == ["O_RDONLY", "O_CLOEXEC"])
        var cache: [UInt64: [UInt8]] = [:]
        #expect(String(decoding: OpenFlags.json(UInt64(O_RDONLY | O_CLOEXEC), cache: &cache), as: UTF8.self)
                == #"["O_RDONLY","O_CLOEXEC"]"#)
    }

    @Test func writeCreateTruncate() throws {
        #expect(try names(O_WRONLY | O_CREAT | O_TRUNC) == ["O_WRONLY", "O_CREAT", "O_TRUNC"])
    }

    @Test func accessModes() throws {
        #expect(try names(O_RDONLY) == ["O_RDONLY"])
        #expect(try names(O_RDWR | O_APPEND | O_EXCL | O_CREAT) == ["O_RDWR", "O_CREAT", "O_EXCL", "O_APPEND"])
        #expect(try names(O_ACCMODE) == ["O_ACCMODE3"])
    }

    @Test func multiBitFlagsAreNamedOnce() throws {
        // O_SYNC is __O_SYNC | O_DSYNC, O_TMPFILE is __O_TMPFILE | O_DIRECTORY.
        #expect(try names(O_WRONLY | O_SYNC) == ["O_WRONLY", "O_DSYNC", "O_SYNC"])
        #expect(try names(O_WRONLY | O_DSYNC) == ["O_WRONLY", "O_DSYNC"])
        #expect(try names(O_RDWR | 0o20_200_000) == ["O_RDWR", "O_DIRECTORY", "O_TMPFILE"])
        #expect(try names(O_DIRECTORY | O_NOFOLLOW) == ["O_RDONLY", "O_DIRECTORY", "O_NOFOLLOW"])
        #expect(try names(Int32(0o10_000_000)) == ["O_RDONLY", "O_PATH"])
    }

    @Test func unknownBitsShowAsHex() throws {
        #expect(try names(UInt64(1) << 40) == ["O_RDONLY", "0x10000000000"])
        #expect(try names(UInt64(O_WRONLY) | 1 << 63 | 1 << 33) == ["O_WRONLY", "0x8000000200000000"])
        #expect(try names(UInt64(O_CREAT) | 1 << 30) == ["O_RDONLY", "O_CREAT", "0x40000000"])
    }

    /// 0x8000 is O_LARGEFILE on x86 (the kernel's value; 32-bit programs pass it), but glibc's
    /// 64-bit O_LARGEFILE is 0, so the table entry built from it can never match.
    @Test
    func largefileIsNamed() throws {
        #if arch(x86_64)
        #expect(try names(UInt64(0x8000)) == ["O_RDONLY", "O_LARGEFILE"])
        #endif
    }

    /// The names and the hex rest put back together give the flags again: no bit is lost or
    /// named twice.
    @Test func namesAccountForEveryBit() throws {
        var bits: [String: UInt64] = ["O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2, "O_ACCMODE3": 3]
        for (bit, name) in OpenFlags.names { bits[name] = UInt64(UInt32(bitPattern: bit)) }
        var rng = SeededGenerator(seed: 0o777)
        for _ in 0..<2000 {
            let flags = rng.next() & rng.next() & (rng.next() % 2 == 0 ? 0xFFFF_FFFF : UInt64.max)
            let parts = try names(flags)
            var back: UInt64 = 0
            for p in parts {
                let v = try #require(p.hasPrefix("0x") ? UInt64(p.dropFirst(2), radix: 16) : bits[p], "unknown name \(p)")
                #expect(back & v == 0, "\(p) named twice in \(parts)")
                back |= v
            }
            #expect(back == flags, "\(parts)")
            #expect(parts.filter { $0.hasPrefix("0x") }.count <= 1)
        }
    }

    @Test func cacheReturnsTheSameBytes() {
        var cache: [UInt64: [UInt8]] = [:]
        let first = OpenFlags.json(UInt64(O_WRONLY | O_CREAT), cache: &cache)
        #expect(cache[UInt64(O_WRONLY | O_CREAT)] == first)
        #expect(OpenFlags.json(UInt64(O_WRONLY | O_CREAT), cache: &cache) == first)
        #expect(cache.count == 1)
    }

    @Test func errnoNames() {
        #expect(ErrnoNames.name(2) == "ENOENT")
        #expect(ErrnoNames.name(EACCES) == "EACCES")
        #expect(ErrnoNames.name(EINPROGRESS) == "EINPROGRESS")
        #expect(ErrnoNames.name(ECONNREFUSED) == "ECONNREFUSED")
        #expect(ErrnoNames.name(9999) == "E9999")
        #expect(ErrnoNames.name(-5) == "E-5")
        var cache: [Int32: [UInt8]] = [:]
        #expect(String(decoding: ErrnoNames.json(ENOENT, cache: &cache), as: UTF8.self) == #""ENOENT""#)
        #expect(cache[ENOENT] != nil)
    }
}
