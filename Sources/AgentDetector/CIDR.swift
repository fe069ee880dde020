/// An IP address as 128 bits; IPv4 is held v4-mapped (`::ffff:a.b.c.d`), so an IPv4 prefix
/// matches both `1.2.3.4` and `::ffff:1.2.3.4`.
struct IPAddress: Equatable, Sendable {
    var hi: UInt64
    var lo: UInt64

    init(hi: UInt64, lo: UInt64) {
        self.hi = hi
        self.lo = lo
    }

    init(v4: UInt32) {
        hi = 0
        lo = 0xFFFF_0000_0000 | UInt64(v4)
    }

    /// Parses dotted IPv4 or IPv6 text (a `%zone` suffix is ignored).
    package static func parse(_ b: UnsafeBufferPointer<UInt8>) -> (address: IPAddress, isV4: Bool)? {
        var end = b.count
        if let zone = b.firstIndex(of: 0x25) { end = zone }
        let text = UnsafeBufferPointer(rebasing: b[0..<end])
        if !text.contains(0x3A) {
            return parseV4(text).map { (IPAddress(v4: $0), true) }
        }
        return parseV6(text).map { ($0, false) }
    }

    package static func parse(_ s: String) -> (address: IPAddress, isV4: Bool)? {
        var copy = s
        return copy.withUTF8 { parse($0) }
    }

    private static func parseV4(_ b: UnsafeBufferPointer<UInt8>) -> UInt32? {
        var value: UInt32 = 0
        var octets = 0
        var current: UInt32 = 0
        var digits = 0
        for c in b {
            if c >= 0x30, c <= 0x39 {
                current = current * 10 + UInt32(c - 0x30)
                digits += 1
                guard digits <= 3, current <= 255 else { return nil }
            } else if c == 0x2E {
                guard digits > 0, octets < 3 else { return nil }
                value = value << 8 | current
                octets += 1
                current = 0
                digits = 0
            } else {
                return nil
            }
        }
        guard digits > 0, octets == 3 else { return nil }
        return value << 8 | current
    }

    private static func parseV6(_ b: UnsafeBufferPointer<UInt8>) -> IPAddress? {
        // SIMD vectors as fixed arrays: parsing runs per record and must not allocate.
        var head = SIMD8<UInt16>()
        var tail = SIMD8<UInt16>()
        var headCount = 0
        var tailCount = 0
        var sawGap = false
        func append(_ v: UInt16) -> Bool {
            guard headCount + tailCount < 8 else { return false }
            if sawGap { tail[tailCount] = v; tailCount += 1 } else { head[headCount] = v; headCount += 1 }
            return true
        }
        var i = 0
        let n = b.count
        if n >= 2, b[0] == 0x3A, b[1] == 0x3A {
            sawGap = true
            i = 2
        } else if n >= 1, b[0] == 0x3A {
            return nil
        }
        while i < n {
            var j = i
            while j < n, b[j] != 0x3A { j += 1 }
            let group = UnsafeBufferPointer(rebasing: b[i..<j])
            if group.contains(0x2E) {
                // An embedded IPv4 address ends the text.
                guard j == n, let v4 = parseV4(group), append(UInt16(v4 >> 16)), append(UInt16(v4 & 0xFFFF)) else { return nil }
                break
            }
            guard !group.isEmpty, group.count <= 4 else { return nil }
            var v: UInt16 = 0
            for c in group {
                guard let d = hexValue(c) else { return nil }
                v = v << 4 | UInt16(d)
            }
            guard append(v) else { return nil }
            i = j
            if i < n {
                // At a ':'; a second one right after is the `::` gap.
                i += 1
                if i < n, b[i] == 0x3A {
                    guard !sawGap else { return nil }
                    sawGap = true
                    i += 1
                } else if i == n {
                    return nil
                }
            }
        }
        let total = headCount + tailCount
        guard sawGap ? total <= 7 : total == 8 else { return nil }
        var words = head
        for k in 0..<tailCount { words[8 - tailCount + k] = tail[k] }
        var hi: UInt64 = 0
        var lo: UInt64 = 0
        for k in 0..<4 { hi = hi << 16 | UInt64(words[k]) }
        for k in 4..<8 { lo = lo << 16 | UInt64(words[k]) }
        return IPAddress(hi: hi, lo: lo)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
}

/// A network prefix (`10.0.0.0/8`, `fd00::/8`, or a bare address as /32 or /128).
struct CIDRBlock: Sendable, Equatable {
    let network: IPAddress
    let mask: IPAddress

    init?(_ text: String) {
        var addressText = Substring(text)
        var length: Int?
        if let slash = text.firstIndex(of: "/") {
            addressText = text[..<slash]
            guard let l = Int(text[text.index(after: slash)...]), l >= 0 else { return nil }
            length = l
        }
        guard let (address, isV4) = IPAddress.parse(String(addressText)) else { return nil }
        let bits = (length ?? (isV4 ? 32 : 128)) + (isV4 ? 96 : 0)
        guard bits <= 128 else { return nil }
        let hiBits = min(bits, 64)
        let loBits = max(bits - 64, 0)
        let maskHi: UInt64 = hiBits == 0 ? 0 : ~0 << UInt64(64 - hiBits)
        let maskLo: UInt64 = loBits == 0 ? 0 : ~0 << UInt64(64 - loBits)
        mask = IPAddress(hi: maskHi, lo: maskLo)
        // Host bits written in the prefix (10.1.2.3/8) are ignored, as `ip route` does.
        network = IPAddress(hi: address.hi & maskHi, lo: address.lo & maskLo)
    }

    @inline(__always)
    func contains(_ a: IPAddress) -> Bool {
        a.hi & mask.hi == network.hi && a.lo & mask.lo == network.lo
    }
}
