@testable import AgentDaemon
import Foundation
import Testing

/// The control socket's messages on the wire: the bytes the server writes and the clients read
/// are what the README documents (and what JSONSerialization wrote before they were types).
@Suite("control protocol")
struct ControlProtocolTests {
    static func decode(_ line: String) throws -> ControlRequest {
        try JSONDecoder().decode(ControlRequest.self, from: Data(line.utf8))
    }

    @Test("answers: one JSON line, keys sorted, ok beside the fields of what was asked")
    func answers() throws {
        let started = ControlAnswer.started(SessionStarted(session: "u1", cgroup: "/sys/fs/cgroup/agentwatch/u1", watched: true))
        #expect(String(decoding: started.line(), as: UTF8.self) == #"{"cgroup":"\/sys\/fs\/cgroup\/agentwatch\/u1","ok":true,"session":"u1","watched":true}"# + "\n")
        #expect(String(decoding: ControlAnswer.refused("busy").line(), as: UTF8.self) == #"{"error":"busy","ok":false}"# + "\n")
        #expect(String(decoding: ControlAnswer.ended(SessionEnded(ended: false)).line(), as: UTF8.self) == #"{"ended":false,"ok":true}"# + "\n")
        let list = ControlAnswer.sessions(SessionList(sessions: [
            SessionSummary(id: "a", cgroup: "/agentwatch/a", uid: 1000, startNs: 1_700_000_000_000_000_001, adopted: false, labels: ["k": "v"]),
        ]))
        #expect(String(decoding: list.line(), as: UTF8.self)
                == #"{"ok":true,"sessions":[{"adopted":false,"cgroup":"\/agentwatch\/a","id":"a","labels":{"k":"v"},"start_ns":1700000000000000001,"uid":1000}]}"# + "\n")
        let status = ControlAnswer.status(DaemonStatus(
            version: "1.0", pid: 42, sessions: 1, processes: 2, records: 3, kernelDropped: 4, decodeRejected: 5, syscallHooks: true,
            outputs: [OutputStatus(name: "file", destination: "file:/x", records: 6, errors: 7, connected: true, spooledBytes: 8, backlogBytes: 9, lastError: "")]))
        #expect(String(decoding: status.line(), as: UTF8.self)
                == #"{"decode_rejected":5,"kernel_dropped":4,"ok":true,"outputs":[{"backlog_bytes":9,"connected":true,"destination":"file:\/x","errors":7,"last_error":"","name":"file","records":6,"spooled_bytes":8}],"pid":42,"processes":2,"records":3,"sessions":1,"syscall_hooks":true,"version":"1.0"}"# + "\n")
        let throttled = ControlAnswer.status(DaemonStatus(
            version: "1.0", pid: 42, sessions: 1, processes: 2, records: 3, kernelDropped: 0, decodeRejected: 0, syscallHooks: true,
            outputs: [], throttle: ThrottleStatus(pauses: 10, pausedMs: 250, pausedNow: 1, forcedResumes: 0)))
        #expect(String(decoding: throttled.line(), as: UTF8.self).contains(#""throttle":{"forced_resumes":0,"paused_ms":250,"paused_now":1,"pauses":10}"#))
        let back = try JSONDecoder().decode(ControlReply<DaemonStatus>.self, from: Data(throttled.line()))
        #expect(back == .ok(DaemonStatus(version: "1.0", pid: 42, sessions: 1, processes: 2, records: 3, kernelDropped: 0, decodeRejected: 0,
                                         syscallHooks: true, outputs: [], throttle: ThrottleStatus(pauses: 10, pausedMs: 250, pausedNow: 1, forcedResumes: 0))))
    }

    @Test("a client reads back what the server wrote, and a refusal as a refusal")
    func replies() throws {
        let started = SessionStarted(session: "u1", cgroup: "/c", watched: false)
        #expect(try JSONDecoder().decode(ControlReply<SessionStarted>.self, from: Data(ControlAnswer.started(started).line())) == .ok(started))
        #expect(try JSONDecoder().decode(ControlReply<SessionStarted>.self, from: Data(ControlAnswer.refused("no").line())) == .refused("no"))
        #expect(ControlAnswer.started(started).line().firstRange(of: ControlAnswer.acceptedMark) != nil)
        // A string member holding the mark's characters is escaped: it cannot pass for it.
        #expect(ControlAnswer.refused(#"session x: "ok":true"#).line().firstRange(of: ControlAnswer.acceptedMark) == nil)
    }

    @Test("requests: the four ops as the clients send them, read back")
    func requests() throws {
        let start = ControlRequest.start(StartRequest(session: "u1", labels: ["agent": "test"]))
        #expect(String(decoding: start.line(), as: UTF8.self) == #"{"labels":{"agent":"test"},"op":"start","session":"u1"}"# + "\n")
        #expect(String(decoding: ControlRequest.end(session: "u1").line(), as: UTF8.self) == #"{"op":"end","session":"u1"}"# + "\n")
        #expect(String(decoding: ControlRequest.status.line(), as: UTF8.self) == #"{"op":"status"}"# + "\n")
        for r in [start, .end(session: "u1"), .sessions, .status] {
            #expect(try Self.decode(String(decoding: r.line(), as: UTF8.self)) == r)
        }
    }

    @Test("requests are read as leniently as before: members of another type are absent, label values that are not strings are named, an unknown or missing op is its own error")
    func lenientRequests() throws {
        #expect(try Self.decode(#"{"op":"start"}"#) == .start(StartRequest(session: nil, labels: [:])))
        #expect(try Self.decode(#"{"op":"start","session":7,"labels":"x"}"#) == .start(StartRequest(session: nil, labels: [:])))
        guard case .start(let s) = try Self.decode(#"{"op":"start","labels":{"b":1,"a":"x","c":{"d":2}}}"#) else { Issue.record("not a start"); return }
        #expect(s.labels == ["a": "x"])
        #expect(s.labelsNotStrings == ["b", "c"])
        #expect(try Self.decode(#"{"op":"end"}"#) == .end(session: nil))
        #expect(throws: ControlRequest.UnknownOp.self) { try Self.decode(#"{"op":"stop"}"#) }
        #expect(throws: ControlRequest.UnknownOp.self) { try Self.decode(#"{"session":"x"}"#) }
        #expect(throws: DecodingError.self) { try Self.decode(#"["op","status"]"#) }
    }
}
