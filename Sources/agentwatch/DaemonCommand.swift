import AgentDaemon
import AgentDetector
import AgentOutputs
import AgentSupport
import ArgumentParser
import CSupport
import Glibc
import Logging
import ServiceLifecycle

struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Capture agent sessions and write their records (runs in the foreground; systemd runs this).")

    @Option(name: .long, help: "Config file (YAML). Default: \(DaemonConfig.defaultPath) when it exists, else built-in defaults.")
    var config: String?

    @Option(name: .long, help: "Where records go: a file, or - for standard output. Overrides the config's output.")
    var output: String?

    @Flag(help: "Check the config file and the rules it names, print what would run, and exit (0: valid).")
    var checkConfig = false

    func run() async throws {
        // Every line the daemon logs is escaped whole (session ids, labels, paths and cgroup
        // names come from the watched agent): one log call is one journal line.
        LoggingSystem.bootstrap { DisplaySafeLogHandler(wrapping: StreamLogHandler.standardError(label: $0)) }
        // A death by signal says so in the journal (SIGKILL: the next agent.start says so).
        _ = aw_log_fatal_signals("agentwatch daemon \(getpid())")
        signal(SIGPIPE, SIG_IGN)  // a peer gone mid-write (control client, syslog) is an error, never the daemon's death
        var logger = Logger(label: "agentwatch")
        logger.logLevel = .info
        do {
            let settings = try loadConfig()
            if checkConfig {
                print(try Self.check(settings, file: config ?? (access(DaemonConfig.defaultPath, F_OK) == 0 ? DaemonConfig.defaultPath : nil)))
                return
            }
            let group = try buildDaemon(config: settings, logger: logger) { () throws(AgentError) in try loadConfig() }
            try await group.run()
        } catch let error as AgentError {
            FileHandleStderr.write("agentwatch: \(error.message)\n")
            throw ExitCode(1)
        }
    }

    /// What `--check-config` prints: the settings that will run, the outputs and the rules.
    static func check(_ c: DaemonConfig, file: String?) throws(AgentError) -> String {
        let paths = c.rules ?? RuleSet.defaultPaths()
        var rules = "no rules"
        if !paths.isEmpty {
            do {
                let set = try RuleSet.load(paths: paths)
                rules = "\(set.rules.filter(\.enabled).count) rules enabled from \(paths.joined(separator: ", ")) (digest \(set.digest.prefix(16)))"
            } catch {
                let first = error.diagnostics.first.map { "\($0)" } ?? "\(error)"
                throw AgentError("invalid rules: \(first)\(error.diagnostics.count > 1 ? " (and \(error.diagnostics.count - 1) more)" : "")")
            }
        }
        var lines = ["config OK: \(file ?? "built-in defaults")"]
        lines.append("session roots: \(c.sessionRoots.joined(separator: ", "))")
        for o in c.effectiveOutputs {
            switch o.kind {
            case .file(let f):
                lines.append("output \(o.name): file \(f.path), \(o.format.rawValue), \(o.records.rawValue) records, rotate at \(f.rotateBytes >> 20) MiB / \(f.rotateIntervalS) s, keep \(f.retain)\(f.compress ? ", gzip" : "")")
            case .syslog(let s):
                let target = s.transport == .unix ? s.address : "\(s.address):\(s.effectivePort)"
                lines.append("output \(o.name): syslog \(s.transport.rawValue) \(target), \(s.framing.rawValue), \(o.format.rawValue), \(o.records.rawValue) records, spool \(o.spoolDirectory ?? "off")")
            }
        }
        lines.append("rules: \(rules)")
        return lines.joined(separator: "\n")
    }

    func loadConfig() throws(AgentError) -> DaemonConfig {
        var settings: DaemonConfig
        if let config {
            settings = try DaemonConfig.load(path: config)
        } else if access(DaemonConfig.defaultPath, F_OK) == 0 {
            settings = try DaemonConfig.load(path: DaemonConfig.defaultPath)
        } else {
            settings = DaemonConfig()
        }
        if let output {
            if settings.outputs == nil {
                settings.output = output
            } else {
                var o = OutputConfig.file(output)
                o.name = "command-line"
                settings.outputs!.insert(o, at: 0)
            }
        }
        return settings
    }
}

/// Builds the daemon's service group (see `Daemon`): SIGTERM and SIGINT a graceful shutdown
/// that drains, flushes and writes `agent.stop`, SIGHUP a reload that reads the config again
/// through `reload`.
func buildDaemon(config: DaemonConfig, logger: Logger, reload: @escaping () throws(AgentError) -> DaemonConfig) throws(AgentError) -> ServiceGroup {
    let outputs = try Outputs(config.effectiveOutputs, logger: logger)
    let daemon = try Daemon(config: config, sink: outputs, logger: logger)
    daemon.capture.configLoader = reload
    return daemon.serviceGroup(signals: true, logger: logger)
}

enum FileHandleStderr {
    static func write(_ s: String) {
        var s = s
        s.withUTF8 { _ = Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
