import Glibc

/// A directory the daemon writes its files in (outputs, spool, runtime files), opened from `/`
/// one component at a time and checked, so that no one but root can plant a symbolic link or
/// swap a name in it. Files in it are opened, renamed and removed relative to its descriptor with
/// `O_NOFOLLOW`, never by path, and owners and modes are set on descriptors.
///
/// A component is accepted when it is owned by root (or the daemon's effective user) and not
/// writable by group or others. Two exceptions: an ancestor writable by others is accepted when
/// it is sticky, like `/tmp` (others cannot rename or remove the root-owned component below it),
/// and a component writable by its group is accepted when that group is root. A symbolic link on
/// the way (`/var/run`) is followed only when the link is owned by root (or the daemon's user):
/// it lies in a checked directory, so root made it, and its target is checked the same way.
package final class TrustedDirectory: Sendable {
    /// The path as given (what messages name).
    package let path: String
    /// What the directory is for, in messages ("output main", "runtime_dir").
    package let purpose: String
    /// The directory itself, `O_RDONLY | O_DIRECTORY`, closed with the object.
    package let fd: Int32

    /// Opens `path` (relative paths from the working directory), creating missing components
    /// with `mode` (exactly, whatever the umask) and `group` when `mode` is given, and refuses a
    /// directory others could change with the reason and what to do.
    package init(_ path: String, purpose: String, create mode: mode_t? = nil, group: gid_t? = nil) throws(AgentError) {
        self.path = path
        self.purpose = purpose
        var absolute = path
        if !path.hasPrefix("/") {
            guard let cwd = getcwd(nil, 0) else {
                throw AgentError("\(purpose): \(path): cannot read the working directory: \(String(cString: strerror(errno)))")
            }
            absolute = String(cString: cwd) + "/" + path
            free(cwd)
        }
        fd = try Self.walk(absolute, given: path, purpose: purpose, create: mode, group: group)
    }

    deinit { Glibc.close(fd) }

    /// `(dir, name)` of a file path: `/var/log/a` → `("/var/log", "a")`, `/a` → `("/", "a")`,
    /// `a` → `(".", "a")`.
    package static func split(_ filePath: String) -> (dir: String, name: String) {
        guard let slash = filePath.lastIndex(of: "/") else { return (".", filePath) }
        let dir = filePath[..<slash]
        return (dir.isEmpty ? "/" : String(dir), String(filePath[filePath.index(after: slash)...]))
    }

    /// The path of `name` for messages.
    package func path(of name: String) -> String { path.hasSuffix("/") ? path + name : path + "/" + name }

    // MARK: files in the directory

    /// `openat` with `O_NOFOLLOW | O_CLOEXEC`: -1 with `errno` on failure, `ELOOP` for a symbolic
    /// link and `EINVAL` for anything but a regular file (a FIFO, a device), which is closed again
    /// unread. Opened non-blocking so a FIFO cannot hold the caller; the flag is cleared after.
    package func open(_ name: String, _ flags: Int32, mode: mode_t = 0o600) -> Int32 {
        guard Self.isName(name) else { errno = EINVAL; return -1 }
        let f = openat(fd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode)
        guard f >= 0 else { return -1 }
        var st = stat()
        guard fstat(f, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            Glibc.close(f)
            errno = EINVAL
            return -1
        }
        if flags & O_NONBLOCK == 0 { _ = fcntl(f, F_SETFL, fcntl(f, F_GETFL) & ~O_NONBLOCK) }
        return f
    }

    /// Replaces `name` with `bytes` through `name.tmp` and a rename, so a reader sees the old
    /// content or the new, never a part (pid file, metrics). `mode` and `group` are set on the
    /// descriptor. False with `errno` on failure, and the temporary file removed.
    @discardableResult
    package func replace(_ name: String, with bytes: [UInt8], mode: mode_t = 0o644, group: gid_t? = nil) -> Bool {
        let tmp = name + ".tmp"
        // A leftover of a run that died mid-replace (or anything else at that name, a link
        // included) is removed, never written through; the new file is made afresh.
        unlink(tmp)
        let f = open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode: mode)
        guard f >= 0 else { return false }
        var ok = fchmod(f, mode) == 0 && (group.map { fchown(f, uid_t.max, $0) == 0 } ?? true)
        ok = ok && bytes.withUnsafeBytes { writeFully(f, $0) } == bytes.count
        let e = errno
        Glibc.close(f)
        if ok && rename(tmp, to: name) { return true }
        let failed = ok ? errno : e
        unlink(tmp)
        errno = failed
        return false
    }

    /// `renameat` within the directory; false with `errno`.
    @discardableResult
    package func rename(_ name: String, to newName: String) -> Bool {
        guard Self.isName(name), Self.isName(newName) else { errno = EINVAL; return false }
        return renameat(fd, name, fd, newName) == 0
    }

    /// `unlinkat` of a file (a symbolic link itself, never its target); false with `errno`.
    @discardableResult
    package func unlink(_ name: String) -> Bool {
        guard Self.isName(name) else { errno = EINVAL; return false }
        return unlinkat(fd, name, 0) == 0
    }

    /// Whether anything (a symbolic link included) has this name.
    package func exists(_ name: String) -> Bool { status(name) != nil }

    /// `fstatat` with `AT_SYMLINK_NOFOLLOW`: the name itself, not what a link points to.
    package func status(_ name: String) -> stat? {
        guard Self.isName(name) else { return nil }
        var st = stat()
        return fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }

    /// Owner and group of `name` itself (for a socket, whose descriptor cannot change its file).
    @discardableResult
    package func setOwner(_ name: String, uid: uid_t = uid_t.max, gid: gid_t) -> Bool {
        guard Self.isName(name) else { errno = EINVAL; return false }
        return fchownat(fd, name, uid, gid, AT_SYMLINK_NOFOLLOW) == 0
    }

    /// Mode of `name` itself; a symbolic link is refused (`EOPNOTSUPP`), never followed.
    @discardableResult
    package func setMode(_ name: String, _ mode: mode_t) -> Bool {
        guard Self.isName(name) else { errno = EINVAL; return false }
        return fchmodat(fd, name, mode, AT_SYMLINK_NOFOLLOW) == 0
    }

    /// A path through this descriptor, `/proc/self/fd/N/name`, for calls that take only a path
    /// (`bind` of a unix socket): it resolves to this directory whatever happens to its path.
    package func descriptorPath(_ name: String) -> String { "/proc/self/fd/\(fd)/\(name)" }

    /// Makes renames and removals in the directory durable (`fsync` of the directory).
    package func sync() { _ = fsync(fd) }

    /// The names in the directory (without `.` and `..`), from a descriptor of its own: a dup
    /// would share the read position with `fd` and with a concurrent listing.
    package func names() -> [String] {
        let d = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard d >= 0 else { return [] }
        guard let dir = fdopendir(d) else { Glibc.close(d); return [] }
        defer { closedir(dir) }
        var out: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    /// One component: not empty, no `/`, not `.` or `..`.
    package static func isName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(UInt8(ascii: "/")) && !name.utf8.contains(0)
    }

    // MARK: the walk

    /// At most this many symbolic links on the way, like the kernel's own limit.
    static let maxLinks = 40

    private static func walk(_ absolute: String, given: String, purpose: String,
                             create mode: mode_t?, group: gid_t?) throws(AgentError) -> Int32 {
        let euid = geteuid()
        func refuse(_ component: String, _ reason: String, _ advice: String? = nil) -> AgentError {
            let fix = advice ?? "make it owned by root and not writable by group or others, or choose another directory"
            let at = component == given ? "\(given) \(reason)" : "\(given): \(component) \(reason)"
            return AgentError("\(purpose): \(at): \(fix)")
        }
        func owner(_ uid: uid_t) -> String {
            if let pw = getpwuid(uid) { return "\(String(cString: pw.pointee.pw_name)) (uid \(uid))" }
            return "uid \(uid)"
        }
        func octal(_ m: mode_t) -> String {
            let s = String(m & 0o7777, radix: 8)
            return String(repeating: "0", count: max(0, 4 - s.count)) + s
        }
        /// Why others could change what lies below this directory, or nil.
        func problem(_ st: stat, final: Bool) -> String? {
            if st.st_mode & S_IFMT != S_IFDIR { return "is not a directory" }
            if st.st_uid != 0 && st.st_uid != euid { return "is owned by \(owner(st.st_uid))" }
            let sticky = st.st_mode & S_ISVTX != 0
            if st.st_mode & S_IWOTH != 0 && (final || !sticky) {
                return "is writable by others (mode \(octal(st.st_mode))\(sticky ? ", sticky" : ""))"
            }
            if st.st_mode & S_IWGRP != 0 && st.st_gid != 0 && (final || !sticky) {
                let name = getgrgid(st.st_gid).map { String(cString: $0.pointee.gr_name) } ?? "gid \(st.st_gid)"
                return "is writable by group \(name) (mode \(octal(st.st_mode)))"
            }
            return nil
        }

        // The open components, `/` first; `..` steps back to one already checked.
        var stack: [(fd: Int32, path: String)] = []
        func closeAll() { for s in stack { Glibc.close(s.fd) } }
        let root = Glibc.open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { throw refuse("/", "cannot be opened: \(String(cString: strerror(errno)))") }
        stack.append((root, "/"))
        var st = stat()
        fstat(root, &st)
        if let p = problem(st, final: false) { closeAll(); throw refuse("/", p) }

        var todo = Array(absolute.split(separator: "/").reversed().map(String.init))
        var links = 0
        while let part = todo.popLast() {
            if part == "." { continue }
            if part == ".." {
                if stack.count > 1 { Glibc.close(stack.removeLast().fd) }
                continue
            }
            let parent = stack[stack.count - 1]
            let here = parent.path == "/" ? "/" + part : parent.path + "/" + part
            var created = false
            if fstatat(parent.fd, part, &st, AT_SYMLINK_NOFOLLOW) != 0 {
                let e = errno
                guard e == ENOENT, let mode else {
                    closeAll()
                    throw refuse(here, e == ENOENT ? "does not exist" : "cannot be read: \(String(cString: strerror(e)))",
                                 e == ENOENT ? "create it (owned by root, not writable by group or others) or choose another directory" : nil)
                }
                if mkdirat(parent.fd, part, mode) == 0 {
                    created = true
                } else if errno != EEXIST {
                    let e = errno
                    closeAll()
                    throw refuse(here, "cannot be created: \(String(cString: strerror(e)))", "create it or choose another directory")
                }
            } else if st.st_mode & S_IFMT == S_IFLNK {
                // Its directory is checked, so only root (or a sticky directory's owner rule) put it there.
                if st.st_uid != 0 && st.st_uid != euid {
                    closeAll()
                    throw refuse(here, "is a symbolic link owned by \(owner(st.st_uid))", "choose a directory without it on the way")
                }
                links += 1
                var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlinkat(parent.fd, part, &buf, buf.count - 1)
                guard links <= maxLinks, n > 0 else {
                    closeAll()
                    throw refuse(here, links > maxLinks ? "has too many symbolic links on the way" : "is a symbolic link that cannot be read",
                                 "choose a directory without it on the way")
                }
                let target = String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if target.hasPrefix("/") {
                    while stack.count > 1 { Glibc.close(stack.removeLast().fd) }
                }
                todo.append(contentsOf: target.split(separator: "/").reversed().map(String.init))
                continue
            }
            let f = openat(parent.fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard f >= 0 else {
                let e = errno
                closeAll()
                // Checked a moment ago: only a name swapped since reads as a link or a file here.
                throw refuse(here, e == ELOOP ? "was replaced by a symbolic link while being opened"
                                 : e == ENOTDIR ? "is not a directory" : "cannot be opened: \(String(cString: strerror(e)))")
            }
            stack.append((f, here))
            if created, let mode {
                // On the new directory's descriptor: the name could be someone else's by now.
                _ = fchmod(f, mode)
                if let group { _ = fchown(f, uid_t.max, group) }
            }
            fstat(f, &st)
            if let p = problem(st, final: false) { closeAll(); throw refuse(here, p) }
        }
        let last = stack[stack.count - 1]
        fstat(last.fd, &st)
        if let p = problem(st, final: true) { closeAll(); throw refuse(last.path, p) }
        stack.removeLast()
        closeAll()
        return last.fd
    }
}
