import AgentDaemon
import AgentSessions
import AgentSupport
import ArgumentParser
import Foundation
import Glibc

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Start a watched agent session and run CMD in it.",
        discussion: """
            As root (sudo), creates the session cgroup, moves CMD into it and runs it as the user \
            who called sudo (SUDO_UID/SUDO_GID). Without root, asks the running daemon over its \
            control socket (members of the agentwatch group) to create the session and move CMD \
            into it; CMD runs as you. When CMD ends the session's cgroup is removed, which ends \
            the session. Example: agentwatch run --label agent=claude -- claude
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
        // `.captureForPassthrough` takes everything from the first unknown word on, `--help`
        // too: asked for before `--`, it is help, never a command to run in a new session.
        if let first = command.first, ["--help", "-h", "-help"].contains(first) { throw CleanExit.helpRequest(self) }
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
        let settings: DaemonConfig = try config.map { p throws(AgentError) in try DaemonConfig.load(path: p) } ?? DaemonConfig()
        guard geteuid() == 0 else { try launchThroughDaemon(cmd, settings: settings) }
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
        let status = Self.wait(for: child)
        if rmdir(path) != 0 && errno == EBUSY {
            FileHandleStderr.write("agentwatch run: processes of session \(id) are still running; the session ends when they do and \(path) is removed\n")
        }
        Self.exit(like: status)
    }

    /// Without root: a child asks the daemon to move it into a new session (the daemon moves
    /// only the process that asks, which it holds by a pidfd from SO_PEERPIDFD), then execs CMD as the
    /// caller. The parent stays outside, passes signals on, and asks the daemon to end the
    /// session when CMD is gone. The child does only system calls between fork and exec:
    /// everything it needs is made before the fork.
    private func launchThroughDaemon(_ cmd: [String], settings: DaemonConfig) throws(AgentError) -> Never {
        let socketPath = settings.runtimeDir + "/control.sock"
        let id = session ?? SessionLauncher.generatedID()
        var labels: [String: String] = [:]
        for l in label {
            let eq = l.firstIndex(of: "=")!
            labels[String(l[..<eq])] = String(l[l.index(after: eq)...])
        }
        let request = ControlRequest.start(StartRequest(session: id, labels: labels)).line()
        guard let address = UnixSocketAddress(socketPath) else { throw AgentError("control socket path too long: \(socketPath)") }
        let okMark = ControlAnswer.acceptedMark
        var reply = [UInt8](repeating: 0, count: 65536)
        var report: [Int32] = [0, 0]
        guard pipe(&report) == 0 else { throw AgentError("pipe: \(String(cString: strerror(errno)))") }
        var argv = cmd.map { strdup($0) }
        argv.append(nil)

        let child = fork()
        if child < 0 { throw AgentError("fork: \(String(cString: strerror(errno)))") }
        if child == 0 {
            close(report[0])
            let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            let connected = address.withSockaddr { connect(s, $0, $1) } == 0
            var got = 0
            if connected {
                // A daemon that stops answering (or goes) ends the wait: no SIGPIPE, a bound
                // on each read (a start answers within about 3 s).
                var tv = timeval(tv_sec: 10, tv_usec: 0)
                setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                _ = request.withUnsafeBytes { send(s, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                while got < reply.count {
                    let n = reply.withUnsafeMutableBytes { read(s, $0.baseAddress! + got, $0.count - got) }
                    if n <= 0 { break }
                    got += n
                }
            } else {
                // Say why for the parent: 1 byte errno marker.
                var e = UInt8(truncatingIfNeeded: errno)
                _ = write(report[1], &e, 1)
                _exit(125)
            }
            close(s)
            var accepted = false
            var i = 0
            while !accepted && i + okMark.count <= got {
                var j = 0
                while j < okMark.count && reply[i + j] == okMark[j] { j += 1 }
                accepted = j == okMark.count
                i += 1
            }
            if !accepted {
                _ = reply.withUnsafeBytes { write(report[1], $0.baseAddress, got) }
                _exit(125)
            }
            close(report[1])
            execvp(argv[0]!, &argv)
            _exit(errno == ENOENT ? 127 : 126)
        }
        close(report[1])
        let status = Self.wait(for: child)
        var why: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(report[0], $0.baseAddress, $0.count) }
            if n <= 0 { break }
            why += buf[0..<n]
        }
        if (status >> 8) & 0xff == 125 && status & 0x7f == 0 && !why.isEmpty {
            if why.count == 1 {
                let e = Int32(why[0])
                let hint = e == ENOENT || e == ECONNREFUSED ? "no agentwatch daemon is running (start it: systemctl start agentwatch), or run this with sudo"
                    : e == EACCES ? "you may not use \(socketPath): join the agentwatch group (then log in again), or run this with sudo"
                    : String(cString: strerror(e))
                throw AgentError("cannot reach the daemon at \(socketPath): \(hint)")
            }
            guard case .refused(let reason)? = try? JSONDecoder().decode(ControlReply<SessionStarted>.self, from: Data(why)) else {
                throw AgentError("the daemon refused the session: \(String(decoding: why, as: UTF8.self))")
            }
            throw AgentError("the daemon refused the session: \(reason)")
        }
        if status & 0x7f == 0 && (status >> 8) & 0xff == 127 {
            FileHandleStderr.write("agentwatch run: \(cmd[0]): command not found\n")
        }
        _ = try? ControlClient.end(session: id, path: socketPath)
        Self.exit(like: status)
    }

    /// Waits for `child`, passing terminal and termination signals on to it.
    static func wait(for child: pid_t) -> Int32 {
        SignalForwarder.install(child: child)
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        return status
    }

    /// Exits as the child did: the same code, or the same signal.
    static func exit(like status: Int32) -> Never {
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
