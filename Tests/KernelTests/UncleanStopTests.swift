@testable import AgentDaemon
@testable import AgentSessions
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// The real daemon killed mid-stream (issue 12, item 6, repro a): the records it had not
    /// written are gone, and the file must say so, not verify as intact.
    @Suite("unclean stop")
    struct UncleanStopTests {
        /// `agentwatch daemon` as systemd runs it, on a session root of the test's own.
        static func startDaemon(config: String, output: String, log: String) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Executable.path)
            p.arguments = ["daemon", "--config", config, "--output", output]
            FileManager.default.createFile(atPath: log, contents: nil)
            let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            fh.seekToEndOfFile()
            // A file, not a pipe nobody reads while it runs: a full pipe would stall the daemon.
            p.standardError = fh
            p.standardOutput = fh
            try p.run()
            return p
        }

        static func lines(_ path: String) -> [Substring] {
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n")
        }

        static func count(_ type: String, in path: String) -> Int {
            lines(path).filter { $0.contains("\"type\":\"\(type)\"") }.count
        }

        @Test("kill -9 mid-stream and a restart on the same file: agent.start says the run before ended unclean at its last seq; verify prints the unclean stop and exits 2")
        func killedDaemon() throws {
            let rootName = "agentwatch-unclean-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent(rootName).path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let config = dir + "/agentwatch.yaml", output = dir + "/events.ndjson", log = dir + "/daemon.log"
            try """
            session_roots: [\(rootName)]
            runtime_dir: \(dir)/run
            poll_interval_ms: 20
            status_interval_s: 0
            rules: []
            """.write(toFile: config, atomically: true, encoding: .utf8)
            let root = CgroupFS.mountPoint()! + "/" + rootName
            var loop: pid_t = 0
            var daemons: [Process] = []
            defer {
                if loop > 0 { kill(loop, SIGKILL); waitpid(loop, nil, 0) }
                for d in daemons where d.isRunning { d.terminate(); d.waitUntilExit() }
                removeCgroupTree(root)
            }

            let first = try Self.startDaemon(config: config, output: output, log: log)
            daemons.append(first)
            #expect(waitUntil(timeout: 20) { FileManager.default.fileExists(atPath: dir + "/run/daemon.pid") }, "first daemon not up: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            let session = root + "/loop"
            mkdir(session, 0o755)
            #expect(SessionLauncher.waitUntilWatched(path: session, timeoutMs: 30_000), "session not watched")

            // A steady open loop in the session, about a thousand opens a second (slow enough that
            // the file stays far below its rotation size).
            let script = "import time\ni = 0\nwhile True:\n    open('/etc/hostname').close()\n    i += 1\n    if i % 10 == 0: time.sleep(0.01)\n"
            loop = spawn(["/bin/sh", "-c", "echo $$ > '\(session)/cgroup.procs' && exec python3 -c \"$0\"", script])
            #expect(waitUntil(timeout: 30) { Self.count("file.open", in: output) >= 2000 }, "opens not recorded: \(Self.count("file.open", in: output))")

            // kill -9: no agent.stop, and what the daemon held is lost.
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            #expect(first.terminationReason == .uncaughtSignal && first.terminationStatus == SIGKILL)
            let killed = try #require(FileManager.default.contents(atPath: output))
            let cut = killed.last != UInt8(ascii: "\n")
            let whole = killed.split(separator: UInt8(ascii: "\n")).dropLast(cut ? 1 : 0)
            let wholeCount = whole.count
            let last = try #require(whole.last.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] })
            #expect(last.string("type") != "agent.stop")
            let lastSeq = try #require(last.int("seq"))
            usleep(500_000)  // opens go on unrecorded

            let second = try Self.startDaemon(config: config, output: output, log: log)
            daemons.append(second)
            #expect(waitUntil(timeout: 20) { Self.count("agent.start", in: output) >= 2 }, "second daemon wrote no agent.start")
            let opensBefore = Self.count("file.open", in: output)
            #expect(waitUntil(timeout: 30) { Self.count("file.open", in: output) >= opensBefore + 500 }, "second daemon records no opens")
            kill(loop, SIGKILL)
            waitpid(loop, nil, 0)
            loop = 0
            second.terminate()  // SIGTERM: a clean stop this time
            second.waitUntilExit()
            #expect(second.terminationStatus == 0)

            // The restart says how the run before ended, with its last record's seq, type and time.
            let all = Self.lines(output)
            let restartLine = wholeCount + (cut ? 1 : 0) + 1
            let restart = try #require(try JSONSerialization.jsonObject(with: Data(all[restartLine - 1].utf8)) as? [String: Any])
            #expect(restart.string("type") == "agent.start" && restart.int("seq") == 1)
            #expect(restart.string("agent.previous_run.ended") == "unclean")
            #expect(restart.int("agent.previous_run.last_seq") == lastSeq)
            #expect(restart.string("agent.previous_run.last_type") == last.string("type"))
            #expect(restart.string("agent.previous_run.last_time") == last.string("time"))
            #expect(all.last?.contains("\"type\":\"agent.stop\"") == true)

            let verify = try Executable.run(["verify", output])
            let cutNote = cut ? "; its last write was cut short (line \(wholeCount + 1), \(killed.count - (killed.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0)) bytes)" : ""
            let expected = "\(output):\(restartLine): seq 1: daemon restart after an unclean stop: the run before ended at seq \(lastSeq) (\(last.string("time") ?? "")) without agent.stop\(cutNote); records it had not written are missing"
            #expect(verify.stdout.contains(expected + "\n"), "\(verify.stdout)")
            #expect(verify.stdout.contains("intact chain but 1 unclean stop"), "\(verify.stdout)")
            #expect(verify.status == 2, "\(verify.stdout)")
            print("unclean stop: \(verify.stdout.split(separator: "\n").last ?? "")\(cut ? " (the kill cut the last write)" : "")")
            // A line the kill cut short is not a record; every whole one is valid against the schema.
            if !cut { try expectValidAgainstSchema(output) }
        }
    }
}
