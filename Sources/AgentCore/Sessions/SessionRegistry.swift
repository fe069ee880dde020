import Glibc

/// A cgroup directory whose children are sessions.
public struct SessionRoot: Sendable {
    /// Absolute path of the directory.
    public let path: String
    /// Path relative to the cgroup2 mount.
    public let cgroup: String
    public let cgid: UInt64
    public let level: UInt32
}

/// The live sessions: which cgroups below the session roots exist, keyed by cgroup id, and
/// what changed since the last look.
public final class SessionRegistry {
    public let mount: String
    public let roots: [SessionRoot]
    public private(set) var sessions: [UInt64: Session] = [:]
    /// Directories seen but not yet announced: no metadata and no process yet. A session made
    /// by `agentwatch run` gets its metadata a moment after mkdir; give it that moment.
    private var pending: [UInt64: Int64] = [:]
    static let pendingGraceNs: Int64 = 1_000_000_000

    /// Resolves the roots below the cgroup2 mount `mount`. A relative root is taken below the
    /// mount; a missing root whose parent exists is created.
    public init(mount: String, roots rootPaths: [String]) throws(AgentError) {
        self.mount = mount
        var roots: [SessionRoot] = []
        for given in rootPaths {
            let path = given.hasPrefix("/") ? given : mount + "/" + given
            guard path == mount || path.hasPrefix(mount + "/") else {
                throw AgentError("session root \(path) is not below the cgroup2 mount \(mount): set session_roots to a directory below it")
            }
            if CgroupFS.id(of: path) == nil {
                if mkdir(path, 0o755) != 0 && errno != EEXIST {
                    let e = errno
                    throw AgentError("session root \(path) is missing and could not be created (\(String(cString: strerror(e)))): create it or set session_roots in the config")
                }
            }
            guard CgroupFS.isCgroup2(path), let cgid = CgroupFS.id(of: path) else {
                throw AgentError("session root \(path) is not a cgroup2 directory: set session_roots to a directory below \(mount)")
            }
            let cgroup = String(path.dropFirst(mount.count))
            roots.append(SessionRoot(path: path, cgroup: cgroup.isEmpty ? "/" : cgroup, cgid: cgid, level: CgroupFS.level(of: path, mount: mount)))
        }
        self.roots = roots
    }

    /// Looks at the directories below the roots: sessions that appeared and sessions that went.
    /// `force` announces a directory at once even without metadata (its first record arrived).
    public func scan(nowNs: Int64, adopting: Bool = false, force: Set<UInt64> = []) -> (started: [Session], ended: [Session]) {
        var seen = Set<UInt64>()
        var started: [Session] = []
        for root in roots {
            for name in CgroupFS.subdirectories(of: root.path) where !name.hasPrefix(".") && validateSessionID(name) == nil {
                let path = root.path + "/" + name
                guard let cgid = CgroupFS.id(of: path) else { continue }
                seen.insert(cgid)
                if sessions[cgid] != nil { continue }
                let meta = CgroupFS.getxattr(path, SessionMetadata.xattr).map(SessionMetadata.decode)
                let firstSeen = pending[cgid] ?? nowNs
                let ready = adopting || meta != nil || force.contains(cgid) || Self.populated(path)
                    || nowNs - firstSeen >= Self.pendingGraceNs
                guard ready else {
                    pending[cgid] = firstSeen
                    continue
                }
                pending[cgid] = nil
                var st = stat()
                let owner = stat(path, &st) == 0 ? UInt32(st.st_uid) : 0
                let s = Session(id: name, path: path, cgroup: root.cgroup == "/" ? "/" + name : root.cgroup + "/" + name,
                                cgid: cgid, uid: meta?.uid ?? owner, labels: meta?.labels ?? [], adopted: adopting, home: meta?.home)
                s.startNs = nowNs
                sessions[cgid] = s
                started.append(s)
            }
        }
        var ended: [Session] = []
        for (cgid, s) in sessions where !seen.contains(cgid) {
            ended.append(s)
        }
        for s in ended { sessions[s.cgid] = nil }
        pending = pending.filter { seen.contains($0.key) }
        return (started, ended.sorted { $0.startNs < $1.startNs })
    }

    static func populated(_ path: String) -> Bool {
        guard let text = try? readFile(path + "/cgroup.events") else { return false }
        return text.contains("populated 1")
    }
}

/// An error the daemon reports to the person running it: one line that says what to do.
public struct AgentError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension SessionRegistry {
    /// A session for records whose cgroup is already gone (created and removed between two
    /// looks). It ends at the next scan, since its directory is not there.
    func standIn(cgid: UInt64, nowNs: Int64) -> Session {
        let s = Session(id: "cgroup-\(cgid)", path: "", cgroup: "", cgid: cgid, uid: 0, labels: [], adopted: false)
        s.startNs = nowNs
        sessions[cgid] = s
        return s
    }
}
