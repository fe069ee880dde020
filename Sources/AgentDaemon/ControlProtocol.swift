import Foundation

// The control socket's messages, shared by the server (ControlServer, DaemonControl) and its
// clients (ControlClient, `agentwatch run`, `sessions`, `status`): one JSON object per line each
// way. The field names are the wire format the README documents; change them only with it.

/// A request: `{"op":"start","session":ID?,"labels":{K:V}}`, `{"op":"end","session":ID}`,
/// `{"op":"sessions"}` or `{"op":"status"}`.
package enum ControlRequest: Sendable, Equatable {
    case start(StartRequest)
    case end(session: String?)
    case sessions
    case status

    /// The request as the wire carries it: one JSON line.
    package func line() -> [UInt8] {
        var out = [UInt8]((try? JSONEncoder.control.encode(self)) ?? Data())
        out.append(0x0A)
        return out
    }

    /// A line that is a JSON object with an `op` none of the four.
    package struct UnknownOp: Error {}
}

/// `start`: a session for the caller, named `session` (nil: one is made up), with `labels`.
package struct StartRequest: Sendable, Equatable {
    package var session: String?
    package var labels: [String: String]
    /// Labels whose value was not a string: refused with the other label checks, after the
    /// checks of the caller (a caller inside a session is refused, and recorded, first).
    package var labelsNotStrings: [String] = []

    package init(session: String?, labels: [String: String]) {
        self.session = session
        self.labels = labels
    }
}

extension ControlRequest: Codable {
    enum Key: String, CodingKey { case op, session, labels }

    /// A string member of another type counts as absent, as it always has (`"session":1` makes
    /// up an id); only a line that is not a JSON object is no request at all.
    package init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        let session = try? c.decodeIfPresent(String.self, forKey: .session)
        switch try? c.decodeIfPresent(String.self, forKey: .op) {
        case "start":
            let given = (try? c.decodeIfPresent([String: LabelValue].self, forKey: .labels)) ?? [:]
            var start = StartRequest(session: session, labels: given.compactMapValues(\.string))
            start.labelsNotStrings = given.filter { $0.value.string == nil }.map(\.key).sorted()
            self = .start(start)
        case "end": self = .end(session: session)
        case "sessions": self = .sessions
        case "status": self = .status
        default: throw UnknownOp()
        }
    }

    package func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        switch self {
        case .start(let s):
            try c.encode("start", forKey: .op)
            try c.encodeIfPresent(s.session, forKey: .session)
            try c.encode(s.labels, forKey: .labels)
        case .end(let session):
            try c.encode("end", forKey: .op)
            try c.encodeIfPresent(session, forKey: .session)
        case .sessions: try c.encode("sessions", forKey: .op)
        case .status: try c.encode("status", forKey: .op)
        }
    }

    /// A label value as sent: a string, or something else (refused).
    struct LabelValue: Decodable {
        let string: String?
        init(from decoder: Decoder) throws { string = try? decoder.singleValueContainer().decode(String.self) }
    }
}

/// An answer as the server gives it: `{"ok":true,...}` with the fields of what was asked, or
/// `{"ok":false,"error":WHY}`.
package enum ControlAnswer: Sendable, Equatable, Encodable {
    case refused(String)
    case started(SessionStarted)
    case ended(SessionEnded)
    case sessions(SessionList)
    case status(DaemonStatus)

    package func encode(to encoder: Encoder) throws {
        switch self {
        case .refused(let why):
            var c = encoder.container(keyedBy: ReplyKey.self)
            try c.encode(false, forKey: .ok)
            try c.encode(why, forKey: .error)
        case .started(let a): try ControlReply.ok(a).encode(to: encoder)
        case .ended(let a): try ControlReply.ok(a).encode(to: encoder)
        case .sessions(let a): try ControlReply.ok(a).encode(to: encoder)
        case .status(let a): try ControlReply.ok(a).encode(to: encoder)
        }
    }

    /// What a client that may not decode (`agentwatch run`'s child, between fork and exec) looks
    /// for in the bytes of an answer to `start`: only `"ok":true` itself has them, since a
    /// string member holding the same characters has its quotes escaped.
    package static let acceptedMark = Array("\"ok\":true".utf8)

    /// The answer as the wire carries it: one JSON line, keys sorted.
    package func line() -> [UInt8] {
        var out = [UInt8]((try? JSONEncoder.control.encode(self)) ?? Data("{\"ok\":false}".utf8))
        out.append(0x0A)
        return out
    }
}

/// An answer as a client reads it, knowing what it asked: `Payload`'s fields beside `"ok":true`,
/// or the refusal.
package enum ControlReply<Payload: Codable & Sendable & Equatable>: Sendable, Equatable, Codable {
    case ok(Payload)
    case refused(String)

    package init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ReplyKey.self)
        if try c.decode(Bool.self, forKey: .ok) {
            self = .ok(try Payload(from: decoder))
        } else {
            self = .refused((try? c.decode(String.self, forKey: .error)) ?? "the daemon said no")
        }
    }

    package func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ReplyKey.self)
        switch self {
        case .ok(let payload):
            try c.encode(true, forKey: .ok)
            // The payload's members go into the same object.
            try payload.encode(to: encoder)
        case .refused(let why):
            try c.encode(false, forKey: .ok)
            try c.encode(why, forKey: .error)
        }
    }

    /// Whether the daemon did what was asked (`"ok":true`).
    package var isOK: Bool {
        if case .ok = self { return true }
        return false
    }

    /// What was asked for, or the refusal as an error.
    package func get() throws(ControlRefusal) -> Payload {
        switch self {
        case .ok(let p): return p
        case .refused(let why): throw ControlRefusal(message: why)
        }
    }
}

/// The members every answer has.
enum ReplyKey: String, CodingKey { case ok, error }

/// The daemon said no, and why.
package struct ControlRefusal: Error, Sendable {
    package let message: String
}

/// `start`: the session made and whether the daemon watched it within the wait.
package struct SessionStarted: Codable, Sendable, Equatable {
    package var session: String
    package var cgroup: String
    package var watched: Bool
}

/// `end`: whether the session's cgroup went now (false: it still has processes, and goes with them).
package struct SessionEnded: Codable, Sendable, Equatable {
    package var ended: Bool
}

/// `sessions`: the live sessions, oldest first.
package struct SessionList: Codable, Sendable, Equatable {
    package var sessions: [SessionSummary]
}

/// A live session as `agentwatch sessions` lists it.
package struct SessionSummary: Codable, Sendable, Equatable {
    package var id: String
    package var cgroup: String
    package var uid: UInt32
    package var startNs: Int64
    package var adopted: Bool
    package var labels: [String: String]

    enum CodingKeys: String, CodingKey {
        case id, cgroup, uid, adopted, labels
        case startNs = "start_ns"
    }
}

/// `status`: what `agentwatch status` prints.
package struct DaemonStatus: Codable, Sendable, Equatable {
    package var version: String
    package var pid: Int32
    package var sessions: Int
    package var processes: Int
    package var records: UInt64
    package var kernelDropped: UInt64
    package var decodeRejected: UInt64
    package var syscallHooks: Bool
    package var outputs: [OutputStatus]
    /// With `overflow: throttle`: the sessions' pauses.
    package var throttle: ThrottleStatus? = nil

    enum CodingKeys: String, CodingKey {
        case version, pid, sessions, processes, records, outputs, throttle
        case kernelDropped = "kernel_dropped"
        case decodeRejected = "decode_rejected"
        case syscallHooks = "syscall_hooks"
    }
}

/// The throttle in `status`: pauses since start, their time, the sessions paused now.
package struct ThrottleStatus: Codable, Sendable, Equatable {
    package var pauses: UInt64
    package var pausedMs: UInt64
    package var pausedNow: Int
    package var forcedResumes: UInt64

    enum CodingKeys: String, CodingKey {
        case pauses
        case pausedMs = "paused_ms"
        case pausedNow = "paused_now"
        case forcedResumes = "forced_resumes"
    }
}

/// One output in `status`.
package struct OutputStatus: Codable, Sendable, Equatable {
    package var name: String
    package var destination: String
    package var records: UInt64
    package var errors: UInt64
    package var connected: Bool
    package var spooledBytes: UInt64
    package var backlogBytes: Int
    /// "" while the output works.
    package var lastError: String

    enum CodingKeys: String, CodingKey {
        case name, destination, records, errors, connected
        case spooledBytes = "spooled_bytes"
        case backlogBytes = "backlog_bytes"
        case lastError = "last_error"
    }
}

extension JSONEncoder {
    /// The control socket's encoder: compact, keys sorted (as the answers always were).
    static var control: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
