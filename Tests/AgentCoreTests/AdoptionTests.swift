@testable import AgentOutputs
@testable import AgentPipeline
@testable import AgentSessions
import CAgentEvents
import Glibc
import Testing

/// Processes found running at startup and the exec records that race with reading them.
@Suite("Adoption")
struct AdoptionTests {
    final class OneSession: SessionSource {
        let s = Session(id: "adopt", path: "", cgroup: "/agentwatch/adopt", cgid: 77, uid: 0, labels: [], adopted: true)
        func session(for cgid: UInt64) -> Session { s }
    }

    /// An exec record of this test process, at boot time `ktime`.
    func exec(ktime: UInt64, startNs: UInt64) -> [UInt8] {
        let exe = Array("/usr/bin/true".utf8), args = Array("true\0".utf8)
        var e = agent_exec()
        e.hdr.kind = UInt8(AGENT_KIND_EXEC.rawValue)
        e.hdr.size = UInt16(MemoryLayout<agent_exec>.size + exe.count + args.count)
        e.hdr.pid = UInt32(getpid())
        e.hdr.tid = UInt32(getpid())
        e.hdr.ktime_ns = ktime
        e.hdr.session_cgid = 77
        e.proc.start_ns = startNs
        e.exe_len = UInt16(exe.count)
        e.args_len = UInt32(args.count)
        e.args_size = UInt32(args.count)
        e.argc = 1
        return rawBytes(of: e) + exe + args
    }

    func run(execAtOffset offset: Int64) -> (lines: [String], table: ProcessTable) {
        let sink = MemoryOutput()
        let sessions = OneSession()
        let pipeline = Pipeline(recorder: Recorder(sink: sink, host: HostIdentity.current()), sessions: sessions)
        let adopted = pipeline.table.adopt(pid: UInt32(getpid()), startNs: 0, session: 77, clock: pipeline.clock)
        #expect(adopted.adoptedAtNs > 0)
        let record = exec(ktime: UInt64(Int64(adopted.adoptedAtNs) + offset), startNs: adopted.startNs)
        record.withUnsafeBytes { pipeline.handle($0) }
        pipeline.recorder.flush()
        return (sink.lines, pipeline.table)
    }

    @Test("an exec from before /proc was read is already in the procfs record: no second record, the table takes the kernel's values")
    func execBeforeTheScanIsNotDoubled() {
        let (lines, table) = run(execAtOffset: -1_000)
        #expect(!lines.contains { $0.contains("\"type\":\"process.exec\"") })
        #expect(table.byPID[UInt32(getpid())]?.exe == Array("/usr/bin/true".utf8))
    }

    @Test("an exec after /proc was read is a new exec: recorded")
    func execAfterTheScanIsRecorded() {
        let (lines, _) = run(execAtOffset: 1_000)
        #expect(lines.filter { $0.contains("\"type\":\"process.exec\"") && $0.contains("\"source\":\"kernel\"") }.count == 1)
    }
}
