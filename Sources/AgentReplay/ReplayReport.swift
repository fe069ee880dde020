/// What a replay writes, fed as the capture is read: timeline events in capture order, the
/// selected record lines, replayed alerts, sessions as they end, and the end of the capture.
protocol ReplayReport: AnyObject {
    /// Whether the replay must rebuild sessions and process trees for this report.
    var keepsProcesses: Bool { get }
    /// Whether the report shows timeline events now (else the replay need not describe records).
    var wantsEvents: Bool { get }
    /// A selected record's event was not made, since `wantsEvents` was false.
    func eventNotShown()
    /// A timeline event of the selection (records, alerts, findings), in capture order.
    func event(_ e: ReplayEvent)
    /// A selected record, as its line (no newline).
    func record(_ line: UnsafeRawBufferPointer)
    /// A replayed alert as an NDJSON line (with its newline).
    func replayedAlert(_ json: [UInt8])
    /// A session ended; true when the report is done with it and it may be let go.
    func closes(_ s: ReplaySession) -> Bool
    /// The capture is read: write what is left.
    func finish(_ replay: CaptureReplay)
}

extension ReplayReport {
    var keepsProcesses: Bool { false }
    var wantsEvents: Bool { true }
    func eventNotShown() {}
    func event(_ e: ReplayEvent) {}
    func record(_ line: UnsafeRawBufferPointer) {}
    func replayedAlert(_ json: [UInt8]) {}
    func closes(_ s: ReplaySession) -> Bool { true }
}

/// `--format ndjson`: the selected records exactly as captured (their chain intact, so the
/// output of an unfiltered replay verifies), each replayed alert right after the record that
/// completed it.
final class NDJSONReport: ReplayReport {
    let out: ReplayOutput

    init(_ out: ReplayOutput) {
        self.out = out
    }

    var wantsEvents: Bool { false }

    func record(_ line: UnsafeRawBufferPointer) {
        out.write(line)
        out.write([0x0A])
    }

    func replayedAlert(_ json: [UInt8]) {
        out.write(json)
    }

    func finish(_ replay: CaptureReplay) {
        out.flush()
    }
}

/// `--format timeline`: one line per event, in capture order (the order the daemon wrote them:
/// time order), findings where they were found.
final class TimelineReport: ReplayReport {
    let out: ReplayOutput
    let options: ReplayOptions

    init(_ out: ReplayOutput, options: ReplayOptions) {
        self.out = out
        self.options = options
    }

    func event(_ e: ReplayEvent) {
        out.write(Self.line(e))
        out.write([0x0A])
    }

    /// `TIME  #SEQ  SESSION  PROCESS  WHAT`; a finding is marked `!!` and says where it is.
    static func line(_ e: ReplayEvent) -> String {
        let time = e.timeNs.map(ReplayText.timestamp) ?? String(repeating: " ", count: 30)
        let seq = e.seq > 0 ? "#\(e.seq)" : ""
        var s = time + "  " + pad(seq, 9)
        if e.kind.isIntegrity || e.kind == .agent || e.kind == .unknown {
            let mark = e.kind == .agent || e.kind == .restart || e.kind == .anchor ? "--" : "!!"
            s += "\(mark) \(e.kind.label) \(e.text)  [\(e.location)]"
            return s
        }
        s += pad(ReplayText.display(e.session, limit: 64), 12) + "  " + pad(e.process, 20) + "  "
        switch e.kind {
        case .alert, .replayedAlert: s += "!! ALERT " + e.text
        default: s += e.text
        }
        return s
    }

    static func pad(_ s: String, _ width: Int) -> String {
        let n = s.count
        return n >= width ? s : s + String(repeating: " ", count: width - n)
    }

    func finish(_ replay: CaptureReplay) {
        out.write("-- " + replay.summary.line + "\n")
        out.flush()
    }
}
