import AgentDetector
import ArgumentParser

/// `agentwatch rules check|test`: validate rule files, run their fixtures.
struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Validate detection rules and run their fixtures.",
        subcommands: [Check.self, Test.self]
    )

    struct Paths: ParsableArguments {
        @Argument(help: "Rule files or directories (default: the installed rules and /etc/agentwatch/rules.d, or rules/ in a source tree).")
        var paths: [String] = []

        func load() throws -> RuleSet {
            let paths = self.paths.isEmpty ? RuleSet.defaultPaths() : self.paths
            guard !paths.isEmpty else {
                FileHandleStderr.write("agentwatch rules: no rules found: give a file or directory\n")
                throw ExitCode(2)
            }
            do {
                let set = try RuleSet.load(paths: paths)
                for w in set.warnings { FileHandleStderr.write("\(w)\n") }
                return set
            } catch {
                for w in error.warnings { FileHandleStderr.write("\(w)\n") }
                FileHandleStderr.write("\(error)\n")
                FileHandleStderr.write("agentwatch rules: \(error.diagnostics.count) error(s) in \(paths.joined(separator: ", "))\n")
                throw ExitCode(1)
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Load rules and report every error with file:line:column.")
        @OptionGroup var paths: Paths

        func run() throws {
            let set = try paths.load()
            let enabled = set.rules.filter(\.enabled).count
            print("\(set.rules.count) rules (\(enabled) enabled), digest \(set.digest.prefix(16)): ok")
        }
    }

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run every rule's fixtures: records that must raise an alert and near misses that must not.")
        @OptionGroup var paths: Paths

        func run() throws {
            let set = try paths.load()
            let results = set.runFixtures()
            let failed = results.filter { !$0.passed }
            for r in failed { print(r) }
            print("\(results.count - failed.count) of \(results.count) fixture checks passed over \(set.rules.count) rules")
            if !failed.isEmpty { throw ExitCode(1) }
        }
    }
}
