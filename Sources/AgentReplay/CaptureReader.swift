import CZlib
import Glibc

/// Reads capture files as one stream of record lines, in bounded memory: 1 MiB at a time, a
/// gzipped file (a compressed rotation) through zlib, a line never held beyond
/// `maxLineBytes`. Problems with the bytes themselves — a file that cannot be read, a line too
/// long, a last line without its newline — are reported with file and line, and reading goes on
/// where it can.
struct CaptureReader {
    /// Longer lines are reported and skipped, never held whole (the limit `verify` uses).
    static let maxLineBytes = ChainVerifier.maxLineBytes

    enum Problem {
        /// The file cannot be opened or its (compressed) data is corrupt: the rest of it is lost.
        case unreadable
        /// A line over `maxLineBytes`: skipped.
        case tooLong
        /// The last line has no newline (a write cut short): skipped.
        case incomplete
    }

    private var pending: [UInt8] = []
    private var chunk: [UInt8] = []
    private var number = 0
    /// A line over the limit: its start was reported; the rest up to its newline is dropped.
    private var skipping = false

    typealias LineHandler = (UnsafeRawBufferPointer, Int) -> Void
    typealias ProblemHandler = (Problem, ChainVerifier.Finding) -> Void

    /// Calls `line` with each complete line of `path` (no newline) and its number, and
    /// `problem` for what cannot be read. The line's bytes are valid only during the call.
    mutating func read(path: String, line: LineHandler, problem: ProblemHandler) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0, let gz = gzdopen(fd, "rb") else {
            problem(.unreadable, .init(file: path, line: 0, message: "cannot read: \(String(cString: strerror(errno)))"))
            if fd >= 0 { close(fd) }
            return
        }
        defer { gzclose(gz) }
        gzbuffer(gz, 1 << 17)
        if chunk.isEmpty { chunk = [UInt8](repeating: 0, count: 1 << 20) }
        begin()
        while true {
            let n = Int(chunk.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32($0.count)) })
            if n < 0 {
                var code: Int32 = 0
                let message = gzerror(gz, &code).map { String(cString: $0) } ?? "read error"
                problem(.unreadable, .init(file: path, line: number + 1, message: "cannot read further: \(message); the rest of the file is not replayed"))
                return
            }
            if n == 0 { break }
            chunk.withUnsafeBytes { feed(UnsafeRawBufferPointer(rebasing: $0[0..<n]), path, line, problem) }
        }
        finish(path, problem)
    }

    /// The same for a file's bytes held in memory (`name` in findings), not decompressed.
    mutating func read(bytes: UnsafeRawBufferPointer, name: String, line: LineHandler, problem: ProblemHandler) {
        begin()
        feed(bytes, name, line, problem)
        finish(name, problem)
    }

    private mutating func begin() {
        pending.removeAll(keepingCapacity: true)
        number = 0
        skipping = false
    }

    /// Splits `data` into lines; a line cut by the end of `data` waits in `pending`.
    private mutating func feed(_ data: UnsafeRawBufferPointer, _ path: String, _ line: LineHandler, _ problem: ProblemHandler) {
        let n = data.count
        var start = 0
        while start < n {
            let rest = n - start
            guard let hit = memchr(data.baseAddress! + start, 0x0A, rest) else {
                if skipping { return }
                if pending.count + rest > Self.maxLineBytes {
                    problem(.tooLong, .init(file: path, line: number + 1, message: "line longer than \(Self.maxLineBytes >> 20) MiB: skipped"))
                    pending.removeAll(keepingCapacity: true)
                    skipping = true
                } else {
                    pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: data[start..<n]))
                }
                return
            }
            let nl = data.baseAddress!.distance(to: UnsafeRawPointer(hit))
            number += 1
            if skipping {
                skipping = false
            } else if pending.count + (nl - start) > Self.maxLineBytes {
                problem(.tooLong, .init(file: path, line: number, message: "line longer than \(Self.maxLineBytes >> 20) MiB: skipped"))
                pending.removeAll(keepingCapacity: true)
            } else if pending.isEmpty {
                line(UnsafeRawBufferPointer(rebasing: data[start..<nl]), number)
            } else {
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: data[start..<nl]))
                pending.withUnsafeBytes { line($0, number) }
                pending.removeAll(keepingCapacity: true)
            }
            start = nl + 1
        }
    }

    private mutating func finish(_ path: String, _ problem: ProblemHandler) {
        if !skipping && !pending.isEmpty {
            problem(.incomplete, .init(file: path, line: number + 1, message: "incomplete last line (no newline): the write was cut short or the file was truncated; skipped"))
        }
        pending.removeAll(keepingCapacity: pending.capacity <= 1 << 20)
    }
}
