import Glibc

/// A DNS message (RFC 1035) as agentwatch reads one: its header, its first question and the
/// resource records of its answer section. The bytes come from a session's socket, so they are
/// hostile: every read is bounds-checked, a compression pointer must point before the label
/// that holds it (so no pointer chain can loop), a name is at most 255 bytes in at most 127
/// labels, and at most `maxQuestions` questions and `maxAnswers` answers are read. Whatever
/// does not parse ends the parse where it stands (`complete` false) with what was read; it
/// never traps.
package struct DNSMessage: Sendable, Equatable {
    /// One resource record of the answer section.
    package struct Answer: Sendable, Equatable {
        /// Its owner name, in presentation form (lowercase, `\.` and `\DDD` escapes).
        package var name: String
        package var type: UInt16
        package var ttl: UInt32
        /// A and AAAA: the address (4 or 16 bytes).
        package var address: [UInt8]?
        /// The data as text: an address, a name (CNAME, NS, PTR, DNAME, MX's exchange, SRV's
        /// target), TXT's first string; nil for a type not read.
        package var data: String?
    }

    package var id: UInt16
    /// QR: a response, not a query.
    package var isResponse: Bool
    package var opcode: UInt8
    package var rcode: UInt8
    /// The header's flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    package var flagBits: UInt16
    package var questionCount: UInt16
    package var answerCount: UInt16
    /// The first question's name (presentation form), type and class; nil without one.
    package var name: String?
    package var qtype: UInt16?
    package var qclass: UInt16?
    package var answers: [Answer]
    /// Everything the header announced was read (questions and answers); false when the
    /// message was cut or malformed before that.
    package var complete: Bool

    package static let headerSize = 12
    package static let maxQuestions = 8
    package static let maxAnswers = 64
    static let maxNameBytes = 255
    static let maxLabels = 127

    /// The message in `bytes`, or nil when it is shorter than a DNS header.
    package static func parse(_ bytes: UnsafeRawBufferPointer) -> DNSMessage? {
        guard bytes.count >= headerSize else { return nil }
        var r = Reader(bytes: bytes)
        let id = r.u16(at: 0)!, flags = r.u16(at: 2)!
        let qd = r.u16(at: 4)!, an = r.u16(at: 6)!
        var m = DNSMessage(id: id, isResponse: flags & 0x8000 != 0, opcode: UInt8((flags >> 11) & 0xF), rcode: UInt8(flags & 0xF),
                           flagBits: flags, questionCount: qd, answerCount: an, name: nil, qtype: nil, qclass: nil,
                           answers: [], complete: false)
        r.at = headerSize
        for i in 0..<min(Int(qd), maxQuestions) {
            guard let name = r.name(), let type = r.u16(), let klass = r.u16() else { return m }
            if i == 0 {
                m.name = name
                m.qtype = type
                m.qclass = klass
            }
        }
        if Int(qd) > maxQuestions { return m }
        for _ in 0..<min(Int(an), maxAnswers) {
            guard let name = r.name(), let type = r.u16(), r.u16() != nil, let ttl = r.u32(), let length = r.u16() else { return m }
            let start = r.at
            guard start + Int(length) <= bytes.count else { return m }
            var answer = Answer(name: name, type: type, ttl: ttl, address: nil, data: nil)
            let rdata = UnsafeRawBufferPointer(rebasing: bytes[start..<(start + Int(length))])
            switch type {
            case DNSType.a where length == 4, DNSType.aaaa where length == 16:
                answer.address = Array(rdata)
                answer.data = DNSMessage.addressText(answer.address!)
            case DNSType.cname, DNSType.ns, DNSType.ptr, DNSType.dname:
                var inner = Reader(bytes: bytes, at: start, end: start + Int(length))
                answer.data = inner.name()
            case DNSType.mx where length >= 3:
                var inner = Reader(bytes: bytes, at: start + 2, end: start + Int(length))
                answer.data = inner.name()
            case DNSType.srv where length >= 7:
                var inner = Reader(bytes: bytes, at: start + 6, end: start + Int(length))
                answer.data = inner.name()
            case DNSType.txt where length >= 1:
                let n = min(Int(rdata[0]), Int(length) - 1)
                answer.data = escapedText(UnsafeRawBufferPointer(rebasing: rdata[1..<(1 + n)]), label: false)
            default:
                break
            }
            m.answers.append(answer)
            r.at = start + Int(length)
        }
        m.complete = Int(an) <= maxAnswers
        return m
    }

    /// The message's header flags by name, in header order: AA, TC, RD, RA, AD, CD.
    package var flagNames: [String] {
        var out: [String] = []
        if flagBits & 0x0400 != 0 { out.append("AA") }
        if flagBits & 0x0200 != 0 { out.append("TC") }
        if flagBits & 0x0100 != 0 { out.append("RD") }
        if flagBits & 0x0080 != 0 { out.append("RA") }
        if flagBits & 0x0020 != 0 { out.append("AD") }
        if flagBits & 0x0010 != 0 { out.append("CD") }
        return out
    }

    /// The A and AAAA answers' addresses.
    package var addresses: [(address: [UInt8], ttl: UInt32)] {
        answers.compactMap { a in a.address.map { ($0, a.ttl) } }
    }

    /// A record type's mnemonic ("A", "AAAA"), or "TYPEn" (RFC 3597).
    package static func typeName(_ type: UInt16) -> String {
        switch type {
        case DNSType.a: "A"
        case DNSType.ns: "NS"
        case DNSType.cname: "CNAME"
        case 6: "SOA"
        case DNSType.ptr: "PTR"
        case 13: "HINFO"
        case DNSType.mx: "MX"
        case DNSType.txt: "TXT"
        case DNSType.aaaa: "AAAA"
        case DNSType.srv: "SRV"
        case 35: "NAPTR"
        case DNSType.dname: "DNAME"
        case 41: "OPT"
        case 43: "DS"
        case 46: "RRSIG"
        case 47: "NSEC"
        case 48: "DNSKEY"
        case 64: "SVCB"
        case 65: "HTTPS"
        case 99: "SPF"
        case 252: "AXFR"
        case 255: "ANY"
        case 257: "CAA"
        default: "TYPE\(type)"
        }
    }

    /// A response code's name ("NXDOMAIN"), or "RCODEn".
    package static func rcodeName(_ rcode: UInt8) -> String {
        switch rcode {
        case 0: "NOERROR"
        case 1: "FORMERR"
        case 2: "SERVFAIL"
        case 3: "NXDOMAIN"
        case 4: "NOTIMP"
        case 5: "REFUSED"
        case 6: "YXDOMAIN"
        case 7: "YXRRSET"
        case 8: "NXRRSET"
        case 9: "NOTAUTH"
        case 10: "NOTZONE"
        default: "RCODE\(rcode)"
        }
    }

    /// An IPv4 (4 bytes) or IPv6 (16 bytes) address as text, as inet_ntop writes it.
    package static func addressText(_ a: [UInt8]) -> String {
        if a.count == 4 { return a.map { String($0) }.joined(separator: ".") }
        guard a.count == 16 else { return "" }
        var text: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
        return a.withUnsafeBytes { src in
            withUnsafeMutableBytes(of: &text) { t in
                let out = t.baseAddress!.assumingMemoryBound(to: CChar.self)
                guard inet_ntop(AF_INET6, src.baseAddress!, out, socklen_t(t.count)) != nil else { return "" }
                return String(cString: out)
            }
        }
    }

    /// Bytes in presentation form: printable ASCII as is (letters lowercased in a label, as
    /// names compare without case), `\.` `\\` `\"` for those in a label, `\DDD` for the rest.
    static func escapedText(_ bytes: UnsafeRawBufferPointer, label: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for b in bytes {
            let special = b == UInt8(ascii: "\\") || b == UInt8(ascii: "\"") || (label && b == UInt8(ascii: "."))
            if special {
                out.append(UInt8(ascii: "\\"))
                out.append(b)
            } else if label && b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") {
                out.append(b | 0x20)
            } else if (b > 0x20 && b < 0x7F) || (b == 0x20 && !label) {
                out.append(b)
            } else {
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "0") + b / 100)
                out.append(UInt8(ascii: "0") + (b / 10) % 10)
                out.append(UInt8(ascii: "0") + b % 10)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Reads big-endian numbers and names, never past `end`.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var at = 0
        let end: Int

        init(bytes: UnsafeRawBufferPointer, at: Int = 0, end: Int? = nil) {
            self.bytes = bytes
            self.at = at
            self.end = min(end ?? bytes.count, bytes.count)
        }

        func u16(at i: Int) -> UInt16? {
            guard i >= 0, i + 2 <= end else { return nil }
            return UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1])
        }

        mutating func u16() -> UInt16? {
            guard let v = u16(at: at) else { return nil }
            at += 2
            return v
        }

        mutating func u32() -> UInt32? {
            guard let hi = u16(at: at), let lo = u16(at: at + 2) else { return nil }
            at += 4
            return UInt32(hi) << 16 | UInt32(lo)
        }

        /// A domain name at `at`, following compression pointers (which may point anywhere in
        /// the message before the label holding them); `at` moves past the name as it is in
        /// place. The root is ".". nil when the name is malformed or runs past the message.
        mutating func name() -> String? {
            var labels: [String] = []
            var total = 0
            var pos = at
            var limit = end
            var jumped = false
            // The lowest offset a pointer may point to next: strictly before the last one.
            var pointerBound = pos
            while true {
                guard pos < limit, labels.count <= DNSMessage.maxLabels else { return nil }
                let len = Int(bytes[pos])
                switch len & 0xC0 {
                case 0x00:
                    if len == 0 {
                        if !jumped { at = pos + 1 }
                        return labels.isEmpty ? "." : labels.joined(separator: ".")
                    }
                    guard pos + 1 + len <= limit else { return nil }
                    total += len + 1
                    guard total <= DNSMessage.maxNameBytes else { return nil }
                    labels.append(DNSMessage.escapedText(UnsafeRawBufferPointer(rebasing: bytes[(pos + 1)..<(pos + 1 + len)]), label: true))
                    pos += 1 + len
                case 0xC0:
                    guard pos + 2 <= limit else { return nil }
                    let target = (len & 0x3F) << 8 | Int(bytes[pos + 1])
                    // Backward only: each jump lands before the previous one, so a chain ends.
                    guard target < pointerBound else { return nil }
                    if !jumped { at = pos + 2 }
                    jumped = true
                    pointerBound = target
                    pos = target
                    // A name pointed to may lie anywhere in the message, not only in the
                    // record being read.
                    limit = bytes.count
                default:
                    // 0x40 and 0x80: extended label types (RFC 6891 deprecated them): refused.
                    return nil
                }
            }
        }
    }
}

/// Record types agentwatch reads the data of.
package enum DNSType {
    package static let a: UInt16 = 1
    package static let ns: UInt16 = 2
    package static let cname: UInt16 = 5
    package static let ptr: UInt16 = 12
    package static let mx: UInt16 = 15
    package static let txt: UInt16 = 16
    package static let aaaa: UInt16 = 28
    package static let srv: UInt16 = 33
    package static let dname: UInt16 = 39
}
