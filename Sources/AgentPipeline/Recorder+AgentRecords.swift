import AgentDetector
import AgentRecords
import AgentSensor

/// The daemon's own records (`agent.*`), from typed values: the daemon says what happened, the
/// recorder writes the bytes (schema/agentwatch-record.schema.json).
extension Recorder {
    /// `agent.start`: who starts (`pid`, `kernel` as `uname -r` says), writing where (`output`,
    /// as the outputs describe themselves), on which session roots, capturing what (`features`),
    /// with which rules; then where its chain comes from and how the run before it ended
    /// (`chainOrigin`).
    package func agentStart(version: String, pid: Int32, kernel: String, output: String, sessionRoots: [String],
                            features: [String], sensor: SensorChoice, hooks: [String], rules: RulesInForce?, unixNs: Int64) {
        agentRecord(.agentStart, unixNs: unixNs) { j in
            j.key("version"); j.string(version)
            j.raw(","); j.key("pid"); j.uint(UInt64(pid))
            j.raw(","); j.key("kernel"); j.string(kernel)
            j.raw(","); j.key("output"); j.string(output)
            j.raw(","); j.key("session_roots"); j.stringArray(sessionRoots)
            j.raw(","); j.key("features"); j.stringArray(features)
            j.raw(","); j.key("sensor"); j.raw("{")
            j.key("tier"); j.string(sensor.tier.rawValue)
            j.raw(","); j.key("forced"); j.bool(sensor.forced)
            j.raw(","); j.key("hooks"); j.stringArray(hooks)
            j.raw(","); j.key("refused"); j.raw("[")
            for (i, r) in sensor.refused.enumerated() {
                if i > 0 { j.raw(",") }
                j.raw("{"); j.key("tier"); j.string(r.tier.rawValue); j.raw(","); j.key("error"); j.string(r.error); j.raw("}")
            }
            j.raw("]}")
            if let rules { j.raw(","); rules.write(into: &j) }
            self.chainOrigin(into: &j)
        }
    }

    /// `agent.stop`: the last record of a clean stop, with the run's totals.
    /// `throttle`: with `overflow: throttle`, the sessions' pauses since start.
    package func agentStop(version: String, records: UInt64, kernelDropped: UInt64, decodeRejected: UInt64, sessions: Int,
                           throttle: (pauses: UInt64, pausedMs: UInt64, forcedResumes: UInt64)? = nil, unixNs: Int64) {
        agentRecord(.agentStop, unixNs: unixNs) { j in
            j.key("version"); j.string(version)
            j.raw(","); j.key("records"); j.uint(records)
            j.raw(","); j.key("kernel_dropped"); j.uint(kernelDropped)
            j.raw(","); j.key("decode_rejected"); j.uint(decodeRejected)
            j.raw(","); j.key("sessions"); j.uint(UInt64(sessions))
            if let throttle {
                j.raw(","); j.key("throttle"); j.raw("{")
                j.key("pauses"); j.uint(throttle.pauses)
                j.raw(","); j.key("paused_ms"); j.uint(throttle.pausedMs)
                j.raw(","); j.key("forced_resumes"); j.uint(throttle.forcedResumes)
                j.raw("}")
            }
        }
    }

    /// `agent.reload`: whether a reload took, the rules that run from here on, and what it did
    /// to the outputs or could not apply.
    package func agentReload(_ a: AgentReload, unixNs: Int64) {
        agentRecord(.agentReload, unixNs: unixNs) { j in
            j.key("ok"); j.bool(a.error == nil)
            if let rules = a.rules { j.raw(","); rules.write(into: &j) }
            if let outputs = a.outputs { j.raw(","); j.key("outputs"); j.stringArray(outputs) }
            if !a.outputsStarted.isEmpty || !a.outputsStopped.isEmpty {
                j.raw(","); j.key("outputs_started"); j.stringArray(a.outputsStarted)
                j.raw(","); j.key("outputs_stopped"); j.stringArray(a.outputsStopped)
            }
            if !a.restartRequired.isEmpty { j.raw(","); j.key("restart_required"); j.stringArray(a.restartRequired) }
            if let error = a.error {
                if a.errorCount > 0 { j.raw(","); j.key("errors"); j.uint(UInt64(a.errorCount)) }
                j.raw(","); j.key("error"); j.string(error)
            }
        }
    }

    /// `agent.loss`: records the kernel could not reserve, per kind; `cpu` when one CPU reported it.
    package func agentLoss(kernelDropped: [UInt64], queueDropped: UInt64, cpuReported: Bool, unixNs: Int64) {
        begin(.agentLoss, unixNs: unixNs)
        buffer.raw(",\"loss\":{\"kernel_dropped\":{")
        var total: UInt64 = 0
        var first = true
        for (k, n) in kernelDropped.enumerated() where n > 0 {
            if !first { buffer.raw(",") }
            first = false
            buffer.raw("\"")
            buffer.raw(kindName(k))
            buffer.raw("\":")
            buffer.uint(n)
            total += n
        }
        buffer.raw("},\"kernel_dropped_total\":")
        buffer.uint(total)
        buffer.raw(",\"queue_dropped\":")
        buffer.uint(queueDropped)
        buffer.raw(",\"reported_by\":")
        buffer.raw(cpuReported ? "\"kernel\"" : "\"daemon\"")
        buffer.raw("}")
        end(.agentLoss)
    }

    /// `agent.loss` for records one sink dropped (the others have them).
    package func sinkLoss(sink: String, drops: OutputDrops, unixNs: Int64) {
        begin(.agentLoss, unixNs: unixNs)
        buffer.raw(",\"loss\":{\"kernel_dropped\":{},\"kernel_dropped_total\":0,\"queue_dropped\":")
        buffer.uint(drops.records)
        buffer.raw(",\"reported_by\":\"daemon\",\"sink\":")
        buffer.string(sink)
        buffer.raw(",\"first_seq\":")
        buffer.uint(drops.firstSeq)
        buffer.raw(",\"last_seq\":")
        buffer.uint(drops.lastSeq)
        buffer.raw("}")
        end(.agentLoss)
    }

    /// An `agent.*` record whose `agent` members `fields` writes (`agent.heartbeat`, and tests
    /// that make records of any shape); the typed ones above go through it.
    package func agentRecord(_ type: RecordType, unixNs: Int64, fields: (inout JSONBuffer) -> Void) {
        begin(type, unixNs: unixNs)
        buffer.raw(",\"agent\":{")
        fields(&buffer)
        buffer.raw("}")
        end(type)
    }
}

/// What `agent.reload` says. `error` nil: the reload took.
package struct AgentReload: Sendable {
    /// The rules running after the reload (the new ones, or the old ones when it failed).
    package var rules: RulesInForce?
    /// The outputs running after it, when the config was read again (not for rules alone).
    package var outputs: [String]?
    package var outputsStarted: [String] = []
    package var outputsStopped: [String] = []
    /// Changed settings that wait for a restart.
    package var restartRequired: [String] = []
    /// Why the reload changed nothing, and how many errors the rules had (0: not the rules).
    package var error: String?
    package var errorCount = 0

    package init() {}
}

/// The rules in force, as `agent.start` and `agent.reload` name them: `"rules":{"count":N,"digest":D}`.
package struct RulesInForce: Sendable {
    /// Enabled rules.
    package var count: Int
    package var digest: String

    package init(_ set: RuleSet) {
        count = set.rules.filter(\.enabled).count
        digest = set.digest
    }

    func write(into j: inout JSONBuffer) {
        j.key("rules"); j.raw("{"); j.key("count"); j.uint(UInt64(count))
        j.raw(","); j.key("digest"); j.string(digest); j.raw("}")
    }
}
