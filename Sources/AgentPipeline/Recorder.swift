import AgentRecords
import AgentSensor
import AgentSupport
import CAgentEvents
import Glibc

/// Host identity carried by every record.
public struct HostIdentity: Sendable {
    public var name: String
    public var id: String

    public init(name: String, id: String) {
        self.name = name
        self.id = id
    }

    public static func current() -> HostIdentity {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        let name = String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let id = ((try? readFile("/etc/machine-id")) ?? "").trimmingCharacters()
        return HostIdentity(name: name, id: id)
    }
}

/// Writes records as NDJSON v1 lines: numbers them (`seq`), stamps them, chains them
/// (`RecordChain`), and appends them to one reused buffer that is handed to the sink in batches.
public final class Recorder {
    // The per-record state below is the pipeline thread's alone; @exclusivity(unchecked) spares
    // each record the runtime's dynamic access checks on it (some 10% of a record's time).
    @exclusivity(unchecked) public private(set) var seq: UInt64 = 0
    /// The chain of the last record written (64 lowercase hex bytes), updated in place.
    @exclusivity(unchecked) package private(set) var chain: [UInt8]
    /// The chain this stream continues from — the last record already in the output when the
    /// recorder opened it — or nil when the stream starts a fresh chain from zeros.
    package let chainPrev: String?
    /// What the output ended with when the recorder opened it: how the run before ended.
    package let previousRun: RecordTail?
    /// Where the record being written starts in `buffer`.
    @exclusivity(unchecked) var recordStart = 0
    /// Records written, by type.
    @exclusivity(unchecked) package private(set) var counts = [UInt64](repeating: 0, count: RecordType.allCases.count)
    @exclusivity(unchecked) var buffer = JSONBuffer(capacity: 1 << 18)
    let sink: RecordOutput
    let hostJSON: [UInt8]
    /// Flush once this much is buffered, whatever the loop does.
    let flushBytes = 1 << 18
    /// Rendered names of open flag sets and errno values, reused across records.
    @exclusivity(unchecked) var flagNames: [UInt64: [UInt8]] = [:]
    @exclusivity(unchecked) var errnoNames: [Int32: [UInt8]] = [:]
    /// Reused to join a directory and a relative path.
    @exclusivity(unchecked) var pathJoin: [UInt8] = []
    /// What sessions see on this kernel and tier: `session.start` says it (none: not said).
    package var sight: SensorSight?

    public init(sink: RecordOutput, host: HostIdentity) {
        self.sink = sink
        let tail = sink.chainTail
        chainPrev = tail?.chain.map { String(decoding: $0, as: UTF8.self) }
        chain = tail?.chain ?? RecordChain.zero
        previousRun = tail
        var j = JSONBuffer(capacity: 128)
        j.key("host"); j.raw("{"); j.key("name"); j.string(host.name); j.raw(","); j.key("id"); j.string(host.id); j.raw("}")
        hostJSON = j.bytes
    }

    /// `{"v":1,"seq":N,"time":"...","type":"T","host":{...}` — the caller adds fields and `end()`s.
    @inline(__always)
    func begin(_ type: RecordType, unixNs: Int64) {
        seq += 1
        recordStart = buffer.bytes.count
        buffer.raw("{\"v\":1,\"seq\":")
        buffer.uint(seq)
        buffer.raw(",\"time\":")
        buffer.timestamp(unixNanoseconds: unixNs)
        buffer.raw(",\"type\":\"")
        buffer.raw(type.name)
        buffer.raw("\",")
        buffer.bytes.append(contentsOf: hostJSON)
    }

    @inline(__always)
    func end(_ type: RecordType) {
        // The record so far plus `}` is what the chain covers; the chain member closes it.
        let digest = chain.withUnsafeBytes { prev in
            buffer.bytes.withUnsafeBytes { RecordChain.digest(prev: prev, body: UnsafeRawBufferPointer(rebasing: $0[recordStart...])) }
        }
        chain.withUnsafeMutableBufferPointer { RecordChain.writeHex(digest, to: $0) }
        buffer.raw(",\"chain\":\"")
        buffer.bytes.append(contentsOf: chain)
        buffer.raw("\"}\n")
        counts[Int(type.rawValue)] &+= 1
        if buffer.bytes.count >= flushBytes { flush() }
    }

    /// For `agent.start`: `,"chain_prev":"<hex>"` when this stream continues the output's last
    /// record, else `,"chain_start":true`; then, when the output held records, how the run that
    /// wrote them ended (`previous_run`), so a run killed before its `agent.stop` is on record
    /// in the file and not only in the journal.
    package func chainOrigin(into j: inout JSONBuffer) {
        if let chainPrev {
            j.raw(","); j.key("chain_prev"); j.string(chainPrev)
        } else {
            j.raw(","); j.key("chain_start"); j.bool(true)
        }
        guard let run = previousRun, let ended = run.ended else { return }
        j.raw(","); j.key("previous_run"); j.raw("{"); j.key("ended"); j.string(ended)
        if let seq = run.lastSeq { j.raw(","); j.key("last_seq"); j.uint(seq) }
        if let time = run.lastTime { j.raw(","); j.key("last_time"); j.string(time) }
        if let type = run.lastType { j.raw(","); j.key("last_type"); j.string(type) }
        if run.cutBytes > 0 { j.raw(","); j.key("cut_bytes"); j.uint(UInt64(run.cutBytes)) }
        j.raw("}")
    }

    /// Hands what is buffered to the sink.
    public func flush() {
        guard !buffer.bytes.isEmpty else { return }
        buffer.bytes.withUnsafeBytes { sink.write($0) }
        buffer.bytes.removeAll(keepingCapacity: true)
    }

    public func close() {
        flush()
        sink.flush()
    }
}

