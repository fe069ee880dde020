import Glibc
import Synchronization

/// Appends record lines to a file (created 0640) or to standard output. Each batch goes out in
/// as few write(2) calls as the kernel allows; a short write is continued, never dropped.
public final class FileSink: RecordSink {
    let fd: Int32
    let ownsFD: Bool
    public let description: String
    public private(set) var writeErrors: UInt64 = 0
    public private(set) var bytesWritten: UInt64 = 0
    /// The chain of the file's last record when it was opened, which the next record continues.
    public let chainTail: [UInt8]?

    /// Opens `path` for appending, creating it and its directory (0750) when missing. A file
    /// that already holds records is continued: its last record's chain is read back (a bounded
    /// read from the end), and a last line cut short by a crash is ended with a newline so the
    /// next record starts a line of its own.
    public init(path: String) throws(AgentError) {
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !dir.isEmpty { Self.makeDirectories(dir) }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            let e = errno
            throw AgentError("cannot open output \(path): \(String(cString: strerror(e))): choose another --output or fix its directory")
        }
        let tail = RecordChain.lastChain(path: path)
        if !tail.endsWithNewline {
            var nl = UInt8(ascii: "\n")
            _ = Glibc.write(fd, &nl, 1)
        }
        chainTail = tail.chain
        self.fd = fd
        ownsFD = true
        description = path
    }

    /// Writes to an already open descriptor (standard output).
    public init(fd: Int32, description: String) {
        self.fd = fd
        ownsFD = false
        self.description = description
        chainTail = nil
    }

    deinit { if ownsFD { close(fd) } }

    public func write(_ lines: UnsafeRawBufferPointer) {
        var off = 0
        while off < lines.count {
            let n = Glibc.write(fd, lines.baseAddress! + off, lines.count - off)
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                writeErrors += 1
                return
            }
            off += n
        }
        bytesWritten += UInt64(off)
    }

    public func flush() {}

    static func makeDirectories(_ path: String) {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            mkdir(current, 0o750)
        }
    }
}

/// Keeps record lines in memory: for tests and for tools that read the stream in-process.
public final class MemorySink: RecordSink, Sendable {
    private let data = Mutex<[UInt8]>([])
    public let description = "memory"

    public init() {}

    public func write(_ lines: UnsafeRawBufferPointer) {
        data.withLock { $0.append(contentsOf: lines) }
    }

    public func flush() {}

    /// Every complete line written so far.
    public var lines: [String] {
        data.withLock { String(decoding: $0, as: UTF8.self).split(separator: "\n").map(String.init) }
    }
}
