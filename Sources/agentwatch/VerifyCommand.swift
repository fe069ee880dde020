import AgentCore
import ArgumentParser

/// `agentwatch verify FILE...`: checks the hash chain, `seq` gaps and loss markers of record
/// files, given oldest first; exits 0 only when the set is intact.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check record files for tampering: hash chain, seq gaps, restarts and loss markers.",
        discussion: "Give a rotated set oldest first. Exits 0 when intact, 1 at the first break or any seq gap.")

    @Argument(help: "Record files (NDJSON), oldest first.")
    var files: [String]

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one record file") }
    }

    func run() throws {
        let result = ChainVerifier.verify(paths: files)
        for r in result.restarts { print(r) }
        for g in result.gaps { print(g) }
        if let failure = result.failure { print(failure) }
        print(result.summary)
        if !result.intact { throw ExitCode(1) }
    }
}
