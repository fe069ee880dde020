@testable import AgentDaemon
@testable import AgentSensor
@testable import AgentSessions
import BPFKit
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// The daemon against the real kernel: real programs, real cgroups, real commands.
    @Suite("capture")
    struct CaptureTests {
        @Test("exec, open and connect in a session carry its id; the same outside a session yield nothing")
        func threeKinds() throws {
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let listener = LoopbackListener()
            let cg = d.makeSession("s1")
            let marker = "/tmp/agentwatch-outside-\(getpid())"
            FileManager.default.createFile(atPath: marker, contents: Data("x".utf8))
            defer { unlink(marker) }

            let inside = runIn(cg, ["/bin/bash", "-c", "cat /etc/hostname >/dev/null; exec 3<>/dev/tcp/127.0.0.1/\(listener.port)"])
            #expect(inside.status == 0)
            // The same commands outside any session, while the session's hooks are attached.
            let outside = runIn(nil, ["/bin/bash", "-c", "cat \(marker) >/dev/null; exec 3<>/dev/tcp/127.0.0.1/\(listener.port)"])
            #expect(outside.status == 0)

            // bash may connect elsewhere first (a fresh machine's NSS tries the nscd or userdb unix
            // sockets and gets ENOENT): the record under test is the IPv4 one.
            let isTCPConnect = { (r: [String: Any]) -> Bool in
                r.string("type") == "net.connect" && r.string("net.family") == "ipv4" && r.int("process.pid") == Int(inside.pid)
            }
            let records = d.waitForRecords { rs in rs.contains(where: isTCPConnect) }
            let mine = records.filter { $0.string("session.id") == "s1" }
            let exec = mine.first { $0.string("type") == "process.exec" && $0.string("process.exe") == "/usr/bin/cat" }
            #expect(exec?[path: "process.argv"] as? [String] == ["cat", "/etc/hostname"])
            let open = mine.first { $0.string("type") == "file.open" && $0.string("file.path") == "/etc/hostname" }
            #expect(open != nil)
            #expect(open?.int("file.result") ?? -1 >= 0)
            #expect((open?[path: "file.flags"] as? [String])?.contains("O_RDONLY") == true)
            let connect = mine.first(where: isTCPConnect)
            #expect(connect?.string("net.daddr") == "127.0.0.1")
            #expect(connect?.int("net.dport") == Int(listener.port))
            #expect(connect?.int("net.result") == 0)
            #expect(connect?.string("net.transport") == "tcp")
            #expect(connect?.string("net.saddr") == "127.0.0.1")
            #expect(connect?.int("process.pid") == Int(inside.pid))

            // session.start comes before the session's first process record.
            let startSeq = records.first { $0.string("type") == "session.start" && $0.string("session.id") == "s1" }?.int("seq")
            let firstProcessSeq = mine.first { ($0.string("type") ?? "").hasPrefix("process.") }?.int("seq")
            #expect(startSeq != nil && firstProcessSeq != nil && startSeq! < firstProcessSeq!)

            // Nothing at all from outside: no record names the outside process or its file.
            #expect(!records.contains { $0.int("process.pid") == Int(outside.pid) })
            #expect(!records.contains { $0.string("file.path") == marker })
            #expect(records.allSatisfy { r in
                guard let type = r.string("type"), type.hasPrefix("process.") || type.hasPrefix("file.") || type.hasPrefix("net.") else { return true }
                return r.string("session.id") == "s1"
            })
        }

        @Test("a process in a cgroup nested inside a session belongs to the session")
        func nestedCgroup() throws {
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("outer")
            let inner = cg + "/inner/deeper"
            try FileManager.default.createDirectory(atPath: inner, withIntermediateDirectories: true)
            let r = runIn(inner, ["/bin/cat", "/etc/hostname"])
            let records = d.waitForRecords { rs in rs.contains { $0.string("type") == "file.open" && $0.int("process.pid") == Int(r.pid) && $0.string("file.path") == "/etc/hostname" } }
            let open = records.first { $0.string("type") == "file.open" && $0.int("process.pid") == Int(r.pid) && $0.string("file.path") == "/etc/hostname" }
            #expect(open?.string("session.id") == "outer")
            #expect(!records.contains { $0.string("type") == "session.start" && $0.string("session.id") == "inner" })
        }

        @Test("a session that exists before the daemon starts is adopted with its running processes")
        func adoptsRunningSession() throws {
            let mount = try #require(CgroupFS.mountPoint())
            // Make the root and session by hand before the daemon exists.
            let d0Name = "agentwatch-test-\(getpid())-pre"
            let root = mount + "/" + d0Name
            mkdir(root, 0o755)
            let cg = root + "/early"
            mkdir(cg, 0o755)
            // A shell that is already running in the session and opens a file after the daemon starts.
            let gate = FileManager.default.temporaryDirectory.appendingPathComponent("gate-\(getpid())").path
            unlink(gate)
            let shell = spawn(["/bin/sh", "-c", "echo $$ > '\(cg)/cgroup.procs' && while [ ! -e '\(gate)' ]; do sleep 0.05; done; exec cat /etc/hostname"])
            // Whatever happens below, the shell does not outlive the test, nor does the root.
            defer {
                kill(shell, SIGKILL)
                removeCgroupTree(root)
            }
            _ = waitUntil { CgroupFS.processes(below: cg).contains(shell) }

            let d = try TestDaemon { $0.sessionRoots = [d0Name] }
            d.start()
            defer { d.stop() }
            FileManager.default.createFile(atPath: gate, contents: nil)
            defer { unlink(gate) }
            var status: Int32 = 0
            waitpid(shell, &status, 0)

            let records = d.waitForRecords { rs in rs.contains { $0.string("type") == "file.open" && $0.string("file.path") == "/etc/hostname" && $0.int("process.pid") == Int(shell) } }
            let start = records.first { $0.string("type") == "session.start" && $0.string("session.id") == "early" }
            #expect(start?[path: "session.adopted"] as? Bool == true)
            let adopted = records.first { $0.string("type") == "process.exec" && $0.int("process.pid") == Int(shell) && $0.string("process.source") == "procfs" }
            #expect(adopted != nil)
            #expect(adopted?.string("process.exe") == "/usr/bin/dash" || adopted?.string("process.exe") == "/usr/bin/bash")
            // The exec of cat replaces the adopted shell's image: same process, same entity id.
            let exec = records.first { $0.string("type") == "process.exec" && $0.int("process.pid") == Int(shell) && $0.string("process.source") == "kernel" }
            #expect(exec?.string("process.entity_id") == adopted?.string("process.entity_id"))
            #expect(exec?.string("process.previous_exe") == adopted?.string("process.exe"))
            let open = records.first { $0.string("type") == "file.open" && $0.string("file.path") == "/etc/hostname" }
            #expect(open?.string("session.id") == "early")
        }

        @Test("a daemon restarted under running sessions adopts their processes with the entity ids and parents they had")
        func restartKeepsEntityIDs() throws {
            let first = try TestDaemon()
            first.start()
            let cg = first.makeSession("long")
            defer { removeCgroupTree(first.root) }
            // Three generations in the session: sh -> sh -> sleep, all exec'd inside it.
            let outer = spawn(["/bin/sh", "-c", "echo $$ > '\(cg)/cgroup.procs' && exec /bin/sh -c '/bin/sh -c \"/bin/sleep 30; true\"; true'"])
            defer { kill(outer, SIGKILL); var st: Int32 = 0; waitpid(outer, &st, 0) }
            let seen = first.waitForRecords { $0.contains { $0.string("type") == "process.exec" && $0.string("process.exe") == "/usr/bin/sleep" } }
            first.stop(keepCgroups: true)
            let live = seen.filter { $0.string("type") == "process.exec" && $0.string("process.source") == "kernel" }
            let sleep = try #require(live.last { $0.string("process.exe") == "/usr/bin/sleep" })
            let middle = try #require(live.last { $0.int("process.pid") == sleep.int("process.ppid") })
            let top = try #require(live.last { $0.int("process.pid") == middle.int("process.ppid") })
            #expect(top.int("process.pid") == Int(outer))

            let second = try TestDaemon { $0.sessionRoots = [first.rootName] }
            second.start()
            defer { second.stop() }
            let records = second.waitForRecords { $0.filter { $0.string("process.source") == "procfs" }.count >= 3 }
            let adopted = records.filter { $0.string("type") == "process.exec" && $0.string("process.source") == "procfs" }
            for was in [top, middle, sleep] {
                let now = adopted.first { $0.int("process.pid") == was.int("process.pid") }
                #expect(now?.string("process.entity_id") == was.string("process.entity_id"), "pid \(was.int("process.pid") ?? 0)")
                #expect(now?.string("process.parent.entity_id") == was.string("process.parent.entity_id"))
                #expect(now?.string("process.exe") == was.string("process.exe"))
            }
        }

        @Test("sessions created and removed while the daemon runs start and end; the on-demand hooks follow them")
        func sessionLifecycleAndHooks() throws {
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let sensor = d.daemon.capture.sensor
            let programIDs = try sensor.onDemandPrograms.map { try sensor.object.program($0).id() }
            let alwaysIDs = try sensor.alwaysAttached.map { try sensor.object.program($0).id() }
            let attachedNow = { Set(KernelLinks.programIDs()).intersection(programIDs).count }
            let alwaysNow = { Set(KernelLinks.programIDs()).intersection(alwaysIDs).count }
            // The tracepoint tier attaches all its syscall programs on demand; the others keep
            // theirs attached from start to stop.
            #expect(sensor.choice.tier == .tracepoint ? alwaysIDs.isEmpty : !alwaysIDs.isEmpty)

            // No session: the kernel holds no link of any on-demand program, and every one of
            // those attached for the daemon's life.
            #expect(!d.daemon.counters.syscallHooksAttached)
            #expect(attachedNow() == 0)
            #expect(alwaysNow() == alwaysIDs.count)

            let cg = d.makeSession("live")
            var records = d.waitForRecords { $0.contains { $0.string("type") == "session.start" && $0.string("session.id") == "live" } }
            #expect(records.contains { $0.string("type") == "session.start" && $0.string("session.id") == "live" })
            #expect(waitUntil { attachedNow() == programIDs.count })
            // The daemon marks the session watched, which `agentwatch run` waits for.
            #expect(CgroupFS.getxattr(cg, SessionMetadata.watchedXattr) != nil)

            runIn(cg, ["/bin/true"])
            rmdir(cg)
            records = d.waitForRecords { $0.contains { $0.string("type") == "session.end" && $0.string("session.id") == "live" } }
            let end = try #require(records.first { $0.string("type") == "session.end" && $0.string("session.id") == "live" })
            #expect(end.int("session.counts.process\\.exec") == nil) // dotted keys are not paths
            let counts = end[path: "session.counts"] as? [String: Any]
            #expect((counts?["process.exec"] as? NSNumber)?.intValue == 1)
            #expect((counts?["process.exit"] as? NSNumber)?.intValue ?? 0 >= 1)
            // The last session went: the on-demand hooks are gone from the kernel, the others stay.
            #expect(waitUntil { attachedNow() == 0 })
            #expect(!d.daemon.counters.syscallHooksAttached)
            #expect(alwaysNow() == alwaysIDs.count)
        }
    }
}
