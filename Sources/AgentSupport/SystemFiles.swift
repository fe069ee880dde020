import Glibc

/// Reads a whole (small) file, as /proc and /sys files are read: until EOF.
package func readFile(_ path: String) throws(SystemError) -> String {
    String(decoding: try readBytes(path), as: UTF8.self)
}

package func readBytes(_ path: String, limit: Int = 1 << 20) throws(SystemError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemError("open \(path)", errno: errno) }
    defer { close(fd) }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 16384)
    while out.count < limit {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw SystemError("read \(path)", errno: errno)
        }
        if n == 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return out
}

/// Writes all of `bytes` to `fd`, again after EINTR: the count written, which is short only
/// when a write failed (`errno` says why) or made no progress (`errno` 0).
package func writeFully(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
    var off = 0
    while off < bytes.count {
        let n = write(fd, bytes.baseAddress! + off, bytes.count - off)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 {
            if n == 0 { errno = 0 }
            break
        }
        off += n
    }
    return off
}

/// A failed system call, named, with its errno.
package struct SystemError: Error, CustomStringConvertible {
    package let call: String
    package let errno: Int32
    package init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }
    package var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

extension String {
    package func trimmingCharacters() -> String {
        String(self.drop(while: { $0.isWhitespace }).reversed().drop(while: { $0.isWhitespace }).reversed())
    }
}
