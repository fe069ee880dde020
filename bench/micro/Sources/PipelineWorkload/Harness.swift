import AgentDetector
import AgentOutputs
import AgentPipeline
import AgentRecords
import AgentSensor
import AgentSessions
import AgentSupport
import CAgentEvents
import Glibc

/// Discards record lines: the full pipeline without the cost of write(2).
public final class DiscardSink: RecordOutput {
    public private(set) var bytes = 0
    public private(set) var batches = 0
    public let description = "discard"
    public init() {}
    public func write(_ lines: UnsafeRawBufferPointer) {
        bytes &+= lines.count
        batches &+= 1
    }
    public func flush() {}
}

/// The file output's destination driven on the pipeline's own thread (the daemon hands it to a
/// sink thread): pipeline plus write(2), one core.
public final class DirectFileSink: RecordOutput {
    public let destination: FileTransport
    public private(set) var bytesWritten: UInt64 = 0
    public var description: String { destination.description }
    public init(path: String) throws {
        var s = FileSettings(path: path)
        s.rotateBytes = 0
        s.rotateIntervalS = 0
        s.group = nil
        destination = try FileTransport(settings: s)
        try destination.open()
    }
    public func write(_ lines: UnsafeRawBufferPointer) {
        try? destination.deliver(lines)
        bytesWritten &+= UInt64(lines.count)
    }
    public func flush() {}
}

/// Keeps every line written: real record lines for the sink benchmarks.
public final class CaptureSink: RecordOutput {
    public private(set) var bytes: [UInt8] = []
    public let description = "capture"
    public init() {}
    public func write(_ lines: UnsafeRawBufferPointer) { bytes.append(contentsOf: lines) }
    public func flush() {}
}

/// The one session of the synthetic stream.
public final class FixedSessions: SessionSource {
    public let session: Session
    public init() {
        session = Session(id: SyntheticSession.id, path: "/sys/fs/cgroup/agentwatch/bench", cgroup: SyntheticSession.cgroup,
                          cgid: SyntheticSession.cgid, uid: 1000, labels: [(key: "agent", value: "claude")], adopted: false)
    }
    public func session(for cgid: UInt64) -> Session { session }
}

/// The stages a harness runs for each record. Stages are cumulative, in pipeline order; a
/// detection (rule) stage goes between correlation and JSON once the pipeline has one: add a case
/// here and a `Pipeline` built with the rules in `PipelineHarness.init`.
public enum Stages: String, CaseIterable, Sendable {
    /// RecordDecoder only.
    case decode
    /// Decode, then find the record's session and process (SessionSource + ProcessTable.lookup);
    /// no table updates and no JSON. An approximation of correlation: for the 95% of records that
    /// are opens and connects it is exactly what Pipeline does before rendering.
    case correlate
    /// Pipeline.handle (decode, process table, JSON into the recorder's buffer), flushed every
    /// 256 records to a sink that discards.
    case pipelineDiscard = "pipeline-discard"
    /// The same, written to a file by the file output's destination on the same thread.
    case pipelineFile = "pipeline-file"
    /// pipeline-discard with the default rule pack evaluated on every record: the difference
    /// from pipeline-discard is what detection costs per record.
    case pipelineRules = "pipeline-rules"
}

/// The repository's default rule pack, found from this file's place in the source tree
/// (AGENTWATCH_MICRO_RULES overrides).
public var defaultRulesPath: String {
    if let p = getenv("AGENTWATCH_MICRO_RULES") { return String(cString: p) }
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(5)  // Sources/PipelineWorkload/Harness.swift, micro, bench
    return parts.joined(separator: "/") + "/rules"
}

/// Replays a workload's cycle through the chosen stages, forever: `run(n)` handles the next n
/// records, wrapping around.
public final class Harness {
    public let stages: Stages
    public let workload: Workload
    public let recorder: Recorder
    public let pipeline: Pipeline
    public let sessions: FixedSessions
    public let fileSink: DirectFileSink?
    public let discardSink: DiscardSink?
    public let outputPath: String
    var decoder = RecordDecoder()
    var cursor = 0
    var sinceFlush = 0
    /// Records between flushes, as the daemon flushes after each drain of the ring buffer.
    public static let flushEvery = 256
    /// The output file is emptied (outside the measured region) once it holds this much.
    public static let truncateAt: UInt64 = 256 << 20

    /// Where pipeline-file writes: AGENTWATCH_MICRO_OUTPUT, or a file in /tmp (recreated per run).
    public static var defaultOutputPath: String {
        if let p = getenv("AGENTWATCH_MICRO_OUTPUT") { return String(cString: p) }
        return "/tmp/agentwatch-micro-bench.ndjson"
    }

    public init(_ stages: Stages, workload: Workload, outputPath: String = Harness.defaultOutputPath) throws {
        self.stages = stages
        self.workload = workload
        self.outputPath = outputPath
        let sink: RecordOutput
        if stages == .pipelineFile {
            unlink(outputPath)
            let f = try DirectFileSink(path: outputPath)
            fileSink = f
            discardSink = nil
            sink = f
        } else {
            let d = DiscardSink()
            discardSink = d
            fileSink = nil
            sink = d
        }
        sessions = FixedSessions()
        // HostIdentity's memberwise init is internal: take the machine's and set both fields,
        // so every run writes the same host object.
        var host = HostIdentity.current()
        host.name = "bench-host"
        host.id = "5c3d0a9e7b1f4e2a8c6d0b9a7e5f3c1d"
        recorder = Recorder(sink: sink, host: host)
        pipeline = Pipeline(recorder: recorder, sessions: sessions, table: ProcessTable(bootID: "b007b007b007"))
        if stages == .pipelineRules {
            pipeline.detector = Detector(rules: try RuleSet.load(paths: [defaultRulesPath]))
        }
        // The long-lived processes, then one whole cycle: the process table, the recorder's
        // buffer and its caches (flag and errno names) reach their working size before anything
        // is measured.
        for i in 0..<workload.prologue.count { pipeline.handle(workload.prologue[i]) }
        recorder.flush()
        stagesForWarmup = .pipelineDiscard
        _ = run(workload.cycle.count)
        stagesForWarmup = nil
        recorder.flush()
        if let path = fileSink?.description { truncate(path, 0) }
    }

    /// Set while init warms up: every harness warms up through the full pipeline.
    private var stagesForWarmup: Stages?

    /// Handles the next `n` records of the cycle through the harness's stages; returns a value
    /// that depends on every record (for blackHole).
    @inline(never)
    public func run(_ n: Int) -> UInt64 {
        switch stagesForWarmup ?? stages {
        case .decode: return decodeOnly(n)
        case .correlate: return correlate(n)
        case .pipelineDiscard, .pipelineFile, .pipelineRules: return fullPipeline(n)
        }
    }

    @inline(__always)
    private func next() -> UnsafeRawBufferPointer {
        let r = workload.cycle[cursor]
        cursor += 1
        if cursor == workload.cycle.count { cursor = 0 }
        return r
    }

    private func decodeOnly(_ n: Int) -> UInt64 {
        var acc: UInt64 = 0
        for _ in 0..<n {
            if let r = decoder.decode(next()) { acc &+= UInt64(r.header.size) }
        }
        return acc
    }

    private func correlate(_ n: Int) -> UInt64 {
        var acc: UInt64 = 0
        let table = pipeline.table
        for _ in 0..<n {
            guard let r = decoder.decode(next()) else { continue }
            let hdr = r.header
            let s = sessions.session(for: hdr.session_cgid)
            let start: UInt64
            switch r {
            case .open(let o, _, _): start = o.start_ns
            case .connect(let c): start = c.start_ns
            case .exec(let e, _, _, _, _): start = e.proc.start_ns
            case .fork(let f): start = f.proc.start_ns
            case .exit(let x): start = x.proc.start_ns
            case .flow(let f): start = f.start_ns
            case .loss, .cgroup, .send, .dns: continue
            }
            if let p = table.lookup(pid: hdr.pid, startNs: start) { acc &+= UInt64(p.pid) }
            acc &+= s.cgid
        }
        return acc
    }

    private func fullPipeline(_ n: Int) -> UInt64 {
        for _ in 0..<n {
            pipeline.handle(next())
            sinceFlush += 1
            if sinceFlush == Self.flushEvery {
                recorder.flush()
                sinceFlush = 0
            }
        }
        return recorder.seq
    }

    /// Empties the output file when it has grown past `truncateAt`: call it outside the measured
    /// region. The file is appended to (O_APPEND), so writes go on at the new end.
    public func trimOutput() {
        guard let f = fileSink, f.bytesWritten >= truncatedAt &+ Self.truncateAt else { return }
        truncate(outputPath, 0)
        truncatedAt = f.bytesWritten
    }

    private var truncatedAt: UInt64 = 0

    /// Flushes what is buffered and closes nothing: the sink's descriptor closes with it.
    public func finish() {
        recorder.close()
    }

    /// Everything a run should leave true: no record was rejected, no process was adopted
    /// from /proc (the synthetic pids are not real), and the table holds what the prologue put
    /// there. Returns a list of what is wrong.
    public func check() -> [String] {
        var problems: [String] = []
        let c = pipeline.decoder.counters
        if c.rejected != 0 { problems.append("pipeline decoder rejected \(c.rejected) records") }
        if decoder.counters.rejected != 0 { problems.append("decoder rejected \(decoder.counters.rejected) records") }
        let procfs = pipeline.table.byPID.values.filter { String(describing: $0.source) != "kernel" }
        if !procfs.isEmpty { problems.append("\(procfs.count) processes adopted from /proc: pids \(procfs.map(\.pid))") }
        if pipeline.table.count != workload.longLived.count {
            problems.append("process table holds \(pipeline.table.count) processes, expected \(workload.longLived.count)")
        }
        return problems
    }
}
