import AgentRecords
/// Forensic replay: reads capture files as one stream (rotated and gzipped ones in order),
/// checks the hash chain and seq order while reading, rebuilds sessions and process trees, runs
/// rules again when given, and hands everything to a report (tree, timeline, NDJSON, HTML).
/// Streams: records are never held, only the rebuilt sessions and processes, within
/// `ReplayLimits`. A capture is untrusted input: a line that cannot be used is reported as
/// `FILE:LINE: what` and skipped, and reading goes on.
package final class CaptureReplay {
    let options: ReplayOptions
    let report: ReplayReport
    /// Where findings go as they are found (standard error for the command).
    let diagnostics: (String) -> Void
    package internal(set) var summary = ReplaySummary()

    var reader = CaptureReader()
    var json = JSONTree(limits: .capture)
    var integrity = CaptureIntegrity()
    let rules: ReplayRules?
    /// The file being read, and the last record's seq placed in this daemon run.
    var file = ""
    var lastSeq: UInt64?

    /// Rebuilt sessions held (tree: until printed; html: to the end), in the order first seen.
    var sessions: [String: ReplaySession] = [:]
    var sessionOrder: [ReplaySession] = []
    var sessionsSeen = Set<String>()
    var lastNoted = ""
    var droppedSessions = 0
    var heldProcesses = 0
    var heldEvents = 0
    /// Recent seq gaps, so a sink's loss marker can say which gap it explains.
    var recentGaps: [(first: UInt64, last: UInt64, location: CaptureLocation)] = []
    /// Alerts by "rule evidence": +1 per replayed, -1 per live.
    var alertBalance: [String: Int] = [:]
    var comparisonFull = false

    package init(options: ReplayOptions, output: ReplayOutput, diagnostics: @escaping (String) -> Void) {
        self.options = options
        self.diagnostics = diagnostics
        rules = options.rules.map { ReplayRules(rules: $0) }
        report = switch options.format {
        case .tree: TreeReport(output, options: options)
        case .timeline: TimelineReport(output, options: options)
        case .ndjson: NDJSONReport(output)
        case .html: HTMLReport(output, options: options)
        }
        summary.allowAnchor = options.allowAnchor
    }

    /// Replays the files (oldest first; a live file given before its rotations is read after
    /// them) and writes the report; returns what was found.
    @discardableResult
    package func run(paths: [String]) -> ReplaySummary {
        for path in ChainVerifier.rotationOrder(paths) {
            summary.files += 1
            file = path
            reader.read(path: path, line: { self.line($0, $1) }, problem: { self.problem($0, $1) })
        }
        return finish()
    }

    /// Replays files held in memory, in the order given (tests, fuzzing).
    @discardableResult
    package func run(captures: [(name: String, bytes: [UInt8])]) -> ReplaySummary {
        for capture in captures {
            summary.files += 1
            file = capture.name
            capture.bytes.withUnsafeBytes { bytes in
                reader.read(bytes: bytes, name: capture.name, line: { self.line($0, $1) }, problem: { self.problem($0, $1) })
            }
        }
        return finish()
    }

    private func problem(_ kind: CaptureReader.Problem, _ f: ChainVerifier.Finding) {
        if kind == .unreadable { summary.unreadable += 1 } else { summary.skipped += 1 }
        finding(.problem, ReplayText.display(f.description, limit: 1024), text: ReplayText.display(f.message, limit: 1024),
                seq: 0, time: nil, location: CaptureLocation(file: f.file, line: f.line))
    }

    private func finish() -> ReplaySummary {
        if rules != nil && !comparisonFull {
            var c = (same: 0, replayOnly: 0, liveOnly: 0)
            for (_, n) in alertBalance {
                if n > 0 { c.replayOnly += n } else if n < 0 { c.liveOnly -= n }
            }
            c.same = summary.replayedAlerts - c.replayOnly
            summary.comparison = c
        }
        summary.sessions = sessionsSeen.count
        report.finish(self)
        if summary.findingsNotShown > 0 {
            diagnostics("... \(summary.findingsNotShown) more findings not shown")
        }
        return summary
    }

    /// One complete line of the capture.
    func line(_ text: UnsafeRawBufferPointer, _ number: Int) {
        summary.lines += 1
        guard json.parse(text) else {
            let e = json.error!
            return skip("malformed record: \(e.message) (byte \(e.offset + 1)); skipped", number: number)
        }
        json.withView(text) { view in
            let header: RecordHeader
            switch RecordHeader.read(view) {
            case .failure(let problem): return skip("malformed record: \(problem.message); skipped", number: number)
            case .success(let h): header = h
            }
            let location = CaptureLocation(file: file, line: number)
            // The verifier's messages may quote the capture (a declared chain): shown escaped.
            func safe(_ f: ChainVerifier.Finding) -> (String, String) {
                let m = ReplayText.display(f.message, limit: 512)
                return ("\(f.file):\(f.line): \(m)", m)
            }
            switch integrity.check(line: text, parsed: view, seq: header.seq, isDaemonStart: header.type == .agentStart, file: file, number: number) {
            case .intact:
                break
            case .anchor(let f):
                summary.anchored = true
                finding(.anchor, safe(f).0, text: safe(f).1, seq: header.seq ?? 0, time: header.timeNs, location: location)
            case .restart(let f):
                summary.restarts += 1
                finding(.restart, safe(f).0, text: safe(f).1, seq: header.seq ?? 0, time: header.timeNs, location: location)
            case .gap(let f, let after):
                summary.gaps += 1
                var text = safe(f).1
                if let after, let seq = header.seq, after < UInt64.max, seq > after + 1 {
                    let first = after + 1, last = seq - 1
                    text = first == last ? "record \(first) missing" : "records \(first)-\(last) missing (\(last - first + 1))"
                    recentGaps.append((first, last, location))
                    if recentGaps.count > 64 { recentGaps.removeFirst() }
                } else if let after, let seq = header.seq {
                    text = "seq went back: \(seq) after \(after)"
                }
                finding(.gap, safe(f).0, text: text, seq: header.seq ?? 0, time: header.timeNs, location: location)
            case .broken(let f):
                summary.breaks += 1
                finding(.broken, safe(f).0, text: safe(f).1, seq: header.seq ?? 0, time: header.timeNs, location: location)
            }
            guard let seq = header.seq else {
                return skip("malformed record: no positive integer \"seq\"; skipped", number: number)
            }
            let daemonStart = header.type == .agentStart && seq == 1
            if let lastSeq, seq <= lastSeq, !daemonStart {
                return skip("seq \(seq) after seq \(lastSeq): seq does not rise (a repeated or reordered record); skipped", number: number)
            }
            lastSeq = seq
            summary.records += 1
            record(view, header, seq: seq, line: text, location: location)
        }
    }

    /// A line that cannot be used: reported and skipped.
    func skip(_ message: String, number: Int) {
        summary.skipped += 1
        finding(.problem, "\(file):\(number): \(message)", text: message, seq: 0, time: nil, location: CaptureLocation(file: file, line: number))
    }

    /// Reports a finding: printed (up to the limit) and placed in the timeline where it happened.
    /// `description` and `text` must be safe to show already (`ReplayText`).
    func finding(_ kind: ReplayEvent.Kind, _ description: String, text: String, seq: UInt64, time: Int64?, location: CaptureLocation) {
        if summary.findings.count < options.limits.findings {
            summary.findings.append(description)
            diagnostics(description)
        } else {
            summary.findingsNotShown += 1
        }
        // Findings concern the whole stream: shown whatever the session selected, in the window
        // when their time is known.
        if time == nil || options.inWindow(time) {
            report.event(ReplayEvent(kind: kind, seq: seq, timeNs: time, session: "", process: "", entityID: "", text: text, location: location))
        }
    }
}
