import AgentSupport
import CAgentEvents
import Glibc

/// What an executed image is, whatever it is called: the file's identity (agent_exec.exe_id),
/// what the kernel said of it (exe_flags), and whether this session had just written it.
package struct ExeImage: Sendable, Equatable {
    package var ino: UInt64
    /// The filesystem's device in the kernel's encoding (major << 20 | minor).
    package var dev: UInt32
    package var mountID: UInt32
    /// enum agent_exe_flag.
    package var flags: UInt32
    /// Whether the daemon can say if the session wrote the file (it saw the session's opens:
    /// not for a process found running).
    package var writtenKnown: Bool
    /// The exe of the session process that last opened the file for writing within
    /// `WrittenFiles.windowNs` before the exec; nil when none did.
    package var writtenBy: [UInt8]?

    package init(ino: UInt64, dev: UInt32, mountID: UInt32, flags: UInt32, writtenKnown: Bool, writtenBy: [UInt8]? = nil) {
        self.ino = ino
        self.dev = dev
        self.mountID = mountID
        self.flags = flags
        self.writtenKnown = writtenKnown
        self.writtenBy = writtenBy
    }

    package init(_ e: agent_exec) {
        self.init(ino: e.exe_id.ino, dev: e.exe_id.dev, mountID: e.exe_id.mnt_id, flags: e.exe_flags, writtenKnown: true)
    }

    /// The identity is known (a process whose image could not be read has none).
    package var known: Bool { ino != 0 || dev != 0 }
    /// No path on any filesystem: a memfd, or another file of an internal mount.
    package var fileless: Bool { flags & (AGENT_EXE_MEMFD.rawValue | AGENT_EXE_ANON.rawValue) != 0 }
    /// The name it was executed by was unlinked.
    package var deleted: Bool { flags & AGENT_EXE_DELETED.rawValue != 0 }
    package var written: Bool { writtenBy != nil }

    /// `MAJOR:MINOR` of a device in the kernel's encoding.
    package static func device(_ dev: UInt32) -> String { "\(dev >> 20):\(dev & 0xFFFFF)" }

    /// The kernel's encoding of a device as stat(2) gives it (glibc's st_dev).
    package static func kernelDevice(_ dev: UInt64) -> UInt32 {
        let major = UInt32(truncatingIfNeeded: ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF))
        let minor = UInt32(truncatingIfNeeded: (dev & 0xFF) | ((dev >> 12) & ~0xFF))
        return (major << 20) | (minor & 0xFFFFF)
    }

    /// The image of a process found running, from /proc: its identity by stat(2) of
    /// /proc/PID/exe (the mount id from the fdinfo of a descriptor of it), and what readlink
    /// says of it ("/memfd:NAME (deleted)", "PATH (deleted)"). Returns the exe as the kernel
    /// records would name it ("memfd:NAME").
    static func fromProc(pid: UInt32, link: [UInt8]?) -> (ExeImage?, [UInt8]?) {
        let path = "/proc/\(pid)/exe"
        var st = stat()
        guard stat(path, &st) == 0 else { return (nil, link) }
        var image = ExeImage(ino: UInt64(st.st_ino), dev: kernelDevice(UInt64(st.st_dev)), mountID: mountID(path), flags: 0,
                             writtenKnown: false)
        guard var exe = link else { return (image, nil) }
        let suffix = Array(" (deleted)".utf8)
        let memfd = Array("/memfd:".utf8)
        if exe.count > suffix.count, exe.suffix(suffix.count).elementsEqual(suffix) {
            // simple_dname's "/NAME (deleted)" of a memfd (its name has no '/'; a real file
            // called /memfd:... would need root to make in /): the kernel records say NAME.
            let name = exe.dropFirst().dropLast(suffix.count)
            if exe.starts(with: memfd), !name.contains(UInt8(ascii: "/")) {
                exe = Array(name)
                image.flags |= AGENT_EXE_MEMFD.rawValue
            } else {
                image.flags |= AGENT_EXE_DELETED.rawValue
            }
        } else if exe.first != UInt8(ascii: "/") {
            image.flags |= AGENT_EXE_ANON.rawValue
        }
        return (image, exe)
    }

    /// The `mnt_id:` of a descriptor of `path`, as /proc/self/fdinfo shows it (0: not known).
    static func mountID(_ path: String) -> UInt32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        guard let info = try? readBytes("/proc/self/fdinfo/\(fd)", limit: 4096) else { return 0 }
        for line in info.split(separator: UInt8(ascii: "\n")) where line.starts(with: "mnt_id:".utf8) {
            let digits = line.dropFirst(7).drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            return UInt32(String(decoding: digits, as: UTF8.self)) ?? 0
        }
        return 0
    }
}

/// The files a session opened for writing (by device and inode, from successful file.open
/// records) with when and by what: an exec of one of them within the window is
/// `process.exe_written`. Bounded: past `limit` files, those older than the window go, then
/// the oldest eighth.
struct WrittenFiles {
    static let windowNs: UInt64 = 10 * 60 * 1_000_000_000
    static let limit = 4096

    struct Key: Hashable {
        let dev: UInt32
        let ino: UInt64
    }

    private(set) var files: [Key: (ktimeNs: UInt64, writer: [UInt8])] = [:]

    mutating func note(dev: UInt32, ino: UInt64, ktimeNs: UInt64, writer: [UInt8]) {
        let key = Key(dev: dev, ino: ino)
        if files[key] == nil && files.count >= Self.limit { evict(now: ktimeNs) }
        files[key] = (ktimeNs, writer)
    }

    /// The writer of (dev, ino) when it wrote the file within the window before `nowNs`.
    func writer(dev: UInt32, ino: UInt64, nowNs: UInt64) -> [UInt8]? {
        guard let w = files[Key(dev: dev, ino: ino)], nowNs >= w.ktimeNs, nowNs - w.ktimeNs <= Self.windowNs else { return nil }
        return w.writer
    }

    private mutating func evict(now: UInt64) {
        files = files.filter { now < $0.value.ktimeNs || now - $0.value.ktimeNs <= Self.windowNs }
        guard files.count >= Self.limit else { return }
        for (key, _) in files.sorted(by: { $0.value.ktimeNs < $1.value.ktimeNs }).prefix(Self.limit / 8) { files[key] = nil }
    }

    /// Whether open flags ask for writing, as `file.write` says.
    static func isWrite(_ flags: UInt64) -> Bool {
        let f = Int32(truncatingIfNeeded: flags)
        let acc = f & O_ACCMODE
        return acc == O_WRONLY || acc == O_RDWR || f & (O_CREAT | O_TRUNC | O_APPEND) != 0
    }
}
