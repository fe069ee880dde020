import Foundation
import Glibc
import Testing
@testable import AgentCore

extension KernelSuite {
    /// The daemon as a service: reloading its config while it captures.
    @Suite("service")
    struct ServiceTests {
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
            d.daemon.configLoader = { () throws(AgentError) in try DaemonConfig.load(path: file) }
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
            #expect(d.daemon.outputs?.workers.map(\.name) == ["file", "copy"])
            let seqs = after.compactMap { $0.int("seq") }
            #expect(seqs.elementsEqual(1...seqs.count), "seq has a gap or a repeat")
            try expectValidAgainstSchema(d.output)
        }
    }
}
