import AgentRecords
import CZlib
import Foundation
import Glibc

/// Checks record files for tamper evidence: every line's hash chain (`RecordChain`), `seq`
/// rising by one, daemon restarts (`agent.start` at seq 1, chained on or fresh as it declares;
/// a restart after a run that ended without `agent.stop` is an unclean stop, not tampering),
/// and the loss markers on the way. Files are untrusted input: a malformed or oversized line is
/// a finding with its file and line, never a crash. Checking stops at the first break.
package struct ChainVerifier {
    /// Something to tell about one line.
    package struct Finding: Sendable, CustomStringConvertible {
        package let file: String
        package let line: Int
        package let message: String
        /// `FILE:LINE: message`; `FILE: message` for the file as a whole (line 0).
        package var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
    }

    /// Lines longer than this are reported, not read into memory whole.
    package static let maxLineBytes = 4 << 20

    package private(set) var files = 0
    package private(set) var records = 0
    /// Each `agent.start` at seq 1 after the first record: a daemon restart.
    package private(set) var restarts: [Finding] = []
    /// The restarts after a run that ended without `agent.stop` (killed, crashed, powered off):
    /// what that run had not yet written is missing, and nothing in the file says how much.
    package private(set) var uncleanStops: [Finding] = []
    /// Files given but not checked: what an interrupted rotation left beside the records
    /// (a partial `.gz.tmp`, an uncompressed file identical to its `.gz`).
    package internal(set) var setAside: [Finding] = []
    /// A rotated file given twice, as `X` and `X.gz`, with different records: one was changed.
    package internal(set) var conflicts: [Finding] = []
    /// Places where `seq` does not follow the record before by one.
    package private(set) var gaps: [Finding] = []
    package private(set) var lossMarkers = 0
    /// Where the set starts when it does not start with a daemon's first record (older rotated
    /// files pruned): that record's chain is taken as given.
    package private(set) var anchor: Finding?
    package private(set) var kernelDropped: UInt64 = 0
    package private(set) var queueDropped: UInt64 = 0
    /// The first break: a chain mismatch, a malformed or an incomplete line. Nothing after it
    /// is checked, since nothing after it can be trusted.
    package private(set) var failure: Finding?

    /// The set is intact: every chain checks out, no `seq` is missing, and the set starts at
    /// a daemon's first record (or may start later: `allowAnchor`).
    package var intact: Bool { failure == nil && gaps.isEmpty && conflicts.isEmpty && (anchor == nil || allowAnchor) }
    /// `agentwatch verify`'s exit status: 0 intact, 1 not intact (a break, a gap, a changed
    /// copy, an unanchored start), 2 an intact chain with unclean stops (records lost, not
    /// tampered with). 64 stays ArgumentParser's for a usage error.
    package var exitStatus: Int32 { !intact ? 1 : uncleanStops.isEmpty ? 0 : 2 }
    /// Accept a set whose oldest files were rotated away: its first record anchors the chain.
    package var allowAnchor = false
    /// Parse every line as JSON, even an ordinary one whose chain matches (tests compare).
    var alwaysParse = false

    private var prev = RecordChain.zero
    private var lastSeq: UInt64?
    /// Whether the last record was `agent.stop` (nil: its type is not known, as for the
    /// record a replay places a verifier after), and its time: what a restart after it says.
    private var lastWasStop: Bool?
    private var lastTime = [UInt8](repeating: 0, count: 64)
    private var lastTimeCount = 0
    /// A line without a chain member, held until the next line shows whether it is the last
    /// write of a killed daemon (the restart declares its length) or a malformed record.
    private var cutLine: (file: String, line: Int, bytes: Int)?
    private var pending: [UInt8] = []
    private var lineNumber = 0
    /// Lines off the fast path are read here (reused; scratch, so copies of a verifier may
    /// share it).
    private var scratch: Scratch?

    private final class Scratch {
        var tree = JSONTree(limits: .capture)
    }

    package init() {}

    /// `paths` with each live file's rotated files (`PATH.YYYYMMDDTHHMMSSZ[-N][.gz]`) in the order
    /// they were rotated and the live file after them, in the places the set held; the rest keep
    /// their order. A shell glob lists the live file first, and within one second `X-1.gz` before
    /// `X.gz` and `X-10` before `X-2`: read in that order, an intact set would look reordered.
    package static func rotationOrder(_ paths: [String]) -> [String] {
        var out = paths
        for p in paths {
            let rotated = RotatedFiles.files(of: p).filter { paths.contains($0) }
            guard !rotated.isEmpty else { continue }
            let group = Set(rotated + [p])
            let places = out.indices.filter { group.contains(out[$0]) }
            for (place, path) in zip(places, rotated + [p]) { out[place] = path }
        }
        return out
    }

    /// Checks the files in order (a rotated set oldest first), as one stream.
    package static func verify(paths: [String], allowAnchor: Bool = false) -> ChainVerifier {
        var v = ChainVerifier()
        v.allowAnchor = allowAnchor
        for p in v.setAsideLeftovers(paths) where v.check(path: p) {}
        return v
    }

    /// Checks one file as the continuation of what was checked before; false once stopped.
    /// A gzipped file (a compressed rotation) is read through zlib; others as they are.
    @discardableResult
    package mutating func check(path: String) -> Bool {
        guard failure == nil else { return false }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0, let gz = gzdopen(fd, "rb") else {
            failure = Finding(file: path, line: 0, message: "cannot read: \(String(cString: strerror(errno)))")
            if fd >= 0 { close(fd) }
            return false
        }
        defer { gzclose(gz) }
        begin()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while failure == nil {
            let n = Int(chunk.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32($0.count)) })
            if n < 0 {
                var code: Int32 = 0
                let message = gzerror(gz, &code).map { String(cString: $0) } ?? "read error"
                failure = Finding(file: path, line: lineNumber + 1, message: "cannot read: \(message)")
                return false
            }
            if n == 0 { break }
            chunk.withUnsafeBytes { feed(UnsafeRawBufferPointer(rebasing: $0[0..<n]), file: path) }
        }
        return finish(file: path)
    }

    /// Checks bytes held in memory (named `name` in findings) as the next file of the set.
    @discardableResult
    package mutating func check(bytes: [UInt8], name: String) -> Bool {
        guard failure == nil else { return false }
        begin()
        bytes.withUnsafeBytes { feed($0, file: name) }
        return finish(file: name)
    }

    private mutating func begin() {
        files += 1
        lineNumber = 0
        pending.removeAll(keepingCapacity: true)
    }

    /// Splits `data` into lines; a line cut by the chunk boundary waits in `pending`.
    private mutating func feed(_ data: UnsafeRawBufferPointer, file: String) {
        var start = 0
        while failure == nil, start < data.count {
            guard let nl = data[start...].firstIndex(of: UInt8(ascii: "\n")) else {
                pending.append(contentsOf: data[start...])
                if pending.count > Self.maxLineBytes { tooLong(file) }
                return
            }
            lineNumber += 1
            if pending.count + (nl - start) > Self.maxLineBytes {
                lineNumber -= 1
                return tooLong(file)
            }
            if pending.isEmpty {
                check(line: UnsafeRawBufferPointer(rebasing: data[start..<nl]), file: file, holdCut: true)
            } else {
                pending.append(contentsOf: data[start..<nl])
                let line = pending
                line.withUnsafeBytes { check(line: $0, file: file, holdCut: true) }
                pending.removeAll(keepingCapacity: true)
            }
            start = nl + 1
        }
    }

    private mutating func tooLong(_ file: String) {
        failure = Finding(file: file, line: lineNumber + 1, message: "malformed record: line longer than \(Self.maxLineBytes >> 20) MiB")
    }

    private mutating func finish(file: String) -> Bool {
        // A cut line is accepted only before the restart that declares it, in the same file.
        if failure == nil, cutLine != nil { failCut() }
        if failure == nil && !pending.isEmpty {
            failure = Finding(file: file, line: lineNumber + 1, message: "incomplete last line (no newline): the write was cut short or the file was truncated")
        }
        return failure == nil
    }

    /// Keeps the last record's time (what a restart after it reports) in place: one copy of
    /// its few bytes, no allocation per line.
    @inline(__always)
    private mutating func keepTime(_ time: UnsafeRawBufferPointer) {
        lastTimeCount = min(time.count, lastTime.count)
        guard lastTimeCount > 0 else { return }
        lastTime.withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: time.baseAddress!, byteCount: lastTimeCount) }
    }

    static let noChainMember = "malformed record: the line does not end with a \"chain\" member"

    /// The held line turns out to be a malformed record.
    private mutating func failCut() {
        guard let cut = cutLine else { return }
        failure = Finding(file: cut.file, line: cut.line, message: Self.noChainMember)
    }

    /// Checks one record line (without its newline) against the chain so far. A line without
    /// a chain member is a malformed record here; only a whole file or buffer (which sees the
    /// line after it) holds it as a possible cut write. `parsed` is the line as a reader that
    /// has parsed it already sees it (the replay), so it is not parsed twice; nil: the line is
    /// parsed here when its header does not settle it.
    package mutating func check(line: UnsafeRawBufferPointer, file: String, parsed: JSONTree.View? = nil) {
        check(line: line, file: file, holdCut: false, parsed: parsed)
    }

    private mutating func check(line: UnsafeRawBufferPointer, file: String, holdCut: Bool, parsed: JSONTree.View? = nil) {
        func fail(_ message: String) { failure = Finding(file: file, line: lineNumber, message: message) }
        guard let hex = RecordChain.declaredHex(in: line) else {
            if cutLine != nil { return failCut() }
            guard holdCut else { return fail(Self.noChainMember) }
            cutLine = (file, lineNumber, line.count)
            return
        }
        // Most lines: as the daemon writes them, neither a daemon start nor a loss marker, and
        // chained to the line before. Their seq is read from the fixed header and the chain
        // decides; anything else (a mismatch, an unusual header) takes the full path below,
        // whose findings are the same for every line.
        if !alwaysParse, cutLine == nil, let (seq, time) = Self.ordinarySeq(line), let lastSeq, seq == lastSeq &+ 1,
           prev.withUnsafeBytes({ RecordChain.matches(line: line, prev: $0) }) {
            prev.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: line[hex])) }
            self.lastSeq = seq
            lastWasStop = false
            keepTime(UnsafeRawBufferPointer(rebasing: line[time]))
            records += 1
            return
        }
        if let parsed { return checkRecord(parsed, line: line, hex: hex, file: file) }
        let scratch = self.scratch ?? Scratch()
        self.scratch = scratch
        guard scratch.tree.parse(line) else {
            if cutLine != nil { return failCut() }
            return fail("malformed record: not a JSON object")
        }
        scratch.tree.withView(line) { checkRecord($0, line: line, hex: hex, file: file) }
    }

    /// The full check of a record line that is not an ordinary continuation: restarts, cut
    /// writes, anchors, gaps and loss markers, read from its JSON.
    private mutating func checkRecord(_ r: JSONTree.View, line: UnsafeRawBufferPointer, hex: Range<Int>, file: String) {
        func fail(_ message: String) { failure = Finding(file: file, line: lineNumber, message: message) }
        guard r.isObject else {
            if cutLine != nil { return failCut() }
            return fail("malformed record: not a JSON object")
        }
        let seqNode = r.member(0, "seq")
        var seqValue = r.uint(seqNode)
        if seqValue == nil, r.kind(seqNode) == .number, let d = r.double(seqNode), d.rounded() == d, d >= 1 { seqValue = UInt64(exactly: d) }
        guard let seq = seqValue, seq >= 1 else {
            if cutLine != nil { return failCut() }
            return fail("malformed record: no positive integer \"seq\"")
        }
        let type = r.string(r.member(0, "type"))
        let agent = r.member(0, "agent")
        let previousRun = r.member(agent, "previous_run")
        let chainPrev = r.member(agent, "chain_prev")
        let declared = r.string(chainPrev)
        // A line cut short is the last write of a daemon that was killed only when the restart
        // right after it continues the chain from the record before it and declares its length.
        var cutNote = ""
        if let cut = cutLine {
            guard type == "agent.start", seq == 1, records > 0, let declared, Array(declared.utf8) == prev,
                  r.int(r.member(previousRun, "cut_bytes")) == Int64(cut.bytes) else { return failCut() }
            cutNote = "; its last write was cut short (line \(cut.line), \(cut.bytes) bytes)"
            cutLine = nil
        }
        // A daemon start at seq 1 chains on from the record before it (`chain_prev`) or starts
        // afresh from zeros (`chain_start`), as it says.
        var from = prev
        var restart: String?
        var unclean = false
        if type == "agent.start" && seq == 1 {
            if r.bool(r.member(agent, "chain_start")) == true {
                // After a clean stop a fresh chain is a plain restart (the output was replaced,
                // say); anywhere else nothing vouches for the records before it: the set may
                // have been cut there and continued with records of anyone's making.
                if records > 0 && lastWasStop == false {
                    return fail("seq 1: the chain starts afresh after seq \(lastSeq ?? 0), which is not an agent.stop: nothing vouches for the records before it (the set may have been cut here and continued)")
                }
                from = RecordChain.zero
                restart = "daemon restart, chain started fresh"
            } else if let declared {
                if records == 0 {
                    // The set begins after files not given: the declared chain is taken as is,
                    // and so is what it says of the run before.
                    from = Array(declared.utf8)
                    restart = "daemon start continuing chain \(declared.prefix(16))… from records before this file"
                    if r.stringEquals(r.member(previousRun, "ended"), "unclean") {
                        unclean = true
                        let lastSeq = r.member(previousRun, "last_seq")
                        let at = r.kind(lastSeq) == .number ? String(decoding: r.source(lastSeq!), as: UTF8.self) : "?"
                        let lastTime = r.string(r.member(previousRun, "last_time")) ?? "?"
                        restart! += ", after an unclean stop: the run before ended at seq \(at) (\(lastTime)) without agent.stop, as this record declares; records it had not written are missing"
                    }
                } else if Array(declared.utf8) == prev {
                    unclean = lastWasStop == false
                    restart = !unclean ? "daemon restart, chain continued"
                        : "daemon restart after an unclean stop: the run before ended at seq \(lastSeq ?? 0) (\(String(decoding: lastTime[..<lastTimeCount], as: UTF8.self))) without agent.stop\(cutNote); records it had not written are missing"
                } else {
                    return fail("seq \(seq): chain mismatch (record edited, inserted, removed or reordered here)")
                }
            }
        }
        var intact = from.withUnsafeBytes { RecordChain.matches(line: line, prev: $0) }
        var resumed = false
        if !intact && restart == nil {
            if records == 0 {
                // The set begins after records not given (rotated away): this record's chain
                // is the anchor the rest is checked against.
                anchor = Finding(file: file, line: lineNumber, message: "seq \(seq): the set starts here; records before it were not given, so its chain is taken as the anchor")
                intact = true
            } else if let lastSeq, seq > lastSeq &+ 1 {
                // Records are missing (a sink dropped them, or they were cut out): the gap is
                // reported and the chain is checked again from here.
                resumed = true
                intact = true
            }
        }
        guard intact else {
            return fail("seq \(seq): chain mismatch (record edited, inserted, removed or reordered here)")
        }
        if let restart {
            if records > 0 || chainPrev != nil {
                restarts.append(Finding(file: file, line: lineNumber, message: "seq 1: \(restart)"))
                if unclean { uncleanStops.append(restarts[restarts.count - 1]) }
            }
        } else if let lastSeq, seq != lastSeq &+ 1 {
            let what = seq > lastSeq ? "\(seq - lastSeq - 1) records missing\(resumed ? "; the chain resumes after them" : "")" : "seq went back"
            gaps.append(Finding(file: file, line: lineNumber, message: "seq \(seq) follows seq \(lastSeq): \(what)"))
        }
        if type == "agent.loss", let loss = r.member(0, "loss"), r.kind(loss) == .object {
            lossMarkers += 1
            kernelDropped &+= r.uint(r.member(loss, "kernel_dropped_total")) ?? 0
            queueDropped &+= r.uint(r.member(loss, "queue_dropped")) ?? 0
        }
        prev = Array(line[hex])
        lastSeq = seq
        lastWasStop = type.map { $0 == "agent.stop" }
        var time: [UInt8] = []
        if let t = r.member(0, "time"), r.kind(t) == .string { r.bytes(t, into: &time) }
        time.withUnsafeBytes { keepTime($0) }
        records += 1
    }

    /// The seq and where the time is of a line whose header is the daemon's
    /// (`RecorderLine.header`) and whose type is not an `agent.` record (those carry what the full
    /// path reads: chain_start, chain_prev, loss counts); nil for any other line.
    static func ordinarySeq(_ line: UnsafeRawBufferPointer) -> (seq: UInt64, time: Range<Int>)? {
        guard let (seq, time, type) = RecorderLine.header(of: line), seq >= 1,
              !UnsafeRawBufferPointer(rebasing: line[type]).starts(with: ordinaryAgentPrefix) else { return nil }
        return (seq, time)
    }

    private static let ordinaryAgentPrefix: [UInt8] = Array("agent.".utf8)

    /// A record line as Foundation objects (`[String: Any]`, as JSONSerialization would give
    /// them), read by the one reader; nil when it is not a JSON object. For tests and tools
    /// that compare records; the verifier itself reads the nodes.
    package static func parse(_ line: UnsafeRawBufferPointer) -> [String: Any]? {
        var tree = JSONTree(limits: .capture)
        guard tree.parse(line) else { return nil }
        return tree.withView(line) { $0.isObject ? $0.foundation(0) as? [String: Any] : nil }
    }

    package static func parse(_ line: [UInt8]) -> [String: Any]? {
        line.withUnsafeBytes { parse($0) }
    }

    /// One line: intact or not, records, files, restarts, gaps and loss.
    package var summary: String {
        let n = uncleanStops.count
        let state = !intact ? "NOT intact" : n == 0 ? "intact" : "intact chain but \(n) unclean stop\(n == 1 ? "" : "s") (records lost)"
        let loss = lossMarkers == 0 ? "no loss markers"
            : "\(lossMarkers) loss marker\(lossMarkers == 1 ? "" : "s") (kernel dropped \(kernelDropped), queue dropped \(queueDropped))"
        let checked = failure == nil ? "" : " checked before the break"
        let aside = setAside.isEmpty ? "" : ", \(setAside.count) leftover file\(setAside.count == 1 ? "" : "s") set aside"
        return "\(state): \(records) records\(checked) in \(files) file\(files == 1 ? "" : "s")\(aside), \(restarts.count) restart\(restarts.count == 1 ? "" : "s"), \(gaps.count) seq gap\(gaps.count == 1 ? "" : "s"), \(loss)"
    }
}
