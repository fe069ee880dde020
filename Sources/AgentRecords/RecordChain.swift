import Crypto
import Glibc

/// The hash chain that makes a record stream tamper-evident (DESIGN "Record format"). Each
/// record ends with `,"chain":"<64 hex>"}`; the hex is SHA-256 over the previous record's chain
/// (64 ASCII hex bytes; 64 `0`s before a stream's first record) followed by the record's line
/// without that member: the line up to `,"chain":` with `}` appended.
package enum RecordChain {
    /// The chain a fresh stream starts from.
    package static let zero = [UInt8](repeating: UInt8(ascii: "0"), count: 64)
    /// `,"chain":"` — what precedes the hex in a line.
    static let memberPrefix: [UInt8] = Array(",\"chain\":\"".utf8)
    /// `,"chain":"` + 64 hex + `"}`.
    package static let memberLength = 10 + 64 + 2

    /// Where the declared chain's 64 hex bytes are in `line` (no newline), when the line ends
    /// with a well-formed chain member; nil otherwise.
    package static func declaredHex(in line: UnsafeRawBufferPointer) -> Range<Int>? {
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
    package static func digest(prev: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer) -> SHA256Digest {
        var hasher = SHA256()
        hasher.update(bufferPointer: prev)
        hasher.update(bufferPointer: body)
        withUnsafeBytes(of: UInt8(ascii: "}")) { hasher.update(bufferPointer: $0) }
        return hasher.finalize()
    }

    /// Whether `line` (no newline) carries the chain computed from `prev`.
    package static func matches(line: UnsafeRawBufferPointer, prev: UnsafeRawBufferPointer) -> Bool {
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

    /// `digest` as 64 lowercase hex bytes into `out` (at least 64 bytes): one call a record,
    /// the loop inlined here (a call per digit across the module boundary cost more than the
    /// digits).
    package static func writeHex(_ digest: SHA256Digest, to out: UnsafeMutableBufferPointer<UInt8>) {
        precondition(out.count >= 64)
        digest.withUnsafeBytes { d in
            for i in 0..<32 {
                let b = d[i]
                out[2 * i] = hexDigit(b >> 4)
                out[2 * i + 1] = hexDigit(b & 0xF)
            }
        }
    }

    @inline(__always)
    package static func hexDigit(_ v: UInt8) -> UInt8 {
        // Without a branch (64 digits a record): 9 - v is negative exactly for a-f, and its
        // arithmetic shift then gives all ones, masked to the 39 between '9' + 1 and 'a'.
        UInt8(ascii: "0") &+ v &+ (UInt8(bitPattern: (Int8(9) &- Int8(bitPattern: v)) >> 7) & 39)
    }

    @inline(__always)
    static func isLowerHex(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f"))
    }

    /// How far back from the end of a file `tail(path:)` looks for the last line.
    static let tailBytes = 1 << 20

    /// What the file at `path` ends with, read from at most the last MiB (see `RecordTail`).
    /// A last line cut short (no newline: a write the kernel stopped when the daemon was killed)
    /// is measured, and the record before it is the last record: the next run continues its chain.
    package static func tail(path: String) -> RecordTail {
        var t = RecordTail()
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return t }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return t }
        t.empty = false
        let size = Int(st.st_size)
        let want = min(size, tailBytes)
        var window = [UInt8](repeating: 0, count: want)
        var got = 0
        while got < want {
            let n = window.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, want - got, off_t(size - want + got)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return t }
            got += n
        }
        // The last whole line ends at the last newline; what follows it is a cut line.
        t.endsWithNewline = window[want - 1] == UInt8(ascii: "\n")
        guard let end = window.lastIndex(of: UInt8(ascii: "\n")) else {
            if want == size { t.cutBytes = size }
            return t
        }
        t.cutBytes = want - 1 - end
        // That line must start within the window (or the file must start there).
        var start = end
        while start > 0 && window[start - 1] != UInt8(ascii: "\n") { start -= 1 }
        if start == 0 && want < size { return t }
        window.withUnsafeBytes { raw in
            let line = UnsafeRawBufferPointer(rebasing: raw[start..<end])
            guard let hex = declaredHex(in: line), let (seq, time, type) = RecorderLine.header(of: line) else { return }
            t.chain = Array(line[hex])
            t.lastSeq = seq
            t.lastType = String(decoding: line[type], as: UTF8.self)
            t.lastTime = String(decoding: line[time], as: UTF8.self)
        }
        return t
    }
}

/// What an output file ends with when a daemon opens it: the chain its records continue, and
/// how the run that wrote them ended, which the next `agent.start` states (`previous_run`).
public struct RecordTail: Sendable, Equatable {
    /// False when the file holds at least one byte.
    package var empty = true
    /// The last whole record's chain (64 hex bytes); nil when no whole record could be read at
    /// the end (then a writer starts a fresh chain).
    package var chain: [UInt8]?
    /// False when the file is non-empty and its last byte is not a newline (a write cut short).
    package var endsWithNewline = true
    /// Bytes after the last newline: the part of a line that was being written (0: none).
    package var cutBytes = 0
    /// The last whole record's `seq`, `type` and `time` as written; nil with `chain`.
    package var lastSeq: UInt64?
    package var lastType: String?
    package var lastTime: String?

    package init() {}

    /// How the run that wrote the file ended: `clean` (its last record is `agent.stop`),
    /// `unclean` (any other record, or a line cut short), `unknown` (no record could be read);
    /// nil for an empty or missing file.
    package var ended: String? {
        if empty { return nil }
        if cutBytes > 0 { return "unclean" }
        guard let lastType else { return "unknown" }
        return lastType == "agent.stop" ? "clean" : "unclean"
    }
}
