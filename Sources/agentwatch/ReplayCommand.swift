import AgentDetector
import AgentReplay
import ArgumentParser
import Glibc

/// `agentwatch replay CAPTURE...`: rebuilds what sessions did from capture files — sessions,
/// process trees, file and network activity, alerts — checking the hash chain as it reads, and
/// runs rules again over the records when given.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Rebuild sessions, process trees, activity and alerts from capture files; re-run rules over them.",
        discussion: """
            Give a rotated set oldest first (gzipped files are read as they are); a live file given before its \
            rotated files (as a shell glob lists them) is read after them. The hash chain and seq order are \
            checked while reading: gaps, breaks and loss markers show where they happened. A line that cannot \
            be used is reported as FILE:LINE: what, skipped, and reading goes on. Findings go to standard error, \
            the report to standard output or --output. Exit status: 0 when the capture is intact, 1 when a line \
            was skipped, a file could not be read, the chain broke or records are missing (or the set starts \
            after records not given, without --partial), 2 when the replay could not run (rules that do not \
            load, an output that cannot be written).
            """)

    @Option(name: .customLong("session"), help: ArgumentHelp("Only this session (repeatable).", valueName: "ID"))
    var sessions: [String] = []

    @Option(help: ArgumentHelp("Only records from this time on (RFC 3339, e.g. 2026-11-21T17:40:00Z).", valueName: "T"))
    var since: String?

    @Option(help: ArgumentHelp("Only records before this time (RFC 3339).", valueName: "T"))
    var until: String?

    @Option(name: .customLong("rules"), help: ArgumentHelp("Rule file or directory to run again over the records (repeatable).", valueName: "PATH"))
    var rules: [String] = []

    @Option(help: "tree (process trees per session), timeline (a line per event), ndjson (the records and replayed alerts), html (one page).")
    var format: ReplayOptions.Format = .tree

    @Option(help: ArgumentHelp("Write the report here (created with mode 0600) instead of standard output.", valueName: "FILE"))
    var output: String?

    @Flag(help: "The set may start after records rotated away: its first record anchors the chain.")
    var partial = false

    @Argument(help: "Capture files (NDJSON, or gzipped), oldest first.")
    var captures: [String]

    func validate() throws {
        guard !captures.isEmpty else { throw ValidationError("give at least one capture file") }
        for (name, value) in [("--since", since), ("--until", until)] {
            if let value, ReplayOptions.parseTime(value) == nil {
                throw ValidationError("\(name) \(value): not an RFC 3339 time between years 1678 and 2261, such as 2026-11-21T17:40:00Z")
            }
        }
    }

    func run() throws {
        var options = ReplayOptions()
        options.sessions = Set(sessions)
        options.since = since.flatMap(ReplayOptions.parseTime)
        options.until = until.flatMap(ReplayOptions.parseTime)
        options.format = format
        options.allowAnchor = partial
        options.title = "agentwatch replay of " + captures.joined(separator: " ")
        if !rules.isEmpty {
            do {
                let set = try RuleSet.load(paths: rules)
                for w in set.warnings { FileHandleStderr.write("\(w)\n") }
                options.rules = set
            } catch {
                FileHandleStderr.write("\(error)\nagentwatch replay: the rules in \(rules.joined(separator: ", ")) do not load\n")
                throw ExitCode(2)
            }
        }
        let out: ReplayOutput
        if let output, let capture = captures.first(where: { Self.sameFile($0, output) }) {
            // Truncating the output would destroy the evidence before it is read.
            FileHandleStderr.write("agentwatch replay: --output \(output) is the capture \(capture): choose another file\n")
            throw ExitCode(2)
        }
        if let output {
            do { out = try ReplayOutput(path: output) } catch {
                FileHandleStderr.write("agentwatch replay: \(error)\n")
                throw ExitCode(2)
            }
        } else {
            out = ReplayOutput(fd: STDOUT_FILENO)
        }
        let replay = CaptureReplay(options: options, output: out) { FileHandleStderr.write($0 + "\n") }
        let summary = replay.run(paths: captures)
        out.flush()
        if let error = out.error {
            FileHandleStderr.write("agentwatch replay: writing the report failed: \(error)\n")
            throw ExitCode(2)
        }
        FileHandleStderr.write(summary.line + "\n")
        if summary.exitStatus != 0 { throw ExitCode(summary.exitStatus) }
    }
}

extension ReplayCommand {
    /// Whether two paths name the same existing file (device and inode).
    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }
}

extension ReplayOptions.Format: ExpressibleByArgument {}
