/// The compiled kernel programs of agentwatch, embedded at build time by the BPFBuild plugin,
/// with the names of their programs, maps and settings (Program, Map, Rodata: generated from
/// the object, see bpf/tools/bpf-skeleton.c).
public enum AgentProbes {
    /// The BPF object file (ELF) built from bpf/*.bpf.c.
    public static func object() -> [UInt8] {
        let text = EmbeddedBPFObject.base64
        return text.withUTF8Buffer { Base64.decode($0) } ?? []
    }
}

/// A base64 decoder for the one embedded literal; Foundation is not pulled in for it.
enum Base64 {
    static func decode(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(c)] = UInt8(i)
        }
        var out = [UInt8]()
        out.reserveCapacity(text.count / 4 * 3)
        var acc: UInt32 = 0
        var bits = 0
        for c in text {
            if c == UInt8(ascii: "=") { break }
            let v = table[Int(c)]
            if v == 0xFF { return nil }
            acc = (acc << 6) | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        return out
    }
}
