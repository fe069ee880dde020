import AgentSupport
import Glibc

/// A cgroup directory whose children are sessions.
package struct SessionRoot: Sendable {
    /// Absolute path of the directory.
    package let path: String
    /// Path relative to the cgroup2 mount.
    package let cgroup: String
    package let cgid: UInt64
    package let level: UInt32
    /// The index in `SessionRegistry.patterns` of the pattern this root matched; nil for a
    /// configured directory.
    package var pattern: Int? = nil

    /// The path in the hierarchy of a session directory below this root.
    func childCgroup(_ name: String) -> String {
        cgroup == "/" ? "/" + name : cgroup + "/" + name
    }
}

/// The live sessions: which cgroups below the session roots exist, keyed by cgroup id, and
/// what changed since the last look.
package final class SessionRegistry {
    package let mount: String
    /// The configured directories first (roots[0] is `agentwatch run`'s), then the roots found
    /// through patterns, in the order they were found.
    package private(set) var roots: [SessionRoot]
    /// Session-root patterns (entries of session_roots with '*').
    package let patterns: [RootPattern]
    package private(set) var sessions: [UInt64: Session] = [:]
    /// Directories seen but not yet announced: no metadata and no process yet. A session made
    /// by `agentwatch run` gets its metadata a moment after mkdir; give it that moment.
    private var pending: [UInt64: Int64] = [:]
    /// mkdir notices of session directories below pattern roots, by cgroup id.
    var notices: [UInt64: MadeNotice] = [:]
    static let pendingGraceNs: Int64 = 1_000_000_000

    /// Resolves the roots below the cgroup2 mount `mount`. A relative root is taken below the
    /// mount; a missing root whose parent exists is created.
    package init(mount: String, roots rootPaths: [String]) throws(AgentError) {
        self.mount = mount
        var roots: [SessionRoot] = []
        var patterns: [RootPattern] = []
        for given in rootPaths where RootPattern.isPattern(given) {
            patterns.append(try RootPattern(given, mount: mount))
        }
        for given in rootPaths where !RootPattern.isPattern(given) {
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
        self.patterns = patterns
    }

    /// Whether a session directory was seen and not yet announced.
    package var hasPending: Bool { !pending.isEmpty }

    /// Looks for directories matching the patterns: roots that appeared and roots that went.
    /// A root that went has no session left below it (a cgroup with children cannot be removed).
    package func discoverRoots() -> (added: [SessionRoot], removed: [SessionRoot]) {
        guard !patterns.isEmpty else { return ([], []) }
        let found = matchingRoots()
        let known = Set(roots.map(\.cgid))
        let removed = roots.filter { $0.pattern != nil && found[$0.cgid] == nil }
        let added = found.values.filter { !known.contains($0.cgid) }.sorted { $0.path < $1.path }
        if !removed.isEmpty {
            let gone = Set(removed.map(\.cgid))
            roots.removeAll { gone.contains($0.cgid) }
        }
        roots += added
        return (added, removed)
    }

    /// The directories the patterns match now, by cgroup id.
    private func matchingRoots() -> [UInt64: SessionRoot] {
        var found: [UInt64: SessionRoot] = [:]
        for (i, pattern) in patterns.enumerated() {
            for path in pattern.expand(mount: mount) {
                guard let cgid = CgroupFS.id(of: path), found[cgid] == nil else { continue }
                found[cgid] = SessionRoot(path: path, cgroup: String(path.dropFirst(mount.count)), cgid: cgid,
                                          level: CgroupFS.level(of: path, mount: mount), pattern: i)
            }
        }
        return found
    }

    /// Looks at the directories below the roots: sessions that appeared and sessions that went.
    /// `force` announces a directory at once even without metadata (its first record arrived).
    package func scan(nowNs: Int64, adopting: Bool = false, force: Set<UInt64> = []) -> (started: [Session], ended: [Session]) {
        var seen = Set<UInt64>()
        var started: [Session] = []
        for root in roots {
            // Every directory: the kernel gate treats every child of a root as a session, so a
            // name that is no valid id (a space, a leading '.', bytes that are not UTF-8) gets
            // an escaped id, never a pass.
            for entry in CgroupFS.entries(of: root.path) {
                let name = String(decoding: entry.name, as: UTF8.self)
                let path = root.path + "/" + name
                let cgid = entry.cgid
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
                let s = Self.session(entry, below: root, meta: meta, adopted: adopting, nowNs: nowNs)
                admit(s)
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

    /// The session of directory `entry` below `root`. The owner: root for what root made, the
    /// user for a directory made in a slice delegated to them (only root can set the trusted
    /// xattr that names another).
    static func session(_ entry: CgroupFS.Entry, below root: SessionRoot, meta: SessionMetadata?, adopted: Bool, nowNs: Int64) -> Session {
        let name = String(decoding: entry.name, as: UTF8.self)
        let s = Session(id: sessionID(directoryName: entry.name), path: root.path + "/" + name, cgroup: root.childCgroup(name),
                        cgid: entry.cgid, uid: meta?.uid ?? entry.owner, labels: meta?.labels ?? [], adopted: adopted, home: meta?.home)
        s.startNs = nowNs
        return s
    }

    /// Makes `s` a known session (one `lookUp` or `standIn` gave): the next scan neither
    /// announces it again nor waits for its metadata.
    package func admit(_ s: Session) {
        sessions[s.cgid] = s
        pending[s.cgid] = nil
        notices[s.cgid] = nil
    }
}

extension SessionRegistry {
    /// A session directory the kernel saw made below a pattern's root (its mkdir notice): what
    /// names the session when its directory is gone before the daemon looked (a systemd scope
    /// goes with its last process). Used once; at most `maxNotices` kept.
    package struct MadeNotice: Sendable {
        package let name: [UInt8]
        package let uid: UInt32
        package let parent: UInt64

        package init(name: [UInt8], uid: UInt32, parent: UInt64) {
            self.name = name
            self.uid = uid
            self.parent = parent
        }
    }
    static let maxNotices = 1024

    package func noteMade(cgid: UInt64, _ notice: MadeNotice) {
        if notices.count >= Self.maxNotices, let any = notices.keys.first { notices[any] = nil }
        notices[cgid] = notice
    }

    /// The session cgroup `cgid` is, read now, for a record of a session no scan has seen yet
    /// (its first records can come before the daemon looks), without changing what the registry
    /// holds: so that it can be asked from inside the ring-buffer callback. Looks below the
    /// known roots, then below the directories the patterns match now (a root made moments
    /// ago), then in `notice` or the mkdir notices kept. nil: its directory is gone, unnoticed.
    /// `admit` makes the session known.
    package func lookUp(cgid: UInt64, nowNs: Int64, notice: MadeNotice? = nil) -> Session? {
        for root in roots {
            if let s = lookUp(cgid: cgid, below: root, nowNs: nowNs) { return s }
        }
        let known = Set(roots.map(\.cgid))
        let new = patterns.isEmpty ? [] : matchingRoots().values.filter { !known.contains($0.cgid) }.sorted { $0.path < $1.path }
        for root in new {
            if let s = lookUp(cgid: cgid, below: root, nowNs: nowNs) { return s }
        }
        guard let n = notice ?? notices[cgid], let root = (roots + new).first(where: { $0.cgid == n.parent }) else { return nil }
        let name = String(decoding: n.name, as: UTF8.self)
        let s = Session(id: sessionID(directoryName: n.name), path: root.path + "/" + name, cgroup: root.childCgroup(name),
                        cgid: cgid, uid: n.uid, labels: [], adopted: false)
        s.startNs = nowNs
        return s
    }

    private func lookUp(cgid: UInt64, below root: SessionRoot, nowNs: Int64) -> Session? {
        guard let entry = CgroupFS.entries(of: root.path).first(where: { $0.cgid == cgid }) else { return nil }
        let meta = CgroupFS.getxattr(root.path + "/" + String(decoding: entry.name, as: UTF8.self), SessionMetadata.xattr).map(SessionMetadata.decode)
        return Self.session(entry, below: root, meta: meta, adopted: false, nowNs: nowNs)
    }

    /// A session for records whose cgroup is already gone (created and removed between two
    /// looks). Once admitted, it ends at the next scan, since its directory is not there.
    package static func standIn(cgid: UInt64, nowNs: Int64) -> Session {
        let s = Session(id: "cgroup-\(cgid)", path: "", cgroup: "", cgid: cgid, uid: 0, labels: [], adopted: false)
        s.startNs = nowNs
        return s
    }
}
