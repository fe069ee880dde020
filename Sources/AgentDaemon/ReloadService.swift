import Dispatch
import Glibc
import ServiceLifecycle

/// SIGHUP (`systemctl reload agentwatch`) as a `Service`: each one asks the capture loop to
/// reopen the outputs (logrotate), reconnect the receivers and reload the config and the rules,
/// which it does between two records (`Reloader`).
struct ReloadService: Service {
    let loop: CaptureLoop

    func run() async {
        // Ignored as a signal (its default ends the process), heard as an event.
        signal(SIGHUP, SIG_IGN)
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hup.setEventHandler { [loop] in loop.reload() }
        hup.resume()
        try? await gracefulShutdown()
        hup.cancel()
    }
}
