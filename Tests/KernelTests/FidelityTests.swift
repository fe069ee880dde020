@testable import AgentDaemon
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// Records name the right process and the real file: paths resolved by the kernel, exec images,
    /// argv bounds, process identity.
    @Suite("fidelity")
    struct FidelityTests {
        /// Runs a shell script in a fresh session and returns the session's records once its last
        /// process has exited.
        func capture(_ script: String, configure: (inout DaemonConfig) -> Void = { _ in }) throws -> [[String: Any]] {
            try captureWithText(script, configure: configure).records
        }

        /// The same, with the raw NDJSON text: JSONSerialization refuses lines with lone surrogates.
        func captureWithText(_ script: String, configure: (inout DaemonConfig) -> Void = { _ in }) throws -> (records: [[String: Any]], text: String) {
            let d = try TestDaemon(configure: configure)
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("f")
            let r = runIn(cg, ["/bin/bash", "-c", script])
            let records = d.waitForRecords { $0.contains { $0.string("type") == "process.exit" && $0.int("process.pid") == Int(r.pid) } }
                .filter { $0.string("session.id") == "f" }
            return (records, (try? String(contentsOfFile: d.output, encoding: .utf8)) ?? "")
        }

        func opens(_ records: [[String: Any]]) -> [[String: Any]] {
            records.filter { $0.string("type") == "file.open" }
        }

        @Test("exec records what the standard descriptors are: pipe ends share an inode, a socket, /dev/null, a file")
        func standardDescriptors() throws {
            let listener = LoopbackListener()
            let out = "/tmp/aw-stdio-\(getpid())"
            defer { unlink(out) }
            let records = try capture("""
                /bin/echo hi | /bin/cat >\(out) 2>/dev/null
                exec 3<>/dev/tcp/127.0.0.1/\(listener.port); /usr/bin/true <&3
                """)
            func exec(_ exe: String) -> [String: Any]? {
                records.first { $0.string("type") == "process.exec" && $0.string("process.exe") == exe }
            }
            let echo = try #require(exec("/usr/bin/echo"))
            let cat = try #require(exec("/usr/bin/cat"))
            let tru = try #require(exec("/usr/bin/true"))
            #expect(echo.string("process.stdout.type") == "pipe")
            #expect(cat.string("process.stdin.type") == "pipe")
            #expect(echo.int("process.stdout.ino") != nil && echo.int("process.stdout.ino") == cat.int("process.stdin.ino"))
            #expect(cat.string("process.stdout.type") == "file")
            #expect(cat.string("process.stderr.type") == "char")
            #expect(tru.string("process.stdin.type") == "socket")
            #expect(tru.int("process.stdin.ino") ?? 0 > 0)
        }

        @Test("with resolve_paths off (the benchmark's measuring mode) file.path is the path as requested")
        func resolutionOff() throws {
            let records = try capture("cd /etc && /bin/cat ./hostname >/dev/null") { $0.resolvePaths = false }
            let open = opens(records).first { ($0.string("file.path") ?? "").hasSuffix("hostname") }
            #expect(open?.string("file.path") == "./hostname")
            #expect(open?.string("file.requested_path") == nil)
        }

        @Test("relative, dirfd-relative, symlinked and ../ paths are resolved to the real file")
        func resolvedPaths() throws {
            let dir = "/tmp/aw-fid-\(getpid())"
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: dir + "/a/b", withIntermediateDirectories: true)
            symlink("/etc/hostname", dir + "/link")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let py = "import os; fd = os.open('/etc', os.O_RDONLY | os.O_DIRECTORY); os.close(os.open('hostname', os.O_RDONLY, dir_fd=fd))"
            let records = try capture("""
                cd /etc && cat ./hostname >/dev/null
                cat \(dir)/link >/dev/null
                cd \(dir)/a/b && cat ../../../../../etc/hostname >/dev/null
                cat ../../nonexistent 2>/dev/null
                python3 -c "\(py)"
                """)
            let o = opens(records)
            func has(_ path: String, requested: String) -> Bool {
                o.contains { $0.string("file.path") == path && $0.string("file.requested_path") == requested }
            }
            #expect(has("/etc/hostname", requested: "./hostname"))
            #expect(has("/etc/hostname", requested: dir + "/link"))
            #expect(has("/etc/hostname", requested: "../../../../../etc/hostname"))
            // openat(dirfd_of("/etc"), "hostname")
            #expect(o.contains { $0.string("file.path") == "/etc/hostname" && $0.string("file.requested_path") == "hostname" && $0.int("file.dirfd") != nil })
            // A failed relative open: made absolute against the cwd, errno named.
            let failed = o.first { $0.string("file.requested_path") == "../../nonexistent" }
            #expect(failed?.string("file.path") == dir + "/a/b/../../nonexistent")
            #expect(failed?.string("file.error") == "ENOENT")
        }

        @Test("a 40-component path and a path near PATH_MAX are resolved whole")
        func longPaths() throws {
            let base = "/tmp/aw-deep-\(getpid())"
            try? FileManager.default.removeItem(atPath: base)
            defer { try? FileManager.default.removeItem(atPath: base) }
            let deep = base + (1...40).map { "/d\($0)" }.joined()
            try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: deep + "/f", contents: Data())
            // Near PATH_MAX: 16 components of 243 bytes under base (~3,930 bytes).
            let component = String(repeating: "n", count: 243)
            var long = base
            for _ in 0..<16 { long += "/" + component }
            // mkdir -p fails past PATH_MAX for the whole string; build it step by step.
            var cursor = base
            for _ in 0..<16 {
                cursor += "/" + component
                mkdir(cursor, 0o755)
            }
            let longFile = long + "/ff"
            FileManager.default.createFile(atPath: longFile, contents: Data())
            #expect(longFile.utf8.count > 3900 && longFile.utf8.count < 4096)
            let records = try capture("""
                cat \(deep)/f
                cd \(long) && cat ./ff
                """)
            let o = opens(records)
            #expect(o.contains { $0.string("file.path") == deep + "/f" && $0["file"].flatMap { ($0 as? [String: Any])?["path_truncated"] } == nil })
            let near = o.first { $0.string("file.requested_path") == "./ff" }
            #expect(near?.string("file.path") == longFile)
            #expect((near?[path: "file.path_truncated"] as? Bool) != true)
        }

        @Test("a file name with a newline and invalid UTF-8 is escaped and recoverable byte for byte")
        func hostileFileName() throws {
            let dir = "/tmp/aw-name-\(getpid())"
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (_, text) = try captureWithText("""
                python3 -c "import os; os.close(os.open(b'\(dir)/bad\\nname\\xff\\xfe.txt', os.O_CREAT | os.O_WRONLY, 0o600))"
                """)
            // The newline as \n, each byte that is not UTF-8 as \udcXX: one line, recoverable bytes
            // (the JSONBuffer unit tests prove the round trip of the scheme).
            let escaped = "\"path\":\"\(dir)/bad\\u000aname\\udcff\\udcfe.txt\""
            #expect(text.contains(escaped))
            #expect(!text.contains("bad\nname"))
        }

        @Test("argv with 10,000 arguments is cut at args_max and flagged")
        func hugeArgv() throws {
            let records = try capture("/bin/true $(seq 1 10000)") { $0.argsMax = 4096 }
            let exec = try #require(records.first { $0.string("type") == "process.exec" && $0.string("process.exe") == "/usr/bin/true" })
            #expect(exec[path: "process.argv_truncated"] as? Bool == true)
            #expect(exec.int("process.argc") == 10_001)
            let argv = try #require(exec[path: "process.argv"] as? [String])
            #expect(argv.first == "/bin/true")
            #expect(argv.count > 100 && argv.count < 10_001)
            #expect(argv[1] == "1" && argv[2] == "2")
        }

        @Test("exec of a script through its shebang and of a binary by a relative path")
        func execForms() throws {
            let dir = "/tmp/aw-exec-\(getpid())"
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try "#!/bin/sh\nexit 0\n".write(toFile: dir + "/script.sh", atomically: true, encoding: .utf8)
            chmod(dir + "/script.sh", 0o755)
            let records = try capture("\(dir)/script.sh arg; cd /usr/share && ../bin/true")
            let execs = records.filter { $0.string("type") == "process.exec" }
            let script = execs.first { $0.string("process.filename") == dir + "/script.sh" }
            #expect(script?.string("process.exe") == "/usr/bin/dash" || script?.string("process.exe") == "/usr/bin/bash")
            #expect((script?[path: "process.argv"] as? [String])?.suffix(2) == [dir + "/script.sh", "arg"])
            let rel = execs.first { $0.string("process.filename") == "../bin/true" }
            #expect(rel?.string("process.exe") == "/usr/bin/true")
            #expect(rel?.string("process.cwd") == "/usr/share")
        }

        @Test("100 children that each exec: every one has its own entity id and the right parent")
        func hundredChildren() throws {
            let records = try capture("for i in $(seq 1 100); do /bin/true & done; wait")
            let shell = try #require(records.first { $0.string("type") == "process.exec" && $0.string("process.exe") == "/usr/bin/bash" })
            let trues = records.filter { $0.string("type") == "process.exec" && $0.string("process.exe") == "/usr/bin/true" }
            #expect(trues.count == 100)
            #expect(Set(trues.compactMap { $0.string("process.entity_id") }).count == 100)
            #expect(trues.allSatisfy { $0.string("process.parent.entity_id") == shell.string("process.entity_id") })
            let exits = records.filter { $0.string("type") == "process.exit" && $0.string("process.exe") == "/usr/bin/true" }
            #expect(exits.count == 100)
            #expect(exits.allSatisfy { $0.int("process.exit_code") == 0 })
        }
    }
}
