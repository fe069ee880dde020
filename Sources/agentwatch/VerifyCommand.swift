import AgentReplay
import ArgumentParser

/// `agentwatch verify FILE...`: checks the hash chain, `seq` gaps, restarts and loss markers of
/// record files, given oldest first; exits 0 only when the set is intact, 2 when it is intact
/// but a daemon run ended without `agent.stop`.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check record files for tampering: hash chain, seq gaps, restarts and loss markers.",
        discussion: """
            Give a rotated set oldest first (gzipped files are read as they are); a live file given before its \
            rotated files (as a shell glob lists them) is checked after them. What an interrupted rotation left \
            is set aside with a line saying so: a partial X.gz.tmp, and X given with X.gz when both hold the same \
            records (when they differ, that is reported and X.gz is checked). \
            A daemon restart after a run that ended without agent.stop (killed, crashed, powered off) is an \
            unclean stop: "daemon restart after an unclean stop: the run before ended at seq N (TIME) without \
            agent.stop; records it had not written are missing". A fresh chain (chain_start) anywhere but at the \
            start of the set or right after an agent.stop is a break: nothing vouches for the records before it. \
            Exit status: 0 intact; 1 at the first break, any seq gap, an X that differs from its X.gz, or a set \
            that does not start at a daemon's first record (see --partial); 2 the chain is intact but has unclean \
            stops (records lost, not tampered with); 64 a usage error.
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
        for s in result.setAside { print(s) }
        if let a = result.anchor { print(a) }
        for r in result.restarts { print(r) }
        for g in result.gaps { print(g) }
        for c in result.conflicts { print(c) }
        if let failure = result.failure { print(failure) }
        print(result.summary)
        if result.exitStatus != 0 { throw ExitCode(result.exitStatus) }
    }
}
