import AgentSupport
import CLibbpf  // eventfd
import Glibc
import Synchronization

/// What other threads ask of the capture loop (a stop, a reload, what the control socket
/// refused or left to remove), taken by the loop between two waits. Posting wakes the loop
/// through an eventfd it waits on.
final class LoopInbox: Sendable {
    struct Requests: Sendable {
        var stop = false
        var reload = false
        /// Processes inside a session that asked for another: recorded as alerts.
        var escapes: [EscapeAttempt] = []
        /// Session cgroups made for control callers, to be removed once their processes are gone.
        var removeWhenEmpty: [String] = []
    }

    /// A process inside session `holding` (its cgroup directory) asked the control socket for
    /// session `requested`.
    struct EscapeAttempt: Sendable {
        let peer: ControlPeer
        let holding: String
        let requested: String
    }

    /// Readable while something is posted (the loop polls it).
    let wakeFD: Int32
    private let pending = Mutex(Requests())

    init() throws(AgentError) {
        wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wakeFD >= 0 else { throw AgentError("eventfd: \(String(cString: strerror(errno)))") }
    }

    deinit { close(wakeFD) }

    /// Safe from any thread.
    func post(_ request: (inout Requests) -> Void) {
        pending.withLock { request(&$0) }
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    /// What was posted since the last call; a stop stays asked for.
    func take() -> Requests {
        // Level-triggered: the counter is read, or the loop keeps waking.
        var count: UInt64 = 0
        _ = read(wakeFD, &count, 8)
        return pending.withLock { r in
            defer { r = Requests(stop: r.stop) }
            return r
        }
    }
}
