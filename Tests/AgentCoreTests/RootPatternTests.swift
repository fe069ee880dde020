@testable import AgentDaemon
@testable import AgentSessions
import CAgentEvents
import Foundation
import Testing

@Suite("session-root patterns")
struct RootPatternTests {
    static let user = DaemonConfig.userScopeRoots

    @Test func partsOfTheUserScopePattern() throws {
        let p = try RootPattern(Self.user, mount: "/sys/fs/cgroup")
        #expect(p.depth == 4)
        #expect(p.parts[0] == .init(prefix: Array("user.slice".utf8), suffix: [], wildcard: false))
        #expect(p.parts[1] == .init(prefix: Array("user-".utf8), suffix: Array(".slice".utf8), wildcard: true))
        #expect(p.parts[2] == .init(prefix: Array("user@".utf8), suffix: Array(".service".utf8), wildcard: true))
        #expect(p.parts[3].wildcard == false)
        // Absolute below the mount: the same pattern.
        #expect(try RootPattern("/sys/fs/cgroup/unified/" + Self.user, mount: "/sys/fs/cgroup/unified") == RootPattern(Self.user, mount: "/x"))
    }

    @Test(arguments: [
        ("user-1000.slice", true), ("user-.slice", true), ("user-0.slice", true),
        ("user-1000.slicex", false), ("xuser-1000.slice", false), ("user.slice", false), ("user-1000", false), ("", false),
    ])
    func wildcardComponent(_ name: String, _ matches: Bool) throws {
        let p = try RootPattern(Self.user, mount: "/m")
        #expect(p.parts[1].matches(name.utf8) == matches)
    }

    /// `*` never takes less than nothing: prefix and suffix may not overlap.
    @Test func prefixAndSuffixDoNotOverlap() throws {
        let p = try RootPattern("ab*ba", mount: "/m")
        #expect(p.parts[0].matches("abba".utf8))
        #expect(p.parts[0].matches("ab-ba".utf8))
        #expect(!p.parts[0].matches("aba".utf8))
        #expect(!p.parts[0].matches("ab".utf8))
    }

    @Test(arguments: [
        ("a/**/b", "holds more than one '*'"),
        ("a/x*y*z", "holds more than one '*'"),
        ("a//b*", "empty, '.' or '..' component"),
        ("a/../b*", "empty, '.' or '..' component"),
        ("a/b?*", "only '*' is a wildcard"),
        ("a/[ab]*", "only '*' is a wildcard"),
        ("/elsewhere/a*", "is not below the cgroup2 mount /m"),
        ("a/b/c/d/e/f/g/h/i*", "1 to 8 components below the cgroup2 mount"),
        (String(repeating: "x", count: 65) + "*", "longer than 64 bytes on a side of its '*'"),
    ])
    func refused(_ text: String, _ message: String) {
        do {
            _ = try RootPattern(text, mount: "/m")
            Issue.record("\(text) was accepted")
        } catch {
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    /// The bytes the kernel reads (struct agent_pattern), field by field.
    @Test func kernelLayout() throws {
        let bytes = try RootPattern("a.slice/user-*.slice", mount: "/m").kernelBytes()
        #expect(bytes.count == MemoryLayout<agent_pattern>.size)
        #expect(bytes[0..<4] == [2, 0, 0, 0])
        let part0 = 8, part1 = 8 + 136
        #expect(bytes[part0] == 7 && bytes[part0 + 1] == 0 && bytes[part0 + 2] == 0)
        #expect(Array(bytes[(part0 + 8)..<(part0 + 15)]) == Array("a.slice".utf8))
        #expect(bytes[part1] == 5 && bytes[part1 + 1] == 6 && bytes[part1 + 2] == 1)
        #expect(Array(bytes[(part1 + 8)..<(part1 + 13)]) == Array("user-".utf8))
        #expect(Array(bytes[(part1 + 72)..<(part1 + 78)]) == Array(".slice".utf8))
        // Unused parts stay zero: the kernel never matches past depth.
        #expect(bytes[(8 + 2 * 136)...].allSatisfy { $0 == 0 })
    }

    /// Expansion over a directory tree shaped like systemd's (plain directories stand in for
    /// cgroups: expansion only reads directories).
    @Test func expandsOverATree() throws {
        let mount = FileManager.default.temporaryDirectory.appendingPathComponent("rootpattern-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: mount) }
        for dir in ["user.slice/user-1000.slice/user@1000.service/agentwatch.slice/run-r1.scope",
                    "user.slice/user-1001.slice/user@1001.service/app.slice",
                    "user.slice/user-1002.slice/user@1002.service/agentwatch.slice",
                    "user.slice/user-1003.slice/session-4.scope",
                    "system.slice/user-1004.slice/user@1004.service/agentwatch.slice"] {
            try FileManager.default.createDirectory(atPath: mount + "/" + dir, withIntermediateDirectories: true)
        }
        let found = try RootPattern(Self.user, mount: mount).expand(mount: mount)
        #expect(found == [mount + "/user.slice/user-1000.slice/user@1000.service/agentwatch.slice",
                          mount + "/user.slice/user-1002.slice/user@1002.service/agentwatch.slice"])
    }

    @Test func configSplitsDirectoriesAndPatterns() throws {
        let c = try DaemonConfig.parse("session_roots: [agentwatch, \"u/*.slice\", ci]\n", file: "f")
        #expect(c.sessionRoots == ["agentwatch", "u/*.slice", "ci"])
        #expect(DaemonConfig().sessionRoots == ["agentwatch", Self.user])
    }

    /// A bad pattern is named with the line and column of its own entry.
    @Test func configNamesTheEntry() {
        do {
            _ = try DaemonConfig.parse("output: /tmp/x\nsession_roots:\n  - agentwatch\n  - \"a/x*y*\"\n", file: "agentwatch.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.message.hasPrefix("agentwatch.yaml:4:5: session root pattern a/x*y*: component 'x*y*' holds more than one '*'"), "\(error.message)")
        }
    }
}
