@testable import AgentPipeline
@testable import AgentSessions
@testable import AgentSupport
import Foundation
import Glibc
import Testing

/// The built `agentwatch` executable, as a person runs it.
enum Executable {
    static var path: String {
        // The test bundle sits in the same build folder as the executable.
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" && !FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("agentwatch").path) {
            url.deleteLastPathComponent()
        }
        return url.appendingPathComponent("agentwatch").path
    }

    /// Runs the executable to completion; returns status and what it printed.
    static func run(_ args: [String], env: [String: String] = [:], asUser: UInt32? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        if let uid = asUser {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            p.arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", path] + args
        } else {
            p.executableURL = URL(fileURLWithPath: path)
            p.arguments = args
        }
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}

extension KernelSuite {
    @Suite("command line")
    struct CommandLineTests {
        func tempDir(_ name: String) throws -> String {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aw-cli-\(getpid())-\(name)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            return dir
        }

        @Test("agentwatch daemon + agentwatch run: the issue's scenario end to end, schema-valid output")
        func endToEnd() throws {
            let dir = try tempDir("e2e")
            let rootName = "agentwatch-e2e-\(getpid())"
            let config = dir + "/agentwatch.yaml"
            try """
            # test config
            session_roots: [\(rootName)]
            runtime_dir: \(dir)/run
            poll_interval_ms: 50
            status_interval_s: 1
            """.write(toFile: config, atomically: true, encoding: .utf8)
            let output = dir + "/events.ndjson"
            let listener = LoopbackListener()

            let daemon = Process()
            daemon.executableURL = URL(fileURLWithPath: Executable.path)
            daemon.arguments = ["daemon", "--config", config, "--output", output]
            let log = Pipe()
            daemon.standardError = log
            try daemon.run()
            defer {
                if daemon.isRunning { daemon.terminate() }
                removeCgroupTree(CgroupFS.mountPoint()! + "/" + rootName)
            }
            #expect(waitUntil(timeout: 10) { FileManager.default.fileExists(atPath: dir + "/run/daemon.pid") })

            let script = "cat /etc/hostname; python3 -c \"import socket; socket.create_connection((\\\"127.0.0.1\\\", \(listener.port)))\""
            let run = try Executable.run(["run", "--config", config, "--session", "e2e", "--label", "agent=test", "--", "sh", "-c", script])
            #expect(run.status == 0, "agentwatch run failed: \(run.stderr)")
            #expect(run.stdout.contains(try String(contentsOfFile: "/etc/hostname", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
            // Outside any session: nothing may appear.
            let outside = runIn(nil, ["/bin/sh", "-c", "cat /etc/hostname >/dev/null"])

            // The session ends when run removes its cgroup; then stop the daemon like systemd does.
            #expect(waitUntil(timeout: 10) { ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").contains("\"type\":\"session.end\"") })
            daemon.terminate()  // SIGTERM
            daemon.waitUntilExit()
            #expect(daemon.terminationStatus == 0)
            let console = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(console.contains("writing records to \(output)"))
            #expect(console.contains("session e2e started"))
            #expect(console.contains("session e2e ended"))

            let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
            let records = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(records.count == lines.count)
            #expect(records.first?.string("type") == "agent.start")
            #expect(records.last?.string("type") == "agent.stop")
            let session = records.filter { $0.string("session.id") == "e2e" }
            #expect(session.contains { $0.string("type") == "process.exec" && ($0[path: "process.argv"] as? [String])?.first == "sh" })
            #expect(session.contains { $0.string("type") == "file.open" && $0.string("file.path") == "/etc/hostname" })
            #expect(session.contains { $0.string("type") == "net.connect" && $0.string("net.daddr") == "127.0.0.1" && $0.int("net.dport") == Int(listener.port) })
            let start = records.first { $0.string("type") == "session.start" }
            #expect((start?[path: "session.labels"] as? [String: Any])?["agent"] as? String == "test")
            #expect(!records.contains { $0.int("process.pid") == Int(outside.pid) })

            // Every record is valid against the schema.
            try expectValidAgainstSchema(output)
        }

        @Test("bad input: one clear error line and a non-zero exit", arguments: [
            "unreadable config", "unknown setting", "missing session root", "no BTF", "no privileges", "invalid rules",
        ])
        func badInput(_ situation: String) throws {
            let dir = try tempDir("bad")
            var args = ["daemon", "--output", dir + "/out.ndjson"]
            var env: [String: String] = [:]
            var user: UInt32?
            let expected: String
            switch situation {
            case "unreadable config":
                args += ["--config", dir + "/does-not-exist.yaml"]
                expected = "cannot read config \(dir)/does-not-exist.yaml"
            case "unknown setting":
                try "output: /tmp/x\nring_bufer_kib: 64\n".write(toFile: dir + "/typo.yaml", atomically: true, encoding: .utf8)
                args += ["--config", dir + "/typo.yaml"]
                expected = "typo.yaml:2:1: unknown setting 'ring_bufer_kib'"
            case "missing session root":
                let root = CgroupFS.mountPoint()! + "/no-such-parent/agentwatch"
                try "session_roots: [\(root)]\n".write(toFile: dir + "/root.yaml", atomically: true, encoding: .utf8)
                args += ["--config", dir + "/root.yaml"]
                expected = "session root \(root) is missing"
            case "no BTF":
                env["AGENTWATCH_BTF"] = "/nonexistent/vmlinux"
                expected = "no kernel BTF at /nonexistent/vmlinux"
            case "invalid rules":
                try "rules:\n  - id: r1\n    title: t\n    severity: high\n    types: [file.open]\n    condition: file.pth == /x\n    message: m\n"
                    .write(toFile: dir + "/bad-rules.yaml", atomically: true, encoding: .utf8)
                try "rules: [\(dir)/bad-rules.yaml]\n".write(toFile: dir + "/rules.yaml", atomically: true, encoding: .utf8)
                args += ["--config", dir + "/rules.yaml"]
                expected = "invalid rules, not starting: \(dir)/bad-rules.yaml:6:16: "
            default:
                user = 65534
                args = ["daemon", "--output", "-"]
                expected = "needs root"
            }
            let r = try Executable.run(args, env: env, asUser: user)
            #expect(r.status != 0)
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "expected one line, got: \(r.stderr)")
            #expect(r.stderr.contains(expected), "stderr: \(r.stderr)")
        }

        @Test("under systemd: READY once capturing, WATCHDOG pings, STOPPING on SIGTERM, agent.stop written within 5 s")
        func systemdNotify() throws {
            let dir = try tempDir("notify")
            let rootName = "agentwatch-notify-\(getpid())"
            let config = dir + "/agentwatch.yaml"
            try "session_roots: [\(rootName)]\nruntime_dir: \(dir)/run\nrules: []\n".write(toFile: config, atomically: true, encoding: .utf8)
            let output = dir + "/events.ndjson"
            unlink(output)
            // The notify socket systemd would hold.
            let sockPath = dir + "/notify.sock"
            unlink(sockPath)
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in sockPath.utf8.enumerated() { raw[i] = b } }
            let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            #expect(bound == 0)
            var tv = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            func messages(for seconds: Double, until done: ([String]) -> Bool) -> [String] {
                var got: [String] = []
                let end = Date().addingTimeInterval(seconds)
                var buf = [UInt8](repeating: 0, count: 4096)
                while Date() < end && !done(got) {
                    let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n > 0 { got.append(String(decoding: buf[0..<n], as: UTF8.self)) }
                }
                return got
            }

            let daemon = Process()
            daemon.executableURL = URL(fileURLWithPath: Executable.path)
            daemon.arguments = ["daemon", "--config", config, "--output", output]
            daemon.environment = ProcessInfo.processInfo.environment.merging(["NOTIFY_SOCKET": sockPath, "WATCHDOG_USEC": "600000"]) { $1 }
            daemon.standardError = FileHandle.nullDevice
            try daemon.run()
            defer {
                if daemon.isRunning { daemon.terminate() }
                removeCgroupTree(CgroupFS.mountPoint()! + "/" + rootName)
            }
            // READY comes once the hooks are attached and agent.start is out.
            let startup = messages(for: 30) { $0.contains { $0.contains("READY=1") } }
            let ready = startup.first { $0.contains("READY=1") }
            #expect(ready != nil, "no READY=1 within 30 s: \(startup)")
            #expect(ready?.contains("MAINPID=\(daemon.processIdentifier)") == true)
            #expect(ready?.contains("STATUS=") == true)
            // Watchdog pings at half the 600 ms interval: several within 2 s.
            let running = messages(for: 2) { _ in false }
            let pings = running.filter { $0 == "WATCHDOG=1" }.count
            #expect(pings >= 4, "watchdog pings in 2 s: \(pings) (\(running))")
            // SIGTERM: STOPPING, then a clean exit with agent.stop last, within 5 s.
            let termAt = Date()
            kill(daemon.processIdentifier, SIGTERM)
            let stopping = messages(for: 5) { $0.contains { $0.hasPrefix("STOPPING=1") } }
            #expect(stopping.contains { $0.hasPrefix("STOPPING=1") }, "\(stopping)")
            let exited = waitUntil(timeout: 5) { !daemon.isRunning }
            #expect(exited && Date().timeIntervalSince(termAt) < 5)
            let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
            #expect(lines.last?.contains("\"type\":\"agent.stop\"") == true)
        }
    }
}
