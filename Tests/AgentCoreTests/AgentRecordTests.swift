@testable import AgentDetector
@testable import AgentOutputs
@testable import AgentPipeline
@testable import AgentRecords
import AgentSensor
@testable import AgentSupport
import Testing

/// `agent.start`, `agent.stop` and `agent.reload` as the recorder writes them from typed values
/// are, byte for byte, the records the daemon wrote by hand before (the hand-written bodies are
/// kept here as the reference).
@Suite("agent records")
struct AgentRecordTests {
    static let host = HostIdentity(name: "devbox", id: "0123456789abcdef0123456789abcdef")
    static let t0: Int64 = 1_700_000_000_000_000_000

    static func rules() throws -> RuleSet {
        try RuleSet.parse("""
        rules:
          - id: test-rule
            title: A rule
            severity: low
            types: [file.open]
            condition: file.path == "/x"
            message: "x"
            fixtures: []
        """, file: "rules.yaml")
    }

    /// The same records written by `typed` and by `byHand` into two recorders.
    static func both(_ typed: (Recorder) -> Void, _ byHand: (Recorder) -> Void) -> (typed: [String], byHand: [String]) {
        let a = MemoryOutput(), b = MemoryOutput()
        let ra = Recorder(sink: a, host: host), rb = Recorder(sink: b, host: host)
        typed(ra)
        byHand(rb)
        ra.close()
        rb.close()
        return (a.lines, b.lines)
    }

    @Test("agent.start, with rules and without")
    func start() throws {
        let rules = try Self.rules()
        for set in [rules, nil] {
            let roots = ["/sys/fs/cgroup/agentwatch", "/sys/fs/cgroup/x\"y"]
            let out = Self.both({ r in
                r.agentStart(version: "1.2.3", pid: 4242, kernel: "6.8.0", output: "file:/var/log/a.ndjson", sessionRoots: roots,
                             features: ["exec", "fork", "exit", "openat", "openat2", "connect", "flow"],
                             sensor: SensorChoice(tier: .kprobe, forced: false, refused: [SensorChoice.Refusal(tier: .fentry, error: "load: EPERM \"x\"")]),
                             hooks: ["tp_btf/sched_process_exec", "ksyscall/openat"], rules: set.map(RulesInForce.init),
                             unixNs: Self.t0)
            }, { r in
                r.agentRecord(.agentStart, unixNs: Self.t0) { j in
                    j.key("version"); j.string("1.2.3")
                    j.raw(","); j.key("pid"); j.uint(4242)
                    j.raw(","); j.key("kernel"); j.string("6.8.0")
                    j.raw(","); j.key("output"); j.string("file:/var/log/a.ndjson")
                    j.raw(","); j.key("session_roots"); j.raw("[")
                    for (i, p) in roots.enumerated() {
                        if i > 0 { j.raw(",") }
                        j.string(p)
                    }
                    j.raw("],"); j.key("features"); j.raw("[\"exec\",\"fork\",\"exit\",\"openat\",\"openat2\",\"connect\",\"flow\"]")
                    j.raw(#","sensor":{"tier":"kprobe","forced":false,"hooks":["tp_btf/sched_process_exec","ksyscall/openat"],"#)
                    j.raw(#""refused":[{"tier":"fentry","error":"load: EPERM \"x\""}]}"#)
                    if let rules = set {
                        j.raw(","); j.key("rules"); j.raw("{"); j.key("count"); j.uint(UInt64(rules.rules.filter(\.enabled).count))
                        j.raw(","); j.key("digest"); j.string(rules.digest); j.raw("}")
                    }
                    r.chainOrigin(into: &j)
                }
            })
            #expect(out.typed == out.byHand)
            #expect(out.typed.count == 1)
        }
    }

    @Test("agent.stop")
    func stop() {
        let out = Self.both({ r in
            r.agentStop(version: "1.2.3", records: 99, kernelDropped: 3, decodeRejected: 1, sessions: 2, unixNs: Self.t0)
        }, { r in
            r.agentRecord(.agentStop, unixNs: Self.t0) { j in
                j.key("version"); j.string("1.2.3")
                j.raw(","); j.key("records"); j.uint(99)
                j.raw(","); j.key("kernel_dropped"); j.uint(3)
                j.raw(","); j.key("decode_rejected"); j.uint(1)
                j.raw(","); j.key("sessions"); j.uint(2)
            }
        })
        #expect(out.typed == out.byHand)
    }

    @Test("agent.reload: taken, failed, with and without a config loader, outputs changed, restart required")
    func reload() throws {
        let rules = try Self.rules()
        struct Case {
            var ok: Bool, rules: RuleSet?, loader: Bool, outputs: [String], started: [String], stopped: [String], restart: [String], errors: Int, error: String
        }
        let cases = [
            Case(ok: true, rules: rules, loader: false, outputs: [], started: [], stopped: [], restart: [], errors: 0, error: ""),
            Case(ok: true, rules: nil, loader: true, outputs: ["file", "copy"], started: ["copy"], stopped: [], restart: ["ring_buffer_kib"], errors: 0, error: ""),
            Case(ok: false, rules: rules, loader: true, outputs: ["file"], started: [], stopped: [], restart: [], errors: 0, error: "f.yaml:7:3: unknown setting"),
            Case(ok: false, rules: rules, loader: false, outputs: [], started: [], stopped: [], restart: ["args_max"], errors: 3, error: "r.yaml:1: bad"),
        ]
        for c in cases {
            let out = Self.both({ r in
                var a = AgentReload()
                a.rules = c.rules.map(RulesInForce.init)
                a.outputs = c.loader ? c.outputs : nil
                a.outputsStarted = c.started
                a.outputsStopped = c.stopped
                a.restartRequired = c.restart
                if !c.ok { a.error = c.error; a.errorCount = c.errors }
                r.agentReload(a, unixNs: Self.t0)
            }, { r in
                r.agentRecord(.agentReload, unixNs: Self.t0) { j in
                    j.key("ok"); j.bool(c.ok)
                    if let running = c.rules {
                        j.raw(","); j.key("rules"); j.raw("{"); j.key("count"); j.uint(UInt64(running.rules.filter(\.enabled).count))
                        j.raw(","); j.key("digest"); j.string(running.digest); j.raw("}")
                    }
                    if c.loader {
                        j.raw(","); j.key("outputs"); j.stringArray(c.outputs)
                    }
                    if !c.started.isEmpty || !c.stopped.isEmpty {
                        j.raw(","); j.key("outputs_started"); j.stringArray(c.started)
                        j.raw(","); j.key("outputs_stopped"); j.stringArray(c.stopped)
                    }
                    if !c.restart.isEmpty {
                        j.raw(","); j.key("restart_required"); j.stringArray(c.restart)
                    }
                    if !c.ok {
                        if c.errors > 0 { j.raw(","); j.key("errors"); j.uint(UInt64(c.errors)) }
                        j.raw(","); j.key("error"); j.string(c.error)
                    }
                }
            })
            #expect(out.typed == out.byHand, "\(out.typed)")
        }
    }
}
