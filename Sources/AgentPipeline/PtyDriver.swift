import AgentSupport
import Glibc

/// The process on the other side of a shell's terminal: the one holding the master side of the
/// pseudo-terminal the shell reads (`process.stdin.driver`). What the shell reads is what that
/// process writes there; when it also holds a connected inet socket, the shell is driven from
/// the network: a pty reverse shell (`pty.spawn("/bin/sh")` after dup2 of a socket).
package struct StdinDriver: Sendable, Equatable {
    package var pid: UInt32
    package var entityID: String
    package var exe: [UInt8]
    /// It held a connected inet or inet6 socket when the exec was recorded.
    package var inet: Bool

    package init(pid: UInt32, entityID: String, exe: [UInt8], inet: Bool) {
        self.pid = pid
        self.entityID = entityID
        self.exe = exe
        self.inet = inet
    }
}

/// Finds who drives a pseudo-terminal, among the processes of the shell's session, from /proc:
/// a descriptor of /dev/ptmx (char device 5:2, whatever name it was opened by) whose fdinfo
/// says `tty-index: N` is the master of /dev/pts/N; that process's socket descriptors are then
/// looked up in its network namespace's /proc/PID/net/{tcp,tcp6,udp,udp6}. Everything read is
/// written by the kernel (fd names are numbers, fdinfo and the socket tables are the kernel's
/// text), and every walk is bounded. The shell's ancestors are asked first: the driver is
/// usually its parent (pty.spawn, script, expect). Answers are kept per session and terminal
/// for `ttl`, so a build whose recipes each start `sh -c` on the same terminal costs one walk.
///
/// Not seen: a driver outside the session (a terminal emulator, sshd, tmux started before the
/// session: the common case, and no driver is written), a driver that relays through another
/// process (its socket there, a unix socket between them), and a second devpts instance (a
/// container's) whose terminal has the same index as the shell's.
struct PtyDrivers {
    static let ttlNs: UInt64 = 2_000_000_000
    static let cacheLimit = 1024
    static let maxProcesses = 512
    static let maxFDsPerProcess = 4096
    /// Descriptors looked at per lookup, all processes together.
    static let maxFDsPerLookup = 65536
    static let maxSocketTableBytes = 8 << 20

    struct Key: Hashable {
        let session: UInt64
        let rdev: UInt32
    }

    private var cache: [Key: (driver: StdinDriver?, atNs: UInt64)] = [:]

    /// The pts index of a pseudo-terminal slave (kernel encoding; every /dev/pts/N is 136:N).
    static func ptsIndex(_ rdev: UInt32) -> UInt32? { rdev >> 20 == 136 ? rdev & 0xFFFFF : nil }

    /// /dev/ptmx (5:2), as stat(2) gives its st_rdev (glibc's makedev).
    static let ptmx: UInt64 = 5 << 8 | 2

    /// Shells by image name (rules/lists.yaml `shells`), and busybox started as one.
    static let shells: Set<String> = [
        "sh", "bash", "rbash", "dash", "zsh", "fish", "ksh", "ksh93", "mksh", "oksh", "pdksh", "ash", "hush", "yash",
        "posh", "tcsh", "csh",
    ]
    static let busyboxShells: Set<String> = ["sh", "ash", "hush", "bash"]

    static func isShell(_ p: ProcessInfo) -> Bool {
        let name = String(decoding: LiveRuleInput.basename(p.exe), as: UTF8.self)
        if shells.contains(name) { return true }
        return name == "busybox" && busyboxShells.contains(String(decoding: p.comm, as: UTF8.self))
    }

    mutating func forget(session: UInt64) {
        cache = cache.filter { $0.key.session != session }
    }

    /// The driver of terminal `rdev` for `shell`'s exec at `nowNs`, or nil when no process of
    /// the session holds its master side.
    mutating func driver(of rdev: UInt32, for shell: ProcessInfo, nowNs: UInt64, table: ProcessTable) -> StdinDriver? {
        guard let index = Self.ptsIndex(rdev) else { return nil }
        let key = Key(session: shell.sessionCgid, rdev: rdev)
        if let hit = cache[key], nowNs >= hit.atNs, nowNs - hit.atNs < Self.ttlNs { return hit.driver }
        let found = Self.find(index: index, shell: shell, table: table)
        if cache[key] == nil, cache.count >= Self.cacheLimit {
            cache = cache.filter { nowNs >= $0.value.atNs && nowNs - $0.value.atNs < Self.ttlNs }
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
        }
        cache[key] = (found, nowNs)
        return found
    }

    /// The candidates: the shell's ancestors in its session, nearest first, then the session's
    /// other processes, newest pid first, then the shell itself.
    static func candidates(_ shell: ProcessInfo, _ table: ProcessTable) -> [ProcessInfo] {
        var out: [ProcessInfo] = []
        var seen: Set<UInt32> = [shell.pid]
        var at = shell
        for _ in 0..<16 {
            guard let parent = table.byPID[at.ppid], parent.sessionCgid == shell.sessionCgid, seen.insert(parent.pid).inserted else { break }
            out.append(parent)
            at = parent
        }
        var rest: [ProcessInfo] = []
        for (pid, p) in table.byPID where p.sessionCgid == shell.sessionCgid && !seen.contains(pid) { rest.append(p) }
        rest.sort { $0.pid > $1.pid }
        out += rest
        out.append(shell)
        return Array(out.prefix(maxProcesses))
    }

    static func find(index: UInt32, shell: ProcessInfo, table: ProcessTable) -> StdinDriver? {
        var budget = maxFDsPerLookup
        for p in candidates(shell, table) {
            guard budget > 0 else { break }
            guard let scan = Self.scan(pid: p.pid, index: index, budget: &budget), scan.master else { continue }
            let inet = !scan.sockets.isEmpty && connectedInet(pid: p.pid, sockets: scan.sockets)
            return StdinDriver(pid: p.pid, entityID: p.entityID, exe: p.exe, inet: inet)
        }
        return nil
    }

    /// Whether `pid` holds the master of pts `index`, and the inodes of its sockets.
    static func scan(pid: UInt32, index: UInt32, budget: inout Int) -> (master: Bool, sockets: Set<UInt64>)? {
        guard let dir = opendir("/proc/\(pid)/fd") else { return nil }
        defer { closedir(dir) }
        let dfd = dirfd(dir)
        var master = false
        var sockets: Set<UInt64> = []
        var seen = 0
        while seen < maxFDsPerProcess, budget > 0, let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix(while: { $0 != 0 }))
            }
            // Descriptors are numbers; "." and ".." are not.
            guard !name.isEmpty, name.count <= 10, name.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { continue }
            seen += 1
            budget -= 1
            let fd = String(decoding: name, as: UTF8.self)
            var st = stat()
            guard fstatat(dfd, fd, &st, 0) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFCHR where UInt64(st.st_rdev) == ptmx:
                if !master, ttyIndex(pid: pid, fd: fd) == index { master = true }
            case S_IFSOCK:
                sockets.insert(UInt64(st.st_ino))
            default:
                break
            }
        }
        return (master, sockets)
    }

    /// The `tty-index:` a pty master's fdinfo shows.
    static func ttyIndex(pid: UInt32, fd: String) -> UInt32? {
        guard let text = try? readBytes("/proc/\(pid)/fdinfo/\(fd)", limit: 4096) else { return nil }
        return ttyIndex(text)
    }

    static func ttyIndex(_ text: [UInt8]) -> UInt32? {
        let key = Array("tty-index:".utf8)
        var i = 0
        while i + key.count <= text.count {
            let lineStart = i
            if text[lineStart..<(lineStart + key.count)].elementsEqual(key) {
                var j = lineStart + key.count
                while j < text.count, text[j] == UInt8(ascii: " ") || text[j] == UInt8(ascii: "\t") { j += 1 }
                var v: UInt64 = 0
                var digits = 0
                while j < text.count, text[j] >= UInt8(ascii: "0"), text[j] <= UInt8(ascii: "9"), digits < 10 {
                    v = v * 10 + UInt64(text[j] - UInt8(ascii: "0"))
                    j += 1
                    digits += 1
                }
                return digits > 0 && v <= UInt64(UInt32.max) ? UInt32(v) : nil
            }
            guard let nl = text[lineStart...].firstIndex(of: UInt8(ascii: "\n")) else { break }
            i = nl + 1
        }
        return nil
    }

    /// Whether one of `sockets` is a connected inet socket in pid's network namespace: TCP in
    /// any state but LISTEN (0A) and CLOSE (07), or UDP connected (01).
    static func connectedInet(pid: UInt32, sockets: Set<UInt64>) -> Bool {
        for (table, udp) in [("tcp", false), ("tcp6", false), ("udp", true), ("udp6", true)] {
            guard let text = try? readBytes("/proc/\(pid)/net/\(table)", limit: maxSocketTableBytes) else { continue }
            if socketTable(text, has: sockets, udp: udp) { return true }
        }
        return false
    }

    /// /proc/net/{tcp,udp}[6] text: `sl local remote st tx:rx tr:when retrnsmt uid timeout inode ...`.
    static func socketTable(_ text: [UInt8], has sockets: Set<UInt64>, udp: Bool) -> Bool {
        var fields: [Range<Int>] = []
        fields.reserveCapacity(12)
        var i = 0
        var header = true
        while i < text.count {
            let end = text[i...].firstIndex(of: UInt8(ascii: "\n")) ?? text.count
            defer { i = end + 1 }
            if header {
                header = false
                continue
            }
            fields.removeAll(keepingCapacity: true)
            var j = i
            while j < end, fields.count < 10 {
                while j < end, text[j] == UInt8(ascii: " ") { j += 1 }
                let start = j
                while j < end, text[j] != UInt8(ascii: " ") { j += 1 }
                if j > start { fields.append(start..<j) }
            }
            guard fields.count == 10, let inode = decimal(text[fields[9]]), inode != 0, sockets.contains(inode) else { continue }
            let state = text[fields[3]]
            let st = String(decoding: state, as: UTF8.self).uppercased()
            if udp ? st == "01" : (st != "0A" && st != "07") { return true }
        }
        return false
    }

    private static func decimal(_ bytes: ArraySlice<UInt8>) -> UInt64? {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        var v: UInt64 = 0
        for b in bytes {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(b - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            v = s
        }
        return v
    }
}
