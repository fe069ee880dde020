import CZlib
import Glibc

extension ChainVerifier {
    /// `paths` without what an interrupted rotation leaves beside the records, which a shell
    /// glob (`events.ndjson*`) hands over with them and which would otherwise read as a chain
    /// break: a partial `X.gz.tmp` (the gzip was stopped; `X` still holds the records), and `X`
    /// given together with `X.gz` (stopped after the rename, before `X` was removed). An `X`
    /// identical in content to its `X.gz` is set aside with a note; one that differs is a
    /// conflict (one of the two was changed) and `X.gz`, the copy the daemon keeps, is checked.
    mutating func setAsideLeftovers(_ paths: [String]) -> [String] {
        var kept: [String] = []
        for p in paths {
            if p.hasSuffix(".gz.tmp") {
                let plain = String(p.dropLast(".gz.tmp".count))
                let whereRecords = paths.contains(plain) ? "\(plain) holds its records" : "\(plain), which holds its records, was not given"
                setAside.append(Finding(file: p, line: 0, message: "skipped: a partial compressed copy left by an interrupted rotation, not a record file (\(whereRecords))"))
                continue
            }
            let gz = p + ".gz"
            if paths.contains(gz) {
                if Self.sameRecords(p, gz) {
                    setAside.append(Finding(file: p, line: 0, message: "skipped: a duplicate of \(gz), its compressed copy, with the same records (a rotation stopped before removing it)"))
                } else {
                    conflicts.append(Finding(file: p, line: 0, message: "differs from \(gz), its compressed copy: one of the two was changed (\(gz) is the one checked)"))
                }
                continue
            }
            kept.append(p)
        }
        return kept
    }

    /// Whether two files hold the same bytes once decompressed (zlib reads a plain file as is).
    static func sameRecords(_ a: String, _ b: String) -> Bool {
        guard let ga = gzopen(a, "rb") else { return false }
        defer { gzclose(ga) }
        guard let gb = gzopen(b, "rb") else { return false }
        defer { gzclose(gb) }
        let size = 1 << 20
        var x = [UInt8](repeating: 0, count: size), y = [UInt8](repeating: 0, count: size)
        while true {
            let n = x.withUnsafeMutableBytes { gzread(ga, $0.baseAddress, UInt32(size)) }
            // Read b to the same length: gzread may return less than asked only at the end.
            var m: Int32 = 0
            while m < n {
                let k = y.withUnsafeMutableBytes { gzread(gb, $0.baseAddress! + Int(m), UInt32(Int(n - m))) }
                if k <= 0 { break }
                m += k
            }
            guard n >= 0, m == n else { return false }
            if n == 0 {
                // Both must end here.
                return y.withUnsafeMutableBytes { gzread(gb, $0.baseAddress, 1) } == 0
            }
            guard x[0..<Int(n)] == y[0..<Int(n)] else { return false }
        }
    }
}
