import AgentSupport
import CLibbpf
import Glibc

/// The cgroup v2 filesystem as agentwatch uses it: where it is mounted, and cgroup ids and
/// levels from paths.
package enum CgroupFS {
    /// The mount point of the cgroup2 filesystem (`/sys/fs/cgroup` on a pure v2 host,
    /// `/sys/fs/cgroup/unified` on a hybrid one), read from /proc/self/mountinfo.
    package static func mountPoint() -> String? {
        guard let text = try? readFile("/proc/self/mountinfo") else { return nil }
        for line in text.split(separator: "\n") {
            // fields: id parent major:minor root mountpoint options ... - fstype source superopts
            let parts = line.split(separator: " ")
            guard let dash = parts.firstIndex(of: "-"), dash + 1 < parts.count, parts.count > 4 else { continue }
            if parts[dash + 1] == "cgroup2" { return unescapeMountPath(String(parts[4])) }
        }
        return nil
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    static func unescapeMountPath(_ s: String) -> String {
        var out = [UInt8]()
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count,
               let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `path` is on a cgroup2 filesystem.
    package static func isCgroup2(_ path: String) -> Bool {
        var fs = statfs()
        guard statfs(path, &fs) == 0 else { return false }
        return UInt(fs.f_type) == UInt(CGROUP2_SUPER_MAGIC)
    }

    /// The cgroup id of a cgroup directory: its kernfs inode number.
    package static func id(of path: String) -> UInt64? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return nil }
        return UInt64(st.st_ino)
    }

    /// The level of a cgroup below the mount: the mount itself is 0.
    package static func level(of path: String, mount: String) -> UInt32 {
        let rel = path.dropFirst(mount.count)
        return UInt32(rel.split(separator: "/").count)
    }

    /// Process ids in a cgroup and every cgroup below it.
    package static func processes(below path: String) -> [Int32] {
        var pids: [Int32] = []
        if let text = try? readFile(path + "/cgroup.procs") {
            pids += text.split(separator: "\n").compactMap { Int32($0) }
        }
        for child in subdirectories(of: path) {
            pids += processes(below: path + "/" + child)
        }
        return pids
    }

    package static func subdirectories(of path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// A directory as readdir and fstatat see it, without decoding its name: a cgroup may be
    /// named with any bytes but '/' and NUL (spaces, controls, bytes that are not UTF-8), and
    /// every one of them is a cgroup the kernel gate may treat as a session.
    package struct Entry: Sendable {
        package let name: [UInt8]
        /// The cgroup id (kernfs inode number), from fstatat on the entry itself.
        package let cgid: UInt64
        /// The directory's owner: who made it, or whom it was delegated to.
        package let owner: UInt32
    }

    /// The subdirectories of `path`, names as bytes (see `Entry`).
    package static func entries(of path: String) -> [Entry] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        let dfd = dirfd(dir)
        var out: [Entry] = []
        while let entry = readdir(dir) {
            guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
            var st = stat()
            let (name, ok) = withUnsafeBytes(of: &entry.pointee.d_name) { raw -> ([UInt8], Bool) in
                let name = Array(raw.prefix(while: { $0 != 0 }))
                let ok = fstatat(dfd, raw.baseAddress!.assumingMemoryBound(to: CChar.self), &st, AT_SYMLINK_NOFOLLOW) == 0
                return (name, ok)
            }
            guard ok, (st.st_mode & S_IFMT) == S_IFDIR, name != [0x2E], name != [0x2E, 0x2E] else { continue }
            out.append(Entry(name: name, cgid: UInt64(st.st_ino), owner: UInt32(st.st_uid)))
        }
        return out.sorted { $0.name.lexicographicallyPrecedes($1.name) }
    }

    package static func getxattr(_ path: String, _ name: String) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { CLibbpf.getxattr(path, name, $0.baseAddress, $0.count) }
        return n >= 0 ? Array(buf[0..<n]) : nil
    }

    @discardableResult
    package static func setxattr(_ path: String, _ name: String, _ value: [UInt8]) -> Bool {
        value.withUnsafeBytes { CLibbpf.setxattr(path, name, $0.baseAddress, $0.count, 0) } == 0
    }
}
