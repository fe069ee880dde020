import Glibc

/// A unix socket address from a path, `@name` standing for an abstract name (a leading NUL):
/// what the control socket, its clients, the sd_notify socket and syslog's local socket use.
package struct UnixSocketAddress: Sendable {
    private var storage = sockaddr_un()
    package let length: socklen_t

    /// nil when `path` is empty or does not fit in `sun_path`.
    package init?(_ path: String) {
        var bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: storage.sun_path) else { return nil }
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { $0.copyBytes(from: bytes) }
        length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes[0] == 0 ? 0 : 1))
    }

    /// Calls `body` with the address as connect(2), bind(2) and sendto(2) take it. Allocates
    /// nothing (`agentwatch run` calls it between fork and exec).
    package func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }
}
