import Crypto
import Glibc

/// The hash chain that makes a record stream tamper-evident (DESIGN "Record format"). Each
/// record ends with `,"chain":"<64 hex>"}`; the hex is SHA-256 over the previous record's chain
/// (64 ASCII hex bytes; 64 `0`s before a stream's first record) followed by the record's line
/// without that member: the line up to `,"chain":` with `}` appended.
public enum RecordChain {
    /// The chain a fresh stream starts from.
    public static let zero = [UInt8](repeating: UInt8(ascii: "0"), count: 64)
    /// `,"chain":"` — what precedes the hex in a line.
    static let memberPrefix: [UInt8] = Array(",\"chain\":\"".utf8)
    /// `,"chain":"` + 64 hex + `"}`.
    public static let memberLength = 10 + 64 + 2

    /// Where the declared chain's 64 hex bytes are in `line` (no newline), when the line ends
    /// with a well-formed chain member; nil otherwise.
    public static func declaredHex(in line: UnsafeRawBufferPointer) -> Range<Int>? {
        let n = line.count
        guard n > memberLength, line[n - 1] == UInt8(ascii: "}"), line[n - 2] == UInt8(ascii: "\"") else { return nil }
        let start = n - memberLength
        for i in 0..<memberPrefix.count where line[start + i] != memberPrefix[i] { return nil }
        let hex = (start + memberPrefix.count)..<(n - 2)
        for i in hex where !isLowerHex(line[i]) { return nil }
        return hex
    }

    /// The chain of a record: `prev` (64 hex bytes) then `body` (the line up to `,"chain":`)
    /// then `}`, hashed without copying either.
    @inline(__always)
    public static func digest(prev: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer) -> SHA256Digest {
        var hasher = SHA256()
        hasher.update(bufferPointer: prev)
        hasher.update(bufferPointer: body)
        withUnsafeBytes(of: UInt8(ascii: "}")) { hasher.update(bufferPointer: $0) }
        return hasher.finalize()
    }

    /// Whether `line` (no newline) carries the chain computed from `prev`.
    public static func matches(line: UnsafeRawBufferPointer, prev: UnsafeRawBufferPointer) -> Bool {
        guard let hex = declaredHex(in: line) else { return false }
        let d = digest(prev: prev, body: UnsafeRawBufferPointer(rebasing: line[0..<(line.count - memberLength)]))
        return d.withUnsafeBytes { raw in
            var i = hex.lowerBound
            for b in raw {
                if line[i] != hexDigit(b >> 4) || line[i + 1] != hexDigit(b & 0xF) { return false }
                i += 2
            }
            return true
        }
    }

    @inline(__always)
    static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? UInt8(ascii: "0") &+ v : UInt8(ascii: "a") &+ (v &- 10) }

    @inline(__always)
    static func isLowerHex(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f"))
    }

    /// How far back from the end of a file `lastChain` looks for the last line.
    static let tailBytes = 1 << 20

    /// The chain of the last record in the file at `path`, read from at most the last MiB: nil
    /// when the file is missing or empty, or does not end with a complete line carrying a
    /// well-formed chain (then a writer starts a fresh chain). `endsWithNewline` is false when
    /// the file is non-empty and its last byte is not a newline (a write cut short).
    public static func lastChain(path: String) -> (chain: [UInt8]?, endsWithNewline: Bool) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return (nil, true) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return (nil, true) }
        let size = Int(st.st_size)
        let want = min(size, tailBytes)
        var tail = [UInt8](repeating: 0, count: want)
        var got = 0
        while got < want {
            let n = tail.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, want - got, off_t(size - want + got)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return (nil, true) }
            got += n
        }
        guard tail[want - 1] == UInt8(ascii: "\n") else { return (nil, false) }
        // The last line is what follows the newline before the final one; it must start within
        // the window (or the file must start there).
        var start = want - 1
        while start > 0 && tail[start - 1] != UInt8(ascii: "\n") { start -= 1 }
        if start == 0 && want < size { return (nil, true) }
        return tail.withUnsafeBytes { raw in
            let line = UnsafeRawBufferPointer(rebasing: raw[start..<(want - 1)])
            guard line.starts(with: "{\"v\":1,\"seq\":".utf8), let hex = declaredHex(in: line) else { return (nil, true) }
            return (Array(line[hex]), true)
        }
    }
}
