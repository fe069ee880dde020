@testable import AgentDetector
@testable import AgentReplay
import Foundation
import Glibc
import Testing

/// Captures are untrusted: every kind of bad line gets `FILE:LINE: what`, is skipped, and the
/// records after it are still read — in every format, with rules run again.
@Suite("replay malformed input")
struct ReplayMalformedTests {
    /// A capture of 6 good records, written by the real pipeline, with `bad` put in as line 4.
    static func capture(with bad: [UInt8]) -> [UInt8] {
        let c = RecordedCapture()
        c.sessionStart("s", cgid: 0x51)
        c.exec(session: 0x51, pid: 10, ppid: 1, exe: "/usr/bin/cat", argv: ["cat", "/home/dev/.ssh/id_ed25519"])
        let good = c.bytes
        c.open(session: 0x51, pid: 10, requested: "/home/dev/.ssh/id_ed25519", resolved: "/home/dev/.ssh/id_ed25519")
        c.exit(session: 0x51, pid: 10, ppid: 1, comm: "cat", status: 0)
        c.sessionEnd(0x51)
        let rest = c.bytes[good.count...]
        return good + bad + [0x0A] + rest
    }

    /// Replays `bytes` in every format, with the default rules; returns the findings of one
    /// run and checks that every run read the same records.
    static func replayAll(_ bytes: [UInt8], name: String = "cap") -> (findings: [String], summary: ReplaySummary) {
        var first: (findings: [String], summary: ReplaySummary)?
        for format in ReplayOptions.Format.allCases {
            let r = replay([(name, bytes)]) { $0.format = format; $0.rules = ReplayTests.rules }
            if let f = first {
                #expect(r.summary.records == f.summary.records && r.findings == f.findings, "\(format)")
            } else {
                first = (r.findings, r.summary)
            }
        }
        return first!
    }

    static func check(_ bad: [UInt8], _ expected: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let r = replayAll(capture(with: bad))
        #expect(r.findings.contains { $0.hasPrefix("cap:4: " + expected) }, "\(r.findings)", sourceLocation: sourceLocation)
        // The records after the bad line are read: 3 before it, 3 after.
        #expect(r.summary.records == 6, sourceLocation: sourceLocation)
        #expect(r.summary.exitStatus == 1, sourceLocation: sourceLocation)
    }

    @Test("a line cut short (a truncated write) in the middle of a file")
    func truncatedLine() {
        let whole = Array(RecordedCapture().lines[0].utf8)
        Self.check(Array(whole.prefix(40)), "malformed record: the line ends inside")
        Self.check(Array(whole.prefix(whole.count - 1)), "malformed record: the line ends inside an object (truncated?)")
    }

    @Test("a line over 4 MiB is skipped without being held, in memory and across a file's 1 MiB reads")
    func hugeLine() throws {
        let huge = [UInt8](repeating: UInt8(ascii: "x"), count: (4 << 20) + 10)
        Self.check(huge, "line longer than 4 MiB: skipped")
        let dir = ReplayTempDir()
        let path = dir.path + "/cap"
        let bytes = Self.capture(with: Array("{\"v\":1,\"pad\":\"".utf8) + [UInt8](repeating: UInt8(ascii: "y"), count: 9 << 20) + Array("\"}".utf8))
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        var findings: [String] = []
        let s = CaptureReplay(options: ReplayOptions(), output: try ReplayOutput(path: dir.path + "/out")) { findings.append($0) }.run(paths: [path])
        #expect(findings.contains(path + ":4: line longer than 4 MiB: skipped"), "\(findings)")
        #expect(s.records == 6, "the records after it are read")
        // A huge last line without a newline.
        try Data(bytes.prefix(bytes.count - 300)).write(to: URL(fileURLWithPath: path))
        findings = []
        _ = CaptureReplay(options: ReplayOptions(), output: try ReplayOutput(path: dir.path + "/out")) { findings.append($0) }.run(paths: [path])
        #expect(findings.contains(path + ":4: line longer than 4 MiB: skipped"), "\(findings)")
    }

    @Test("bytes that are not UTF-8, inside a string and outside")
    func invalidUTF8() {
        var line = Array(RecordedCapture().lines[0].utf8)
        line[line.firstIndex(of: UInt8(ascii: "t"))!] = 0xFF
        Self.check(line, "malformed record: invalid UTF-8 in a string")
        Self.check([0xC3, 0x28, 0xFF, 0xFE], "malformed record: unexpected byte 0xc3 where a value should be")
        Self.check(Array("{\"v\":1,\"s\":\"\u{1}\"}".utf8), "malformed record: raw control character 0x1 in a string")
    }

    @Test("deep nesting is refused at 64 levels, fast")
    func deepNesting() {
        let start = Date()
        Self.check(Array("{\"a\":".utf8) + [UInt8](repeating: UInt8(ascii: "["), count: 1_000_000), "malformed record: nested deeper than 64 levels")
        Self.check([UInt8](repeating: UInt8(ascii: "{"), count: 100) , "malformed record: expected a member name")
        #expect(Date().timeIntervalSince(start) < 20)
    }

    @Test("not a record: an empty line, an array, a bare value, garbage, a repeated member, no seq")
    func notARecord() {
        Self.check([], "malformed record: empty line")
        Self.check(Array("[1,2,3]".utf8), "malformed record: not a JSON object")
        Self.check(Array("42".utf8), "malformed record: not a JSON object")
        Self.check([0, 1, 2, 0x7F], "malformed record: unexpected byte 0x0 where a value should be")
        Self.check(Array("{\"v\":1,\"seq\":4,\"seq\":5}".utf8), "malformed record: member \"seq\" appears twice")
        Self.check(Array("{\"v\":1,\"type\":\"alert\"}".utf8), "malformed record: the line does not end with a \"chain\" member")
        Self.check(Array("{\"a\":1} x".utf8), "malformed record: text after the JSON value")
        Self.check(Array("{\"a\":01}".utf8), "malformed record: expected ',' or '}'")
        Self.check(Array("{\"a\":\"\\x\"}".utf8), "malformed record: bad escape in a string")
    }

    @Test("a repeated record and a seq that goes back are reported and skipped")
    func repeatedSeq() {
        let c = RecordedCapture()
        c.sessionStart("s", cgid: 0x51)
        c.exec(session: 0x51, pid: 10, ppid: 1, exe: "/usr/bin/cat", argv: ["cat"])
        c.open(session: 0x51, pid: 10, requested: "/etc/hosts", resolved: "/etc/hosts")
        var lines = c.lines
        lines.insert(lines[2], at: 3)
        lines.append(lines[1])
        let r = Self.replayAll(Array(lines.map { $0 + "\n" }.joined().utf8))
        #expect(r.findings.contains("cap:4: seq 3: chain mismatch (record edited, inserted, removed or reordered here)"), "\(r.findings)")
        #expect(r.findings.contains("cap:4: seq 3 after seq 3: seq does not rise (a repeated or reordered record); skipped"))
        #expect(r.findings.contains("cap:6: seq 2 after seq 4: seq does not rise (a repeated or reordered record); skipped"))
        #expect(r.summary.records == 4)
    }

    /// Members of types the recorder never writes: crafted by hand (CaptureBuilder), since
    /// the real pipeline cannot produce them.
    @Test("members of the wrong type are shown as they are, never trusted, never a crash")
    func wrongTypes() {
        var c = CaptureBuilder()
        c.add("session.start", #""session":{"id":7,"homes":"/root","labels":[1],"uid":"0"}"#)
        c.add("process.exec", #""session":{"id":"s","labels":{"k":{"x":1}}},"process":[1,2,3]"#)
        c.add("process.exec", #""session":{"id":"s"},"process":{"entity_id":1,"pid":"10","argv":[1,{"a":null},[true]],"exe":null,"parent":"p","previous_exe":[]}"#)
        c.add("file.open", #""session":{"id":"s"},"process":{"entity_id":"e","pid":1e400,"comm":{}},"file":{"path":123,"flags":"O_RDONLY","result":"3"}"#)
        c.add("net.flow", #""session":{"id":"s"},"process":{"entity_id":"e","parent":{"entity_id":"e"}},"net":{"bytes_sent":-1,"bytes_sent_delta":1.5e300,"daddr":["x"],"final":"yes"}"#)
        c.add("alert", #""session":{"id":"s"},"rule":"r","evidence":"1,2","suppressed":-4"#)
        c.add("agent.loss", #""loss":{"kernel_dropped":[1],"kernel_dropped_total":"many","queue_dropped":-1,"first_seq":{}}"#)
        c.add("session.end", #""session":{"id":"s","counts":{"file.open":"x"}}"#)
        c.add("no.such.type", #""x":1"#)
        c.add("process.exit", #""session":{"id":"s"},"process":{"entity_id":"e","exit_code":"0","duration_ns":-5,"signal":true}"#)
        let r = Self.replayAll(c.bytes)
        // Every record has a seq and a chain: all are read, none is trusted for more than it says.
        #expect(r.summary.records == c.seq, "\(r.findings)")
        #expect(r.summary.intact)
    }

    @Test("a parent cycle and a very deep process chain: trees stay finite")
    func hostileTrees() {
        let c = RecordedCapture()
        c.sessionStart("s", cgid: 0x51)
        // 10 and 11 each claim the other as parent; 12 claims itself.
        c.exec(session: 0x51, pid: 10, ppid: 11, exe: "/usr/bin/a", argv: ["a"])
        c.exec(session: 0x51, pid: 11, ppid: 10, exe: "/usr/bin/b", argv: ["b"])
        c.exec(session: 0x51, pid: 12, ppid: 12, exe: "/usr/bin/c", argv: ["c"])
        for pid in UInt32(100)..<2_100 { c.exec(session: 0x51, pid: pid, ppid: pid + 1, exe: "/usr/bin/d", argv: ["d"]) }
        let records = c.lines.count
        for format in [ReplayOptions.Format.tree, .html] {
            let r = replay([("cap.ndjson", c.bytes)]) { $0.format = format }
            #expect(r.summary.intact && r.summary.records == records)
            #expect(r.report.contains("a[10]") && r.report.contains("b[11]") && r.report.contains("c[12]"), "\(format)")
            #expect(r.report.contains("children deeper than 200 levels not shown"), "\(format)")
        }
    }
}
