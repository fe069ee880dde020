import AgentSupport
import Foundation
import Glibc
import Synchronization

/// A few threads for the control requests that may block (`start` waits up to 3 s for the kernel
/// to watch the new session), so that the event loop never waits on one and `status` is answered
/// while they run. Bounded: past `queueLimit` waiting requests `submit` says no, and the caller
/// answers busy.
final class ControlWorkers: @unchecked Sendable {
    /// A request handed to a worker, with the connection it came on.
    struct Job: Sendable {
        let fd: Int32
        let peer: ControlPeer
        let request: ControlRequest
    }

    /// An answer ready to be written on connection `fd`.
    struct Done: Sendable {
        let fd: Int32
        let answer: [UInt8]
    }

    private struct State {
        var queue: [Job] = []
        var done: [Done] = []
        /// Set when the event loop has ended: a late answer's worker closes the connection.
        var loopEnded = false
        var stopping = false
    }

    let threads: Int
    let queueLimit: Int
    private let state = Mutex(State())
    private let ready = DispatchSemaphore(value: 0)
    /// The event loop's wake-up (an eventfd it polls).
    private let wake: Int32
    private let handler: ControlHandler

    init(threads: Int, queueLimit: Int, wake: Int32, handler: ControlHandler) {
        self.threads = threads
        self.queueLimit = queueLimit
        self.wake = wake
        self.handler = handler
    }

    func start() {
        for i in 0..<threads {
            startThread(name: "agentwatch-ctl\(i)") { [self] in
                while true {
                    ready.wait()
                    guard let job = state.withLock({ s -> Job? in s.stopping ? nil : (s.queue.isEmpty ? nil : s.queue.removeFirst()) }) else {
                        if state.withLock({ $0.stopping }) { return }
                        continue
                    }
                    finish(job, handler.handle(job.request, peer: job.peer).line())
                }
            }
        }
    }

    /// Queues `job`; false when the queue is full (the caller keeps the connection).
    func submit(_ job: Job) -> Bool {
        let taken = state.withLock { s -> Bool in
            guard !s.stopping, s.queue.count < queueLimit else { return false }
            s.queue.append(job)
            return true
        }
        if taken { ready.signal() }
        return taken
    }

    /// Answers that are ready, for the event loop to write.
    func takeDone() -> [Done] {
        state.withLock { s in defer { s.done = [] }; return s.done }
    }

    /// The event loop is ending: returns the connections it must close (answers not yet taken,
    /// requests not yet begun); an answer still being made closes its connection itself, and the
    /// workers end once their current request is answered.
    func loopEnded() -> [Int32] {
        let fds = state.withLock { s -> [Int32] in
            s.loopEnded = true
            s.stopping = true
            defer { s.done = []; s.queue = [] }
            return s.done.map(\.fd) + s.queue.map(\.fd)
        }
        for _ in 0..<threads { ready.signal() }
        return fds
    }

    private func finish(_ job: Job, _ answer: [UInt8]) {
        // The wake-up is written under the lock: once the loop has ended, it closes the eventfd,
        // and a late write could land on whatever file took its number.
        let handedBack = state.withLock { s -> Bool in
            guard !s.loopEnded else { return false }
            s.done.append(Done(fd: job.fd, answer: answer))
            var one: UInt64 = 1
            _ = Glibc.write(wake, &one, 8)
            return true
        }
        if !handedBack { Self.release(job.fd, job.peer) }
    }

    static func release(_ fd: Int32, _ peer: ControlPeer) {
        close(fd)
        if peer.pidfd >= 0 { close(peer.pidfd) }
    }
}
