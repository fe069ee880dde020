import AgentRecords
import AgentSupport
import Logging
import ServiceLifecycle

/// `agentwatch daemon` put together. `init` checks the machine and loads the kernel programs
/// (`CaptureLoop`, `Preflight`); `serviceGroup` gives the services that then run, each with one
/// job:
///
/// | service | job | thread |
/// |---|---|---|
/// | `CaptureService` | the capture loop: ring buffer → pipeline → outputs, sessions (`SessionTracker`), reloads (`Reloader`), shutdown | its own |
/// | `ControlService` | the control socket (`ControlServer`, answered by `DaemonControl`) | its own and a few workers |
/// | `ReloadService` | SIGHUP: asks the loop to reload | a signal source |
/// | `MetricsService` | the Prometheus textfile | async |
/// | `StatusService` | systemd's STATUS line and the log's summary | async |
///
/// They start together; the control socket is bound before the loop starts, and metrics and
/// status wait until it captures. A graceful shutdown (SIGTERM, SIGINT) stops them in reverse
/// order: the control socket closes before the loop drains, flushes and writes `agent.stop`.
package final class Daemon: Sendable {
    package let capture: CaptureLoop
    let control: DaemonControl

    package init(config: DaemonConfig, sink: RecordOutput, logger: Logger, objectBytes: [UInt8]? = nil,
                 notifier: SystemdNotifier = SystemdNotifier()) throws(AgentError) {
        capture = try CaptureLoop(config: config, sink: sink, logger: logger, objectBytes: objectBytes, notifier: notifier)
        control = DaemonControl(published: capture.published, inbox: capture.inbox, root: capture.registry.roots[0].path,
                                cgroupMount: capture.registry.mount, logger: logger)
    }

    /// The services as a group. `signals`: SIGTERM and SIGINT shut it down and SIGHUP reloads
    /// (the command); without, `ServiceGroup.triggerGracefulShutdown` ends it and `reload()`
    /// reloads (tests).
    package func serviceGroup(signals: Bool, logger: Logger) -> ServiceGroup {
        let bound = Readiness()
        let config = capture.published.snapshot.config
        // Whichever ends, the others end gracefully with it.
        func service(_ s: any Service) -> ServiceGroupConfiguration.ServiceConfiguration {
            .init(service: s, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
        }
        var services = [
            service(CaptureService(loop: capture, after: bound)),
            service(ControlService(handler: control, directory: capture.runtime, group: config.controlGroup, logger: logger, bound: bound)),
            service(MetricsService(published: capture.published, logger: logger, after: capture.capturing)),
            service(StatusService(published: capture.published, notifier: capture.notifier, logger: logger, after: capture.capturing)),
        ]
        if signals { services.append(service(ReloadService(loop: capture))) }
        return ServiceGroup(configuration: .init(
            services: services, gracefulShutdownSignals: signals ? [.sigterm, .sigint] : [], logger: logger))
    }

    /// The running config (after the last reload that took).
    package var config: DaemonConfig { capture.published.snapshot.config }
    /// A snapshot of the counters, safe from any thread.
    package var counters: DaemonCounters { capture.published.snapshot.counters }
    /// See `CaptureLoop.reload()`.
    package func reload() { capture.reload() }
}
