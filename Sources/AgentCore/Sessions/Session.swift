/// One agent session: a cgroup directly below a session root, and everything in it.
public final class Session {
    public let id: String
    /// Absolute path of the cgroup directory.
    public let path: String
    /// Path relative to the cgroup2 mount, as /proc/PID/cgroup shows it.
    public let cgroup: String
    public let cgid: UInt64
    public let uid: UInt32
    public let labels: [(key: String, value: String)]
    /// Whether the session existed before the daemon started.
    public let adopted: Bool
    public var startNs: Int64 = 0
    /// Records written for the session, by `RecordType`, for `session.end`.
    public var counts = [UInt64](repeating: 0, count: RecordType.allCases.count)
    /// `"session":{...}`, rendered once.
    var json: [UInt8] = []

    init(id: String, path: String, cgroup: String, cgid: UInt64, uid: UInt32, labels: [(key: String, value: String)], adopted: Bool) {
        self.id = id
        self.path = path
        self.cgroup = cgroup
        self.cgid = cgid
        self.uid = uid
        self.labels = labels
        self.adopted = adopted
        var j = JSONBuffer(capacity: 256)
        j.key("session")
        j.byte(UInt8(ascii: "{"))
        j.key("id"); j.string(id)
        j.raw(","); j.key("cgroup"); j.string(cgroup)
        j.raw(","); j.key("labels"); j.byte(UInt8(ascii: "{"))
        for (i, l) in labels.enumerated() {
            if i > 0 { j.raw(",") }
            j.string(l.key); j.raw(":"); j.string(l.value)
        }
        j.raw("}}")
        json = j.bytes
    }
}

/// Session metadata that `agentwatch run` stores on the cgroup directory as the trusted
/// xattr `trusted.agentwatch.session` (only root can set it): `uid=N` and `label.K=V` lines.
public struct SessionMetadata: Equatable {
    public static let xattr = "trusted.agentwatch.session"
    /// Set by the daemon once it watches the session, so `agentwatch run` can wait for it.
    public static let watchedXattr = "trusted.agentwatch.watched"

    public var uid: UInt32?
    public var labels: [(key: String, value: String)]

    public init(uid: UInt32?, labels: [(key: String, value: String)]) {
        self.uid = uid
        self.labels = labels
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.uid == b.uid && a.labels.map { $0.key + "=" + $0.value } == b.labels.map { $0.key + "=" + $0.value }
    }

    public func encoded() -> [UInt8] {
        var lines: [String] = []
        if let uid { lines.append("uid=\(uid)") }
        for l in labels { lines.append("label.\(l.key)=\(l.value)") }
        return Array(lines.joined(separator: "\n").utf8)
    }

    public static func decode(_ bytes: [UInt8]) -> SessionMetadata {
        var m = SessionMetadata(uid: nil, labels: [])
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            let k = line[..<eq], v = String(line[line.index(after: eq)...])
            if k == "uid" { m.uid = UInt32(v) } else if k.hasPrefix("label.") { m.labels.append((String(k.dropFirst(6)), v)) }
        }
        return m
    }
}

/// Checks a session id: 1-64 characters of [A-Za-z0-9._-], not starting with '.'.
public func validateSessionID(_ id: String) -> String? {
    if id.isEmpty || id.utf8.count > 64 { return "session id must be 1 to 64 characters" }
    if id.hasPrefix(".") { return "session id must not start with '.'" }
    for c in id.utf8 {
        let ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
            || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        if !ok { return "session id may hold only letters, digits, '.', '_' and '-'" }
    }
    return nil
}
