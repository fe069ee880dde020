import AgentSupport
import Dispatch
import Glibc
import ServiceLifecycle

/// The daemon as a `Service`: its loop runs on a thread of its own (it blocks in epoll), and a
/// graceful shutdown asks it to stop, which drains and flushes before `run()` returns.
package struct DaemonService: Service {
    let daemon: Daemon

    package init(daemon: Daemon) { self.daemon = daemon }

    package func run() async throws {
        // SIGHUP reloads the config and rules, and reopens the outputs: the loop swaps them
        // between two records.
        signal(SIGHUP, SIG_IGN)
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hup.setEventHandler { [daemon] in daemon.reload() }
        hup.resume()
        defer { hup.cancel() }
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
                startThread(name: "agentwatch-loop") {
                    do {
                        try daemon.run()
                        done.resume()
                    } catch {
                        done.resume(throwing: error)
                    }
                }
            }
        } onGracefulShutdown: {
            daemon.stop()
        }
    }
}
