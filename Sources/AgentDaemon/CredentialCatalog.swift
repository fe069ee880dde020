import AgentSessions
import AgentSupport
import CSupport
import Dispatch
import Glibc
import Synchronization

/// The credential catalog, expanded against the file system for one session: which files the
/// path patterns of the rule lists marked `identity: true` name under the session's homes (and
/// the absolute ones, such as `/etc/shadow`), and what each file is (device and inode). The
/// pipeline then knows a catalog file under any other path it is reached by: a hard link, a
/// bind mount, `/proc/PID/root/...` (`FileIdentities`, `file.known_as`).
///
/// A scan is bounded: `**` walks at most `maxDepth` directories down and never follows a
/// symbolic link to a directory, a scan reads at most `maxEntries` directory entries, keeps at
/// most `maxFiles` files and stops after `budgetNs`; what it left out is in `notes`. Runs on
/// `CatalogScanner`'s thread for the `SessionTracker`: when a session starts, every
/// `intervalNs`, and soon after the session creates a file in a directory the catalog watches.
struct CredentialCatalog: Sendable {
    struct Limits: Sendable {
        var maxDepth = 6
        var maxEntries = 20_000
        var maxFiles = 2_048
        var budgetNs: Int64 = 100_000_000
        /// Files that left their catalog path (renamed out, or the pattern no longer matches)
        /// but still exist: kept by identity, at most this many per session.
        var maxRetained = 256
    }

    /// The rescan interval of a live session.
    static let intervalNs: Int64 = 30_000_000_000
    /// The soonest a session's file creations can ask for another scan.
    static let wantedGapNs: Int64 = 50_000_000

    /// The patterns as the lists spell them (`~/.ssh/id_*`, `/etc/shadow`).
    let patterns: [String]
    var limits = Limits()

    init(patterns: [String], limits: Limits = Limits()) {
        self.patterns = patterns
        self.limits = limits
    }

    /// What a scan found.
    struct Result: Sendable {
        var entries: [FileIdentities.Key: FileIdentities.Entry] = [:]
        var directories: Set<[UInt8]> = []
        /// A handle per catalog file (when its filesystem has them), so a later scan can tell a
        /// file that left its catalog path from one that is gone.
        var handles: [FileIdentities.Key: Handle] = [:]
        var notes: [String] = []
    }

    /// A file handle (`name_to_handle_at`) and a directory on the same filesystem to open it
    /// through.
    struct Handle: Sendable {
        let bytes: [UInt8]
        let directory: String
        /// What stat showed: the file the handle opens must be this one.
        let dev: UInt64
        let ino: UInt64
    }

    /// Scans for a session whose homes are `homes`. `previous`: the last scan's result, whose
    /// files no longer found at a catalog path are kept while they exist.
    func scan(homes: [String], previous: Result? = nil) -> Result {
        var walk = Walk(limits: limits, mounts: MountDevices())
        // A home the daemon cannot read leaves its part of the catalog empty: say why.
        if patterns.contains(where: { $0 == "~" || $0.hasPrefix("~/") }) {
            for home in homes {
                guard let d = opendir(home) else {
                    let e = errno
                    if e == ENOENT || e == ENOTDIR { continue }  // no home (nobody's /nonexistent): nothing to know
                    walk.notes.append("home \(home) cannot be read (\(String(cString: strerror(e)))): its files are not known by identity"
                        + (e == EACCES ? " (the daemon needs CAP_DAC_READ_SEARCH and, under systemd, ProtectHome=read-only)" : ""))
                    continue
                }
                closedir(d)
            }
        }
        for pattern in patterns {
            for absolute in Self.expandHome(pattern, homes: homes) {
                walk.expand(absolute)
                if walk.stopped { break }
            }
            if walk.stopped { break }
        }
        var result = Result()
        for (key, paths) in walk.found {
            result.entries[key] = FileIdentities.Entry(paths: paths)
        }
        result.handles = walk.handles
        result.directories = walk.directories
        result.notes = walk.notes
        if let previous { retain(from: previous, into: &result) }
        return result
    }

    /// `~/x` for each home; an absolute pattern as it is; anything else names no path.
    static func expandHome(_ pattern: String, homes: [String]) -> [String] {
        if pattern == "~" { return homes }
        if pattern.hasPrefix("~/") {
            return homes.map { home in (home.hasSuffix("/") ? String(home.dropLast()) : home) + pattern.dropFirst() }
        }
        return pattern.hasPrefix("/") ? [pattern] : []
    }

    /// Files of the previous scan not found this time that still exist (their handle opens, to
    /// the same inode, with a link left): a credential moved out of the catalog is still one.
    private func retain(from previous: Result, into result: inout Result) {
        var kept = 0
        for (key, entry) in previous.entries where result.entries[key] == nil {
            guard kept < limits.maxRetained, let handle = previous.handles[key] else { continue }
            // Not O_PATH: open_by_handle_at wants a descriptor it can use as the filesystem's.
            let dirFD = open(handle.directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard dirFD >= 0 else { continue }
            let fd = handle.bytes.withUnsafeBytes { aw_open_file_handle(dirFD, $0.baseAddress) }
            close(dirFD)
            guard fd >= 0 else { continue }
            var st = stat()
            let ok = fstat(fd, &st) == 0 && st.st_nlink > 0 && UInt64(st.st_ino) == handle.ino && UInt64(st.st_dev) == handle.dev
            close(fd)
            guard ok else { continue }
            result.entries[key] = entry
            result.handles[key] = handle
            kept += 1
        }
    }

    /// The kernel's encoding of a device number (major << 20 | minor), from glibc's `dev_t`.
    static func kernelDevice(_ dev: UInt64) -> UInt32 {
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))
        let minor = (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))
        return UInt32(truncatingIfNeeded: (major << 20) | (minor & 0xfffff))
    }

    /// One scan's walk over the file system.
    private struct Walk {
        let limits: Limits
        var mounts: MountDevices
        var found: [FileIdentities.Key: [[UInt8]]] = [:]
        var handles: [FileIdentities.Key: Handle] = [:]
        var directories: Set<[UInt8]> = []
        var notes: [String] = []
        var entriesRead = 0
        var listed: [String: [(String, UInt8)]?] = [:]
        var files = 0
        var stopped = false
        let started = WallClock.monotonicNs()

        init(limits: Limits, mounts: MountDevices) {
            self.limits = limits
            self.mounts = mounts
        }

        mutating func stop(_ why: String) {
            if !stopped { notes.append(why) }
            stopped = true
        }

        mutating func outOfTime() -> Bool {
            if WallClock.monotonicNs() - started > limits.budgetNs {
                stop("the scan took longer than \(limits.budgetNs / 1_000_000) ms: the rest of the catalog was not scanned")
            }
            return stopped
        }

        /// Expands one absolute pattern.
        mutating func expand(_ pattern: String) {
            let parts = pattern.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            guard !parts.isEmpty else { return }
            // The directory a created file would land in, when the pattern's parent is literal
            // (it may not exist yet); below a wildcard, directories are watched as they match.
            if !parts.dropLast().contains(where: Self.isWild) { watch("/" + parts.dropLast().joined(separator: "/")) }
            step(parts[...], at: "")
        }

        /// Matches `parts` below the directory `dir` ("" is `/`).
        mutating func step(_ parts: ArraySlice<String>, at dir: String) {
            guard let part = parts.first, !outOfTime() else { return }
            let rest = parts.dropFirst()
            if part.contains("**") {
                walkDeep(pattern: parts.joined(separator: "/"), base: dir, relative: "", depth: 0)
                return
            }
            if !Self.isWild(part) {
                let path = dir + "/" + part
                if rest.isEmpty { file(path) } else if isDirectory(path) { step(rest, at: path) }
                return
            }
            guard let names = list(dir.isEmpty ? "/" : dir) else { return }
            if rest.isEmpty { watch(dir.isEmpty ? "/" : dir) }
            for (name, _) in names where fnmatch(part, name, 0) == 0 {
                let path = dir + "/" + name
                if rest.isEmpty { file(path) } else if isDirectory(path) { step(rest, at: path) }
                if stopped { return }
            }
        }

        /// `**` and what follows it, matched against the paths of files below `base` relative to
        /// it (fnmatch without FNM_PATHNAME: `*` crosses `/` too, broader than the rules' globs;
        /// the rules match `file.known_as` against their lists again, so a broader catalog only
        /// costs a lookup). `**/x` also matches `x` right below `base`, as in the rules.
        mutating func walkDeep(pattern: String, base: String, relative: String, depth: Int) {
            let here = relative.isEmpty ? base : base + "/" + relative
            guard depth <= limits.maxDepth else {
                notes.append("\(here): deeper than \(limits.maxDepth) directories below \(base), not scanned")
                return
            }
            guard let names = list(here.isEmpty ? "/" : here) else { return }
            watch(here.isEmpty ? "/" : here)
            let shallow = pattern.hasPrefix("**/") ? String(pattern.dropFirst(3)) : nil
            for (name, type) in names {
                let rel = relative.isEmpty ? name : relative + "/" + name
                let path = base + "/" + rel
                if type == UInt8(DT_DIR) {
                    // Never a symbolic link (d_type is the link's own): no walk leaves the tree.
                    walkDeep(pattern: pattern, base: base, relative: rel, depth: depth + 1)
                } else if fnmatch(pattern, rel, 0) == 0 || (shallow.map { fnmatch($0, rel, 0) == 0 } ?? false) {
                    file(path)
                }
                if stopped { return }
            }
        }

        /// A directory's entries (name, d_type), or nil; read once per scan (many patterns
        /// share a directory: ~/.config), counted against `maxEntries`.
        mutating func list(_ dir: String) -> [(String, UInt8)]? {
            if let seen = listed[dir] { return seen }
            let entries = read(dir)
            listed[dir] = entries
            return entries
        }

        private mutating func read(_ dir: String) -> [(String, UInt8)]? {
            guard let d = opendir(dir) else { return nil }
            defer { closedir(d) }
            var out: [(String, UInt8)] = []
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
                if name == "." || name == ".." { continue }
                entriesRead += 1
                if entriesRead > limits.maxEntries {
                    stop("more than \(limits.maxEntries) directory entries read: the rest of the catalog was not scanned")
                    break
                }
                var type = e.pointee.d_type
                if type == UInt8(DT_UNKNOWN) {
                    var st = stat()
                    if lstat(dir + "/" + name, &st) == 0 {
                        switch st.st_mode & S_IFMT {
                        case S_IFDIR: type = UInt8(DT_DIR)
                        case S_IFLNK: type = UInt8(DT_LNK)
                        default: type = UInt8(DT_REG)
                        }
                    }
                }
                out.append((name, type))
            }
            return out
        }

        func isDirectory(_ path: String) -> Bool {
            var st = stat()
            return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
        }

        /// A directory where a created file may join the catalog: as the pattern spells it and
        /// as the kernel resolves it (a symlinked home).
        mutating func watch(_ dir: String) {
            directories.insert(Array(dir.utf8))
            if let real = Self.resolved(dir) { directories.insert(real) }
        }

        /// The directory's path as the kernel resolves it: the link of a descriptor of it in
        /// /proc/self/fd. Not realpath(3): glibc's fortified inline realpath is defined in two
        /// clang modules this target sees (Glibc and Yams's CYaml) and a fortified release
        /// build refuses the second definition.
        static func resolved(_ dir: String) -> [UInt8]? {
            let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX))
            let n = buffer.withUnsafeMutableBufferPointer { b in
                b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { readlink("/proc/self/fd/\(fd)", $0, b.count) }
            }
            guard n > 0, n < buffer.count, buffer[0] == UInt8(ascii: "/") else { return nil }
            return Array(buffer[..<n])
        }

        /// A path a pattern matched: a catalog file when it is a regular file (symlinks followed).
        mutating func file(_ path: String) {
            var st = stat()
            guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return }
            if files >= limits.maxFiles {
                stop("more than \(limits.maxFiles) catalog files: the rest of the catalog was not scanned")
                return
            }
            let bytes = Array(path.utf8)
            let ino = UInt64(st.st_ino)
            var keys = [FileIdentities.Key(dev: CredentialCatalog.kernelDevice(UInt64(st.st_dev)), ino: ino)]
            // btrfs subvolumes: stat shows the subvolume's device, the kernel records the
            // filesystem's (the one /proc/self/mountinfo shows for the mount).
            if let dev = mounts.device(of: path), dev != keys[0].dev { keys.append(FileIdentities.Key(dev: dev, ino: ino)) }
            var isNew = false
            for key in keys {
                if found[key] == nil { isNew = true }
                if !(found[key]?.contains(bytes) ?? false) { found[key, default: []].append(bytes) }
            }
            if isNew { files += 1 }
            if handles[keys[0]] == nil {
                var handle = [UInt8](repeating: 0, count: Int(AW_FILE_HANDLE_SIZE))
                let n = handle.withUnsafeMutableBytes { aw_file_handle(path, $0.baseAddress) }
                if n > 0 {
                    let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "/"
                    let h = Handle(bytes: Array(handle.prefix(Int(n))), directory: directory.isEmpty ? "/" : directory,
                                   dev: UInt64(st.st_dev), ino: ino)
                    for key in keys { handles[key] = h }
                }
            }
        }

        static func isWild(_ part: String) -> Bool {
            part.utf8.contains { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "\\") }
        }
    }
}

/// The device of each mount as the kernel records it for files (the superblock's, as
/// /proc/self/mountinfo shows it), read once per scan and only when asked.
struct MountDevices {
    private var byID: [UInt64: UInt32]?

    /// The kernel device of the mount `path` is on; nil when unknown.
    mutating func device(of path: String) -> UInt32? {
        var id: UInt64 = 0
        guard aw_mount_id(path, &id) == 0 else { return nil }
        if byID == nil { byID = Self.read() }
        return byID?[id]
    }

    private static func read() -> [UInt64: UInt32] {
        guard let bytes = try? readBytes("/proc/self/mountinfo", limit: 16 << 20) else { return [:] }
        var out: [UInt64: UInt32] = [:]
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            // "36 35 98:0 /mnt1 /mnt/parent rw,... - ext3 /dev/root rw"
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 3)
            guard fields.count >= 3, let id = UInt64(String(decoding: fields[0], as: UTF8.self)) else { continue }
            let dev = fields[2].split(separator: UInt8(ascii: ":"))
            guard dev.count == 2, let major = UInt32(String(decoding: dev[0], as: UTF8.self)),
                  let minor = UInt32(String(decoding: dev[1], as: UTF8.self)) else { continue }
            out[id] = major << 20 | (minor & 0xfffff)
        }
        return out
    }
}

/// Runs the catalog scans on a thread of its own. A scan stats paths the session controls
/// (a symbolic link into a FUSE mount that never answers, a `**` walk into one), so the capture
/// loop hands scans over and never waits on one longer than `waitForFirst` allows: a scan that
/// hangs leaves that session's catalog as it was, never the records unread.
final class CatalogScanner: @unchecked Sendable {
    struct Request: Sendable {
        let cgid: UInt64
        let ticket: UInt64
        let homes: [String]
        let catalog: CredentialCatalog
        let previous: CredentialCatalog.Result?
    }

    struct Done: Sendable {
        let cgid: UInt64
        let ticket: UInt64
        let result: CredentialCatalog.Result
    }

    private struct State {
        var queue: [Request] = []
        var done: [Done] = []
        var started = false
        var stopping = false
    }

    private let state = Mutex(State())
    private let ready = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// Queues a scan; a queued request of the same session is replaced (the latest wins).
    func submit(_ r: Request) {
        let start = state.withLock { s -> Bool in
            s.queue.removeAll { $0.cgid == r.cgid }
            s.queue.append(r)
            defer { s.started = true }
            return !s.started
        }
        if start { startWorker() }
        ready.signal()
    }

    /// The scans finished since the last call.
    func takeDone() -> [Done] {
        state.withLock { s in
            defer { s.done = [] }
            return s.done
        }
    }

    /// Waits up to `timeoutNs` for the scan `ticket`; the scans finished meanwhile (the one
    /// waited for among them when it finished in time).
    func wait(for ticket: UInt64, timeoutNs: Int64) -> [Done] {
        let deadline = WallClock.monotonicNs() + timeoutNs
        var got: [Done] = []
        while true {
            got += takeDone()
            if got.contains(where: { $0.ticket == ticket }) { return got }
            let left = deadline - WallClock.monotonicNs()
            if left <= 0 || finished.wait(timeout: .now() + .nanoseconds(Int(left))) == .timedOut {
                return got + takeDone()
            }
        }
    }

    /// Ends the worker once its current scan returns.
    func stop() {
        state.withLock { $0.stopping = true }
        ready.signal()
    }

    private func startWorker() {
        startThread(name: "agentwatch-catalog") { [self] in
            while true {
                ready.wait()
                let next = state.withLock { s -> Request? in
                    s.stopping || s.queue.isEmpty ? nil : s.queue.removeFirst()
                }
                guard let r = next else {
                    if state.withLock({ $0.stopping }) { return }
                    continue
                }
                let result = r.catalog.scan(homes: r.homes, previous: r.previous)
                state.withLock { $0.done.append(Done(cgid: r.cgid, ticket: r.ticket, result: result)) }
                finished.signal()
            }
        }
    }
}
