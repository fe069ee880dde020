@testable import AgentDaemon
@testable import AgentSessions
@testable import AgentSupport
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// The control socket against hostile clients: an ordinary user in the agentwatch group who
    /// closes early, trickles, floods, or hands its socket to a child and recycles its pid. The
    /// daemon is the real `agentwatch daemon` in a process of its own, so that an old daemon's
    /// death by SIGPIPE is a failed expectation here, not the test runner's death.
    @Suite("control socket")
    struct ControlSocketTests {
        @Test("a client that connects and closes at once does not kill the daemon (SIGPIPE); it answers status after")
        func closedEarly() throws {
            let user = try TestUser()
            defer { user.remove() }
            let d = try DaemonProcess("early")
            defer { d.stop() }
            for _ in 0..<20 {
                let r = user.run(["/usr/bin/python3", "-c", "import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);s.close()", d.socket])
                #expect(r == 0, "the client could not connect")
            }
            usleep(300_000)
            #expect(d.running, "the daemon died: \(d.exitDescription)")
            let status = Self.timedStatus(d)
            #expect(status.ok, "status: \(status.output)")
        }

        @Test("a client sending one byte every 1.5 s is cut off at the request deadline and status is answered meanwhile within 1 s")
        func slowClient() throws {
            let user = try TestUser()
            defer { user.remove() }
            let d = try DaemonProcess("slow")
            defer { d.stop() }
            let report = user.scratch(in: d.dir) + "/slow.txt"
            let slow = user.spawn(["/usr/bin/python3", "-c", Self.slowClient, d.socket, "9", report])
            usleep(500_000)
            let status = Self.timedStatus(d)
            var st: Int32 = 0
            waitpid(slow, &st, 0)
            let cut = (try? String(contentsOfFile: report, encoding: .utf8)) ?? "no report"
            #expect(status.ok && status.seconds < Self.answerBound, "status took \(status.seconds) s: \(status.output)")
            // One deadline for the whole request, 2 s from accept, however the bytes trickle in.
            #expect(Double(cut.split(separator: " ").last ?? "") ?? 99 < 3, "the slow client: \(cut)")
            #expect(d.running, "the daemon died: \(d.exitDescription)")
        }

        @Test("1,000 concurrent idle connections of one user: status answers within 1 s throughout, the rest are told busy, the daemon lives")
        func manyConnections() throws {
            let user = try TestUser()
            defer { user.remove() }
            let d = try DaemonProcess("many")
            defer { d.stop() }
            let report = user.scratch(in: d.dir) + "/flood.json"
            let flood = user.spawn(["/usr/bin/python3", "-c", Self.attacker, d.socket, "half", "1000", "6", report])
            usleep(1_000_000)
            var times: [Double] = []
            for _ in 0..<4 {
                let s = Self.timedStatus(d)
                #expect(s.ok, "status: \(s.output)")
                times.append(s.seconds)
                usleep(500_000)
            }
            var st: Int32 = 0
            waitpid(flood, &st, 0)
            usleep(300_000)
            let stats = (try? String(contentsOfFile: report, encoding: .utf8)) ?? "no report"
            print("flood: \(stats); status times \(times)")
            #expect(times.allSatisfy { $0 < Self.answerBound }, "status times \(times)")
            #expect(stats.contains("\"busy\": ") && !stats.contains("\"busy\": 0,"), "no connection was told busy: \(stats)")
            #expect(d.running, "the daemon died: \(d.exitDescription)")
            #expect(Self.timedStatus(d).ok)
        }

        @Test("a connection handed to a child whose parent's pid now names a root process: start is refused and the root process stays where it was")
        func pidReuse() throws {
            let user = try TestUser()
            defer { user.remove() }
            let d = try DaemonProcess("reuse")
            defer { d.stop() }
            let scratch = user.scratch(in: d.dir)
            let go = scratch + "/go", answerFile = scratch + "/answer", pidFile = scratch + "/parent", childFile = scratch + "/child"
            // The parent connects, forks a child that keeps the socket, writes its pid and exits.
            let parent = user.spawn(["/usr/bin/python3", "-c", Self.handOver, d.socket, go, answerFile, pidFile, childFile])
            var st: Int32 = 0
            waitpid(parent, &st, 0)
            defer { if let child = Int32((try? String(contentsOfFile: childFile, encoding: .utf8)) ?? "") { kill(child, SIGKILL) } }
            guard let old = Int32((try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? "") else {
                Issue.record("the parent did not say its pid"); return
            }
            #expect(old == parent)
            // The next process started on the host, a root sleep, is given the parent's pid.
            var victim: pid_t = 0
            for _ in 0..<20 {
                let fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY)
                let text = Array("\(old - 1)".utf8)
                _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
                victim = spawn(["/bin/sleep", "30"])
                if victim == old { break }
                kill(victim, SIGKILL)
                waitpid(victim, &st, 0)
            }
            defer { kill(victim, SIGKILL); waitpid(victim, &st, 0) }
            guard victim == old else { Issue.record("could not give pid \(old) to the root sleep (got \(victim))"); return }
            let before = Self.cgroupOf(victim)
            FileManager.default.createFile(atPath: go, contents: Data())
            #expect(waitUntil(timeout: 10) { access(answerFile, F_OK) == 0 }, "the child got no answer")
            let answer = (try? String(contentsOfFile: answerFile, encoding: .utf8)) ?? ""
            let after = Self.cgroupOf(victim)
            print("pid reuse: pid \(old) now a root sleep; the child was told \(answer.trimmingCharacters(in: .whitespacesAndNewlines))")
            #expect(after == before && !(after ?? "").contains(d.rootName), "the root sleep was moved to \(after ?? "?")")
            #expect(answer.contains("\"ok\":false") && answer.contains("process \(old)") && !answer.contains("did not arrive"), "answer: \(answer)")
            #expect(access(d.root + "/stolen", F_OK) != 0, "the session was made")
        }

        @Test("soak: 60 s of 1,000 concurrent bad connections while a session opens a file at a steady rate: status answers within 1 s every 2 s, captured + lost = performed")
        func soak() throws {
            let user = try TestUser()
            defer { user.remove() }
            let d = try DaemonProcess("soak")
            defer { d.stop() }
            let session = d.root + "/soak"
            mkdir(session, 0o755)
            #expect(SessionLauncher.waitUntilWatched(path: session, timeoutMs: 30_000), "the session is not watched")
            let target = d.dir + "/soak-target"
            FileManager.default.createFile(atPath: target, contents: Data("x".utf8))
            chmod(d.dir, 0o755)
            let seconds = 60
            let performedFile = d.dir + "/performed", report = user.scratch(in: d.dir) + "/soak.json"
            try Self.openLoop.write(toFile: d.dir + "/loop.py", atomically: true, encoding: .utf8)
            let flood = user.spawn(["/usr/bin/python3", "-c", Self.attacker, d.socket, "mixed", "1000", String(seconds + 2), report])
            usleep(1_000_000)
            let loop = spawn(["/bin/sh", "-c", "echo $$ > '\(session)/cgroup.procs' && exec python3 '\(d.dir)/loop.py' '\(target)' 300 \(seconds) '\(performedFile)'"])
            var times: [Double] = []
            var failures: [String] = []
            let end = Date().addingTimeInterval(Double(seconds))
            while Date() < end {
                let s = Self.timedStatus(d)
                times.append(s.seconds)
                if !s.ok || s.seconds >= Self.answerBound { failures.append("\(s.seconds) s: \(s.output)") }
                usleep(UInt32(max(0, 2 - s.seconds) * 1_000_000))
            }
            var st: Int32 = 0
            waitpid(loop, &st, 0)
            waitpid(flood, &st, 0)
            let alive = d.running
            let stats = (try? String(contentsOfFile: report, encoding: .utf8)) ?? "no report"
            d.stop()
            let performed = Int((try? String(contentsOfFile: performedFile, encoding: .utf8)) ?? "") ?? -1
            var captured = 0, lost = 0, lossRecords = 0
            let needle = "\"file\":{\"path\":\"\(target)\""
            for line in ((try? String(contentsOfFile: d.output, encoding: .utf8)) ?? "").split(separator: "\n") {
                if line.contains("\"type\":\"file.open\""), line.contains(needle) {
                    let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                    captured += obj?.int("file.count") ?? 1
                }
                if line.contains("\"type\":\"agent.loss\"") {
                    lossRecords += 1
                    let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                    lost += obj?.int("loss.kernel_dropped.open") ?? 0
                }
            }
            let sorted = times.sorted()
            print("soak: attacker \(stats); status \(times.count) asks, max \(sorted.last ?? -1) s, median \(sorted.isEmpty ? -1 : sorted[sorted.count / 2]) s; performed \(performed), captured \(captured), lost \(lost) (\(lossRecords) loss records)")
            #expect(alive, "the daemon died: \(d.exitDescription)")
            #expect(failures.isEmpty, "status failed or was slow: \(failures)")
            // One ask every 2 s, or every answer's time when that is longer.
            #expect(times.count >= Int(Double(seconds) / max(2, Self.answerBound)) - 2)
            #expect(performed > 0 && captured + lost == performed, "performed \(performed), captured \(captured), lost \(lost)")
            #expect(stats.contains("\"connects\": "), "attacker: \(stats)")
        }

        // MARK: clients

        /// argv: socket, seconds, report. One byte every 1.5 s; reports when the daemon cut it off.
        static let slowClient = #"""
        import socket, sys, time, select
        s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); t0 = time.monotonic(); cut = "never"
        while time.monotonic() - t0 < float(sys.argv[2]):
            try:
                s.send(b"{")
            except OSError:
                cut = "%.2f" % (time.monotonic() - t0); break
            r, _, _ = select.select([s], [], [], 1.5)
            if r:
                cut = "%.2f" % (time.monotonic() - t0); break
        open(sys.argv[3], "w").write("cut off after " + cut)
        """#

        /// argv: socket, go file, answer file, pid file, child pid file. Connects, forks a child that keeps the
        /// socket and sends start once the go file exists; the parent writes its pid and exits.
        static let handOver = #"""
        import os, socket, sys, time
        path, go, out, pidfile, childfile = sys.argv[1:6]
        s = socket.socket(socket.AF_UNIX); s.connect(path)
        child = os.fork()
        if child == 0:
            t0 = time.monotonic()
            while not os.path.exists(go) and time.monotonic() - t0 < 20: time.sleep(0.002)
            s.sendall(b'{"op":"start","session":"stolen"}\n')
            data = b""
            while True:
                d = s.recv(65536)
                if not d: break
                data += d
            open(out + ".tmp", "wb").write(data); os.rename(out + ".tmp", out)
            os._exit(0)
        open(childfile, "w").write(str(child))
        open(pidfile, "w").write(str(os.getpid()))
        os._exit(0)
        """#

        /// argv: target, opens per second, seconds, where to write how many were done.
        static let openLoop = #"""
        import os, sys, time
        target, rate, seconds, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
        n = 0; t0 = time.monotonic()
        while True:
            t = time.monotonic() - t0
            if t >= seconds: break
            while n < int(t * rate):
                os.close(os.open(target, os.O_RDONLY)); n += 1
            time.sleep(0.005)
        open(out, "w").write(str(n))
        """#

        /// argv: socket, kind (half, slow, garbage, big, close, or mixed), connections, seconds,
        /// report. Keeps that many connections going at once; each one the daemon ends is made
        /// again after a short pause. Reports counts as JSON.
        static let attacker = #"""
        import errno, json, os, random, resource, selectors, socket, sys, time
        path, kind, n, seconds, report = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 256), hard))
        kinds = ["half", "slow", "garbage", "big", "close"] if kind == "mixed" else [kind]
        st = dict(connects=0, eagain=0, busy=0, answers=0, ended_by_daemon=0, closed_early=0, errors=0)
        sel = selectors.DefaultSelector()
        class Slot:
            def __init__(self, i): self.kind = kinds[i % len(kinds)]; self.s = None; self.at = 0; self.out = b""; self.got = b""
        slots = [Slot(i) for i in range(n)]
        def finish(sl, by_daemon):
            if sl.s is not None:
                try: sel.unregister(sl.s)
                except Exception: pass
                sl.s.close(); sl.s = None
            if b"busy" in sl.got: st["busy"] += 1
            elif sl.got: st["answers"] += 1
            if by_daemon: st["ended_by_daemon"] += 1
            sl.got = b""; sl.at = time.monotonic() + random.uniform(0.2, 0.5)
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            now = time.monotonic()
            for sl in slots:
                if sl.s is None and now >= sl.at:
                    s = socket.socket(socket.AF_UNIX); s.setblocking(False)
                    try: s.connect(path)
                    except BlockingIOError:
                        st["eagain"] += 1; s.close(); sl.at = now + random.uniform(0.2, 0.5); continue
                    except OSError:
                        st["errors"] += 1; s.close(); sl.at = now + 0.5; continue
                    st["connects"] += 1; sl.s = s; sl.at = now
                    sl.out = {"half": b"", "slow": b"", "garbage": os.urandom(200).replace(b"\n", b"") + b"\n",
                              "big": b"{" * 70000, "close": b'{"op":"status"}\n'}[sl.kind]
                    sel.register(s, selectors.EVENT_READ, sl)
                if sl.s is not None and sl.kind == "slow" and now >= sl.at:
                    sl.out = b"{"; sl.at = now + 1.5
                if sl.s is not None and sl.out:
                    try: sl.out = sl.out[sl.s.send(sl.out):]
                    except BlockingIOError: pass
                    except OSError: finish(sl, True); continue
                    if sl.kind == "close" and not sl.out:
                        st["closed_early"] += 1; finish(sl, False)
            for key, _ in sel.select(timeout=0.05):
                sl = key.data
                try: d = sl.s.recv(65536)
                except BlockingIOError: continue
                except OSError: d = b""
                if d: sl.got += d
                else: finish(sl, True)
        for sl in slots:
            if sl.s is not None: sl.s.close()
        open(report, "w").write(json.dumps(st, indent=0))
        """#
    }
}

extension KernelSuite.ControlSocketTests {
    /// An ordinary user made for a test, in the agentwatch group (made too when missing), removed
    /// after.
    struct TestUser {
        let name: String
        let uid: UInt32
        let gid: UInt32
        let madeGroup: Bool

        init() throws {
            func sh(_ cmd: String) -> Int32 { runIn(nil, ["/bin/sh", "-c", cmd]).status }
            madeGroup = sh("getent group agentwatch >/dev/null") != 0
            if madeGroup { _ = sh("groupadd --system agentwatch") }
            name = "awctl\(getpid() % 100_000)"
            _ = sh("userdel \(name) 2>/dev/null; useradd --no-create-home --shell /bin/sh --user-group --groups agentwatch \(name)")
            guard let pw = getpwnam(name) else { throw AgentError("useradd did not make \(name)") }
            (uid, gid) = (pw.pointee.pw_uid, pw.pointee.pw_gid)
        }

        /// A directory in `dir` the user may write (its scripts' reports).
        func scratch(in dir: String) -> String {
            let path = dir + "/" + name
            mkdir(path, 0o755)
            chown(path, uid, gid)
            return path
        }

        func remove() {
            _ = runIn(nil, ["/bin/sh", "-c", "userdel \(name)" + (madeGroup ? "; groupdel agentwatch" : "")])
        }

        /// Starts `argv` as the user, with its groups; returns the pid (setpriv execs, so it is the
        /// program's own).
        func spawn(_ argv: [String]) -> pid_t {
            KernelTests.spawn(["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(gid)", "--init-groups"] + argv)
        }

        /// Runs `argv` as the user to the end; its exit status.
        func run(_ argv: [String]) -> Int32 {
            let pid = spawn(argv)
            var st: Int32 = 0
            waitpid(pid, &st, 0)
            return st
        }
    }

    /// The real `agentwatch daemon` in a process of its own, on a session root and files of the
    /// test's, with SIGPIPE at its default action (as systemd starts it) whatever the test runner's.
    final class DaemonProcess {
        let dir: String
        let rootName: String
        let root: String
        let output: String
        let config: String
        var socket: String { dir + "/control.sock" }
        let pid: pid_t
        private var status: Int32?

        init(_ name: String) throws {
            rootName = "agentwatch-ctl-\(getpid())-\(name)"
            root = CgroupFS.mountPoint()! + "/" + rootName
            dir = "/tmp/aw-ctl-\(getpid())-\(name)"
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            chmod(dir, 0o755)
            output = dir + "/records.ndjson"
            config = dir + "/agentwatch.yaml"
            try """
            session_roots: [\(rootName)]
            runtime_dir: \(dir)
            output: \(output)
            poll_interval_ms: 20
            status_interval_s: 0
            rules: []
            """.write(toFile: config, atomically: true, encoding: .utf8)
            chmod(config, 0o644)

            var attr = posix_spawnattr_t()
            posix_spawnattr_init(&attr)
            defer { posix_spawnattr_destroy(&attr) }
            var defaults = sigset_t()
            sigemptyset(&defaults)
            sigaddset(&defaults, SIGPIPE)
            posix_spawnattr_setsigdefault(&attr, &defaults)
            posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF))
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 1, dir + "/daemon.log", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            let argv = [Executable.path, "daemon", "--config", config]
            let cargs = argv.map { strdup($0) } + [nil]
            defer { cargs.forEach { free($0) } }
            var pid: pid_t = 0
            let rc = posix_spawn(&pid, argv[0], &actions, &attr, cargs, environ)
            guard rc == 0 else { throw AgentError("posix_spawn agentwatch: \(rc)") }
            self.pid = pid
            let sock = dir + "/control.sock"
            let up = waitUntil(timeout: 30) { (try? ControlClient.status(path: sock, timeoutS: 2))?.isOK == true }
            guard up else {
                stop()
                throw AgentError("the daemon did not answer status within 30 s: \(log)")
            }
        }

        var log: String { (try? String(contentsOfFile: dir + "/daemon.log", encoding: .utf8)) ?? "" }

        /// Whether it still runs (reaping it if it has ended).
        var running: Bool {
            if status != nil { return false }
            var st: Int32 = 0
            if waitpid(pid, &st, WNOHANG) == pid { status = st; return false }
            return true
        }

        var exitDescription: String {
            guard let st = status else { return "running" }
            let how = (st & 0x7f) != 0 ? "killed by signal \(st & 0x7f)" : "exit \((st >> 8) & 0xff)"
            return "\(how); log: \(log.suffix(600))"
        }

        /// SIGTERM, wait, and remove its cgroups; once.
        func stop() {
            if running {
                kill(pid, SIGTERM)
                var st: Int32 = 0
                waitpid(pid, &st, 0)
                status = st
            }
            for s in CgroupFS.subdirectories(of: root) { removeCgroupTree(root + "/" + s) }
            rmdir(root)
        }
    }

    /// How soon a status must be answered while hostile clients keep the daemon busy: 1 s, and
    /// under emulation (the matrix), where the daemon and a thousand hostile clients share two
    /// emulated cores, as much longer as every other wait.
    static let answerBound = 1 * KernelEnv.timeScale

    /// Asks the daemon for its status over its control socket, as `agentwatch status` does,
    /// and times the answer alone: from connect to the last byte, not the start of a client
    /// program (seconds of dynamic loading under emulation, where the daemon answers in
    /// milliseconds). At most 5 s (times the emulated run's time scale).
    static func timedStatus(_ d: DaemonProcess) -> (ok: Bool, seconds: Double, output: String) {
        let t0 = WallClock.monotonicNs()
        let answer: String
        var ok = false
        do {
            let reply = try ControlClient.status(path: d.socket, timeoutS: Int(5 * KernelEnv.timeScale))
            if case .ok = reply { ok = true }
            answer = "\(reply)"
        } catch {
            answer = error.message
        }
        return (ok, Double(WallClock.monotonicNs() - t0) / 1e9, answer)
    }

    /// The cgroup v2 path of `pid` as /proc says (the `0::` line).
    static func cgroupOf(_ pid: pid_t) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
    }
}
