/// The hash chain, `seq` order and restarts of a capture, checked line by line as a replay reads
/// it, with `ChainVerifier`'s rules: every decision is the verifier's. An ordinary record — the
/// next seq, chained to the record before, not a daemon start — is settled on the spot by the
/// chain digest alone (`RecordChain.matches`, what the verifier computes for it too); any other
/// line goes to a `ChainVerifier` placed just after the last record accepted. Unlike `verify`,
/// checking goes on after a break, from the last record accepted, so everything after is still
/// checked: a record cut out shows as a gap, an edited one as a break.
import AgentRecords

struct CaptureIntegrity {
    enum Outcome {
        /// Chained to what came before.
        case intact
        /// The first record given: records before it were not, so its chain is taken as is.
        case anchor(ChainVerifier.Finding)
        /// A daemon restart (agent.start at seq 1), chained on or fresh as it declares.
        case restart(ChainVerifier.Finding)
        /// Records are missing before this one (or seq went back); the chain resumes here.
        case gap(ChainVerifier.Finding, after: UInt64?)
        /// The line does not fit the chain: edited, inserted or reordered. Not accepted: the
        /// next line is checked against the last record accepted.
        case broken(ChainVerifier.Finding)
    }

    /// The chain of the last record accepted (64 hex bytes), and its seq when known.
    private var chain: [UInt8]?
    private var seq: UInt64?
    /// `"time":…,"type":…` of the last record accepted, when its header could be read: a
    /// verifier judges a restart by the record before it (after an agent.stop or not).
    private var timeAndType: [UInt8] = []
    /// A verifier placed after the last record accepted, when it cannot be placed again from
    /// `chain` and `seq` (the seq was not read here).
    private var verifier: ChainVerifier?
    /// Lines settled without a verifier, and lines a verifier checked (for tests and the bench).
    private(set) var fastLines = 0
    private(set) var checkedLines = 0

    /// Checks one record line. `seq` and `isDaemonStart` are what the replay read from it (nil
    /// when it could not read a positive integer seq), `parsed` the line as the replay parsed it.
    mutating func check(line: UnsafeRawBufferPointer, parsed: JSONTree.View, seq lineSeq: UInt64?, isDaemonStart: Bool, file: String,
                        number: Int) -> Outcome {
        if let chain, let last = seq, let lineSeq, lineSeq == last &+ 1, !(isDaemonStart && lineSeq == 1),
           chain.withUnsafeBytes({ RecordChain.matches(line: line, prev: $0) }) {
            accept(line, seq: lineSeq)
            verifier = nil
            fastLines += 1
            return .intact
        }
        checkedLines += 1
        var v = verifier ?? placed()
        let anchors = v.anchor == nil, restarts = v.restarts.count, gaps = v.gaps.count
        v.check(line: line, file: file, parsed: parsed)
        func here(_ f: ChainVerifier.Finding) -> ChainVerifier.Finding { .init(file: file, line: number, message: f.message) }
        if let failure = v.failure {
            // The verifier stops at a break; the next line is checked by a copy placed as
            // before it (`v` was one).
            return .broken(here(failure))
        }
        let previous = seq
        accept(line, seq: lineSeq)
        // Placed again from the chain and seq when needed, so the findings a verifier collects
        // never pile up; kept only when the seq could not be read here (then it knows it).
        verifier = lineSeq == nil ? v : nil
        if anchors, let a = v.anchor { return .anchor(here(a)) }
        if v.restarts.count > restarts { return .restart(here(v.restarts.last!)) }
        if v.gaps.count > gaps { return .gap(here(v.gaps.last!), after: previous) }
        return .intact
    }

    private mutating func accept(_ line: UnsafeRawBufferPointer, seq lineSeq: UInt64?) {
        guard let hex = RecordChain.declaredHex(in: line) else { return }
        if chain == nil { chain = [] }
        chain!.removeAll(keepingCapacity: true)
        chain!.append(contentsOf: UnsafeRawBufferPointer(rebasing: line[hex]))
        seq = lineSeq
        timeAndType.removeAll(keepingCapacity: true)
        if let (_, time, type) = RecorderLine.header(of: line) {
            timeAndType.append(contentsOf: UnsafeRawBufferPointer(rebasing: line[(time.lowerBound - RecorderLine.timeKey.count + 1)..<(type.upperBound + 1)]))
            timeAndType.append(UInt8(ascii: ","))
        }
    }

    /// A verifier in the state it has after the last record accepted: fed a minimal record
    /// with that record's seq and chain, which it takes as the anchor of a set. With nothing
    /// accepted yet, a fresh one.
    private func placed() -> ChainVerifier {
        var v = ChainVerifier()
        guard let chain, let seq else { return v }
        let line = Array("{\"seq\":\(seq),".utf8) + timeAndType + Array("\"chain\":\"".utf8) + chain + Array("\"}".utf8)
        line.withUnsafeBytes { v.check(line: $0, file: "") }
        return v
    }
}
