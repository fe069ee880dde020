import AgentSupport
import Glibc

/// The sd_notify protocol, spoken directly (one datagram per message to `$NOTIFY_SOCKET`), so
/// the daemon needs no libsystemd: READY=1 once it captures, STATUS= lines, WATCHDOG=1 pings
/// at half the interval systemd asks for, STOPPING=1 when it begins to stop. Without
/// `NOTIFY_SOCKET` (not under systemd) every call does nothing.
package final class SystemdNotifier: @unchecked Sendable {
    private let fd: Int32
    private let address: UnixSocketAddress?
    /// Half of `WATCHDOG_USEC` in ns when systemd watches this process; nil otherwise.
    package let watchdogIntervalNs: Int64?

    package init(environment: [String: String] = SystemdNotifier.environment()) {
        var interval: Int64?
        if let usec = environment["WATCHDOG_USEC"].flatMap({ Int64($0) }), usec > 0 {
            // WATCHDOG_PID, when set, names the process meant; another one's is not ours.
            if let pid = environment["WATCHDOG_PID"].flatMap({ Int32($0) }), pid != getpid() {
                interval = nil
            } else {
                interval = usec * 1000 / 2
            }
        }
        watchdogIntervalNs = interval
        guard let path = environment["NOTIFY_SOCKET"], path.hasPrefix("/") || path.hasPrefix("@"),
              let address = UnixSocketAddress(path) else {
            fd = -1
            address = nil
            return
        }
        self.address = address
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    deinit { if fd >= 0 { close(fd) } }

    package var enabled: Bool { fd >= 0 }

    package static func environment() -> [String: String] {
        var env: [String: String] = [:]
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            if let v = getenv(key) { env[key] = String(cString: v) }
        }
        return env
    }

    /// Sends `KEY=VALUE` lines as one datagram; false when it could not be sent.
    @discardableResult
    package func notify(_ state: String) -> Bool {
        guard fd >= 0, let address else { return false }
        let bytes = Array(state.utf8)
        let n = address.withSockaddr { sa, len in
            bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sa, len) }
        }
        return n == bytes.count
    }

    package func ready(status: String) { notify("READY=1\nSTATUS=\(status)\nMAINPID=\(getpid())") }
    package func status(_ text: String) { notify("STATUS=\(text)") }
    package func watchdog() { notify("WATCHDOG=1") }
    package func stopping(status: String) { notify("STOPPING=1\nSTATUS=\(status)") }
    package func reloading() { notify("RELOADING=1\nMONOTONIC_USEC=\(WallClock.monotonicNs() / 1000)") }
    package func reloaded(status: String) { notify("READY=1\nSTATUS=\(status)") }
}
