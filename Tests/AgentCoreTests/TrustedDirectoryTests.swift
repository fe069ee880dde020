@testable import AgentSupport
import Foundation
import Glibc
import Testing

/// What a planted symbolic link points at: content, mode and owner, to show it was not touched.
struct Victim: Equatable {
    let path: String
    let content: [UInt8]
    let mode: mode_t
    let uid: uid_t
    let gid: gid_t

    /// A root file `0600` whose last line has no newline (so an append of one would show).
    static func make(in dir: String, _ name: String = "victim") -> Victim {
        let path = dir + "/" + name
        let content = Array("root's own file\nno newline at the end".utf8)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "victim: errno \(errno)")
        _ = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fchmod(fd, 0o600)
        close(fd)
        return now(path)!
    }

    static func now(_ path: String) -> Victim? {
        var st = stat()
        guard lstat(path, &st) == 0, let data = FileManager.default.contents(atPath: path) else { return nil }
        return Victim(path: path, content: Array(data), mode: st.st_mode & 0o7777, uid: st.st_uid, gid: st.st_gid)
    }

    /// Whether the file is exactly as it was made.
    var untouched: Bool { Victim.now(path) == self }
}

/// Test directories: a root-owned `0755` base with the modes and owners each case needs.
enum TestDirs {
    static let nobody: uid_t = 65534

    static func base() throws -> String {
        let dir = try ChainTests.tempDir()
        chmod(dir, 0o755)
        return dir
    }

    /// `path` made with exactly `mode` (not the umask's idea of it), owned by `uid`.
    @discardableResult
    static func make(_ path: String, mode: mode_t, uid: uid_t = 0) -> String {
        mkdir(path, 0o700)
        chmod(path, mode)
        chown(path, uid, 0)
        return path
    }
}

/// The message `body` failed with, nil when it did not fail.
func refusal(_ body: () throws -> Void) -> String? {
    do { try body() } catch let e as AgentError { return e.message } catch { return "\(error)" }
    return nil
}

@Suite("trusted directory")
struct TrustedDirectoryTests {
    @Test("a directory others can write, with a link planted at the pid file: refused naming it and why, the target untouched")
    func othersWritable() throws {
        let base = try TestDirs.base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let victim = Victim.make(in: base)
        let open = TestDirs.make(base + "/open", mode: 0o777)
        symlink(victim.path, open + "/daemon.pid")
        let m = refusal { _ = try TrustedDirectory(open, purpose: "runtime_dir", create: 0o755) }
        #expect(m == "runtime_dir: \(open) is writable by others (mode 0777): make it owned by root and not writable by group or others, or choose another directory")

        let owned = TestDirs.make(base + "/owned", mode: 0o755, uid: TestDirs.nobody)
        symlink(victim.path, owned + "/daemon.pid")
        let o = refusal { _ = try TrustedDirectory(owned, purpose: "runtime_dir") }
        #expect(o?.hasPrefix("runtime_dir: \(owned) is owned by ") == true && o?.contains("(uid 65534)") == true, "\(o ?? "accepted")")

        // Below a bad directory, even a good one is refused: the bad one can swap it.
        let below = TestDirs.make(open + "/sub", mode: 0o755)
        let b = refusal { _ = try TrustedDirectory(below, purpose: "metrics") }
        #expect(b?.hasPrefix("metrics: \(below): \(open) is writable by others (mode 0777)") == true, "\(b ?? "accepted")")
        // A final directory writable by others is refused even when sticky (others can plant names in it).
        let sticky = TestDirs.make(base + "/sticky", mode: 0o1777)
        let s = refusal { _ = try TrustedDirectory(sticky, purpose: "runtime_dir") }
        #expect(s?.contains("is writable by others (mode 1777, sticky)") == true, "\(s ?? "accepted")")
        // Group-writable: only when the group is root.
        let adm = TestDirs.make(base + "/adm", mode: 0o775)
        chown(adm, 0, getgrnam("adm")?.pointee.gr_gid ?? 4)
        let g = refusal { _ = try TrustedDirectory(adm, purpose: "runtime_dir") }
        #expect(g?.contains("is writable by group adm (mode 0775)") == true, "\(g ?? "accepted")")
        let rootGroup = TestDirs.make(base + "/rootgroup", mode: 0o775)
        #expect(refusal { _ = try TrustedDirectory(rootGroup, purpose: "runtime_dir") } == nil)
        #expect(victim.untouched)
    }

    @Test("a link planted in a good directory at the file's name: open, replace and the temporary name refuse it, the target untouched")
    func linkInGoodDirectory() throws {
        let base = try TestDirs.base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let victim = Victim.make(in: base)
        let run = TestDirs.make(base + "/run", mode: 0o755)
        let d = try TrustedDirectory(run, purpose: "runtime_dir")
        symlink(victim.path, run + "/daemon.pid")
        let fd = d.open("daemon.pid", O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        #expect(fd == -1 && errno == ELOOP)
        // The temporary name of an atomic replace is a link: the link is removed, nothing is
        // written through it, and the file is made afresh.
        symlink(victim.path, run + "/metrics.prom.tmp")
        #expect(d.replace("metrics.prom", with: Array("x 1\n".utf8)))
        #expect(d.status("metrics.prom").map { $0.st_mode & S_IFMT == S_IFREG } == true)
        #expect(!d.exists("metrics.prom.tmp"))
        // The final name a link: the rename replaces the link itself, never its target.
        #expect(d.replace("daemon.pid", with: Array("42\n".utf8)))
        #expect(try String(contentsOfFile: run + "/daemon.pid", encoding: .utf8) == "42\n")
        #expect(d.status("daemon.pid").map { $0.st_mode & S_IFMT == S_IFREG } == true)
        // A FIFO is refused without blocking the caller (no reader: ENXIO before the check).
        mkfifo(run + "/fifo", 0o600)
        #expect(d.open("fifo", O_WRONLY) == -1 && [ENXIO, EINVAL].contains(errno))
        #expect(d.open("fifo", O_RDONLY) == -1 && errno == EINVAL)
        // Names are single components.
        for bad in ["../victim", "..", ".", "", "a/b"] {
            #expect(d.open(bad, O_RDONLY) == -1 && errno == EINVAL, "\(bad)")
            #expect(!d.unlink(bad) && !d.rename(bad, to: "x") && !d.exists(bad))
        }
        #expect(victim.untouched)
    }

    @Test("a symbolic link on the way is followed only when root made it, to a directory that passes the same checks")
    func linkedAncestor() throws {
        let base = try TestDirs.base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let victim = Victim.make(in: base)
        // /var/run -> /run: root's link to a good directory, relative and absolute.
        TestDirs.make(base + "/real", mode: 0o755)
        symlink("real", base + "/rel")
        symlink(base + "/real", base + "/abs")
        for link in ["rel", "abs"] {
            let d = try TrustedDirectory(base + "/" + link + "/made", purpose: "runtime_dir", create: 0o750)
            #expect(d.replace("daemon.pid", with: Array("1\n".utf8)))
            #expect(FileManager.default.fileExists(atPath: base + "/real/made/daemon.pid"))
            #expect(d.names() == ["daemon.pid"])
            #expect(d.unlink("daemon.pid"))
        }
        // A link to a directory others can write: refused at the target.
        let open = TestDirs.make(base + "/open", mode: 0o777)
        symlink(open, base + "/toopen")
        let m = refusal { _ = try TrustedDirectory(base + "/toopen", purpose: "output main") }
        #expect(m?.hasPrefix("output main: \(base)/toopen: \(open) is writable by others (mode 0777)") == true, "\(m ?? "accepted")")
        // A link someone else made in a sticky directory (as in /tmp): refused, not followed.
        let sticky = TestDirs.make(base + "/sticky", mode: 0o1777)
        symlink(base + "/real", sticky + "/theirs")
        lchown(sticky + "/theirs", TestDirs.nobody, 0)
        let t = refusal { _ = try TrustedDirectory(sticky + "/theirs", purpose: "spool_dir") }
        #expect(t?.contains("\(sticky)/theirs is a symbolic link owned by") == true && t?.contains("(uid 65534)") == true, "\(t ?? "accepted")")
        // `..` steps back to a directory already checked; a loop of links ends.
        let up = try TrustedDirectory(base + "/real/made/../made", purpose: "runtime_dir")
        #expect(up.names().isEmpty)
        symlink("loop2", base + "/loop1")
        symlink("loop1", base + "/loop2")
        let l = refusal { _ = try TrustedDirectory(base + "/loop1", purpose: "runtime_dir") }
        #expect(l?.contains("too many symbolic links") == true, "\(l ?? "accepted")")
        #expect(victim.untouched)
    }

    @Test("missing directories are made with the mode asked and the group, through /tmp (sticky) to a new one")
    func creates() throws {
        let base = try TestDirs.base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let adm = getgrnam("adm")?.pointee.gr_gid ?? 4
        let d = try TrustedDirectory(base + "/a/b", purpose: "output main", create: 0o750, group: adm)
        for p in [base + "/a", base + "/a/b"] {
            var st = stat()
            #expect(stat(p, &st) == 0 && st.st_mode & 0o7777 == 0o750 && st.st_gid == adm && st.st_uid == 0, "\(p)")
        }
        #expect(d.path == base + "/a/b" && d.fd >= 0)
        // Without create, a missing directory is an error that says so.
        let m = refusal { _ = try TrustedDirectory(base + "/none", purpose: "spool_dir") }
        #expect(m?.hasPrefix("spool_dir: \(base)/none does not exist") == true, "\(m ?? "accepted")")
        // A file where a directory should be.
        FileManager.default.createFile(atPath: base + "/file", contents: Data())
        let f = refusal { _ = try TrustedDirectory(base + "/file/x", purpose: "spool_dir", create: 0o700) }
        #expect(f?.contains("\(base)/file is not a directory") == true, "\(f ?? "accepted")")
        #expect(TrustedDirectory.split("/var/log/events.ndjson") == ("/var/log", "events.ndjson"))
        #expect(TrustedDirectory.split("/events") == ("/", "events") && TrustedDirectory.split("events") == (".", "events"))
    }
}
