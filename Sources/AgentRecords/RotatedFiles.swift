import AgentSupport
import Glibc

/// How a rotated record file set is named: `BASE.YYYYMMDDTHHMMSSZ[-N][.gz]` beside `BASE`. The
/// file output writes these names; verify and replay read the set back in rotation order.
package enum RotatedFiles {
    /// The rotated files of `path`, oldest first (their names sort in time order).
    package static func files(of path: String) -> [String] {
        let (dir, base) = TrustedDirectory.split(path)
        // Reading only (verify): by path. Bare names for a bare path, as given.
        let prefix = path.contains("/") ? (dir == "/" ? "/" : dir + "/") : ""
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var entries: [String] = []
        while let e = readdir(d) {
            entries.append(withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) })
        }
        return names(of: base, in: entries).map { prefix + $0 }
    }

    /// Of `names`, the rotated files of `base` (`BASE.YYYYMMDDTHHMMSSZ[-N][.gz]`), oldest first.
    package static func names(of base: String, in entries: [String]) -> [String] {
        let prefix = base + "."
        return entries.filter { $0.hasPrefix(prefix) && !$0.hasSuffix(".tmp") && isStamp($0.dropFirst(prefix.count)) }
            .sorted { rotationOrder($0) < rotationOrder($1) }
    }

    /// Whether `rest` starts like a rotation stamp: `YYYYMMDDT`, at least 16 characters.
    package static func isStamp(_ rest: Substring) -> Bool {
        rest.count >= 16 && rest.prefix(8).allSatisfy(\.isNumber) && rest.dropFirst(8).first == "T"
    }

    /// Sort key: the stamp, then the collision counter as a number.
    private static func rotationOrder(_ name: String) -> (String, Int) {
        var n = name
        if n.hasSuffix(".gz") { n.removeLast(3) }
        guard let dash = n.lastIndex(of: "-"), let k = Int(n[n.index(after: dash)...]) else { return (n, 0) }
        return (String(n[..<dash]), k)
    }

    /// `YYYYMMDDTHHMMSSZ` (UTC).
    package static func stamp(_ ns: Int64) -> String {
        var t = time_t(ns / 1_000_000_000)
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tm.tm_year + 1900)\(two(tm.tm_mon + 1))\(two(tm.tm_mday))T\(two(tm.tm_hour))\(two(tm.tm_min))\(two(tm.tm_sec))Z"
    }
}
