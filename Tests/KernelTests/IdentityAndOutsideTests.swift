@testable import AgentDaemon
@testable import AgentDetector
@testable import AgentSessions
import AgentSupport
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// The default rules against real commands of an ordinary user in real sessions: a
    /// credential is known by what it is (a hard link, a bind mount in a user namespace, a path
    /// through /proc/self/root), the channels that make a process outside the session act for
    /// it each raise their rule, and ordinary developer work raises nothing.
    @Suite("identity and outside channels")
    struct IdentityAndOutsideTests {
        /// An ordinary user with a home of its own holding a fake SSH key, removed after.
        final class User {
            let name: String
            let uid: UInt32
            let gid: UInt32
            let home: String

            init() throws {
                name = "awid\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
                home = "/tmp/aw-idhome-\(getpid())-\(name)"
                let made = runIn(nil, ["/usr/sbin/useradd", "--create-home", "--home-dir", home, "--shell", "/bin/bash", "--user-group", name])
                guard made.status == 0, let pw = getpwnam(name) else { throw AgentError("useradd did not make \(name)") }
                (uid, gid) = (pw.pointee.pw_uid, pw.pointee.pw_gid)
                try write(".ssh/id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n", mode: 0o600)
                try write(".ssh/id_rsa.pub", "ssh-ed25519 AAAA fake\n", mode: 0o644)
                try write("proj/README", "hello\n", mode: 0o644)
            }

            deinit {
                _ = runIn(nil, ["/bin/sh", "-c", "pkill -KILL -u \(name); userdel \(name) 2>/dev/null; rm -rf '\(home)' /tmp/tmux-\(uid) /run/user/\(uid)"])
            }

            /// A file in the home, owned by the user (directories made as needed).
            func write(_ relative: String, _ text: String, mode: mode_t) throws {
                let path = home + "/" + relative
                var dir = home
                for part in relative.split(separator: "/").dropLast() {
                    dir += "/" + part
                    mkdir(dir, 0o700)
                    chown(dir, uid, gid)
                }
                try Data(text.utf8).write(to: URL(fileURLWithPath: path))
                chmod(path, mode)
                chown(path, uid, gid)
            }

            /// A directory anywhere, owned by the user.
            func directory(_ path: String, mode: mode_t = 0o700) {
                mkdir(path, mode)
                chmod(path, mode)
                chown(path, uid, gid)
            }
        }

        /// Runs `script` with bash as `user` in a fresh session whose home is the user's, and
        /// returns the session's alerts once its shell has exited and everything is written.
        func run(_ d: TestDaemon, session: String, user: User, _ script: String,
                 sourceLocation: Testing.SourceLocation = #_sourceLocation) -> (alerts: [[String: Any]], status: Int32) {
            let cg = d.sessionPath(session)
            mkdir(cg, 0o755)
            CgroupFS.setxattr(cg, SessionMetadata.xattr, SessionMetadata(uid: user.uid, labels: [], home: user.home).encoded())
            #expect(SessionLauncher.waitUntilWatched(path: cg, timeoutMs: 30_000), sourceLocation: sourceLocation)
            let r = runIn(cg, ["/usr/bin/setpriv", "--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups",
                               "/usr/bin/env", "-i", "HOME=\(user.home)", "USER=\(user.name)", "LOGNAME=\(user.name)",
                               "PATH=/usr/bin:/bin", "LANG=C.UTF-8", "PIP_DISABLE_PIP_VERSION_CHECK=1",
                               "/bin/bash", "-c", "cd ~ && " + script])
            removeCgroupTree(cg)
            let records = d.waitForRecords(sourceLocation: sourceLocation) {
                $0.contains { $0.string("type") == "session.end" && $0.string("session.id") == session }
            }
            return (records.filter { $0.string("type") == "alert" && $0.string("session.id") == session }, r.status)
        }

        func ids(_ alerts: [[String: Any]]) -> [String] { alerts.compactMap { $0.string("rule.id") }.sorted() }

        func daemon() throws -> TestDaemon {
            let d = try TestDaemon { $0.rules = [KernelEnv.packageRoot + "/rules"] }
            d.start()
            return d
        }

        /// The capture replayed through the same rules: the alerts raised live, rule and evidence.
        func expectReplayAgrees(_ d: TestDaemon, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
            let records = d.records()
            let live = records.filter { $0.string("type") == "alert" && $0.string("rule.source") != "agentwatch daemon" }.map { a in
                "\(a.string("rule.id") ?? "") \((a[path: "evidence"] as? [Int] ?? []).map(UInt64.init)) \(a.int("suppressed") ?? 0)"
            }
            let detector = Detector(rules: try RuleSet.load(paths: [KernelEnv.packageRoot + "/rules"]))
            var homes: [String: [String]] = [:]
            var replayed: [String] = []
            func note(_ a: Alert) { replayed.append("\(a.rule.id) \(a.evidence) \(a.suppressed)") }
            for r in records {
                guard let type = r.string("type"), let session = r.string("session.id") else { continue }
                if type == "session.start" { homes[session] = r[path: "session.homes"] as? [String] ?? [] }
                if type == "session.end" {
                    detector.endSession(session, timeNs: CapturedRuleInput(r, homes: []).timeNs, emit: note)
                    continue
                }
                if type == "alert" || type.hasPrefix("session.") { continue }
                detector.evaluate(CapturedRuleInput(r, homes: homes[session] ?? []), emit: note)
            }
            #expect(replayed == live, sourceLocation: sourceLocation)
        }

        @Test("a hard link, a bind mount in a user namespace and /proc/self/root each raise cred-ssh-private-key, naming the catalog path")
        func keyKnownByIdentity() throws {
            let user = try User()
            let d = try daemon()
            defer { d.stop() }
            let h = user.home
            let mnt = "/tmp/aw-idmnt-\(getpid())-\(user.name)"
            user.directory(mnt, mode: 0o755)
            defer { rmdir(mnt) }
            let key = h + "/.ssh/id_rsa"
            let cases: [(session: String, script: String, path: String, knownAs: Bool)] = [
                ("hardlink", "ln ~/.ssh/id_rsa ~/proj/notes.txt && cat ~/proj/notes.txt >/dev/null", h + "/proj/notes.txt", true),
                ("bind", "unshare -Urm sh -c 'mount --bind ~/.ssh \(mnt) && cat \(mnt)/id_rsa >/dev/null'", mnt + "/id_rsa", true),
                ("procroot", "cat /proc/self/root\(key) >/dev/null", key, false),
            ]
            for c in cases {
                let (alerts, status) = run(d, session: c.session, user: user, c.script)
                #expect(status == 0, "\(c.session): the command failed")
                let hit = alerts.first { $0.string("rule.id") == "cred-ssh-private-key" }
                #expect(hit != nil, "\(c.session): \(ids(alerts))")
                let message = hit?.string("message") ?? ""
                #expect(message.contains("read SSH private key \(c.path)"), "\(c.session): \(message)")
                if c.knownAs {
                    #expect(message.hasSuffix("(the same file as \(key))"), "\(c.session): \(message)")
                }
            }
            // The record says what the file is, so a replay sees it too.
            let opens = d.records().filter { $0.string("type") == "file.open" && $0.string("file.known_as") == key }
            #expect(Set(opens.compactMap { $0.string("file.path") }) == [h + "/proj/notes.txt", mnt + "/id_rsa"])
            try expectReplayAgrees(d)
            try expectValidAgainstSchema(d.output)
        }

        @Test("the catalog follows the session's own changes: a key it creates, one an editor saves over, both read by a hard link")
        func catalogKeptCurrent() throws {
            let user = try User()
            let d = try daemon()
            defer { d.stop() }
            let h = user.home
            let cases: [(session: String, script: String, key: String)] = [
                ("created", "printf 'k\\n' > ~/.ssh/id_new && sleep 1 && ln ~/.ssh/id_new ~/proj/y && cat ~/proj/y >/dev/null",
                 h + "/.ssh/id_new"),
                // Written to a temporary file first, renamed over the key: a new inode, seen by the
                // second look a second after the temporary file was made.
                ("saved", "printf 'k2\\n' > ~/.ssh/.id_rsa.tmp && mv ~/.ssh/.id_rsa.tmp ~/.ssh/id_rsa && sleep 2 && ln ~/.ssh/id_rsa ~/proj/z && cat ~/proj/z >/dev/null",
                 h + "/.ssh/id_rsa"),
            ]
            for c in cases {
                let (alerts, status) = run(d, session: c.session, user: user, c.script)
                #expect(status == 0, "\(c.session): the command failed")
                let message = alerts.first { $0.string("rule.id") == "cred-ssh-private-key" }?.string("message") ?? ""
                #expect(message.hasSuffix("(the same file as \(c.key))"), "\(c.session): \(ids(alerts)) \(message)")
            }
        }

        /// A unix listener (this process, outside any session) at `path`, writable by everyone.
        final class UnixListener {
            let fd: Int32
            let path: String
            init(_ path: String) {
                self.path = path
                unlink(path)
                fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
                var addr = sockaddr_un()
                addr.sun_family = sa_family_t(AF_UNIX)
                withUnsafeMutableBytes(of: &addr.sun_path) { p in
                    for (i, b) in path.utf8.prefix(p.count - 1).enumerated() { p[i] = b }
                }
                _ = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
                listen(fd, 16)
                chmod(path, 0o777)
            }
            deinit {
                close(fd)
                unlink(path)
            }
        }

        @Test("a tmux server, a container engine, the user's service manager, ssh to this host, cron and screen each raise their rule")
        func channelsOutsideTheSession() throws {
            let user = try User()
            let d = try daemon()
            defer { d.stop() }
            // Stand-in servers at the paths the real ones use, made by the test, outside the session.
            user.directory("/tmp/tmux-\(user.uid)")
            let tmux = UnixListener("/tmp/tmux-\(user.uid)/default")
            mkdir("/run/user", 0o755)
            user.directory("/run/user/\(user.uid)")
            let docker = UnixListener("/run/user/\(user.uid)/docker.sock")
            // Stand-in crontab and screen: copies of /bin/true under those names.
            let bin = "/tmp/aw-idbin-\(getpid())-\(user.name)"
            mkdir(bin, 0o755)
            defer { try? FileManager.default.removeItem(atPath: bin) }
            for tool in ["crontab", "screen"] {
                try FileManager.default.copyItem(atPath: "/bin/true", toPath: bin + "/" + tool)
            }
            func connect(_ path: String) -> String {
                "python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"\(path)\"); s.close()'"
            }
            let cases: [(session: String, script: String, rule: String)] = [
                ("tmux", connect(tmux.path), "outside-tmux-server"),
                ("docker", connect(docker.path), "outside-docker-engine"),
                // No user manager runs for the test user: systemd-run fails, and its exec is the hand-over.
                ("systemd", "systemd-run --user --quiet true 2>/dev/null; true", "outside-service-manager"),
                ("ssh", "ssh -o BatchMode=yes -o ConnectTimeout=1 -o StrictHostKeyChecking=no localhost true 2>/dev/null; true",
                 "outside-ssh-to-this-host"),
                ("cron", "\(bin)/crontab /dev/null", "outside-scheduler-job"),
                ("screen", "\(bin)/screen -x main", "outside-screen-session"),
            ]
            for c in cases {
                let (alerts, status) = run(d, session: c.session, user: user, c.script)
                #expect(status == 0, "\(c.session): the command failed")
                #expect(ids(alerts).contains(c.rule), "\(c.session): \(ids(alerts))")
                // Each channel raises its own rule, not the others' (a second alert of the rule is
                // the session end's count of the matches it suppressed).
                #expect(Set(ids(alerts).filter { $0.hasPrefix("outside-") }) == [c.rule], "\(c.session): \(ids(alerts))")
            }
            let engine = d.records().first { $0.string("rule.id") == "outside-docker-engine" }?.string("message") ?? ""
            #expect(engine.contains("Docker engine (\(docker.path))"), "\(engine)")
            try expectReplayAgrees(d)
            withExtendedLifetime((tmux, docker)) {}
        }

        @Test("developer work (cc and make, git, python unittest, pip install of a local wheel into a venv, an editor's save) raises no alert")
        func developerWorkIsQuiet() throws {
            let user = try User()
            let d = try daemon()
            defer { d.stop() }
            let script = #"""
                set -e
                W=~/work; mkdir -p $W/app && cd $W/app
                git init -q . && git config user.email dev@example.com && git config user.name dev
                printf '#include <stdio.h>\nint main(void){puts("ok");return 0;}\n' > main.c
                printf 'app: main.c\n\tcc -O2 -o app main.c\n' > Makefile
                make -s && ./app >/dev/null
                printf 'import subprocess, unittest\nclass T(unittest.TestCase):\n    def test_app(self):\n        self.assertEqual(subprocess.run(["./app"], capture_output=True).stdout.strip(), b"ok")\n' > test_app.py
                python3 -m unittest -q test_app 2>/dev/null
                printf 'app\n__pycache__/\n' > .gitignore
                git add -A && git commit -qm init
                # A tiny package: its wheel, built offline, installed offline into a venv.
                mkdir -p $W/pkg/tinypkg && printf 'def f():\n    return 1\n' > $W/pkg/tinypkg/__init__.py
                printf 'from setuptools import setup\nsetup(name="tinypkg", version="0.1", packages=["tinypkg"])\n' > $W/pkg/setup.py
                python3 -m pip wheel -q --no-deps --no-build-isolation --no-index -w $W/dist $W/pkg
                python3 -m venv $W/venv
                $W/venv/bin/pip install -q --no-index $W/dist/tinypkg-0.1-py3-none-any.whl
                $W/venv/bin/python -c 'import tinypkg; assert tinypkg.f() == 1'
                # An editor's save: the new text to a temporary file, renamed over the original.
                printf '#include <stdio.h>\nint main(void){puts("ok");return 0; }\n' > .main.c.swp && mv .main.c.swp main.c
                make -s && git commit -qam edit && git log --oneline >/dev/null
                """#
            let (alerts, status) = run(d, session: "devwork", user: user, script)
            #expect(status == 0, "the developer work failed")
            #expect(alerts.isEmpty, "alerts: \(alerts.map { "\($0.string("rule.id") ?? ""): \($0.string("message") ?? "")" })")
            // It did run: the compiler, git and pip are in the capture.
            let exes = Set(d.records().filter { $0.string("type") == "process.exec" && $0.string("session.id") == "devwork" }
                .compactMap { $0.string("process.exe").map { ($0 as NSString).lastPathComponent } })
            for tool in ["make", "git", "python3", "cc1", "-as", "-ld"] where !exes.contains(where: { $0.contains(tool) }) {
                Issue.record("\(tool) not run: \(exes.sorted())")
            }
        }
    }
}
