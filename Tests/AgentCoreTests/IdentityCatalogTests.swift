@testable import AgentDaemon
@testable import AgentDetector
import AgentRecords
@testable import AgentSessions
import CAgentEvents
import Foundation
import Glibc
import Testing

/// The credential catalog without the kernel: identity lists in the rule loader, the scan of a
/// session's homes (globs, `**`, limits, symlinks, files that leave the catalog), the lookup the
/// pipeline makes, `file.known_as` in the record line, and the messages that name both paths.
@Suite("credential catalog by identity")
struct IdentityCatalogTests {
    // MARK: the rule loader

    static let identityRule = """
        lists:
          - list: keys
            identity: true
            items: ["~/.ssh/id_*", /etc/ssh/ssh_host_*_key]
          - list: more
            items: ["@keys", "~/.netrc"]
          - list: names
            items: [id_rsa]
        rules:
          - id: r1
            title: t
            severity: high
            types: [file.open]
            condition: file.path glob @keys or file.known_as glob @keys
            message: "read {file.path}{file.known_as? (the same file as %)}"
            suppress: 0
            fixtures: []
        """

    @Test func identityListsMakeTheCatalog() throws {
        let set = try DT.rules(Self.identityRule)
        #expect(set.identityPaths == ["~/.ssh/id_*", "/etc/ssh/ssh_host_*_key"])
        #expect(set.warnings.allSatisfy { !$0.message.contains("known_as") })
    }

    @Test func badIdentityValuesAreLoadErrors() {
        let notBool = """
            lists:
              - list: keys
                identity: yes please
                items: ["~/.ssh/id_*"]
            """
        #expect(DT.errors(notBool).first?.hasPrefix("test.yaml:3:15: identity must be true or false") == true)
        let notPath = """
            lists:
              - list: keys
                identity: true
                items: ["~/.ssh/id_*", id_rsa]
            """
        #expect(DT.errors(notPath).first?.contains("\"id_rsa\" is not a path") == true, "\(DT.errors(notPath))")
    }

    @Test func knownAsAgainstAListOutsideTheCatalogWarns() throws {
        let yaml = Self.identityRule.replacingOccurrences(of: "file.known_as glob @keys", with: "file.known_as glob @more")
        let set = try DT.rules(yaml)
        #expect(set.warnings.contains { $0.message.contains("@more has items outside it") })
    }

    @Test func messagesNameBothPathsOnlyWhenKnownAs() throws {
        let set = try DT.rules(Self.identityRule)
        let linked = DT.record("file.open", ["file.path": "/home/dev/proj/notes.txt", "file.known_as": "/home/dev/.ssh/id_rsa"])
        let direct = DT.record("file.open", ["file.path": "/home/dev/.ssh/id_rsa"])
        let other = DT.record("file.open", ["file.path": "/home/dev/proj/x"])
        let messages = DT.alerts(set, [linked, direct, other]).map(\.message)
        #expect(messages == ["read /home/dev/proj/notes.txt (the same file as /home/dev/.ssh/id_rsa)", "read /home/dev/.ssh/id_rsa"])
    }

    @Test func optionalMessagePartsKeepPercentAndText() throws {
        let yaml = DT.oneRule("file.path == /x", extra: "").replacingOccurrences(
            of: "message: \"hit {process.exe}\"", with: "message: \"x{file.known_as?=% (100%%)}y{file.error? %}\"")
        let set = try DT.rules(yaml)
        let m = DT.alerts(set, [DT.record("file.open", ["file.path": "/x", "file.known_as": "/k"])]).map(\.message)
        #expect(m == ["x=/k (100%)y"])
    }

    // MARK: the scan

    /// A home with keys and the other shapes a scan meets.
    final class Home {
        let path: String
        init() throws {
            path = "/tmp/aw-catalog-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let fm = FileManager.default
            for dir in [".ssh", ".aws/sso/cache/deep", "dotfiles", "proj", "big"] {
                try fm.createDirectory(atPath: path + "/" + dir, withIntermediateDirectories: true)
            }
            for f in [".ssh/id_ed25519", ".ssh/id_ed25519.pub", ".aws/sso/cache/a.json", ".aws/sso/cache/deep/b.json", "dotfiles/netrc"] {
                try Data("x\n".utf8).write(to: URL(fileURLWithPath: path + "/" + f))
            }
            // ~/.netrc is a symlink into a dotfiles repository.
            symlink(path + "/dotfiles/netrc", path + "/.netrc")
            // A directory symlinked under a ** pattern: never followed.
            symlink("/usr", path + "/.aws/sso/cache/usr")
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }

        func identity(_ relative: String) -> FileIdentities.Key {
            var st = stat()
            stat(path + "/" + relative, &st)
            return FileIdentities.Key(dev: CredentialCatalog.kernelDevice(UInt64(st.st_dev)), ino: UInt64(st.st_ino))
        }
    }

    static let patterns = ["~/.ssh/id_*", "~/.aws/sso/cache/**", "~/.netrc", "~/.kube/config"]

    @Test func scanFindsTheCatalogFilesByIdentity() throws {
        let home = try Home()
        let result = CredentialCatalog(patterns: Self.patterns).scan(homes: [home.path])
        let key = home.identity(".ssh/id_ed25519")
        #expect(result.entries[key]?.shown == home.path + "/.ssh/id_ed25519")
        #expect(result.entries[home.identity(".ssh/id_ed25519.pub")] != nil)
        #expect(result.entries[home.identity(".aws/sso/cache/deep/b.json")]?.shown == home.path + "/.aws/sso/cache/deep/b.json")
        // The symlinked ~/.netrc is its target's identity, named by its catalog path.
        #expect(result.entries[home.identity("dotfiles/netrc")]?.shown == home.path + "/.netrc")
        // Only the files: nothing below the symlinked /usr.
        #expect(result.entries.values.allSatisfy { $0.shown.hasPrefix(home.path) })
        #expect(result.entries.count == 5)
        // Where a created file may join the catalog: the patterns' directories, also missing ones.
        #expect(result.directories.contains(Array((home.path + "/.ssh").utf8)))
        #expect(result.directories.contains(Array((home.path + "/.aws/sso/cache/deep").utf8)))
        #expect(result.directories.contains(Array((home.path + "/.kube").utf8)))
        #expect(result.notes.isEmpty)
    }

    @Test func scanLimitsSayWhatTheyLeftOut() throws {
        let home = try Home()
        for i in 0..<50 { try Data().write(to: URL(fileURLWithPath: home.path + "/big/f\(i)")) }
        var limits = CredentialCatalog.Limits()
        limits.maxEntries = 20
        let cut = CredentialCatalog(patterns: ["~/big/*"], limits: limits).scan(homes: [home.path])
        #expect(cut.notes.contains { $0.contains("directory entries") })
        limits = CredentialCatalog.Limits()
        limits.maxFiles = 3
        let few = CredentialCatalog(patterns: ["~/big/*"], limits: limits).scan(homes: [home.path])
        #expect(few.entries.count == 3 && few.notes.contains { $0.contains("catalog files") })
        limits = CredentialCatalog.Limits()
        limits.maxDepth = 0
        let shallow = CredentialCatalog(patterns: ["~/.aws/sso/cache/**"], limits: limits).scan(homes: [home.path])
        #expect(shallow.entries[home.identity(".aws/sso/cache/a.json")] != nil)
        #expect(shallow.entries[home.identity(".aws/sso/cache/deep/b.json")] == nil)
        #expect(shallow.notes.contains { $0.contains("deeper than 0") })
    }

    @Test func aFileMovedOutOfTheCatalogStaysKnownWhileItExists() throws {
        let home = try Home()
        let catalog = CredentialCatalog(patterns: Self.patterns)
        let first = catalog.scan(homes: [home.path])
        let key = home.identity(".ssh/id_ed25519")
        rename(home.path + "/.ssh/id_ed25519", home.path + "/proj/notes.txt")
        let second = catalog.scan(homes: [home.path], previous: first)
        if first.handles[key] != nil {
            // Kept by its handle (the test runs as root, with CAP_DAC_READ_SEARCH).
            #expect(second.entries[key]?.shown == home.path + "/.ssh/id_ed25519")
            unlink(home.path + "/proj/notes.txt")
            let third = catalog.scan(homes: [home.path], previous: second)
            #expect(third.entries[key] == nil)
        } else {
            #expect(second.entries[key] == nil)
        }
    }

    @Test func scansRunOnTheirOwnThread() throws {
        let home = try Home()
        let scanner = CatalogScanner()
        defer { scanner.stop() }
        let catalog = CredentialCatalog(patterns: Self.patterns)
        scanner.submit(.init(cgid: 1, ticket: 1, homes: [home.path], catalog: catalog, previous: nil))
        // A second request for the same session replaces the first while it waits.
        scanner.submit(.init(cgid: 2, ticket: 2, homes: ["/nonexistent"], catalog: catalog, previous: nil))
        scanner.submit(.init(cgid: 2, ticket: 3, homes: [home.path], catalog: catalog, previous: nil))
        var done = scanner.wait(for: 3, timeoutNs: 10_000_000_000)
        done += scanner.takeDone()
        #expect(Set(done.map(\.ticket)).isSuperset(of: [1, 3]))
        #expect(done.first { $0.ticket == 3 }?.result.entries.count == 5)
    }

    @Test func kernelDeviceEncoding() {
        // glibc's makedev(8, 1) and makedev(259, 65539).
        #expect(CredentialCatalog.kernelDevice(0x801) == 8 << 20 | 1)
        let major: UInt64 = 259, minor: UInt64 = 65539
        let dev = ((major & 0xfffff000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffffff00) << 12) | (minor & 0xff)
        #expect(CredentialCatalog.kernelDevice(dev) == UInt32(major << 20 | minor))
    }

    // MARK: the lookup and the record

    @Test func lookupNamesTheCatalogPathOnlyUnderAnotherPath() {
        let ids = FileIdentities()
        let key = FileIdentities.Key(dev: 8 << 20 | 1, ino: 42)
        ids.replace(entries: [key: FileIdentities.Entry(paths: [Array("/h/.ssh/id_rsa".utf8), Array("/h/.ssh/b_rsa".utf8)])],
                    directories: [Array("/h/.ssh".utf8)], nowNs: 1)
        func knownAs(_ path: String, ino: UInt64 = 42) -> String? {
            Array(path.utf8).withUnsafeBytes { ids.knownAs(dev: key.dev, ino: ino, path: $0) }
        }
        #expect(knownAs("/h/proj/notes.txt") == "/h/.ssh/b_rsa")
        #expect(knownAs("/h/.ssh/id_rsa") == nil)
        #expect(knownAs("/h/.ssh/b_rsa") == nil)
        #expect(knownAs("/h/proj/x", ino: 43) == nil)
        Array("/h/proj/new".utf8).withUnsafeBytes { ids.noteCreated($0) }
        #expect(!ids.rescanWanted)
        Array("/h/.ssh/.id_rsa.swp".utf8).withUnsafeBytes { ids.noteCreated($0) }
        #expect(ids.rescanWanted)
    }

    @Test func theRecordLineCarriesKnownAsAndCreatesAskForARescan() throws {
        let rules = try DT.rules(Self.identityRule)
        let c = RecordedCapture(rules: rules)
        let s = c.sessionStart("s1", cgid: 0x51)
        let key = FileIdentities.Key(dev: 8 << 20 | 1, ino: 4711)
        s.identities.replace(entries: [key: FileIdentities.Entry(paths: [Array("/home/dev/.ssh/id_rsa".utf8)])],
                             directories: [Array("/home/dev/.ssh".utf8)], nowNs: 1)
        c.exec(session: 0x51, pid: 100, ppid: 1, exe: "/usr/bin/cat", argv: ["cat", "notes.txt"])
        c.open(session: 0x51, pid: 100, requested: "notes.txt", resolved: "/home/dev/proj/notes.txt", id: agent_file_id(ino: 4711, dev: key.dev, mnt_id: 0))
        c.open(session: 0x51, pid: 100, requested: "/home/dev/.ssh/id_rsa", resolved: "/home/dev/.ssh/id_rsa", id: agent_file_id(ino: 4711, dev: key.dev, mnt_id: 0))
        c.open(session: 0x51, pid: 100, requested: "x", resolved: "/home/dev/proj/x", result: -2, id: agent_file_id(ino: 4711, dev: key.dev, mnt_id: 0))
        #expect(!s.identities.rescanWanted)
        c.open(session: 0x51, pid: 100, requested: ".id_rsa.tmp", resolved: "/home/dev/.ssh/.id_rsa.tmp", flags: O_WRONLY | O_CREAT, result: 4)
        #expect(s.identities.rescanWanted)
        let opens = c.lines.filter { $0.contains("\"type\":\"file.open\"") }
        #expect(opens.count == 4)
        #expect(opens[0].contains(",\"known_as\":\"/home/dev/.ssh/id_rsa\""))
        #expect(opens.dropFirst().allSatisfy { !$0.contains("known_as") })
        let alerts = c.lines.filter { $0.contains("\"type\":\"alert\"") }
        #expect(alerts.count == 2)
        #expect(alerts.first?.contains("read /home/dev/proj/notes.txt (the same file as /home/dev/.ssh/id_rsa)") == true)
    }
}
