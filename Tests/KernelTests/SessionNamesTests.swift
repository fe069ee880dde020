@testable import AgentDaemon
@testable import AgentOutputs
@testable import AgentReplay
@testable import AgentSessions
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// What the watched agent names and does to the daemon's view of it: directories below a
    /// root named to slip past the registry, text made to forge log lines, signals, help.
    @Suite("session names and daemon ends")
    struct SessionNamesTests {
        /// Moves itself into the cgroup named by hex bytes, opens a file, connects to a port.
        static let actor = """
            import os, socket, sys
            d = bytes.fromhex(sys.argv[1])
            with open(d + b"/cgroup.procs", "w") as f: f.write(str(os.getpid()))
            open("/etc/hostname").read()
            socket.create_connection(("127.0.0.1", int(sys.argv[2]))).close()
            """

        @Test("a directory below a root named with a space, a leading '.', controls or bytes that are not UTF-8 is a session under an escaped id, with its owner, its opens and connects")
        func oddNames() throws {
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let listener = LoopbackListener()
            let root = Array(d.root.utf8)
            // name bytes, id expected, owner given to the directory (as a delegated slice's user has)
            let cases: [([UInt8], String, UInt32)] = [
                (Array("a b".utf8), "a%20b", 0),
                (Array(".hid".utf8), "%2Ehid", 0),
                // (cgroupfs refuses a line break in a name)
                ([0x78, 0xFF, 0x1B, 0x5B, 0x32, 0x4A], "x%FF%1B%5B2J", 0),
                (Array("user's one".utf8), "user%27s%20one", 65534),
            ]
            for (name, id, owner) in cases {
                let path = root + [UInt8(ascii: "/")] + name
                let made = path.withUnsafeBufferPointer { b -> Bool in
                    var z = Array(b) + [0]
                    return z.withUnsafeMutableBufferPointer { p in
                        p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { mkdir($0, 0o755) == 0 && chown($0, owner, owner) == 0 }
                    }
                }
                #expect(made, "mkdir \(id)")
                // The daemon announces it (and attaches the syscall hooks) before anything runs in it.
                d.waitForRecords { $0.contains { $0.string("type") == "session.start" && $0.string("session.id") == id } }
                let hex = path.map { String(format: "%02x", $0) }.joined()
                let r = runIn(nil, ["/usr/bin/python3", "-c", Self.actor, hex, String(listener.port)])
                #expect(r.status == 0, "the actor in \(id) failed: \(r.status)")
                let records = d.waitForRecords {
                    $0.contains { $0.string("type") == "net.connect" && $0.int("process.pid") == Int(r.pid) }
                }
                let start = records.first { $0.string("type") == "session.start" && $0.string("session.id") == id }
                #expect(start?.int("session.uid") == Int(owner), "\(id): session.uid")
                let mine = records.filter { $0.int("process.pid") == Int(r.pid) }
                #expect(mine.contains { $0.string("type") == "file.open" && $0.string("file.path") == "/etc/hostname" && $0.string("session.id") == id },
                        "\(id): no file.open of /etc/hostname in the session; \(d.summary(mine))")
                #expect(mine.contains { $0.string("type") == "net.connect" && $0.int("net.dport") == Int(listener.port) && $0.string("session.id") == id })
                #expect(mine.allSatisfy { $0.string("session.id") == id }, "\(id): \(d.summary(mine))")
            }
            let all = d.records()
            #expect(!all.contains { ($0.string("session.id") ?? "").hasPrefix("cgroup-") }, "stand-in sessions: \(d.summary(all))")
            try expectValidAgainstSchema(d.output)
        }

        @Test("text a session sends cannot forge a daemon log line; a daemon ended by a signal says so on stderr")
        func forgedLogLineAndFatalSignal() throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aw-names-\(getpid())").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let rootName = "agentwatch-names-\(getpid())"
            let root = CgroupFS.mountPoint()! + "/" + rootName
            let config = dir + "/agentwatch.yaml"
            let output = dir + "/events.ndjson"
            try """
            session_roots: [\(rootName)]
            runtime_dir: \(dir)/run
            output: \(output)
            rules: []
            poll_interval_ms: 50
            status_interval_s: 0
            """.write(toFile: config, atomically: true, encoding: .utf8)
            let daemon = Process()
            daemon.executableURL = URL(fileURLWithPath: Executable.path)
            daemon.arguments = ["daemon", "--config", config]
            let log = Pipe()
            daemon.standardError = log
            try daemon.run()
            defer {
                if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) }
                removeCgroupTree(root)
            }
            #expect(waitUntil(timeout: 20) { access(dir + "/run/control.sock", F_OK) == 0 })
            mkdir(root + "/s1", 0o755)
            #expect(SessionLauncher.waitUntilWatched(path: root + "/s1", timeoutMs: 20_000))

            // From inside the session: a request whose session id carries a line break and a
            // fake daemon line, then ESC, CR and a bidi override.
            let forged = "x\\nFORGED info agentwatch: [AgentCore] session victim ended\\r\\u001b[2K\\u202eFORGED2"
            let request = "{\"op\":\"start\",\"session\":\"\(forged)\"}\n"
            let client = """
                import socket, sys
                s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode()); print(s.recv(65536).decode())
                """
            let r = runIn(root + "/s1", ["/usr/bin/python3", "-c", client, dir + "/run/control.sock", request])
            #expect(r.status == 0)
            #expect(waitUntil(timeout: 10) {
                ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").contains("agentwatch-session-escape")
            })
            kill(daemon.processIdentifier, SIGUSR1)
            daemon.waitUntilExit()
            #expect(daemon.terminationReason == .uncaughtSignal && daemon.terminationStatus == SIGUSR1)
            let console = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let lines = console.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(!lines.contains { $0.hasPrefix("FORGED") || $0.contains("\r") || $0.contains("\u{1B}") || $0.contains("\u{202E}") }, "\(console)")
            #expect(console.contains("x\\x0aFORGED info agentwatch"), "\(console)")
            #expect(console.contains("terminated by signal \(SIGUSR1) (SIGUSR1)"), "\(console)")
        }

        @Test("agentwatch run --help prints help and starts no session")
        func runHelp() throws {
            let root = CgroupFS.mountPoint()! + "/agentwatch"
            let before = CgroupFS.subdirectories(of: root)
            for args in [["run", "--help"], ["run", "-h"]] {
                let r = try Executable.run(args)
                #expect(r.status == 0, "\(args): \(r.stderr)")
                #expect(r.stdout.contains("Start a watched agent session") && r.stdout.contains("USAGE"), "\(args): \(r.stdout)")
                #expect(!r.stderr.contains("--help: No such file"), "\(r.stderr)")
            }
            #expect(CgroupFS.subdirectories(of: root) == before)
        }

        @Test("records an output could not keep at stop (its disk full) are an agent.loss in the other outputs before agent.stop")
        func dropsAtStop() throws {
            let full = FileManager.default.temporaryDirectory.appendingPathComponent("aw-full-\(getpid())").path
            try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
            #expect(mount("tmpfs", full, "tmpfs", 0, "size=256k,mode=0755") == 0, "mount tmpfs: \(String(cString: strerror(errno)))")
            defer { umount2(full, Int32(MNT_DETACH)); rmdir(full) }
            // Fill it, leaving no block for records.
            let filler = open(full + "/filler", O_WRONLY | O_CREAT, 0o600)
            var block = [UInt8](repeating: 0x61, count: 4096)
            while block.withUnsafeMutableBytes({ write(filler, $0.baseAddress, $0.count) }) > 0 {}
            close(filler)

            let d = try TestDaemon { c in
                var lost = OutputConfig.file(full + "/events.ndjson")
                lost.name = "full-disk"
                var main = OutputConfig.file(c.output)
                main.name = "main"
                c.outputs = [lost, main]
            }
            d.start()
            let s = d.makeSession("s1")
            runIn(s, ["/bin/sh", "-c", "for i in 1 2 3 4 5; do cat /etc/hostname; done >/dev/null"])
            d.waitForRecords { $0.filter { $0.string("file.path") == "/etc/hostname" }.count >= 5 }
            d.stop()
            let records = d.records()
            #expect(records.last?.string("type") == "agent.stop")
            let loss = records.first { $0.string("type") == "agent.loss" && $0.string("loss.sink") == "full-disk" }
            #expect(loss != nil, "no agent.loss for the full output: \(d.summary(records))")
            if let loss, let seq = loss.int("seq") {
                #expect(loss.int("loss.first_seq") == 1)
                // Everything written before the loss record was lost on the full disk.
                #expect(loss.int("loss.last_seq") == seq - 1)
                #expect(loss.int("loss.queue_dropped") == seq - 1)
            }
            #expect(ChainVerifier.verify(paths: [d.output]).intact)
        }
    }
}
