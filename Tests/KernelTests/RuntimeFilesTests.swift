@testable import AgentDaemon
@testable import AgentSupport
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// Files the daemon writes as root outside its outputs: the pid file in runtime_dir and the
    /// metrics textfile. A link planted where others can write is never followed.
    @Suite("runtime files")
    struct RuntimeFilesTests {
        /// A file root cares about, and what it held.
        struct Victim {
            let path: String
            let bytes: Data
            init(_ dir: String) throws {
                path = dir + "/victim"
                bytes = Data("root's file\n".utf8)
                try bytes.write(to: URL(fileURLWithPath: path))
                chmod(path, 0o600)
            }
            var untouched: Bool {
                var st = stat()
                return FileManager.default.contents(atPath: path) == bytes && stat(path, &st) == 0 && st.st_mode & 0o7777 == 0o600 && st.st_uid == 0
            }
        }

        func openDirectory(_ name: String) throws -> (base: String, open: String) {
            let base = FileManager.default.temporaryDirectory.appendingPathComponent("aw-rt-\(getpid())-\(name)").path
            try? FileManager.default.removeItem(atPath: base)
            try FileManager.default.createDirectory(atPath: base + "/open", withIntermediateDirectories: true)
            chmod(base + "/open", 0o777)
            return (base, base + "/open")
        }

        @Test("a runtime_dir others can write, with links planted at the pid file's names, refuses the start and leaves the target alone")
        func runtimeDirRefused() throws {
            let (base, open) = try openDirectory("pid")
            defer { try? FileManager.default.removeItem(atPath: base) }
            let victim = try Victim(base)
            symlink(victim.path, open + "/daemon.pid")
            symlink(victim.path, open + "/daemon.pid.tmp")
            var refusal = ""
            do {
                let d = try TestDaemon { $0.runtimeDir = open }
                d.start()
                d.stop()
            } catch let e as AgentError {
                refusal = e.message
            }
            #expect(refusal.contains("runtime_dir: \(open) is writable by others (mode 0777)"), "\(refusal)")
            #expect(victim.untouched)
        }

        @Test("metrics in a directory others can write are not written, and a link planted there is not followed; in a good one they are")
        func metricsDirectory() throws {
            let (base, open) = try openDirectory("metrics")
            defer { try? FileManager.default.removeItem(atPath: base) }
            let victim = try Victim(base)
            symlink(victim.path, open + "/agentwatch.prom")
            symlink(victim.path, open + "/agentwatch.prom.tmp")
            let good = base + "/good"
            mkdir(good, 0o755)
            symlink(victim.path, good + "/agentwatch.prom.tmp")
            for (dir, written) in [(open, false), (good, true)] {
                let d = try TestDaemon { c in
                    c.metricsTextfile = dir + "/agentwatch.prom"
                    c.metricsIntervalS = 1
                }
                d.start()
                let wrote = waitUntil(timeout: 4) {
                    var st = stat()
                    return lstat(dir + "/agentwatch.prom", &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
                }
                d.stop()
                #expect(wrote == written, "\(dir)")
                #expect(victim.untouched, "\(dir)")
            }
            let text = (try? String(contentsOfFile: good + "/agentwatch.prom", encoding: .utf8)) ?? ""
            #expect(text.contains("agentwatch_records_total"))
        }
    }
}
