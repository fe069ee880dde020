import AgentRecords
import AgentSupport
import Glibc

/// One agent session: a cgroup directly below a session root, and everything in it.
public final class Session {
    package let id: String
    /// Absolute path of the cgroup directory.
    package let path: String
    /// Path relative to the cgroup2 mount, as /proc/PID/cgroup shows it.
    package let cgroup: String
    public let cgid: UInt64
    package let uid: UInt32
    package let labels: [(key: String, value: String)]
    /// What `~` means in rules for this session: the HOME `agentwatch run` was started with,
    /// then the passwd home of `uid` when different. An agent cannot change either.
    package let homes: [String]
    /// Whether the session existed before the daemon started.
    package let adopted: Bool
    package var startNs: Int64 = 0
    /// Records written for the session, by `RecordType`, for `session.end`.
    package var counts = [UInt64](repeating: 0, count: RecordType.allCases.count)
    /// Times the session was paused because it wrote records faster than the daemon read
    /// them (`overflow: throttle`), and for how long in all.
    package var pauses: UInt64 = 0
    package var pausedNs: Int64 = 0
    /// `"session":{...}`, rendered once.
    package let json: [UInt8]
    /// The credential catalog's files under this session's homes, by identity (`file.known_as`).
    package let identities = FileIdentities()

    public init(id: String, path: String, cgroup: String, cgid: UInt64, uid: UInt32, labels: [(key: String, value: String)], adopted: Bool, home: String? = nil) {
        var homes: [String] = []
        if let home, home.hasPrefix("/") { homes.append(home) }
        if let pw = Self.passwdHome(uid), !homes.contains(pw) { homes.append(pw) }
        self.homes = homes
        self.id = id
        self.path = path
        self.cgroup = cgroup
        self.cgid = cgid
        self.uid = uid
        self.labels = labels
        self.adopted = adopted
        json = SessionObject.render(id: id, cgroup: cgroup, labels: labels)
    }

    static func passwdHome(_ uid: UInt32) -> String? {
        var pw = passwd(), result: UnsafeMutablePointer<passwd>?
        var buf = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &pw, &buf, buf.count, &result) == 0, result != nil, let dir = pw.pw_dir else { return nil }
        let home = String(cString: dir)
        return home.hasPrefix("/") ? home : nil
    }
}

/// Session metadata that `agentwatch run` stores on the cgroup directory as the trusted
/// xattr `trusted.agentwatch.session` (only root can set it): `uid=N` and `label.K=V` lines.
package struct SessionMetadata: Equatable {
    package static let xattr = "trusted.agentwatch.session"
    /// Set by the daemon once it watches the session, so `agentwatch run` can wait for it.
    package static let watchedXattr = "trusted.agentwatch.watched"

    package var uid: UInt32?
    package var labels: [(key: String, value: String)]
    /// The HOME of the user who started the session.
    package var home: String?

    package init(uid: UInt32?, labels: [(key: String, value: String)], home: String? = nil) {
        self.uid = uid
        self.labels = labels
        self.home = home
    }

    package static func == (a: Self, b: Self) -> Bool {
        a.uid == b.uid && a.home == b.home && a.labels.map { $0.key + "=" + $0.value } == b.labels.map { $0.key + "=" + $0.value }
    }

    /// One `key=value` per line. Labels are checked by `validateLabel` before they get here;
    /// a line break that slips through anyway is escaped (`\n`, `\r`, `\\`), so a label can
    /// never forge a line.
    package func encoded() -> [UInt8] {
        var lines: [String] = []
        if let uid { lines.append("uid=\(uid)") }
        if let home { lines.append("home=\(Self.oneLine(home))") }
        for l in labels {
            lines.append("label.\(Self.oneLine(l.key))=\(Self.oneLine(l.value))")
        }
        return Array(lines.joined(separator: "\n").utf8)
    }

    static func oneLine(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func unescape(_ s: Substring) -> String {
        var out = ""
        var escaped = false
        for c in s.unicodeScalars {
            if escaped {
                switch c {
                case "n": out += "\n"
                case "r": out += "\r"
                default: out.unicodeScalars.append(c)
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.unicodeScalars.append(c)
            }
        }
        return out
    }

    package static func decode(_ bytes: [UInt8]) -> SessionMetadata {
        var m = SessionMetadata(uid: nil, labels: [])
        var sawUID = false
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            let k = Self.unescape(line[..<eq]), v = Self.unescape(line[line.index(after: eq)...])
            if k == "uid" {
                // Only the first: the writer puts uid first, before any label.
                if !sawUID { m.uid = UInt32(v) }
                sawUID = true
            } else if k == "home" {
                if m.home == nil, v.hasPrefix("/") { m.home = v }
            } else if k.hasPrefix("label.") {
                m.labels.append((String(k.dropFirst(6)), v))
            }
        }
        return m
    }
}

/// Checks a session label `KEY=VALUE`: a key of 1-64 [A-Za-z0-9._-], a value of at most 256
/// bytes with no control or invisible format characters (`DisplayText.isControl`).
package func validateLabel(_ label: String) -> String? {
    guard let eq = label.firstIndex(of: "=") else { return "write it as KEY=VALUE" }
    let key = label[..<eq], value = label[label.index(after: eq)...]
    if key.isEmpty || key.utf8.count > 64 { return "the key must be 1 to 64 characters" }
    if !key.utf8.allSatisfy(isNameByte) { return "the key may hold only letters, digits, '.', '_' and '-'" }
    if value.utf8.count > 256 { return "the value must be at most 256 bytes" }
    if value.unicodeScalars.contains(where: { DisplayText.isControl($0.value) }) {
        return "the value must not hold control characters (C0, C1) or bidi and invisible format characters"
    }
    return nil
}

/// Checks a session id: 1-64 characters of [A-Za-z0-9._-], not starting with '.'.
package func validateSessionID(_ id: String) -> String? {
    if id.isEmpty || id.utf8.count > 64 { return "session id must be 1 to 64 characters" }
    if id.hasPrefix(".") { return "session id must not start with '.'" }
    if !id.utf8.allSatisfy(isNameByte) { return "session id may hold only letters, digits, '.', '_' and '-'" }
    return nil
}

/// The session id of a session directory named `name` (its bytes): the name itself when it
/// holds only [A-Za-z0-9._-] and does not start with '.' (every id `agentwatch run` makes; a
/// cgroup name may be longer than 64), else every other byte, and a leading '.', written as
/// `%XX`. Reversible (`sessionDirectoryName`), and an escaped id holds '%', which no plain one
/// does: a directory the kernel treats as a session is always recorded under an id that says
/// which directory it was, whatever its maker named it.
package func sessionID(directoryName name: [UInt8]) -> String {
    if isPlainName(name) { return String(decoding: name, as: UTF8.self) }
    let hex = Array("0123456789ABCDEF".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(name.count * 3)
    for (i, c) in name.enumerated() {
        if isNameByte(c) && !(i == 0 && c == UInt8(ascii: ".")) {
            out.append(c)
        } else {
            out += [UInt8(ascii: "%"), hex[Int(c >> 4)], hex[Int(c & 0xF)]]
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// The directory name a session id stands for: the inverse of `sessionID(directoryName:)`;
/// nil for text that is neither a valid id nor a well-formed escaped one.
package func sessionDirectoryName(id: String) -> [UInt8]? {
    let b = Array(id.utf8)
    guard b.contains(UInt8(ascii: "%")) else { return isPlainName(b) ? b : nil }
    var out: [UInt8] = []
    var i = 0
    while i < b.count {
        if b[i] == UInt8(ascii: "%") {
            guard i + 2 < b.count, let v = UInt8(String(decoding: b[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) else { return nil }
            out.append(v)
            i += 3
        } else {
            guard isNameByte(b[i]) else { return nil }
            out.append(b[i])
            i += 1
        }
    }
    return out
}

/// Whether a directory name is its own session id: not empty, [A-Za-z0-9._-] only, no leading '.'.
func isPlainName(_ name: [UInt8]) -> Bool {
    !name.isEmpty && name[0] != UInt8(ascii: ".") && name.allSatisfy(isNameByte)
}

/// A byte allowed in session ids and label keys: [A-Za-z0-9._-].
func isNameByte(_ c: UInt8) -> Bool {
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
        || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
}
