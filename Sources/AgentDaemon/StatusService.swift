import AgentSupport
import Logging
import ServiceLifecycle

/// How the capture goes, for people, as a `Service`: systemd's STATUS line (`systemctl status`)
/// every 2 s under systemd, and a summary in the log every `status_interval_s` (0: none), from
/// what the capture loop published.
struct StatusService: Service {
    let published: PublishedState
    let notifier: SystemdNotifier
    let logger: Logger
    /// Reached once the loop captures: nothing is reported before.
    let after: Readiness

    func run() async {
        guard await after.wait() else { return }
        var lastNotified = WallClock.monotonicNs()
        var lastLogged = lastNotified
        var lastRecords = published.snapshot.counters.records
        while !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            let s = published.snapshot
            let now = WallClock.monotonicNs()
            if notifier.enabled && now - lastNotified >= 2_000_000_000 {
                notifier.status(s.counters.statusLine)
                lastNotified = now
            }
            let interval = Int64(s.config.statusIntervalS) * 1_000_000_000
            if interval > 0 && now - lastLogged >= interval {
                let c = s.counters
                let rate = Double(c.records - lastRecords) / (Double(now - lastLogged) / 1e9)
                logger.info("sessions \(c.sessions) · processes \(c.processes) · records \(c.records) (\(Int(rate))/s) · lost \(c.kernelDropped) · undecodable \(c.decodeRejected)")
                lastLogged = now
                lastRecords = c.records
            }
        }
    }
}
