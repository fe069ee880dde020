import Glibc

/// Where a replay's report goes: a file descriptor behind a 256 KiB buffer. A write that fails
/// (a closed pipe, a full disk) is remembered and further output dropped.
package final class ReplayOutput {
    private let fd: Int32
    private let owned: Bool
    private var buffer: [UInt8] = []
    package private(set) var error: String?

    package init(fd: Int32) {
        self.fd = fd
        owned = false
        buffer.reserveCapacity(1 << 18)
    }

    /// A new file (replacing one that exists, never following a symlink), readable by its owner
    /// only: a report holds what the capture holds.
    package init(path: String) throws(ReplayOutputError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ReplayOutputError(message: "\(path): cannot write: \(String(cString: strerror(errno)))") }
        self.fd = fd
        owned = true
        buffer.reserveCapacity(1 << 18)
    }

    deinit {
        flush()
        if owned { close(fd) }
    }

    package func write(_ s: String) {
        var s = s
        s.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    package func write(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 18 { flush() }
    }

    package func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    package func flush() {
        defer { buffer.removeAll(keepingCapacity: true) }
        guard error == nil else { return }
        var done = 0
        while done < buffer.count {
            let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                error = String(cString: strerror(errno))
                return
            }
            done += n
        }
    }
}

package struct ReplayOutputError: Error, CustomStringConvertible {
    package let message: String
    package var description: String { message }
}
