import AgentSessions
import AgentSupport
import CSupport
import Foundation
import Glibc

/// Who is on the other end of a control connection, as the kernel says, and a handle on the exact
/// process that connected: a pidfd, so that a request can never act on a later process that was
/// given the same pid.
package struct ControlPeer: Sendable {
    package let pid: Int32
    package let uid: UInt32
    package let gid: UInt32
    /// A pidfd for the process that connected, or -1 when none could be had (it had gone). The
    /// connection owns it and closes it.
    package let pidfd: Int32
    /// The process's start time (field 22 of /proc/PID/stat) when the pidfd came from
    /// pidfd_open at accept rather than from the socket: it is checked again before a move.
    let startTime: UInt64?

    package init(pid: Int32, uid: UInt32, gid: UInt32, pidfd: Int32 = -1, startTime: UInt64? = nil) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.pidfd = pidfd
        self.startTime = startTime
    }

    /// The peer of accepted socket `fd`, whose SO_PEERCRED gave `pid`, `uid` and `gid`.
    /// SO_PEERPIDFD names the process that called connect(2) whatever happened since; where the
    /// kernel lacks it, pidfd_open of the pid right at accept, with the start time to tell a later
    /// process of that pid (a pid reused before accept is not caught: the loop accepts at once).
    static func bind(socket fd: Int32, pid: Int32, uid: UInt32, gid: UInt32) -> ControlPeer {
        let pidfd = aw_peer_pidfd(fd)
        if pidfd >= 0 { return ControlPeer(pid: pid, uid: uid, gid: gid, pidfd: pidfd) }
        guard errno == ENOPROTOOPT else { return ControlPeer(pid: pid, uid: uid, gid: gid) }
        let opened = aw_pidfd_open(pid)
        guard opened >= 0, let start = Self.startTime(of: pid), aw_pidfd_send_signal(opened, 0) == 0 else {
            if opened >= 0 { close(opened) }
            return ControlPeer(pid: pid, uid: uid, gid: gid)
        }
        return ControlPeer(pid: pid, uid: uid, gid: gid, pidfd: opened, startTime: start)
    }

    /// Whether the process that connected still runs (a zombie still holds its pid, so it counts).
    var alive: Bool { pidfd >= 0 && aw_pidfd_send_signal(pidfd, 0) == 0 }

    /// Why the daemon may not move the connecting process, or nil when it may: it must still run,
    /// be the process the pid names now, and run as the caller (its real and effective uid), unless
    /// the caller is root, who may move any process.
    func ownershipProblem() -> String? {
        guard pidfd >= 0 else { return "process \(pid) that connected is gone: ask from the process to be moved, and keep it running" }
        // The reads below name a pid; they are about our process only if it runs after them.
        let pidfdNames = Self.fdinfoPid(pidfd)
        let ids = Self.uids(of: pid)
        let start = Self.startTime(of: pid)
        guard alive, pidfdNames == pid else {
            return "process \(pid) that connected is gone: ask from the process to be moved, and keep it running"
        }
        if let startTime, start != startTime {
            return "process \(pid) is not the process that connected: ask from the process to be moved"
        }
        guard uid == 0 || (ids?.real == uid && ids?.effective == uid) else {
            return "process \(pid) no longer runs as uid \(uid): the daemon moves only the caller's own process"
        }
        return nil
    }

    /// Moves the connecting process, and nothing else, into cgroup directory `path`; nil when
    /// done, else why not (nothing moved). `leaving`: whether a cgroup the process is in may not
    /// be left (a session's), read again right before the move.
    func move(into path: String, refuseLeaving leaving: (String) -> Bool) -> String? {
        if let problem = ownershipProblem() { return problem }
        guard let before = Self.cgroup(of: pid) else { return "cannot read the cgroup of process \(pid)" }
        if leaving(before) { return "process \(pid) is inside a session: a process never leaves its session" }
        // Between the checks and the write the process may exit and its pid go to another one:
        // written, then checked again; a pid that changed hands is put back where it was.
        guard alive else { return "process \(pid) that connected is gone: nothing was moved" }
        if let e = Self.write(pid: pid, to: path) { return "cannot move process \(pid) into \(path): \(String(cString: strerror(e)))" }
        guard alive else {
            _ = Self.write(pid: pid, to: before)
            return "process \(pid) that connected exited while it was being moved: nothing of it was moved"
        }
        return nil
    }

    // MARK: /proc

    /// The absolute cgroup v2 directory of `pid`.
    static func cgroup(of pid: Int32, mount: String? = CgroupFS.mountPoint()) -> String? {
        guard let mount, let text = try? readFile("/proc/\(pid)/cgroup") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            return mount + String(line.dropFirst(3))
        }
        return nil
    }

    /// Field 22 of /proc/PID/stat, in clock ticks since boot. The fields after comm are read
    /// past its last `)`: comm itself may hold spaces and parentheses.
    static func startTime(of pid: Int32) -> UInt64? {
        guard let text = try? readFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state).
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    /// The real and effective uid of `pid` (the `Uid:` line of /proc/PID/status).
    static func uids(of pid: Int32) -> (real: UInt32, effective: UInt32)? {
        guard let text = try? readFile("/proc/\(pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("Uid:") {
            let v = line.dropFirst(4).split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { UInt32($0) }
            return v.count >= 2 ? (v[0], v[1]) : nil
        }
        return nil
    }

    /// The pid a pidfd names in this pid namespace (`Pid:` of its fdinfo; -1 once it exited).
    static func fdinfoPid(_ fd: Int32) -> Int32? {
        guard let text = try? readFile("/proc/self/fdinfo/\(fd)") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("Pid:") {
            return Int32(line.dropFirst(4).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// Writes `pid` to `dir`/cgroup.procs; nil on success, else errno.
    package static func write(pid: Int32, to dir: String) -> Int32? {
        let fd = open(dir + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        let text = Array("\(pid)\n".utf8)
        let n = text.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        return n == text.count ? nil : errno
    }
}
