@testable import AgentDaemon
@testable import AgentSessions
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// Sessions under systemd user scopes, found through a session-root pattern.
    @Suite("user scopes")
    struct UserScopeTests {
        /// Runs a shell command as root; its status and what it printed. The output goes
        /// through a file, not a pipe: a user manager the command starts outlives it and would
        /// hold a pipe open.
        @discardableResult
        static func sh(_ command: String) -> (status: Int32, output: String) {
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("userscope-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log").path
            defer { unlink(log) }
            // Descriptors the test process left open (other tests' pipes) are closed too.
            let prelude = "exec >'\(log)' 2>&1 </dev/null; for f in /proc/$$/fd/*; do n=${f##*/}; [ \"$n\" -gt 2 ] && eval \"exec $n>&-\"; done 2>/dev/null; "
            let (_, status) = runIn(nil, ["/bin/bash", "-c", prelude + command])
            let said = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            return (code, said)
        }

        /// A real `systemd --user` for a user made by the test (this machine's PID 1 is not
        /// systemd: Tests/support/user-manager.sh sets up what logind and PID 1 would), and the
        /// launch the README documents: `systemd-run --user --scope --slice=agentwatch.slice`.
        @Test("systemd-run --user --scope --slice=agentwatch.slice: each scope is a session with the user's uid from its first exec and open; a scope elsewhere is not; the root leaves the gate with the user's manager")
        func systemdUserScope() throws {
            let script = KernelEnv.packageRoot + "/Tests/support/user-manager.sh"
            let user = "awscope\(getpid() % 100_000)"
            #expect(Self.sh("useradd --no-create-home --shell /bin/sh --user-group \(user)").status == 0)
            defer { Self.sh("userdel \(user)") }
            guard let pw = getpwnam(user) else { Issue.record("useradd did not make \(user)"); return }
            let uid = Int(pw.pointee.pw_uid)

            let d = try TestDaemon { $0.sessionRoots = [$0.sessionRoots[0], DaemonConfig.userScopeRoots] }
            d.start()
            defer { d.stop() }
            let started = Self.sh("\(script) start \(user)")
            #expect(started.status == 0, "\(started.output)")
            var managerUp = started.status == 0
            defer { if managerUp { Self.sh("\(script) stop \(user)") } }
            guard started.status == 0 else { return }

            // The first scope makes agentwatch.slice: the root appears and its first session
            // starts within the same few milliseconds.
            func scope(_ unit: String, slice: Bool = true) {
                let r = Self.sh("\(script) run \(user) -- systemd-run --user --scope --quiet \(slice ? "--slice=agentwatch.slice " : "")--unit=\(unit) -- sh -c 'cat /etc/hostname'")
                #expect(r.status == 0, "\(unit): \(r.output)")
            }
            scope("aw-first")
            scope("aw-second")
            scope("aw-elsewhere", slice: false)
            scope("aw-last")

            let root = "/user.slice/user-\(uid).slice/user@\(uid).service/agentwatch.slice"
            let records = d.waitForRecords {
                $0.contains { $0.string("type") == "session.end" && $0.string("session.id") == "aw-last.scope" }
            }
            for id in ["aw-first.scope", "aw-second.scope", "aw-last.scope"] {
                let start = records.first { $0.string("type") == "session.start" && $0.string("session.id") == id }
                #expect(start?.string("session.cgroup") == root + "/" + id, "\(id): \(d.summary(records))")
                #expect(start?.int("session.uid") == uid, "\(id)")
                let exec = records.first { $0.string("type") == "process.exec" && $0.string("session.id") == id && $0.string("process.exe") == "/usr/bin/cat" }
                #expect(exec?.int("process.uid") == uid, "\(id): no exec of cat; \(d.summary(records))")
                let open = records.first { $0.string("type") == "file.open" && $0.string("session.id") == id && $0.string("file.path") == "/etc/hostname" }
                #expect(open?.int("process.uid") == uid, "\(id): no open of /etc/hostname; \(d.summary(records))")
            }
            #expect(!records.contains { $0.string("session.id") == "aw-elsewhere.scope" })
            #expect(!records.contains { ($0.string("session.cgroup") ?? "").contains("/app.slice/") })

            // The user owns these cgroups: a scope's process can move itself out. It is gone
            // from the record from then on, and the session it left says so.
            let initScope = "/sys/fs/cgroup/unified/user.slice/user-\(uid).slice/user@\(uid).service/init.scope"
            let mount = d.daemon.capture.registry.mount
            let leave = Self.sh("\(script) run \(user) -- systemd-run --user --scope --quiet --slice=agentwatch.slice --unit=aw-leave -- sh -c 'cat /etc/hostname; echo $$ > \(mount)/user.slice/user-\(uid).slice/user@\(uid).service/init.scope/cgroup.procs && exec cat /etc/os-release'")
            #expect(leave.status == 0, "\(leave.output) \(initScope)")
            let left = d.waitForRecords { $0.contains { $0.string("type") == "alert" && $0.string("rule.id") == "agentwatch-session-left" } }
            let alert = left.first { $0.string("type") == "alert" && $0.string("rule.id") == "agentwatch-session-left" }
            #expect(alert?.string("session.id") == "aw-leave.scope")
            #expect(alert?.int("process.uid") == uid)
            #expect(alert?.string("message")?.contains("for /user.slice/user-\(uid).slice/user@\(uid).service/init.scope (no session)") == true, "\(alert ?? [:])")
            #expect(!left.contains { $0.string("file.path") == "/etc/os-release" && $0.string("session.id") == "aw-leave.scope" })

            // The manager stops: agentwatch.slice goes, and with it the root from the gate.
            let rootPath = d.daemon.capture.registry.mount + root
            let cgid = try #require(CgroupFS.id(of: rootPath))
            #expect(d.daemon.capture.sensor.gateHoldsRoot(cgid: cgid))
            let stopped = Self.sh("\(script) stop \(user)")
            managerUp = false
            #expect(stopped.status == 0, "\(stopped.output)")
            #expect(access(rootPath, F_OK) != 0)
            #expect(!d.daemon.capture.sensor.gateHoldsRoot(cgid: cgid))
        }

        /// Roots that existed before the daemon started are found by the daemon itself; a
        /// directory beside a root, matching nothing, holds no session.
        @Test("a root that existed before the daemon is found at start; a cgroup beside it is not a session; a removed root leaves the gate")
        func rootsBeforeStart() throws {
            let mount = try #require(CgroupFS.mountPoint())
            let top = "aw-scope-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            defer { removeCgroupTree(mount + "/" + top) }
            let service = mount + "/" + top + "/user-4242.slice/user@4242.service"
            let root = service + "/agentwatch.slice"
            #expect(Self.sh("mkdir -p \(root)/before.scope \(service)/other.slice/beside.scope").status == 0)

            let d = try TestDaemon { $0.sessionRoots = [$0.sessionRoots[0], top + "/user-*.slice/user@*.service/agentwatch.slice"] }
            d.start()
            defer { d.stop() }
            let cgid = try #require(CgroupFS.id(of: root))
            #expect(d.daemon.capture.sensor.gateHoldsRoot(cgid: cgid))

            runIn(root + "/before.scope", ["/bin/cat", "/etc/hostname"])
            runIn(service + "/other.slice/beside.scope", ["/bin/cat", "/etc/hostname"])
            let records = d.waitForRecords {
                $0.contains { $0.string("type") == "file.open" && $0.string("session.id") == "before.scope" && $0.string("file.path") == "/etc/hostname" }
            }
            #expect(records.first { $0.string("type") == "session.start" && $0.string("session.id") == "before.scope" }?.string("session.cgroup")
                    == "/" + top + "/user-4242.slice/user@4242.service/agentwatch.slice/before.scope")
            #expect(!records.contains { $0.string("session.id") == "beside.scope" })

            removeCgroupTree(root)
            #expect(!d.daemon.capture.sensor.gateHoldsRoot(cgid: cgid))
            // The daemon lets go of it too (its next look, every 250 ms).
            #expect(waitUntil(timeout: 5) { d.records().contains { $0.string("type") == "session.end" && $0.string("session.id") == "before.scope" } })
        }
    
        /// A process of an `agentwatch run` session (or any session) that writes itself into
        /// another cgroup has left the record: the session it left gets an alert; a move to a
        /// cgroup nested in its own session is no escape.
        @Test("a session process moving itself out of its session raises agentwatch-session-left; a move within the session does not")
        func leavingASession() throws {
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let session = d.makeSession("leaver")
            let mount = d.daemon.capture.registry.mount
            mkdir(session + "/inner", 0o755)
            runIn(session, ["/bin/sh", "-c", "echo $$ > \(session)/inner/cgroup.procs && cat /etc/hostname && echo $$ > \(mount)/cgroup.procs && exec cat /etc/os-release"])
            let records = d.waitForRecords { $0.contains { $0.string("type") == "alert" && $0.string("rule.id") == "agentwatch-session-left" } }
            let alerts = records.filter { $0.string("type") == "alert" && $0.string("rule.id") == "agentwatch-session-left" }
            #expect(alerts.count == 1, "\(d.summary(records))")
            #expect(alerts.first?.string("session.id") == "leaver")
            #expect(alerts.first?.string("rule.severity") == "high")
            #expect(alerts.first?.string("message")?.contains("left session leaver for / (no session)") == true, "\(alerts.first ?? [:])")
            // Before: recorded (from the nested cgroup too). After: nothing.
            #expect(records.contains { $0.string("file.path") == "/etc/hostname" && $0.string("session.id") == "leaver" })
            #expect(!records.contains { $0.string("file.path") == "/etc/os-release" })
            try expectValidAgainstSchema(d.output)
        }
    }
}
