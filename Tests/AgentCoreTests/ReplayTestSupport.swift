@testable import AgentDetector
@testable import AgentRecords
@testable import AgentReplay
@testable import AgentSessions
import Foundation
import Glibc
import Testing

/// Builds capture files as the daemon writes them: numbered, stamped, hash-chained lines.
/// With `rules`, it also plays the daemon's Detector: each session record is evaluated as it is
/// added and the alerts follow it as `alert` records, so a capture carries live alerts.
struct CaptureBuilder {
    static let t0: Int64 = 1_763_740_000_000_000_000
    static let home = "/home/dev"

    private(set) var lines: [String] = []
    private(set) var seq: UInt64 = 0
    private var prev = RecordChain.zero
    var time = t0
    var detector: Detector?
    var homes: [String: [String]] = [:]

    init(rules: RuleSet? = nil, start: Bool = true) {
        detector = rules.map { Detector(rules: $0) }
        if start { agentStart() }
    }

    /// Appends a record: `members` are the JSON members after `host` (no braces). Returns its seq.
    @discardableResult
    mutating func add(_ type: String, _ members: String = "", advance: Int64 = 1_000_000, seq forced: UInt64? = nil) -> UInt64 {
        seq = forced ?? seq + 1
        time += advance
        var j = JSONBuffer(capacity: 256)
        j.raw("{\"v\":1,\"seq\":")
        j.uint(seq)
        j.raw(",\"time\":")
        j.timestamp(unixNanoseconds: time)
        j.raw(",\"type\":")
        j.string(type)
        j.raw(",\"host\":{\"name\":\"h\",\"id\":\"0123\"}")
        var body = j.bytes
        if !members.isEmpty { body += Array(("," + members).utf8) }
        let digest = prev.withUnsafeBytes { p in body.withUnsafeBytes { RecordChain.digest(prev: p, body: $0) } }
        let hex = Array(digest.map { String(format: "%02x", $0) }.joined().utf8)
        prev = hex
        lines.append(String(decoding: body + Array(",\"chain\":\"".utf8) + hex + Array("\"}".utf8), as: UTF8.self))
        if let detector, ["process.exec", "process.exit", "file.open", "net.connect", "net.flow"].contains(type) {
            let dict = ChainVerifier.parse(Array(lines.last!.utf8))!
            let session = (dict["session"] as? [String: Any])?["id"] as? String ?? ""
            var alerts: [Alert] = []
            detector.evaluate(CapturedRuleInput(dict, homes: homes[session] ?? [])) { alerts.append($0) }
            for a in alerts { alert(a, trigger: lines.last!) }
        }
        return seq
    }

    /// A line as given: not numbered, not chained (a hostile or broken line).
    mutating func raw(_ line: String) {
        lines.append(line)
    }

    /// A daemon that starts afresh (a new file): seq 1, a chain from zeros, a new Detector.
    mutating func restart() {
        prev = RecordChain.zero
        if let rules = detector?.rules { detector = Detector(rules: rules) }
        seq = 0
        agentStart()
    }

    mutating func agentStart() {
        add("agent.start", #""agent":{"version":"test","pid":1,"kernel":"6.1","output":"x","session_roots":["agentwatch"],"features":[],"chain_start":true}"#)
    }

    static func session(_ id: String) -> String { #""session":{"id":"\#(id)","cgroup":"/agentwatch/\#(id)","labels":{}}"# }

    static func entity(_ pid: Int) -> String { "4f15502dda70-17693e045e0-\(pid)" }

    static func process(_ pid: Int, ppid: Int, exe: String, argv: [String], comm: String? = nil, parentExe: String = "/usr/bin/bash", extra: String = "") -> String {
        var j = JSONBuffer(capacity: 256)
        j.stringArray(argv)
        let argvJSON = String(decoding: j.bytes, as: UTF8.self)
        var e = JSONBuffer(capacity: 64)
        e.string(exe)
        var c = JSONBuffer(capacity: 64)
        c.string(comm ?? String(exe.split(separator: "/").last ?? ""))
        var pe = JSONBuffer(capacity: 64)
        pe.string(parentExe)
        return #""process":{"tid":\#(pid),"entity_id":"\#(entity(pid))","pid":\#(pid),"ppid":\#(ppid),"uid":1000,"gid":1000,"euid":1000,"comm":\#(String(decoding: c.bytes, as: UTF8.self)),"exe":\#(String(decoding: e.bytes, as: UTF8.self)),"argv":\#(argvJSON),"argv_truncated":false,"start_time":"2025-11-21T15:46:40.000000000Z","source":"kernel","parent":{"entity_id":"\#(entity(ppid))","pid":\#(ppid),"exe":\#(String(decoding: pe.bytes, as: UTF8.self))}\#(extra)}"#
    }

    mutating func sessionStart(_ id: String, home: String = home) {
        homes[id] = [home]
        add("session.start", #""session":{"id":"\#(id)","cgroup":"/agentwatch/\#(id)","cgroup_id":77,"uid":1000,"labels":{"agent":"test"},"adopted":false,"start_time":"2025-11-21T15:46:40.000000000Z","homes":["\#(home)"]}"#)
    }

    mutating func sessionEnd(_ id: String) {
        if let detector {
            var alerts: [Alert] = []
            detector.endSession(id, timeNs: time + 1_000_000) { alerts.append($0) }
            for a in alerts { alert(a, trigger: nil) }
        }
        add("session.end", #""session":{"id":"\#(id)","cgroup":"/agentwatch/\#(id)","cgroup_id":77,"uid":1000,"labels":{"agent":"test"},"adopted":false,"start_time":"2025-11-21T15:46:40.000000000Z","end_time":"2025-11-21T15:46:41.000000000Z","counts":{},"homes":["\#(homes[id]?.first ?? "")"]}"#)
    }

    @discardableResult
    mutating func exec(_ session: String, _ pid: Int, ppid: Int, exe: String, argv: [String], previous: String? = nil) -> UInt64 {
        let extra = (previous.map { #","previous_exe":"\#($0)""# } ?? "") + #","argc":\#(argv.count),"stdin":{"type":"tty"},"stdout":{"type":"tty"},"stderr":{"type":"tty"}"#
        return add("process.exec", Self.session(session) + "," + Self.process(pid, ppid: ppid, exe: exe, argv: argv, extra: extra))
    }

    @discardableResult
    mutating func open(_ session: String, _ pid: Int, ppid: Int, exe: String, argv: [String] = [], path: String, flags: String = #"["O_RDONLY"]"#) -> UInt64 {
        var p = JSONBuffer(capacity: 64)
        p.string(path)
        return add("file.open", Self.session(session) + "," + Self.process(pid, ppid: ppid, exe: exe, argv: argv.isEmpty ? [exe] : argv)
                   + #","file":{"path":\#(String(decoding: p.bytes, as: UTF8.self)),"flags":\#(flags),"mode":0,"result":3}"#)
    }

    @discardableResult
    mutating func connect(_ session: String, _ pid: Int, ppid: Int, exe: String, daddr: String, dport: Int) -> UInt64 {
        add("net.connect", Self.session(session) + "," + Self.process(pid, ppid: ppid, exe: exe, argv: [exe])
            + #","net":{"family":"ipv4","transport":"tcp","daddr":"\#(daddr)","dport":\#(dport),"saddr":"10.0.0.2","sport":40000,"fd":3,"result":0}"#)
    }

    @discardableResult
    mutating func flow(_ session: String, _ pid: Int, ppid: Int, exe: String, daddr: String, dport: Int, sent: Int, delta: Int, final: Bool) -> UInt64 {
        add("net.flow", Self.session(session) + "," + Self.process(pid, ppid: ppid, exe: exe, argv: [exe])
            + #","net":{"family":"ipv4","transport":"tcp","daddr":"\#(daddr)","dport":\#(dport),"saddr":"10.0.0.2","sport":40000,"fd":3,"bytes_sent":\#(sent),"bytes_received":10,"bytes_sent_delta":\#(delta),"bytes_received_delta":0,"final":\#(final)}"#)
    }

    @discardableResult
    mutating func exit(_ session: String, _ pid: Int, ppid: Int, exe: String, code: Int = 0, duration: Int = 1_000_000) -> UInt64 {
        add("process.exit", Self.session(session) + "," + Self.process(pid, ppid: ppid, exe: exe, argv: [exe], extra: #","exit_code":\#(code),"duration_ns":\#(duration)"#))
    }

    mutating func kernelLoss(open: Int) {
        add("agent.loss", #""loss":{"kernel_dropped":{"open":\#(open)},"kernel_dropped_total":\#(open),"queue_dropped":0,"reported_by":"kernel"}"#)
    }

    mutating func sinkLoss(sink: String, first: UInt64, last: UInt64) {
        add("agent.loss", #""loss":{"kernel_dropped":{},"kernel_dropped_total":0,"queue_dropped":\#(last - first + 1),"reported_by":"daemon","sink":"\#(sink)","first_seq":\#(first),"last_seq":\#(last)}"#)
    }

    /// An alert record, as the Recorder writes one: the trigger record's process as it was
    /// written there.
    mutating func alert(_ a: Alert, trigger: String?) {
        var j = JSONBuffer(capacity: 512)
        j.raw("\"session\":{\"id\":")
        j.string(a.sessionID)
        j.raw(",\"cgroup\":")
        j.string("/agentwatch/" + a.sessionID)
        j.raw(",\"labels\":{}}")
        if let trigger {
            var json = JSONTree()
            let line = Array(trigger.utf8)
            line.withUnsafeBytes { text in
                if json.parse(text) {
                    json.withView(text) { v in
                        if let p = v.member(0, "process") {
                            j.raw(",\"process\":")
                            j.bytes.append(contentsOf: v.source(p))
                        }
                    }
                }
            }
        }
        j.alertMembers(a)
        add("alert", String(decoding: j.bytes, as: UTF8.self), advance: 0)
    }

    var text: String { lines.map { $0 + "\n" }.joined() }
    var bytes: [UInt8] { Array(text.utf8) }
}

/// Runs a replay over captures in memory; returns the report, the findings and the summary.
func replay(_ captures: [(name: String, bytes: [UInt8])], _ configure: (inout ReplayOptions) -> Void = { _ in }) -> (report: String, findings: [String], summary: ReplaySummary) {
    var options = ReplayOptions()
    configure(&options)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("replay-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out").path
    defer { unlink(path) }
    var findings: [String] = []
    let summary: ReplaySummary
    do {
        let out = try! ReplayOutput(path: path)
        let r = CaptureReplay(options: options, output: out) { findings.append($0) }
        summary = r.run(captures: captures)
        out.flush()
    }
    let report = (try? String(contentsOfFile: path, encoding: .utf8)) ?? String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
    return (report, findings, summary)
}

func replay(_ capture: CaptureBuilder, name: String = "cap.ndjson", _ configure: (inout ReplayOptions) -> Void = { _ in }) -> (report: String, findings: [String], summary: ReplaySummary) {
    replay([(name, capture.bytes)], configure)
}

/// The repository's rules directory.
let packageRules: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path + "/rules"
}()

/// A fresh directory, removed when the value goes.
final class ReplayTempDir {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("replay-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}
