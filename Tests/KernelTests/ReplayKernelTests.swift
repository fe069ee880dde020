@testable import AgentDaemon
@testable import AgentDetector
@testable import AgentReplay
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// `agentwatch replay` on a capture the real daemon wrote: a scripted agent session (a fake
    /// credential read, a large upload to a loopback server, shells) captured live with the
    /// repository's rules, then replayed with the same rules.
    @Suite("replay")
    struct ReplayKernelTests {
        @Test("a scripted session captured live, replayed with the same rules: the same alerts (rule id, evidence seq), the tree rebuilt")
        func replayedAlertsEqualLive() throws {
            let home = try DetectionTests.FakeHome()
            let server = try DetectionTests.LoopbackServer()
            try #require(server.port > 0, "loopback server did not start")
            let rulesDir = KernelEnv.packageRoot + "/rules"
            let d = try TestDaemon { $0.rules = [rulesDir] }
            d.start()
            var stopped = false
            defer { if !stopped { d.stop() } }
            let h = home.path
            // What each line makes fire (rules/*.yaml): cat of ~/.aws/credentials,
            // cred-cloud-credentials; 20 MiB to a loopback address (not in allowed_networks),
            // net-large-upload, and after the read, net-credential-read-then-upload; bash's
            // /dev/tcp, shell-inet-connect. A shell runs a shell on the way.
            let upload = "import socket; s = socket.create_connection(('127.0.0.1', \(server.port))); s.sendall(b'PUT /u HTTP/1.0\\r\\nContent-Length: 20971520\\r\\n\\r\\n' + b'z' * 20971520); s.recv(100); s.close()"
            let script = """
                cat ~/.aws/credentials >/dev/null
                python3 -c "\(upload)"
                bash -c 'exec 3<>/dev/tcp/127.0.0.1/\(server.port); echo done >&3' || true
                sh -c 'ls \(h) >/dev/null'
                """
            let (alerts, status) = DetectionTests().alerts(d, session: "replay", home: h, script)
            // The daemon stops: its capture ends with agent.stop, complete.
            d.stop()
            stopped = true
            #expect(status == 0)
            let fired = Set(alerts.compactMap { $0.string("rule.id") })
            #expect(fired.isSuperset(of: ["cred-cloud-credentials", "net-large-upload", "net-credential-read-then-upload", "shell-inet-connect"]),
                    "live alerts: \(fired.sorted())")
            let live = d.records().filter { $0.string("type") == "alert" }.map { a in
                "\(a.string("rule.id") ?? "") \((a[path: "evidence"] as? [Int]) ?? [])"
            }

            // The replay, in process: its alerts are the live ones, in the same order.
            let rules = try RuleSet.load(paths: [rulesDir])
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aw-replay-\(getpid())").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            var options = ReplayOptions()
            options.rules = rules
            options.format = .ndjson
            var findings: [String] = []
            let out = try ReplayOutput(path: dir + "/replayed.ndjson")
            let summary = CaptureReplay(options: options, output: out) { findings.append($0) }.run(paths: [d.output])
            out.flush()
            #expect(summary.intact, "\(findings)")
            let lines = try String(contentsOfFile: dir + "/replayed.ndjson", encoding: .utf8).split(separator: "\n")
            let replayed = lines.compactMap { ChainVerifier.parse(Array($0.utf8)) }.filter { $0["replayed"] as? Bool == true }.map { a in
                "\(a.string("rule.id") ?? "") \((a[path: "evidence"] as? [Int]) ?? [])"
            }
            #expect(!live.isEmpty)
            #expect(replayed == live)
            #expect(summary.comparison.map { $0.same == live.count && $0.replayOnly == 0 && $0.liveOnly == 0 } == true)

            // The command, as an investigator runs it: the tree of the session, alerts marked.
            let tree = try Executable.run(["replay", "--rules", rulesDir, "--session", "replay", d.output])
            #expect(tree.status == 0, "\(tree.stderr)")
            #expect(tree.stdout.contains("session replay"))
            for name in ["cat[", "python3", "bash["] { #expect(tree.stdout.contains(name), "\(name) in \(tree.stdout)") }
            #expect(tree.stdout.contains("! ALERT high cred-cloud-credentials") && tree.stdout.contains("[replayed]"), "\(tree.stdout)")
            #expect(tree.stderr.contains("replayed (\(live.count) as live, 0 not raised live, 0 live not raised again)"), "\(tree.stderr)")
            // The evidence is never overwritten by the report.
            let size = (try? FileManager.default.attributesOfItem(atPath: d.output)[.size] as? Int) ?? nil
            let clobber = try Executable.run(["replay", "--output", d.output, d.output])
            #expect(clobber.status == 2 && clobber.stderr.contains("is the capture"))
            #expect((try? FileManager.default.attributesOfItem(atPath: d.output)[.size] as? Int) ?? nil == size)
            let html = try Executable.run(["replay", "--rules", rulesDir, "--format", "html", "--output", dir + "/r.html", d.output])
            #expect(html.status == 0, "\(html.stderr)")
            #expect(try String(contentsOfFile: dir + "/r.html", encoding: .utf8).contains("shell-inet-connect"))
        }
    }
}
