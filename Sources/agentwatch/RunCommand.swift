import AgentCore
import ArgumentParser
import Glibc

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Start a watched agent session and run CMD in it.",
        discussion: """
            As root (sudo), creates the session cgroup, moves CMD into it and runs it as the user \
            who called sudo (SUDO_UID/SUDO_GID). When CMD ends the session's cgroup is removed, \
            which ends the session. Example: sudo agentwatch run --label agent=claude -- claude
            """)

    @Option(name: .long, help: "Session id (letters, digits, '.', '_', '-'). Default: generated.")
    var session: String?

    @Option(name: .long, help: "A label K=V recorded with the session (repeatable).")
    var label: [String] = []

    @Option(name: .long, help: "Config file, for session_roots and runtime_dir.")
    var config: String?

    @Argument(parsing: .captureForPassthrough, help: "The command to run, after --.")
    var command: [String] = []

    func validate() throws {
        var cmd = command
        if cmd.first == "--" { cmd.removeFirst() }
        guard !cmd.isEmpty else { throw ValidationError("give the command to run after --, e.g. agentwatch run -- bash") }
        for l in label {
            if let problem = validateLabel(l) { throw ValidationError("--label \(l): \(problem)") }
        }
        if let session, let problem = validateSessionID(session) { throw ValidationError("--session \(session): \(problem)") }
    }

    func run() throws {
        var cmd = command
        if cmd.first == "--" { cmd.removeFirst() }
        do {
            try launch(cmd)
        } catch {
            FileHandleStderr.write("agentwatch run: \(error.message)\n")
            throw ExitCode(1)
        }
    }

    private func launch(_ cmd: [String]) throws(AgentError) -> Never {
        guard geteuid() == 0 else {
            throw AgentError("needs root to create a session cgroup: run it with sudo")
        }
        let settings: DaemonConfig = try config.map { p throws(AgentError) in try DaemonConfig.load(path: p) } ?? DaemonConfig()
        let env = ProcessEnvironment()
        let uid = env.sudoUID ?? getuid()
        let gid = env.sudoGID ?? getgid()
        let labels = label.map { l -> (key: String, value: String) in
            let eq = l.firstIndex(of: "=")!
            return (String(l[..<eq]), String(l[l.index(after: eq)...]))
        }
        let id = session ?? SessionLauncher.generatedID()
        let path = try SessionLauncher.create(id: id, metadata: SessionMetadata(uid: uid, labels: labels, home: env.callerHome), config: settings)
        if SessionLauncher.daemonRunning(config: settings) {
            if !SessionLauncher.waitUntilWatched(path: path, timeoutMs: 3000) {
                FileHandleStderr.write("agentwatch run: the daemon has not picked up session \(id) within 3 s; its first file and network records may be missing\n")
            }
        } else {
            FileHandleStderr.write("agentwatch run: no agentwatch daemon is running: session \(id) is not being recorded until one starts\n")
        }

        let child = fork()
        if child < 0 { throw AgentError("fork: \(String(cString: strerror(errno)))") }
        if child == 0 {
            do {
                try SessionLauncher.enter(path: path)
            } catch {
                FileHandleStderr.write("agentwatch run: \(error.message)\n")
                _exit(126)
            }
            if env.sudoUID != nil {
                if setgroups(0, nil) != 0 || setgid(gid) != 0 || setuid(uid) != 0 {
                    FileHandleStderr.write("agentwatch run: cannot drop to uid \(uid) gid \(gid): \(String(cString: strerror(errno)))\n")
                    _exit(126)
                }
            }
            var argv = cmd.map { strdup($0) }
            argv.append(nil)
            execvp(cmd[0], &argv)
            FileHandleStderr.write("agentwatch run: \(cmd[0]): \(String(cString: strerror(errno)))\n")
            _exit(errno == ENOENT ? 127 : 126)
        }
        // The parent stays outside the session to clean it up: it passes signals on and
        // removes the cgroup once CMD is gone, which ends the session.
        SignalForwarder.install(child: child)
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        if rmdir(path) != 0 && errno == EBUSY {
            FileHandleStderr.write("agentwatch run: processes of session \(id) are still running; the session ends when they do and \(path) is removed\n")
        }
        if status & 0x7f != 0 {
            signal(status & 0x7f, SIG_DFL)
            kill(getpid(), status & 0x7f)
        }
        Glibc.exit((status >> 8) & 0xff)
    }
}

struct ProcessEnvironment {
    var sudoUID: UInt32? { getenv("SUDO_UID").flatMap { UInt32(String(cString: $0)) } }
    var sudoGID: UInt32? { getenv("SUDO_GID").flatMap { UInt32(String(cString: $0)) } }
    /// The caller's HOME when it runs as itself; under sudo, HOME may be root's, and the
    /// daemon takes the session user's home from passwd instead.
    var callerHome: String? {
        guard sudoUID == nil, let h = getenv("HOME") else { return nil }
        let home = String(cString: h)
        return home.hasPrefix("/") ? home : nil
    }
}

/// Passes terminal and termination signals from `agentwatch run` to the command it started.
enum SignalForwarder {
    nonisolated(unsafe) static var child: pid_t = 0

    static func install(child: pid_t) {
        Self.child = child
        for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
            signal(sig) { s in if SignalForwarder.child > 0 { kill(SignalForwarder.child, s) } }
        }
    }
}
