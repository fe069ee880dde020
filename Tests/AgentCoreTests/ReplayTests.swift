@testable import AgentDetector
@testable import AgentReplay
import Foundation
import Glibc
import Testing

/// `agentwatch replay` over crafted captures: the rebuilt trees and timeline, the filters,
/// gaps and loss where they happened, rules run again, and hostile text made harmless.
@Suite("replay")
struct ReplayTests {
    /// One session: a shell that reads cloud credentials with cat, uploads 20 MiB with python,
    /// and runs sh, which executes busybox; with `rules`, the live alerts follow their records.
    static func attack(rules: RuleSet? = nil) -> CaptureBuilder {
        var c = CaptureBuilder(rules: rules)
        c.sessionStart("demo")
        c.exec("demo", 100, ppid: 1, exe: "/usr/bin/bash", argv: ["bash", "-c", "work"])
        c.exec("demo", 101, ppid: 100, exe: "/usr/bin/cat", argv: ["cat", "/home/dev/.aws/credentials"], previous: "/usr/bin/bash")
        c.open("demo", 101, ppid: 100, exe: "/usr/bin/cat", argv: ["cat", "/home/dev/.aws/credentials"], path: "/home/dev/.aws/credentials")
        c.exit("demo", 101, ppid: 100, exe: "/usr/bin/cat")
        c.exec("demo", 102, ppid: 100, exe: "/usr/bin/python3.11", argv: ["python3", "-c", "upload"], previous: "/usr/bin/bash")
        c.connect("demo", 102, ppid: 100, exe: "/usr/bin/python3.11", daddr: "203.0.113.9", dport: 443)
        c.flow("demo", 102, ppid: 100, exe: "/usr/bin/python3.11", daddr: "203.0.113.9", dport: 443, sent: 20 << 20, delta: 20 << 20, final: true)
        c.exit("demo", 102, ppid: 100, exe: "/usr/bin/python3.11")
        c.exec("demo", 103, ppid: 100, exe: "/usr/bin/dash", argv: ["sh", "-c", "busybox true"], previous: "/usr/bin/bash")
        c.exec("demo", 103, ppid: 100, exe: "/usr/bin/busybox", argv: ["busybox", "true"], previous: "/usr/bin/dash")
        c.exit("demo", 103, ppid: 100, exe: "/usr/bin/busybox", code: 3)
        c.exit("demo", 100, ppid: 1, exe: "/usr/bin/bash")
        c.sessionEnd("demo")
        return c
    }

    static let rules: RuleSet = try! RuleSet.load(paths: [packageRules])

    @Test("tree: a session's processes under their parents by entity id, exec chains, exits and alerts marked")
    func tree() throws {
        let r = replay(Self.attack(rules: Self.rules))
        #expect(r.summary.intact, "\(r.findings)")
        #expect(r.summary.exitStatus == 0)
        let lines = r.report.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let bash = try #require(lines.firstIndex { $0.hasPrefix("  bash[100]  /usr/bin/bash  bash -c work  [exit 0 after 1.0 ms]") }, "\(r.report)")
        let cat = try #require(lines.firstIndex { $0.hasPrefix("  ├─ cat[101]  /usr/bin/cat  cat /home/dev/.aws/credentials  [exit 0") })
        let python = try #require(lines.firstIndex { $0.hasPrefix("  ├─ python3.11[102]  /usr/bin/python3.11  python3 -c upload") })
        let sh = try #require(lines.firstIndex { $0.hasPrefix("  └─ dash[103]  /usr/bin/dash  sh -c 'busybox true'  [exit 3 after 1.0 ms]") }, "\(r.report)")
        #expect(bash < cat && cat < python && python < sh)
        // The exec chain: the process started as dash (sh), then became busybox (previous_exe).
        #expect(lines[sh + 1].contains("exec /usr/bin/busybox  busybox true  (was /usr/bin/dash)"))
        // Activity and alerts under the process that did it.
        #expect(lines[cat...python].contains { $0.contains("open /home/dev/.aws/credentials O_RDONLY = fd 3") })
        #expect(lines[cat...python].contains { $0.contains("! ALERT high cred-cloud-credentials:") })
        #expect(lines[cat].contains("! 1 alert"))
        #expect(lines[python...sh].contains { $0.contains("flow tcp → 203.0.113.9:443 sent 20.0 MiB, received 10 B, closed") })
        #expect(r.report.contains("session demo (uid 1000, cgroup /agentwatch/demo, labels agent=test)"))
        #expect(r.report.contains("  home /home/dev"))
        #expect(r.report.contains("  alerts:\n    ! "))
        #expect(r.summary.liveAlerts == 3, "\(r.report)")
    }

    @Test("timeline: one line per record in capture order; --session, --since and --until select")
    func timeline() throws {
        var c = Self.attack()
        c.sessionStart("other")
        c.exec("other", 200, ppid: 1, exe: "/usr/bin/true", argv: ["true"])
        c.sessionEnd("other")
        let all = replay(c) { $0.format = .timeline }
        let lines = all.report.split(separator: "\n").map(String.init)
        // Every record but the summary line, numbered in order.
        let seqs = lines.compactMap { l -> UInt64? in
            let parts = l.split(separator: " ", omittingEmptySubsequences: true)
            return parts.count > 1 && parts[1].hasPrefix("#") ? UInt64(parts[1].dropFirst()) : nil
        }
        #expect(seqs == Array(1...c.seq))
        #expect(lines.last!.hasPrefix("-- intact: \(c.seq) records"))
        #expect(lines.contains { $0.contains("  demo          cat[101]              open /home/dev/.aws/credentials O_RDONLY = fd 3") }, "\(all.report)")
        #expect(lines.contains { $0.contains("exit 3 after 1.0 ms") })
        #expect(lines.contains { $0.contains("connect tcp 203.0.113.9:443 = 0") })

        let other = replay(c) { $0.format = .timeline; $0.sessions = ["other"] }
        let otherLines = other.report.split(separator: "\n").map(String.init)
        #expect(!otherLines.contains { $0.contains(" demo ") })
        #expect(otherLines.contains { $0.contains("exec /usr/bin/true  true") })
        #expect(otherLines.contains { $0.contains("daemon started") }, "stream records stay")

        // Records 4 to 6 by time.
        let since = CaptureBuilder.t0 + 4 * 1_000_000, until = CaptureBuilder.t0 + 7 * 1_000_000
        let window = replay(c) { $0.format = .timeline; $0.since = since; $0.until = until }
        let windowSeqs = window.report.split(separator: "\n").compactMap { l -> UInt64? in
            let parts = l.split(separator: " ", omittingEmptySubsequences: true)
            return parts.count > 1 && parts[1].hasPrefix("#") ? UInt64(parts[1].dropFirst()) : nil
        }
        #expect(windowSeqs == [4, 5, 6])
        #expect(window.summary.selected == 3 && window.summary.records == c.seq)
    }

    @Test("ndjson: the selected records byte for byte, so an unfiltered replay verifies")
    func ndjsonIsTheCapture() throws {
        let c = Self.attack()
        let r = replay(c) { $0.format = .ndjson }
        #expect(r.report == c.text)
        var v = ChainVerifier()
        v.check(bytes: Array(r.report.utf8), name: "out")
        #expect(v.intact)
    }

    @Test("a seq gap is shown where it is, with the range; a sink's loss marker says it explains it; exit status 1")
    func gapsAndLoss() throws {
        var c = CaptureBuilder()
        c.sessionStart("demo")
        for i in 0..<8 { c.open("demo", 100, ppid: 1, exe: "/usr/bin/cat", path: "/etc/f\(i)") }
        c.kernelLoss(open: 37)
        c.open("demo", 100, ppid: 1, exe: "/usr/bin/cat", path: "/etc/after-loss")
        c.sinkLoss(sink: "siem", first: 5, last: 7)
        // The sink dropped records 5 to 7 from this copy.
        var lines = c.lines
        lines.removeSubrange(4...6)
        let r = replay([("cap.ndjson", Array(lines.map { $0 + "\n" }.joined().utf8))]) { $0.format = .timeline }
        let out = r.report.split(separator: "\n").map(String.init)
        let gap = try #require(out.firstIndex { $0.contains("!! GAP records 5-7 missing (3)  [cap.ndjson:5]") }, "\(r.report)")
        #expect(out[gap - 1].contains("#4 ") && out[gap + 1].contains("#8 "))
        #expect(out.contains { $0.contains("!! LOSS kernel ring buffer full: 37 records lost here, never numbered (open 37)") })
        #expect(out.contains { $0.contains("!! LOSS sink siem dropped 3 records between seq 5 and 7: its queue and spool were full (the gap at cap.ndjson:5)") })
        #expect(r.findings.contains("cap.ndjson:5: seq 8 follows seq 4: 3 records missing; the chain resumes after them"), "\(r.findings)")
        #expect(r.summary.gaps == 1 && r.summary.breaks == 0 && r.summary.lossMarkers == 2)
        #expect(r.summary.exitStatus == 1)

        // Loss alone is not an integrity problem: what was lost is said.
        let lossOnly = replay(c) { $0.format = .timeline }
        #expect(lossOnly.summary.exitStatus == 0)
        #expect(lossOnly.summary.kernelDropped == 37 && lossOnly.summary.queueDropped == 3)
    }

    @Test("an edited record breaks the chain there; later records are still checked and shown")
    func editedRecord() throws {
        let c = Self.attack()
        var lines = c.lines
        lines[4] = lines[4].replacingOccurrences(of: "/home/dev/.aws/credentials\"],", with: "/home/dev/notes.txt\"],")
        let r = replay([("cap.ndjson", Array(lines.map { $0 + "\n" }.joined().utf8))]) { $0.format = .timeline }
        #expect(r.findings.first == "cap.ndjson:5: seq 5: chain mismatch (record edited, inserted, removed or reordered here)", "\(r.findings)")
        // The record after it was chained to the original: the edit is found once, then the
        // chain goes on from the record before the edit, a gap of the one record not accepted.
        #expect(r.findings.count == 2 && r.findings[1].hasPrefix("cap.ndjson:6: seq 6 follows seq 4"), "\(r.findings)")
        #expect(r.summary.breaks == 1 && r.summary.records == c.seq)
        #expect(r.report.split(separator: "\n").contains { $0.contains("!! BROKEN seq 5: chain mismatch") })
        #expect(r.summary.exitStatus == 1)
    }

    @Test("the replay's integrity findings are exactly the verifier's, up to its first break")
    func integrityAsVerify() throws {
        var c = Self.attack()
        // A daemon restart that continues the chain, then one that starts afresh.
        let last = String(c.lines.last!.suffix(66).prefix(64))
        c.add("agent.start", #""agent":{"version":"test","pid":2,"kernel":"6.1","output":"x","session_roots":[],"features":[],"chain_prev":"\#(last)"}"#, seq: 1)
        c.add("agent.heartbeat", #""agent":{}"#)
        let base = c.lines
        var variants: [(String, [String])] = [("as written", base)]
        var removed = base; removed.remove(at: 7); variants.append(("a record removed", removed))
        var swapped = base; swapped.swapAt(5, 6); variants.append(("two records swapped", swapped))
        var duplicated = base; duplicated.insert(base[3], at: 4); variants.append(("a record repeated", duplicated))
        var cut = base; cut.removeFirst(3); variants.append(("the first records rotated away", cut))
        var edited = base; edited[2] = edited[2].replacingOccurrences(of: "\"uid\":1000", with: "\"uid\":0"); variants.append(("an edit", edited))
        for (name, lines) in variants {
            let text = Array(lines.map { $0 + "\n" }.joined().utf8)
            var v = ChainVerifier()
            v.check(bytes: text, name: "cap")
            let expected = ([v.anchor].compactMap { $0 } + v.restarts + v.gaps + [v.failure].compactMap { $0 })
                .sorted { $0.line < $1.line }.map(\.description)
            let r = replay([("cap", text)])
            let breakLine = v.failure?.line ?? Int.max
            let got = r.findings.filter { f in
                let line = Int(f.split(separator: ":")[1]) ?? 0
                return line <= breakLine && !f.contains("does not rise")
            }
            #expect(got == expected, "\(name)")
            #expect(r.summary.intact == v.intact, "\(name)")
        }
    }

    @Test("rules run again raise the alerts the live Detector raised: same rules, same evidence seq")
    func replayedAlertsAreTheLiveOnes() throws {
        let c = Self.attack(rules: Self.rules)
        let live = c.lines.compactMap { ChainVerifier.parse(Array($0.utf8)) }.filter { $0["type"] as? String == "alert" }
            .map { "\(($0["rule"] as! [String: Any])["id"]!) \($0["evidence"] as! [Int])" }
        #expect(live.sorted() == ["cred-cloud-credentials [5]", "net-credential-read-then-upload [5, 9, 10]", "net-large-upload [10]"].sorted(), "\(live)")
        let r = replay(c) { $0.format = .ndjson; $0.rules = Self.rules }
        let out = r.report.split(separator: "\n").map { ChainVerifier.parse(Array($0.utf8))! }
        let replayed = out.filter { $0["replayed"] as? Bool == true }
        #expect(replayed.map { "\(($0["rule"] as! [String: Any])["id"]!) \($0["evidence"] as! [Int])" } == live)
        // Each right after the record that completed it, as live.
        for a in replayed {
            let trigger = a["trigger_seq"] as! Int
            let i = out.firstIndex { ($0["seq"] as? Int) == trigger }!
            #expect(out[i + 1]["replayed"] as? Bool == true || out[i + 1]["type"] as? String == "alert")
            #expect((a["session"] as? [String: Any])?["id"] as? String == "demo")
            #expect(a["seq"] == nil && a["chain"] == nil)
        }
        #expect(r.summary.comparison?.same == 3 && r.summary.comparison?.replayOnly == 0 && r.summary.comparison?.liveOnly == 0)

        // A fresh Detector over the capture's records, as DictRecords, raises the same.
        let detector = Detector(rules: Self.rules)
        var direct: [String] = []
        for d in c.lines.compactMap({ ChainVerifier.parse(Array($0.utf8)) }) where
            ["process.exec", "process.exit", "file.open", "net.connect", "net.flow"].contains(d["type"] as? String ?? "") {
            detector.evaluate(CapturedRuleInput(d, homes: [CaptureBuilder.home])) { direct.append("\($0.rule.id) \($0.evidence.map { Int($0) })") }
        }
        #expect(direct == live)
    }

    @Test("rules written after the incident: alerts the capture never had, marked replayed, evidence the original seq")
    func newRules() throws {
        let dir = ReplayTempDir()
        let yaml = """
            rules:
              - id: late-busybox
                title: busybox ran
                severity: medium
                types: [process.exec]
                condition: process.name == busybox
                message: "{process.exe} ran"
                fixtures: []
            """
        try yaml.write(toFile: dir.path + "/late.yaml", atomically: true, encoding: .utf8)
        let set = try RuleSet.load(paths: [dir.path])
        let c = Self.attack()
        let r = replay(c) { $0.format = .timeline; $0.rules = set }
        let busybox = c.lines.firstIndex { $0.contains("\"exe\":\"/usr/bin/busybox\",\"argv\":[\"busybox\"") }! + 1
        #expect(r.report.contains("!! ALERT medium late-busybox: /usr/bin/busybox ran (evidence \(busybox)) [replayed]"), "\(r.report)")
        #expect(r.summary.replayedAlerts == 1 && r.summary.comparison?.replayOnly == 1)
        let tree = replay(c) { $0.rules = set }
        #expect(tree.report.contains("dash[103]  /usr/bin/dash  sh -c 'busybox true'  [exit 3 after 1.0 ms]  ! 1 alert"), "\(tree.report)")
    }

    @Test("a daemon restart starts the rules afresh, as the restarted daemon did")
    func restartResetsRules() throws {
        let yaml = """
            rules:
              - id: third-cat
                title: a third cat in a session
                severity: low
                types: [process.exec]
                condition: process.name == cat
                threshold: {by: [session.id], count: true, over: 2, within: 1h}
                message: "three cats"
                fixtures: []
            """
        let set = try RuleSet.parse(yaml, file: "t.yaml")
        var c = CaptureBuilder(rules: set)
        c.sessionStart("s")
        c.exec("s", 10, ppid: 1, exe: "/usr/bin/cat", argv: ["cat"])
        c.exec("s", 11, ppid: 1, exe: "/usr/bin/cat", argv: ["cat"])
        // The daemon stops and restarts on a new file: a fresh chain, a fresh Detector. (A fresh
        // chain without an agent.stop before it is a break: nothing vouches for what precedes.)
        c.add("agent.stop", #""agent":{"version":"test"}"#)
        c.restart()
        c.exec("s", 12, ppid: 1, exe: "/usr/bin/cat", argv: ["cat"])
        #expect(c.lines.allSatisfy { !$0.contains("\"type\":\"alert\"") })
        let r = replay(c) { $0.rules = set; $0.format = .ndjson }
        #expect(r.summary.replayedAlerts == 0, "\(r.report)")
        #expect(r.summary.restarts == 1 && r.summary.intact, "\(r.findings)")
    }

    @Test("rotated files, the older ones gzipped, are read oldest first whatever order they are given in")
    func rotatedAndGzipped() throws {
        let dir = ReplayTempDir()
        let c = Self.attack()
        let live = dir.path + "/events.ndjson"
        let older = live + ".20251121T150000Z"
        let oldest = live + ".20251121T140000Z"
        try Data(c.lines[0..<4].map { $0 + "\n" }.joined().utf8).write(to: URL(fileURLWithPath: oldest))
        try Data(c.lines[4..<9].map { $0 + "\n" }.joined().utf8).write(to: URL(fileURLWithPath: older))
        try Data(c.lines[9...].map { $0 + "\n" }.joined().utf8).write(to: URL(fileURLWithPath: live))
        for f in [oldest, older] { #expect(run("/usr/bin/gzip", [f]) == 0) }
        var findings: [String] = []
        let out = try ReplayOutput(path: dir.path + "/report.txt")
        let s = CaptureReplay(options: { var o = ReplayOptions(); o.format = .ndjson; return o }(), output: out) { findings.append($0) }
            .run(paths: [live, oldest + ".gz", older + ".gz"])
        out.flush()
        #expect(s.intact && s.files == 3 && s.records == c.seq, "\(findings)")
        #expect(try String(contentsOfFile: dir.path + "/report.txt", encoding: .utf8) == c.text)

        // A gzipped file cut short: what could be read is replayed, the rest reported.
        let gz = try Data(contentsOf: URL(fileURLWithPath: older + ".gz"))
        try gz.prefix(gz.count - 12).write(to: URL(fileURLWithPath: older + ".gz"))
        var cutFindings: [String] = []
        let cut = CaptureReplay(options: ReplayOptions(), output: try ReplayOutput(path: dir.path + "/r2.txt")) { cutFindings.append($0) }
            .run(paths: [oldest + ".gz", older + ".gz", live])
        #expect(cut.exitStatus == 1)
        #expect(cutFindings.contains { $0.hasPrefix(older + ".gz:") && ($0.contains("cannot read further") || $0.contains("incomplete last line")) }, "\(cutFindings)")

        // A file that cannot be read at all.
        var missing: [String] = []
        let m = CaptureReplay(options: ReplayOptions(), output: try ReplayOutput(path: dir.path + "/r3.txt")) { missing.append($0) }
            .run(paths: [dir.path + "/nope.ndjson"])
        #expect(m.unreadable == 1 && m.exitStatus == 1)
        #expect(missing.first == dir.path + "/nope.ndjson: cannot read: No such file or directory")
    }

    @Test("hostile paths, argv, comm and session ids cannot inject HTML or terminal escapes")
    func hostileText() throws {
        var c = CaptureBuilder()
        let session = "x\"><svg onload=alert(3)>"
        c.add("session.start", #""session":{"id":"x\"><svg onload=alert(3)>","cgroup":"/agentwatch/</title><script>alert(4)</script>","cgroup_id":1,"uid":0,"labels":{"<blink>k":"<marquee>v"},"adopted":false,"start_time":"2025-11-21T15:46:40.000000000Z"}"#)
        let evil = "/tmp/</td><script>alert(1)</script>\u{1B}[31mred\u{202E}fdp.exe"
        c.add("file.open", #""session":{"id":"x\"><svg onload=alert(3)>","cgroup":"","labels":{}},"#
              + CaptureBuilder.process(66, ppid: 1, exe: "/usr/bin/\u{1B}]0;pwned\u{07}", argv: ["\"><img src=x onerror=alert(2)>", "it's", "a\u{0}b"], comm: "\u{1B}[2J")
              + #","file":{"path":"\#(evil.replacingOccurrences(of: "\u{1B}", with: "\\u001b"))\udcff\udcfe","flags":["O_RDONLY"],"mode":0,"result":3}"#)
        c.add("alert", #""session":{"id":"x\"><svg onload=alert(3)>","cgroup":"","labels":{}},"rule":{"id":"<script>alert(5)</script>","title":"t","severity":"<blink>high","tags":[],"source":"s","author":"a"},"message":"</table><script>alert(6)</script>","evidence":[2]"#)
        let html = replay(c) { $0.format = .html }.report
        #expect(html.components(separatedBy: "<script").count == 2, "only the page's own script")
        for bad in ["<svg", "<img", "<blink", "<marquee", "</title><script", "</td><script", "</table><script"] {
            #expect(!html.contains(bad), "\(bad)")
        }
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(html.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"))
        #expect(html.contains("\\x1b[31mred\\u{202e}fdp.exe\\xff\\xfe"), "control bytes, bidi overrides and bytes that are not UTF-8 are visible")
        #expect(html.contains("default-src 'none'"))
        for format in [ReplayOptions.Format.tree, .timeline] {
            let text = replay(c) { $0.format = format }.report
            #expect(!text.utf8.contains(0x1B) && !text.utf8.contains(0x07) && !text.utf8.contains(0x00), "\(format)")
            #expect(!text.unicodeScalars.contains("\u{202E}"))
            #expect(text.contains("\\x1b[2J[66]"), "\(format): \(text)")
        }
        _ = session
    }
}

/// Runs a program, returns its exit status.
func run(_ path: String, _ args: [String]) -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    do { try p.run() } catch { return -1 }
    p.waitUntilExit()
    return p.terminationStatus
}
