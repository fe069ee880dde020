import AgentSessions
import AgentSupport
import CLibbpf
import Glibc

/// Creates a session cgroup for `agentwatch run` and waits until a running daemon watches it.
package enum SessionLauncher {
    /// A session id when none is given: `run-YYYYMMDD-HHMMSS-XXXXXX`.
    package static func generatedID() -> String {
        var t = time(nil)
        var tm = tm()
        gmtime_r(&t, &tm)
        var rnd: UInt32 = 0
        _ = getrandom(&rnd, 4, 0)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        let suffix = String(rnd & 0xFFFFFF, radix: 16)
        return "run-\(pad(tm.tm_year + 1900, 4))\(pad(tm.tm_mon + 1, 2))\(pad(tm.tm_mday, 2))-\(pad(tm.tm_hour, 2))\(pad(tm.tm_min, 2))\(pad(tm.tm_sec, 2))-\(String(repeating: "0", count: 6 - suffix.count) + suffix)"
    }

    /// Makes the session cgroup below the first root of `config` and stores its metadata.
    /// Returns the cgroup's path.
    package static func create(id: String, metadata: SessionMetadata, config: DaemonConfig) throws(AgentError) -> String {
        if let problem = validateSessionID(id) { throw AgentError("--session \(id): \(problem)") }
        guard let mount = CgroupFS.mountPoint() else {
            throw AgentError("no cgroup2 filesystem is mounted: mount one (mount -t cgroup2 none /sys/fs/cgroup)")
        }
        let registry = try SessionRegistry(mount: mount, roots: [config.sessionRoots[0]])
        return try create(id: id, metadata: metadata, root: registry.roots[0].path)
    }

    /// Makes the session cgroup `root/id` and stores its metadata; returns its path.
    package static func create(id: String, metadata: SessionMetadata, root: String) throws(AgentError) -> String {
        if let problem = validateSessionID(id) { throw AgentError("--session \(id): \(problem)") }
        let path = root + "/" + id
        if mkdir(path, 0o755) != 0 {
            let e = errno
            if e == EEXIST { throw AgentError("session \(id) already exists (\(path)): choose another --session") }
            throw AgentError("cannot create session cgroup \(path): \(String(cString: strerror(e)))")
        }
        CgroupFS.setxattr(path, SessionMetadata.xattr, metadata.encoded())
        return path
    }

    /// Whether a daemon is running, by its pid file.
    package static func daemonRunning(config: DaemonConfig) -> Bool {
        guard let text = try? readFile(config.runtimeDir + "/daemon.pid"), let pid = Int32(text.trimmingCharacters()) else { return false }
        return kill(pid, 0) == 0
    }

    /// Waits until the daemon marks the session as watched (its syscall hooks are attached).
    package static func waitUntilWatched(path: String, timeoutMs: Int) -> Bool {
        var waited = 0
        while waited <= timeoutMs {
            if CgroupFS.getxattr(path, SessionMetadata.watchedXattr) != nil { return true }
            usleep(5_000)
            waited += 5
        }
        return false
    }

    /// Moves the calling process into the session cgroup.
    package static func enter(path: String) throws(AgentError) {
        let fd = open(path + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw AgentError("cannot open \(path)/cgroup.procs: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let me = Array("0\n".utf8)
        guard me.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == me.count else {
            throw AgentError("cannot move into session cgroup \(path): \(String(cString: strerror(errno)))")
        }
    }
}
