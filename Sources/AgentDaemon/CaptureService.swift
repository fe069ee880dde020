import AgentSupport
import ServiceLifecycle

/// The capture loop as a `Service`. The loop runs on a thread of its own (it blocks in epoll),
/// once `after` is reached (the control socket bound); a graceful shutdown asks it to stop, and
/// it drains, flushes and writes `agent.stop` before `run()` returns.
struct CaptureService: Service {
    let loop: CaptureLoop
    let after: Readiness

    func run() async throws {
        _ = await after.wait()
        // A shutdown asked for before this point stops the loop as soon as it is up.
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
                startThread(name: "agentwatch-loop") { [loop] in
                    do {
                        try loop.run()
                        done.resume()
                    } catch {
                        done.resume(throwing: error)
                    }
                }
            }
        } onGracefulShutdown: { [loop] in
            loop.stop()
        }
    }
}
