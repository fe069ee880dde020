/// Where record lines go. `write` receives whole lines only.
public protocol RecordOutput: AnyObject {
    func write(_ lines: UnsafeRawBufferPointer)
    func flush()
    var description: String { get }
    /// What the destination already holds at its end: the chain new records continue and how
    /// the run that wrote it ended; nil for a destination that holds nothing of its own
    /// (standard output, memory).
    var chainTail: RecordTail? { get }
}

extension RecordOutput {
    public var chainTail: RecordTail? { nil }
}

/// Records a sink could not keep: how many, the seq range they span, and their bytes.
public struct OutputDrops: Sendable, Equatable {
    public var records: UInt64 = 0
    package var bytes: UInt64 = 0
    package var firstSeq: UInt64 = 0
    package var lastSeq: UInt64 = 0

    package init() {}

    /// Counts each line of `lines` (whole lines, or one line without its newline).
    package mutating func add(_ lines: UnsafeRawBufferPointer) {
        RecorderLine.forEach(in: lines) { line in
            let seq = RecorderLine.seq(of: line)
            if records == 0 || seq < firstSeq { firstSeq = seq }
            lastSeq = max(lastSeq, seq)
            records += 1
            bytes += UInt64(line.count + 1)
        }
    }

    mutating func merge(_ other: OutputDrops) {
        guard other.records > 0 else { return }
        firstSeq = records == 0 ? other.firstSeq : min(firstSeq, other.firstSeq)
        lastSeq = max(lastSeq, other.lastSeq)
        records += other.records
        bytes += other.bytes
    }
}
