import Glibc

/// A line as the Recorder writes it, `{"v":1,"seq":N,"time":"...","type":"T",...}`, read
/// without parsing: split from a buffer of lines, its seq and type peeked from the fixed header
/// for the outputs' and the chain's per-line work. Anything past the header is `JSONReader`'s.
package enum RecorderLine {
    package static let seqPrefix = Array("{\"v\":1,\"seq\":".utf8)
    static let typeKey = Array("\"type\":\"".utf8)
    package static let alertType = Array("alert".utf8)
    package static let lossType = Array("agent.loss".utf8)

    /// Calls `body` with each line of `lines` (newline excluded).
    @inline(__always)
    package static func forEach(in lines: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        guard let base = lines.baseAddress else { return }
        var start = 0
        while start < lines.count {
            let rest = lines.count - start
            let nl = memchr(base + start, 0x0A, rest).map { $0 - UnsafeMutableRawPointer(mutating: base) } ?? lines.count
            body(UnsafeRawBufferPointer(rebasing: lines[start..<nl]))
            start = nl + 1
        }
    }

    /// The `seq` of a line; 0 when the line does not start like a record.
    static func seq(of line: UnsafeRawBufferPointer) -> UInt64 {
        guard line.count > seqPrefix.count, line.starts(with: seqPrefix) else { return 0 }
        var v: UInt64 = 0
        for b in line[seqPrefix.count...] {
            guard b >= 0x30 && b <= 0x39 else { break }
            v = v &* 10 &+ UInt64(b - 0x30)
        }
        return v
    }

    /// The seq, and where the time's and the type's text are, of a line whose header is exactly
    /// as the recorder writes it, `{"v":1,"seq":N,"time":"<RFC 3339>","type":"T",`: N without a
    /// leading zero and below 10^19, a time of digits and `-:T.Z` only (no escape can hide a
    /// quote). Nil otherwise. Not a JSON reader: a fixed prefix checked byte by byte, for the
    /// outputs' and the chain's per-line work (anything else goes to `JSONReader`).
    package static func header(of line: UnsafeRawBufferPointer) -> (seq: UInt64, time: Range<Int>, type: Range<Int>)? {
        guard line.count > seqPrefix.count, line.starts(with: seqPrefix) else { return nil }
        var i = seqPrefix.count
        var seq: UInt64 = 0
        while i < line.count, line[i] >= 0x30, line[i] <= 0x39, i - seqPrefix.count < 19 {
            seq = seq * 10 + UInt64(line[i] - 0x30)
            i += 1
        }
        guard i > seqPrefix.count, line[seqPrefix.count] != 0x30 || i == seqPrefix.count + 1,
              follows(timeKey, in: line, at: i) else { return nil }
        i += timeKey.count
        let timeStart = i
        while i < line.count, line[i] != UInt8(ascii: "\"") {
            let c = line[i]
            guard (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x3A || c == 0x54 || c == 0x2E || c == 0x5A else { return nil }
            i += 1
        }
        guard follows(afterTime, in: line, at: i) else { return nil }
        let time = timeStart..<i
        i += afterTime.count
        var end = i
        while end < line.count, line[end] != UInt8(ascii: "\"") {
            guard line[end] != UInt8(ascii: "\\") else { return nil }
            end += 1
        }
        return end < line.count ? (seq, time, i..<end) : nil
    }

    package static let timeKey = Array(",\"time\":\"".utf8)
    package static let afterTime = Array("\",\"type\":\"".utf8)

    private static func follows(_ text: [UInt8], in line: UnsafeRawBufferPointer, at i: Int) -> Bool {
        line.count >= i + text.count && UnsafeRawBufferPointer(rebasing: line[i..<(i + text.count)]).elementsEqual(text)
    }

    /// The `type` of the first line in `lines` (looked for in its first 128 bytes).
    package static func type(of lines: UnsafeRawBufferPointer) -> ArraySlice<UInt8> {
        let window = lines.prefix(128)
        guard let at = firstIndex(of: typeKey, in: window) else { return [] }
        let start = at + typeKey.count
        var end = start
        while end < window.count && window[end] != UInt8(ascii: "\"") { end += 1 }
        return ArraySlice(window[start..<end])
    }

    static func firstIndex(of needle: [UInt8], in hay: UnsafeRawBufferPointer.SubSequence) -> Int? {
        guard hay.count >= needle.count else { return nil }
        var i = hay.startIndex
        while i + needle.count <= hay.endIndex {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
