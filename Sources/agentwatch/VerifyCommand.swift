import AgentCore
import ArgumentParser

/// `agentwatch verify FILE...`: checks the hash chain, `seq` gaps and loss markers of record
/// files, given oldest first; exits 0 only when the set is intact.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check record files for tampering: hash chain, seq gaps, restarts and loss markers.",
        discussion: """
            Give a rotated set oldest first (gzipped files are read as they are); a live file given before its \
            rotated files (as a shell glob lists them) is checked after them. Exits 0 when intact, 1 at the first \
            break, any seq gap, or a set that does not start at a daemon's first record (see --partial).
            """)

    @Flag(help: "The set may start after records rotated away: its first record anchors the chain.")
    var partial = false

    @Argument(help: "Record files (NDJSON, or gzipped), oldest first.")
    var files: [String]

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one record file") }
    }

    func run() throws {
        let result = ChainVerifier.verify(paths: ChainVerifier.rotationOrder(files), allowAnchor: partial)
        if let a = result.anchor { print(a) }
        for r in result.restarts { print(r) }
        for g in result.gaps { print(g) }
        if let failure = result.failure { print(failure) }
        print(result.summary)
        if !result.intact { throw ExitCode(1) }
    }
}
