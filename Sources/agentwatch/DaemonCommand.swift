import AgentCore
import ArgumentParser
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

    func run() async throws {
        var logger = Logger(label: "agentwatch")
        logger.logLevel = .info
        do {
            let settings = try loadConfig()
            let group = try buildDaemon(config: settings, logger: logger)
            try await group.run()
        } catch let error as AgentError {
            FileHandleStderr.write("agentwatch: \(error.message)\n")
            throw ExitCode(1)
        }
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

/// Builds the daemon's service group: the pipeline as a service, SIGTERM and SIGINT as a
/// graceful shutdown that drains, flushes and writes `agent.stop`.
func buildDaemon(config: DaemonConfig, logger: Logger) throws(AgentError) -> ServiceGroup {
    let outputs = try Outputs(config.effectiveOutputs, logger: logger)
    let daemon = try Daemon(config: config, sink: outputs, logger: logger)
    return ServiceGroup(configuration: .init(
        services: [DaemonService(daemon: daemon)],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
}

enum FileHandleStderr {
    static func write(_ s: String) {
        var s = s
        s.withUTF8 { _ = Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
