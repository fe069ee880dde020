import AgentSupport
import CAgentEvents
import Glibc

/// A session root given with `*` (in `session_roots`): every cgroup directory that matches it
/// is a session root, found when it appears, and each directory below one is a session. Made
/// for systemd user scopes, whose cgroups live below the user's manager:
/// `user.slice/user-*.slice/user@*.service/agentwatch.slice`.
///
/// A component is either literal or holds one `*`, which stands for any run of bytes except
/// `/` (so `user-*.slice` is `user-` ... `.slice`). The kernel matches new directories against
/// the same parts at mkdir (bpf/roots.bpf.c); `matches` here is its twin for directories that
/// existed before the daemon started.
package struct RootPattern: Sendable, Equatable, CustomStringConvertible {
    package struct Part: Sendable, Equatable {
        package let prefix: [UInt8]
        package let suffix: [UInt8]
        package let wildcard: Bool

        package func matches<C: Collection<UInt8>>(_ name: C) -> Bool {
            guard wildcard else { return name.elementsEqual(prefix) }
            return name.count >= prefix.count + suffix.count && name.starts(with: prefix)
                && name.suffix(suffix.count).elementsEqual(suffix)
        }
    }

    /// The pattern below the cgroup2 mount, as configured (without the mount).
    package let text: String
    package let parts: [Part]
    /// The level of a matching root below the hierarchy root.
    package var depth: Int { parts.count }

    package var description: String { text }

    /// Whether a configured session root is a pattern rather than a directory.
    package static func isPattern(_ root: String) -> Bool { root.utf8.contains(UInt8(ascii: "*")) }

    /// Parses `root` (relative to the cgroup2 mount, or absolute below `mount`).
    package init(_ root: String, mount: String) throws(AgentError) {
        var text = root
        if text.hasPrefix("/") {
            guard text.hasPrefix(mount + "/") else {
                throw AgentError("session root pattern \(root) is not below the cgroup2 mount \(mount)")
            }
            text = String(text.dropFirst(mount.count + 1))
        }
        self.parts = try Self.parts(of: text, root: root, checkDepth: true)
        self.text = text
    }

    /// The parts of `text` (a pattern below the mount). `checkDepth` off: only the syntax (the
    /// config check, which does not know the mount an absolute pattern starts with).
    package static func parts(of text: String, root: String, checkDepth: Bool) throws(AgentError) -> [Part] {
        let components = text.split(separator: "/", omittingEmptySubsequences: false)
        guard !components.isEmpty, !checkDepth || components.count <= Int(AGENT_PATTERN_DEPTH) else {
            throw AgentError("session root pattern \(root): 1 to \(AGENT_PATTERN_DEPTH) components below the cgroup2 mount")
        }
        var parts: [Part] = []
        for c in components {
            let bytes = Array(c.utf8)
            if bytes.isEmpty || c == "." || c == ".." {
                throw AgentError("session root pattern \(root): empty, '.' or '..' component")
            }
            if bytes.contains(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "[") }) {
                throw AgentError("session root pattern \(root): only '*' is a wildcard ('?' and '[' are not)")
            }
            let stars = bytes.indices.filter { bytes[$0] == UInt8(ascii: "*") }
            guard stars.count <= 1 else {
                throw AgentError("session root pattern \(root): component '\(c)' holds more than one '*'")
            }
            let part: Part
            if let star = stars.first {
                part = Part(prefix: Array(bytes[..<star]), suffix: Array(bytes[(star + 1)...]), wildcard: true)
            } else {
                part = Part(prefix: bytes, suffix: [], wildcard: false)
            }
            guard part.prefix.count <= Int(AGENT_PATTERN_PART), part.suffix.count <= Int(AGENT_PATTERN_PART) else {
                throw AgentError("session root pattern \(root): component '\(c)' is longer than \(AGENT_PATTERN_PART) bytes on a side of its '*'")
            }
            parts.append(part)
        }
        return parts
    }

    /// The directories below `mount` that match, as absolute paths, sorted.
    package func expand(mount: String) -> [String] {
        var level = [mount]
        for part in parts {
            var next: [String] = []
            for dir in level {
                if !part.wildcard {
                    let path = dir + "/" + String(decoding: part.prefix, as: UTF8.self)
                    if CgroupFS.id(of: path) != nil { next.append(path) }
                    continue
                }
                for name in CgroupFS.subdirectories(of: dir) where part.matches(name.utf8) {
                    next.append(dir + "/" + name)
                }
            }
            level = next
            if level.isEmpty { break }
        }
        return level.sorted()
    }

    /// The pattern as the kernel reads it (struct agent_pattern).
    package func kernelBytes() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: MemoryLayout<agent_pattern>.size)
        let partsAt = MemoryLayout<agent_pattern>.offset(of: \.parts)!
        let partSize = MemoryLayout<agent_pattern_part>.size
        let prefixAt = MemoryLayout<agent_pattern_part>.offset(of: \.prefix)!
        let suffixAt = MemoryLayout<agent_pattern_part>.offset(of: \.suffix)!
        withUnsafeBytes(of: UInt32(parts.count).littleEndian) { out.replaceSubrange(0..<4, with: $0) }
        for (d, part) in parts.enumerated() {
            let at = partsAt + d * partSize
            out[at] = UInt8(part.prefix.count)
            out[at + 1] = UInt8(part.suffix.count)
            out[at + 2] = part.wildcard ? 1 : 0
            out.replaceSubrange((at + prefixAt)..<(at + prefixAt + part.prefix.count), with: part.prefix)
            out.replaceSubrange((at + suffixAt)..<(at + suffixAt + part.suffix.count), with: part.suffix)
        }
        return out
    }
}
