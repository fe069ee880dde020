@testable import AgentDaemon
@testable import AgentRecords
@testable import AgentSupport
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// The daemon as a service: reloading its config while it captures.
    @Suite("service")
    struct ServiceTests {
        /// A config a client (`agentwatch run`, `sessions`, `status`) reads to find `d`'s control
        /// socket, readable by any user, in `d`'s directory; returns both.
        static func clientConfig(_ d: TestDaemon) throws -> (dir: String, config: String) {
            let dir = (d.output as NSString).deletingLastPathComponent
            let config = dir + "/client.yaml"
            try "session_roots: [\(d.rootName)]\nruntime_dir: \(dir)\n".write(toFile: config, atomically: true, encoding: .utf8)
            chmod(dir, 0o755)
            chmod(config, 0o644)
            return (dir, config)
        }

        @Test("SIGHUP reloads the config: an added output starts, restart-only settings wait and are named, an invalid file changes nothing")
        func configReload() throws {
            let d = try TestDaemon()
            let dir = (d.output as NSString).deletingLastPathComponent
            let file = dir + "/agentwatch.yaml"
            let copy = dir + "/copy.ndjson"
            let base = d.daemon.config
            func write(_ extra: String) throws {
                try """
                session_roots: [\(base.sessionRoots[0])]
                runtime_dir: \(base.runtimeDir)
                poll_interval_ms: \(base.pollIntervalMs)
                status_interval_s: 0
                rules: []
                \(extra)
                """.write(toFile: file, atomically: true, encoding: .utf8)
            }
            d.daemon.capture.configLoader = { () throws(AgentError) in try DaemonConfig.load(path: file) }
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("cfg")
            func reloads() -> Int { Int(d.daemon.counters.recordsByType[Int(RecordType.agentReload.rawValue)]) }

            // A second output and a bigger ring buffer: the output starts now, the ring waits.
            try write("""
                ring_buffer_kib: \(base.ringBufferKiB * 2)
                outputs:
                  - {type: file, name: file, path: \(d.output)}
                  - {type: file, name: copy, path: \(copy), records: all}
                """)
            d.daemon.reload()
            #expect(waitUntil(timeout: 20) { reloads() == 1 })
            let r1 = runIn(cg, ["/bin/cat", "/etc/hostname"])
            let records = d.waitForRecords { $0.contains { $0.string("type") == "file.open" && $0.int("process.pid") == Int(r1.pid) } }
            let first = try #require(records.last { $0.string("type") == "agent.reload" })
            #expect(first[path: "agent.ok"] as? Bool == true)
            #expect(first[path: "agent.outputs"] as? [String] == ["file", "copy"])
            #expect(first[path: "agent.outputs_started"] as? [String] == ["copy"])
            #expect(first[path: "agent.restart_required"] as? [String] == ["ring_buffer_kib"])
            #expect(d.daemon.config.ringBufferKiB == base.ringBufferKiB)
            // The new output has the records from the reload on, the same lines as the first.
            let copied = waitUntil(timeout: 10) {
                ((try? String(contentsOfFile: copy, encoding: .utf8)) ?? "").contains("\"pid\":\(r1.pid),")
            }
            #expect(copied, "the added output did not get the records after the reload")
            let copyLines = try String(contentsOfFile: copy, encoding: .utf8).split(separator: "\n")
            let mainLines = try String(contentsOfFile: d.output, encoding: .utf8).split(separator: "\n")
            #expect(copyLines.first.map { l in mainLines.contains(l) } == true)

            // A broken file: the reload says where, and the running config stays, outputs too.
            try write("outputs:\n  - {type: file, path: \(copy), colour: blue}\n")
            d.daemon.reload()
            #expect(waitUntil(timeout: 20) { reloads() == 2 })
            let r2 = runIn(cg, ["/bin/cat", "/etc/hostname"])
            let after = d.waitForRecords { $0.contains { $0.string("type") == "file.open" && $0.int("process.pid") == Int(r2.pid) } }
            let second = try #require(after.last { $0.string("type") == "agent.reload" })
            #expect(second[path: "agent.ok"] as? Bool == false)
            #expect(second.string("agent.error")?.hasPrefix("\(file):7:") == true, "\(second.string("agent.error") ?? "")")
            #expect(second.string("agent.error")?.contains("unknown setting 'colour'") == true)
            #expect(d.daemon.capture.outputs?.workers.map(\.name) == ["file", "copy"])
            let seqs = after.compactMap { $0.int("seq") }
            #expect(seqs.elementsEqual(1...seqs.count), "seq has a gap or a repeat")
            try expectValidAgainstSchema(d.output)
        }

        @Test("control socket: a user without root starts a session and runs in it as themself; a process in a session asking for another is refused and raises an alert; sessions and status answer")
        func controlSocket() throws {
            let d = try TestDaemon { $0.controlGroup = "nogroup" }
            let (dir, config) = try Self.clientConfig(d)
            d.start()
            defer { d.stop() }
            let sock = dir + "/control.sock"
            var st = stat()
            #expect(stat(sock, &st) == 0 && st.st_mode & 0o777 == 0o660 && st.st_gid == 65534)

            // As nobody (uid 65534, group nogroup): the command runs inside the new session, as nobody.
            let run = try Executable.run(["run", "--config", config, "--session", "u1", "--label", "agent=test", "--", "sh", "-c", "id -u; cat /proc/self/cgroup"], asUser: 65534)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.hasPrefix("65534\n"))
            #expect(run.stdout.contains("0::/\(d.rootName)/u1\n"), "\(run.stdout)")
            let records = d.waitForRecords { $0.contains { $0.string("type") == "session.end" && $0.string("session.id") == "u1" } }
            let start = records.first { $0.string("type") == "session.start" && $0.string("session.id") == "u1" }
            #expect(start?.int("session.uid") == 65534)
            #expect(records.contains { $0.string("type") == "process.exec" && $0.string("session.id") == "u1" && $0.string("process.exe") == "/usr/bin/id" && $0.int("process.uid") == 65534 })
            // The session's cgroup went when the command ended.
            #expect(access(d.sessionPath("u1"), F_OK) != 0)

            // From inside a session, another session is refused, and that is an alert.
            let nested = try Executable.run(["run", "--config", config, "--session", "u2", "--", Executable.path, "run", "--config", config, "--session", "u3", "--", "true"], asUser: 65534)
            #expect(nested.status != 0)
            #expect(nested.stderr.contains("the daemon refused the session: process"), "\(nested.stderr)")
            #expect(nested.stderr.contains("is inside session u2"), "\(nested.stderr)")
            let after = d.waitForRecords { $0.contains { $0.string("type") == "alert" && $0.string("rule.id") == "agentwatch-session-escape" } }
            let alert = after.first { $0.string("type") == "alert" && $0.string("rule.id") == "agentwatch-session-escape" }
            #expect(alert?.string("session.id") == "u2")
            #expect(alert?.string("rule.severity") == "high")
            #expect(access(d.sessionPath("u3"), F_OK) != 0)

            // sessions and status, as a member of the group.
            let long = Process()
            long.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            long.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", Executable.path, "run", "--config", config, "--session", "u4", "--", "sleep", "3"]
            try long.run()
            var listed = false
            _ = waitUntil(timeout: 10) {
                let s = try? Executable.run(["sessions", "--config", config], asUser: 65534)
                listed = s?.stdout.contains("u4") == true && s?.stdout.contains("65534") == true
                return listed
            }
            #expect(listed)
            let status = try Executable.run(["status", "--config", config, "--json"], asUser: 65534)
            #expect(status.status == 0 && status.stdout.contains("\"records\""), "\(status.stderr)")
            long.waitUntilExit()
            #expect(long.terminationStatus == 0)
            try expectValidAgainstSchema(d.output)
        }

        @Test("metrics: a node_exporter textfile that Prometheus's own parser reads, with the daemon's counters")
        func metricsTextfile() throws {
            // Its own directory: /tmp itself (1777) is one others can write, which metrics refuse.
            let dir = NSTemporaryDirectory() + "aw-metrics-\(getpid())"
            mkdir(dir, 0o755)
            let d = try TestDaemon {
                $0.metricsTextfile = dir + "/agentwatch.prom"
                $0.metricsIntervalS = 1
            }
            let path = d.daemon.config.metricsTextfile!
            defer { unlink(path) }
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("m")
            let r = runIn(cg, ["/bin/cat", "/etc/hostname"])
            d.waitForRecords { $0.contains { $0.string("type") == "file.open" && $0.int("process.pid") == Int(r.pid) } }
            // A file written after the open: it counts at least the records so far.
            let written = waitUntil(timeout: 10) {
                ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").contains("agentwatch_sessions 1")
            }
            #expect(written)
            let script = """
                import sys
                from prometheus_client.parser import text_string_to_metric_families
                fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
                opens = [s.value for s in fams["agentwatch_records"].samples if s.labels.get("type") == "file.open"]
                assert opens and opens[0] >= 1, opens
                assert fams["agentwatch_sessions"].samples[0].value == 1
                assert [s.labels["output"] for s in fams["agentwatch_output_records"].samples] == ["file"]
                assert fams["agentwatch_output_up"].samples[0].value == 1
                assert fams["agentwatch_throttle_pauses"].samples[0].value == 0
                assert fams["agentwatch_throttle_sessions_paused"].samples[0].value == 0
                print("ok", len(fams))
                """
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", "-c", script, path]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = out
            try p.run()
            p.waitUntilExit()
            let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(p.terminationStatus == 0, "\(said)")
        }

        @Test("a user made for the test, in the agentwatch group, runs a session without root and its records carry it; a user outside the group is refused with a clear message")
        func agentwatchGroup() throws {
            func sh(_ cmd: String) -> Int32 { runIn(nil, ["/bin/sh", "-c", cmd]).status }
            let madeGroup = sh("getent group agentwatch >/dev/null") != 0
            if madeGroup { #expect(sh("groupadd --system agentwatch") == 0) }
            let user = "awtest\(getpid() % 100_000)"
            #expect(sh("useradd --no-create-home --shell /bin/sh --user-group --groups agentwatch \(user)") == 0)
            defer {
                _ = sh("userdel \(user)")
                if madeGroup { _ = sh("groupdel agentwatch") }
            }
            guard let pw = getpwnam(user) else { Issue.record("useradd did not make \(user)"); return }
            let (uid, gid) = (pw.pointee.pw_uid, pw.pointee.pw_gid)

            let d = try TestDaemon()  // control_group: agentwatch, the default
            let (dir, config) = try Self.clientConfig(d)
            d.start()
            defer { d.stop() }

            // As the user, with its groups (agentwatch among them).
            let member = Process()
            member.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            member.arguments = ["--reuid=\(uid)", "--regid=\(gid)", "--init-groups", Executable.path,
                                "run", "--config", config, "--session", "g1", "--", "sh", "-c", "cat /etc/hostname"]
            let err = Pipe()
            member.standardError = err
            member.standardOutput = FileHandle.nullDevice
            try member.run()
            member.waitUntilExit()
            let said = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(member.terminationStatus == 0, "\(said)")
            let records = d.waitForRecords { $0.contains { $0.string("type") == "session.end" && $0.string("session.id") == "g1" } }
            let open = records.first { $0.string("type") == "file.open" && $0.string("file.path") == "/etc/hostname" }
            #expect(open?.string("session.id") == "g1")
            #expect(open?.int("process.uid") == Int(uid))
            #expect(records.first { $0.string("type") == "session.start" && $0.string("session.id") == "g1" }?.int("session.uid") == Int(uid))

            // nobody is not in the group: refused before anything runs, and told what to do.
            let outsider = try Executable.run(["run", "--config", config, "--session", "g2", "--", "sh", "-c", "cat /etc/hostname"], asUser: 65534)
            #expect(outsider.status != 0)
            #expect(outsider.stderr.contains("you may not use \(dir)/control.sock: join the agentwatch group"), "\(outsider.stderr)")
            #expect(access(d.sessionPath("g2"), F_OK) != 0)
        }
    }
}
