import AgentDetector
import AgentOutputs
import AgentPipeline
import AgentSupport
import Logging

/// The running config and rules, and what a reload (SIGHUP) does to them: reads the config again
/// (when there is a loader) and the rules, all or nothing. A new config or rule set that does
/// not load, or an output that cannot be made, leaves everything as it was and says why.
/// Settings only a restart can change (`DaemonConfig.restartOnly`) keep their running values and
/// are named. Runs on the capture loop's thread between two records, so no record is evaluated
/// twice or skipped; every reload is an `agent.reload` record.
final class Reloader {
    private(set) var config: DaemonConfig
    /// Where the rules come from (resolved at each load) and what is loaded.
    private(set) var rulePaths: [String]
    private(set) var rules: RuleSet?
    /// Reads the config again: the file and the command line's overrides. nil: a reload
    /// reloads the rules only.
    var configLoader: (() throws(AgentError) -> DaemonConfig)?

    init(config: DaemonConfig, rules: RuleSet?) {
        self.config = config
        self.rulePaths = config.rules ?? RuleSet.defaultPaths()
        self.rules = rules
    }

    /// Reloads into `pipeline` (its detector) and `outputs`, and says so in the stream: a SIEM
    /// sees which rules ran from which record on, and why a reload did not take.
    func reload(pipeline: Pipeline, outputs: Outputs?, logger: Logger, unixNs: Int64) {
        var record = AgentReload()
        var fresh = config
        var newRules: RuleSet?
        do throws(AgentError) {
            if let configLoader {
                fresh = try configLoader()
                record.restartRequired = fresh.restartRequired(running: config)
                fresh.keepRestartOnly(of: config)
            }
            let paths = fresh.rules ?? RuleSet.defaultPaths()
            if !paths.isEmpty {
                do {
                    newRules = try RuleSet.load(paths: paths)
                } catch {
                    record.errorCount = error.diagnostics.count
                    throw AgentError(error.diagnostics.first.map { "\($0)" } ?? "\(error)")
                }
            }
            if let outputs, fresh.effectiveOutputs != config.effectiveOutputs {
                (record.outputsStarted, record.outputsStopped) = try outputs.replace(with: fresh.effectiveOutputs, logger: logger)
            }
        } catch {
            record.error = error.message
        }
        if let failure = record.error {
            logger.error("reload failed, keeping the running config and \(rules?.rules.count ?? 0) rules: \(failure)")
        } else {
            if let newRules {
                if let detector = pipeline.detector { detector.replaceRules(newRules) } else { pipeline.detector = Detector(rules: newRules) }
            } else {
                pipeline.detector = nil
            }
            rules = newRules
            rulePaths = fresh.rules ?? RuleSet.defaultPaths()
            config = fresh
            let outputsChanged = record.outputsStarted.isEmpty && record.outputsStopped.isEmpty ? "" : ", outputs started \(record.outputsStarted) stopped \(record.outputsStopped)"
            let waiting = record.restartRequired.isEmpty ? "" : "; a restart is needed to apply \(record.restartRequired.joined(separator: ", "))"
            logger.info("reloaded: \(rules?.rules.count ?? 0) rules\(outputsChanged)\(waiting)")
        }
        record.rules = rules.map(RulesInForce.init)
        if configLoader != nil { record.outputs = outputs?.workers.map(\.name) ?? [] }
        pipeline.recorder.agentReload(record, unixNs: unixNs)
    }
}

/// A setting that only a restart can change: the kernel programs and maps are sized and loaded
/// with it, or the control socket was made with it.
package struct RestartOnlySetting: Sendable {
    /// Its name in the config file.
    package let key: String
    let differs: @Sendable (DaemonConfig, DaemonConfig) -> Bool
    let keep: @Sendable (inout DaemonConfig, DaemonConfig) -> Void

    init<Value: Equatable & Sendable>(_ key: String, _ path: WritableKeyPath<DaemonConfig, Value> & Sendable) {
        self.key = key
        differs = { $0[keyPath: path] != $1[keyPath: path] }
        keep = { $0[keyPath: path] = $1[keyPath: path] }
    }
}

extension DaemonConfig {
    /// Every setting a reload does not apply, in the order `restart_required` names them.
    package static let restartOnly: [RestartOnlySetting] = [
        RestartOnlySetting("session_roots", \.sessionRoots),
        RestartOnlySetting("ring_buffer_kib", \.ringBufferKiB),
        RestartOnlySetting("args_max", \.argsMax),
        RestartOnlySetting("flow_report_kib", \.flowReportKiB),
        RestartOnlySetting("resolve_paths", \.resolvePaths),
        RestartOnlySetting("sensor", \.sensor),
        RestartOnlySetting("runtime_dir", \.runtimeDir),
        RestartOnlySetting("control_group", \.controlGroup),
        RestartOnlySetting("catalog_scan_budget_ms", \.catalogScanBudgetMs),
        RestartOnlySetting("overflow", \.overflow),
        RestartOnlySetting("throttle_max_pause_ms", \.throttleMaxPauseMs),
    ]

    /// The restart-only settings in which this config differs from the `running` one.
    package func restartRequired(running: DaemonConfig) -> [String] {
        Self.restartOnly.filter { $0.differs(self, running) }.map(\.key)
    }

    /// Takes the running values of the restart-only settings: a restart applies the new ones.
    package mutating func keepRestartOnly(of running: DaemonConfig) {
        for setting in Self.restartOnly { setting.keep(&self, running) }
    }
}
