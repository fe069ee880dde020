import AgentOutputs
import AgentRecords
import AgentSupport
import Glibc
import Logging
import ServiceLifecycle

/// The counters for Prometheus (node_exporter's textfile collector) as a `Service`: every
/// `metrics_interval_s`, when `metrics_textfile` is set (both follow a reload), the text
/// exposition format of what the capture loop published, written by replacing the file through
/// its checked directory: the collector never reads half a file, and a link planted at either
/// name is never followed.
final class MetricsService: Service, @unchecked Sendable {
    let published: PublishedState
    let logger: Logger
    /// Reached once the loop captures: nothing is reported before.
    let after: Readiness
    // The state below is this service's task's alone.
    /// The textfile's directory as last checked (the setting can change at a reload).
    private var directory: TrustedDirectory?
    /// Why the directory was last refused (said once per reason, not at every interval).
    private var refusal: String?

    init(published: PublishedState, logger: Logger, after: Readiness) {
        self.published = published
        self.logger = logger
        self.after = after
    }

    func run() async {
        guard await after.wait() else { return }
        while !Task.isShuttingDownGracefully {
            let now = published.snapshot
            if let path = now.config.metricsTextfile { write(Self.text(now), to: path) }
            let interval = max(1, now.config.metricsIntervalS)
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(interval)) }
        }
    }

    /// The text exposition format of `s`.
    static func text(_ s: PublishedState.Snapshot) -> String {
        let c = s.counters
        var t = ""
        func metric(_ name: String, _ kind: String, _ help: String, _ samples: [(labels: String, value: UInt64)]) {
            t += "# HELP agentwatch_\(name) \(help)\n# TYPE agentwatch_\(name) \(kind)\n"
            for s in samples { t += "agentwatch_\(name)\(s.labels.isEmpty ? "" : "{\(s.labels)}") \(s.value)\n" }
        }
        func label(_ v: String) -> String {
            v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        }
        metric("records_total", "counter", "Records written, by type.",
               RecordType.allCases.map { (labels: "type=\"\(String(describing: $0.name))\"", value: c.recordsByType.count > Int($0.rawValue) ? c.recordsByType[Int($0.rawValue)] : 0) })
        metric("kernel_dropped_total", "counter", "Records the kernel could not put in the ring buffer.", [("", c.kernelDropped)])
        metric("decode_rejected_total", "counter", "Ring buffer records that did not decode.", [("", c.decodeRejected)])
        metric("sessions", "gauge", "Live sessions.", [("", UInt64(c.sessions))])
        metric("processes", "gauge", "Processes tracked in sessions.", [("", UInt64(c.processes))])
        metric("syscall_hooks_attached", "gauge", "1 while the syscall hooks are attached.", [("", c.syscallHooksAttached ? 1 : 0)])
        if let th = c.throttle {
            metric("throttle_pauses_total", "counter", "Times a session was paused because it wrote records faster than the daemon read them.", [("", th.pauses)])
            metric("throttle_paused_seconds_total", "counter", "Time sessions spent paused, in whole seconds.", [("", th.pausedMs / 1000)])
            metric("throttle_sessions_paused", "gauge", "Sessions paused now.", [("", UInt64(th.pausedNow))])
            metric("throttle_forced_resumes_total", "counter", "Pauses ended at throttle_max_pause_ms with the ring not drained.", [("", th.forcedResumes)])
        }
        let stats = s.outputs.map { (name: $0.name, counters: $0.counters, backlog: $0.backlogBytes) }
        func perOutput(_ value: ((name: String, counters: OutputStats, backlog: Int)) -> UInt64) -> [(labels: String, value: UInt64)] {
            stats.map { ("output=\"\(label($0.name))\"", value($0)) }
        }
        metric("output_records_total", "counter", "Records delivered, by output.", perOutput { $0.counters.records })
        metric("output_errors_total", "counter", "Failed opens and deliveries, by output.", perOutput { $0.counters.errors })
        metric("output_dropped_total", "counter", "Records an output could not keep (queue and spool full).", perOutput { s.outputDropped[$0.name] ?? 0 })
        metric("output_spooled_bytes", "gauge", "Bytes waiting in an output's spool.", perOutput { $0.counters.spooledBytes })
        metric("output_backlog_bytes", "gauge", "Bytes queued in memory for an output.", perOutput { UInt64($0.backlog) })
        metric("output_up", "gauge", "1 while an output's destination is open.", perOutput { $0.counters.connected ? 1 : 0 })
        return t
    }

    private func write(_ text: String, to path: String) {
        let (dir, name) = TrustedDirectory.split(path)
        if directory?.path != dir {
            do {
                directory = try TrustedDirectory(dir, purpose: "metrics_textfile")
            } catch {
                directory = nil
                if error.message != refusal { logger.warning("not writing metrics: \(error.message)") }
                refusal = error.message
                return
            }
            refusal = nil
        }
        if directory?.replace(name, with: Array(text.utf8), mode: 0o644) != true {
            logger.warning("cannot write metrics to \(path): \(String(cString: strerror(errno)))")
        }
    }
}
