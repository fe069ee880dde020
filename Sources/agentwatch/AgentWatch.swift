import AgentSupport
import ArgumentParser

/// The agentwatch command: one executable, one small file per subcommand.
@main
struct AgentWatch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentwatch",
        abstract: "Audit what autonomous AI agents do: exec, file opens and connections of agent sessions, as NDJSON.",
        version: AgentVersion.string,
        subcommands: [DaemonCommand.self, RunCommand.self, SessionsCommand.self, StatusCommand.self, RulesCommand.self, VerifyCommand.self, ReplayCommand.self]
    )
}
