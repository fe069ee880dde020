import AgentOutputs
import AgentSupport
import Synchronization

/// What the capture loop publishes for the other threads — the control socket, metrics, the
/// status line, tests: copies the loop puts here between two waits, read under a lock. No other
/// thread touches the loop's own objects (sensor, pipeline, registry).
package final class PublishedState: Sendable {
    package struct Snapshot: Sendable {
        package var counters = DaemonCounters()
        /// The live sessions, oldest first.
        package var sessions: [SessionSummary] = []
        /// The session roots' directories (patterns add and remove some).
        package var roots: [String] = []
        /// The running outputs; their counters are their own and safe to read from any thread.
        package var outputs: [OutputWorker] = []
        /// Records each output could not keep (queue and spool full), by output name, since start.
        package var outputDropped: [String: UInt64] = [:]
        /// The config running (after the last reload that took).
        package var config: DaemonConfig
        /// The loop captures: `agent.start` is written, the hooks attached, the sessions and
        /// roots that existed at start found.
        package var capturing = false
    }

    private let state: Mutex<Snapshot>

    init(config: DaemonConfig) {
        state = Mutex(Snapshot(config: config))
    }

    package var snapshot: Snapshot { state.withLock { $0 } }

    func update(_ change: (inout Snapshot) -> Void) {
        state.withLock { change(&$0) }
    }
}

/// What the daemon has done so far, for the console, `agentwatch status`, metrics and tests.
package struct DaemonCounters: Sendable, Equatable {
    package var records: UInt64 = 0
    package var sessions = 0
    package var processes = 0
    package var kernelDropped: UInt64 = 0
    package var kernelDroppedByKind: [UInt64] = []
    package var decodeRejected: UInt64 = 0
    package var syscallHooksAttached = false
    package var recordsByType: [UInt64] = []
    /// With `overflow: throttle`: pauses since start, their time in ns, sessions paused now,
    /// pauses the guard ended at the longest pause; nil with `drop`.
    package var throttle: ThrottleStatus? = nil

    /// One line for systemd's STATUS (systemctl status shows it).
    var statusLine: String {
        "\(sessions) sessions, \(processes) processes, \(records) records, \(kernelDropped) lost in the kernel"
    }
}
