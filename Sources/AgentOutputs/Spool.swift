import AgentRecords
import AgentSupport
import Glibc

/// Records a sink could not deliver yet, on disk, oldest first, bounded in bytes: segment files
/// `NNNNNNNNNNNN.spool` in the spool directory (0700), appended to, read from the front and
/// removed once delivered. How far the oldest segment was delivered is kept in `position`, so a
/// restarted daemon delivers what is left and nothing twice. Every file is opened, renamed and
/// removed through the spool's `TrustedDirectory`. Used from the sink's worker only.
final class Spool {
    let directory: String
    private let dir: TrustedDirectory
    let maxBytes: Int
    static let segmentBytes = 8 << 20
    /// Segment numbers, oldest first; the last one is appended to.
    private var segments: [UInt64] = []
    /// Delivered bytes of the oldest segment.
    private var readOffset = 0
    /// Bytes spooled and not yet delivered.
    private(set) var bytes = 0
    private var writeFD: Int32 = -1
    private var writeSize = 0

    init(directory: String, maxBytes: Int) throws(AgentError) {
        self.directory = directory
        self.maxBytes = maxBytes
        dir = try TrustedDirectory(directory, purpose: "spool_dir", create: 0o700)
        // Regular files only: anything else there is not a segment of ours.
        for name in dir.names() where name.hasSuffix(".spool") {
            if let n = UInt64(name.dropLast(6)), let st = dir.status(name), st.st_mode & S_IFMT == S_IFREG { segments.append(n) }
        }
        segments.sort()
        if let text = readPosition() {
            let parts = text.split(separator: " ").compactMap { Int(String($0).trimmingCharacters()) }
            if parts.count == 2, let first = segments.first, UInt64(parts[0]) == first { readOffset = parts[1] }
        }
        for (i, n) in segments.enumerated() {
            if let st = dir.status(name(n)) { bytes += Int(st.st_size) - (i == 0 ? readOffset : 0) }
        }
        bytes = max(bytes, 0)
    }

    /// The saved `position`, at most a line's worth.
    private func readPosition() -> String? {
        let fd = dir.open("position", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return n > 0 ? String(decoding: buf[..<n], as: UTF8.self) : nil
    }

    deinit { if writeFD >= 0 { close(writeFD) } }

    var isEmpty: Bool { bytes == 0 }

    private func name(_ n: UInt64) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, 12 - digits.count)) + digits + ".spool"
    }

    /// Appends whole lines; returns the lines that did not fit below the bound (the caller counts
    /// them as lost), or empty. A write error is reported like a full spool.
    func append(_ lines: UnsafeRawBufferPointer) -> [UInt8] {
        var room = maxBytes - bytes
        var cut = 0
        // Whole lines only, as many as fit.
        if lines.count > room {
            cut = 0
            RecorderLine.forEach(in: lines) { line in
                let end = line.baseAddress! - lines.baseAddress! + line.count + 1
                if end <= room { cut = end }
            }
        } else {
            cut = lines.count
        }
        var written = 0
        while written < cut {
            if writeFD < 0 || writeSize >= Self.segmentBytes {
                guard openSegment() else { break }
            }
            let n = write(writeFD, lines.baseAddress! + written, cut - written)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            written += n
            writeSize += n
        }
        // A line cut by a failed write stays whole: take it back.
        if written < cut {
            let lineStart = lastLineStart(lines, before: written)
            if writeFD >= 0 { _ = ftruncate(writeFD, off_t(writeSize - (written - lineStart))) }
            writeSize -= written - lineStart
            written = lineStart
        }
        bytes += written
        room -= written
        return Array(lines[written...])
    }

    private func lastLineStart(_ lines: UnsafeRawBufferPointer, before end: Int) -> Int {
        var i = end
        while i > 0 && lines[i - 1] != 0x0A { i -= 1 }
        return i
    }

    private func openSegment() -> Bool {
        if writeFD >= 0 { close(writeFD) }
        let n = (segments.last ?? 0) + 1
        writeFD = dir.open(name(n), O_WRONLY | O_CREAT | O_APPEND, mode: 0o600)
        guard writeFD >= 0 else { return false }
        segments.append(n)
        writeSize = 0
        return true
    }

    /// Where `peek` reads to, allocated once and reused.
    private(set) var front: [UInt8] = []

    /// Reads up to `max` bytes from the front into `front` and returns how many of them are
    /// whole lines, or nil when the spool is empty. `max` must exceed the longest line; what is
    /// left of a segment without a newline (a write cut by a crash) is skipped.
    func peek(max: Int) -> Int? {
        if front.count < max { front = [UInt8](repeating: 0, count: max) }
        while let first = segments.first {
            var got = 0
            let fd = dir.open(name(first), O_RDONLY)
            if fd >= 0 {
                while got < max {
                    let n = front.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, max - got, off_t(readOffset + got)) }
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { break }
                    got += n
                }
                close(fd)
            }
            var end = got
            while end > 0 && front[end - 1] != 0x0A { end -= 1 }
            if end > 0 { return end }
            if got == 0 && segments.count == 1 && writeFD >= 0 { return nil }
            bytes = Swift.max(0, bytes - got)
            dropFirstSegment()
            savePosition()
        }
        return nil
    }

    /// Marks `n` bytes from the front (what `peek` returned, or a prefix of it) as delivered.
    func consume(_ n: Int) {
        guard let first = segments.first else { return }
        readOffset += n
        bytes = Swift.max(0, bytes - n)
        let size = dir.status(name(first)).map { Int($0.st_size) } ?? 0
        if readOffset >= size { dropFirstSegment() }
        savePosition()
    }

    private func dropFirstSegment() {
        guard let first = segments.first else { return }
        if segments.count == 1 && writeFD >= 0 { close(writeFD); writeFD = -1 }
        dir.unlink(name(first))
        segments.removeFirst()
        readOffset = 0
    }

    private func savePosition() {
        dir.replace("position", with: Array("\(segments.first ?? 0) \(readOffset)\n".utf8), mode: 0o600)
    }
}
