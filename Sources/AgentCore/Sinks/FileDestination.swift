import CZlib
import Dispatch
import Glibc

/// How a file sink writes, rotates and keeps its files.
public struct FileSettings: Sendable, Equatable {
    /// The file records are appended to; "-" for standard output (never rotated).
    public var path = "/var/log/agentwatch/events.ndjson"
    /// Rotate before the file would exceed this many bytes (0: never by size).
    public var rotateBytes = 100 << 20
    /// Rotate a non-empty file this many seconds after it was started (0: never by time).
    public var rotateIntervalS = 86_400
    /// Rotated files kept (the oldest beyond this are removed; 0: keep all).
    public var retain = 10
    /// gzip rotated files, in the background.
    public var compress = true
    /// Mode and group of new files (and of the directory, with x for the group).
    public var mode: mode_t = 0o640
    public var group: String? = "adm"
    /// fdatasync at most this often, in ms (0: leave it to the kernel).
    public var fsyncIntervalMs = 1000

    public init() {}
    public init(path: String) { self.path = path }
}

/// NDJSON records appended to a file: rotated by size and time into `PATH.YYYYMMDDTHHMMSSZ`
/// (gzipped in the background when `compress`), the oldest removed beyond `retain`, reopened on
/// request (after logrotate moved it). A write that fails part way is cut back to the last whole
/// line, so a line is never half written into the middle of the file; the rest stays with the
/// worker. The hash chain simply continues from one file to the next.
public final class FileDestination: RecordDestination {
    public let settings: FileSettings
    public let description: String
    /// What the file ended with when first opened (see `RecordSink`).
    public let chainTail: RecordTail?
    private var fd: Int32 = -1
    private var size = 0
    /// When the current file was started (wall clock ns), for time rotation.
    private var startedNs: Int64 = 0
    private let gid: gid_t?
    public private(set) var rotations = 0
    private var lastStamp = ""
    private var lastStampCount = 0
    private let isStdout: Bool
    /// Compression runs here, one file at a time, off the worker's thread.
    private let compressor = DispatchQueue(label: "agentwatch-compress", qos: .utility)

    /// Reads the chain tail of an existing file and ends a last line cut short by a crash with
    /// a newline, so the stream can continue it. Opening is `open()`'s job.
    public init(settings: FileSettings) throws(AgentError) {
        self.settings = settings
        isStdout = settings.path == "-"
        description = isStdout ? "standard output" : settings.path
        if let g = settings.group, !isStdout {
            guard let gr = getgrnam(g) else {
                throw AgentError("output \(settings.path): group '\(g)' does not exist: create it or set the sink's group")
            }
            gid = gr.pointee.gr_gid
        } else {
            gid = nil
        }
        if isStdout {
            chainTail = nil
            return
        }
        let dir = Self.directory(of: settings.path)
        if !dir.isEmpty {
            // A directory made here is 0750 with the files' group, so that group reaches them.
            let existed = access(dir, F_OK) == 0
            Self.makeDirectories(dir, mode: 0o750)
            if !existed, let gid { _ = chown(dir, uid_t.max, gid) }
        }
        let tail = RecordChain.tail(path: settings.path)
        if !tail.endsWithNewline {
            let fd = Glibc.open(settings.path, O_WRONLY | O_APPEND | O_CLOEXEC)
            if fd >= 0 {
                var nl = UInt8(ascii: "\n")
                _ = Glibc.write(fd, &nl, 1)
                Glibc.close(fd)
            }
        }
        chainTail = tail
    }

    deinit {
        if fd >= 0 && !isStdout { Glibc.close(fd) }
        compressor.sync {}
    }

    public func open() throws(AgentError) {
        guard fd < 0 else { return }
        if isStdout {
            fd = STDOUT_FILENO
            return
        }
        let f = Glibc.open(settings.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, settings.mode)
        guard f >= 0 else {
            throw AgentError("cannot open output \(settings.path): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        fstat(f, &st)
        // A file of ours: owner root (the daemon), the configured group, the configured mode.
        if let gid, st.st_gid != gid { _ = fchown(f, uid_t.max, gid) }
        if st.st_mode & 0o7777 != settings.mode { _ = fchmod(f, settings.mode) }
        fd = f
        size = Int(st.st_size)
        startedNs = size > 0 ? Int64(st.st_mtim.tv_sec) * 1_000_000_000 : WallClock.realtimeNs()
        if size > 0 { startedNs = min(startedNs, Int64(st.st_ctim.tv_sec) * 1_000_000_000) }
    }

    public func close() {
        if fd >= 0 && !isStdout { Glibc.close(fd) }
        fd = -1
    }

    public func deliver(_ lines: UnsafeRawBufferPointer) throws(DeliveryFailure) {
        guard fd >= 0 else { throw DeliveryFailure(delivered: 0, reason: "\(description) is not open") }
        var done = 0
        if timeRotationDue() { try rotate(delivered: 0) }
        while done < lines.count {
            var end = lines.count
            if settings.rotateBytes > 0 && !isStdout && size + (end - done) > settings.rotateBytes {
                // The whole lines that still fit in this file.
                end = done
                var firstLineEnd = lines.count
                RecordLine.forEach(in: UnsafeRawBufferPointer(rebasing: lines[done...])) { line in
                    let lineEnd = line.baseAddress! - lines.baseAddress! + line.count + 1
                    if firstLineEnd == lines.count { firstLineEnd = min(lineEnd, lines.count) }
                    if size + (lineEnd - done) <= settings.rotateBytes { end = lineEnd }
                }
                if end == done {
                    if size > 0 {
                        try rotate(delivered: done)
                        continue
                    }
                    // A line longer than the limit gets a file of its own.
                    end = firstLineEnd
                }
            }
            try writeAll(UnsafeRawBufferPointer(rebasing: lines[done..<end]), alreadyDelivered: done)
            done = end
        }
    }

    /// Rotates when the file is due by time even if nothing is written (the worker's timer).
    public func maintain() throws(DeliveryFailure) {
        if fd >= 0 && timeRotationDue() { try rotate(delivered: 0) }
    }

    public func flush() throws(DeliveryFailure) {
        guard fd >= 0, !isStdout else { return }
        if fdatasync(fd) != 0 && errno != EINVAL {
            throw DeliveryFailure(delivered: 0, reason: "fdatasync \(description): \(String(cString: strerror(errno)))")
        }
    }

    private func timeRotationDue() -> Bool {
        guard !isStdout, size > 0, settings.rotateIntervalS > 0 else { return false }
        return WallClock.realtimeNs() - startedNs >= Int64(settings.rotateIntervalS) * 1_000_000_000
    }

    private func writeAll(_ chunk: UnsafeRawBufferPointer, alreadyDelivered: Int) throws(DeliveryFailure) {
        var off = 0
        while off < chunk.count {
            let n = Glibc.write(fd, chunk.baseAddress! + off, chunk.count - off)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let reason = n < 0 ? String(cString: strerror(errno)) : "no progress"
                // Cut back to the last whole line written, so the file never holds half a line.
                var whole = off
                while whole > 0 && chunk[whole - 1] != 0x0A { whole -= 1 }
                if whole < off && !isStdout { _ = ftruncate(fd, off_t(size + whole)) }
                size += whole
                throw DeliveryFailure(delivered: alreadyDelivered + whole, reason: "writing \(description): \(reason)")
            }
            off += n
        }
        size += off
    }

    /// Moves the current file aside and starts a new one.
    private func rotate(delivered: Int) throws(DeliveryFailure) {
        _ = fdatasync(fd)
        // PATH.STAMP, then PATH.STAMP-1, -2... within one second: always a higher number than
        // the last, even when retention removed that one, so names keep the order of rotation.
        let stamp = Self.stamp(WallClock.realtimeNs())
        var n = stamp == lastStamp ? lastStampCount + 1 : 0
        func name(_ n: Int) -> String { settings.path + "." + stamp + (n == 0 ? "" : "-" + String(n)) }
        while access(name(n), F_OK) == 0 || access(name(n) + ".gz", F_OK) == 0 { n += 1 }
        let target = name(n)
        lastStamp = stamp
        lastStampCount = n
        guard rename(settings.path, target) == 0 else {
            throw DeliveryFailure(delivered: delivered, reason: "rotating \(description): \(String(cString: strerror(errno)))")
        }
        close()
        rotations += 1
        do {
            try open()
        } catch {
            throw DeliveryFailure(delivered: delivered, reason: error.message)
        }
        let path = settings.path
        let retain = settings.retain
        let rotated = target
        if settings.compress {
            compressor.async {
                Self.gzip(rotated)
                Self.prune(path, retain: retain)
            }
        } else {
            Self.prune(path, retain: retain)
        }
    }

    /// Waits for the compression of rotated files to finish (tests, shutdown).
    public func waitForCompression() { compressor.sync {} }

    /// `PATH.gz` from `PATH` with zlib, written to a temporary name first; the original is
    /// removed only once the compressed copy is complete and synced.
    static func gzip(_ path: String) {
        let src = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard src >= 0 else { return }
        defer { Glibc.close(src) }
        var st = stat()
        fstat(src, &st)
        let tmp = path + ".gz.tmp"
        let out = Glibc.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0o777)
        guard out >= 0 else { return }
        _ = fchown(out, uid_t.max, st.st_gid)
        guard let gz = gzdopen(dup(out), "wb6") else { Glibc.close(out); unlink(tmp); return }
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var ok = true
        while true {
            let n = buf.withUnsafeMutableBytes { read(src, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { ok = false; break }
            if n == 0 { break }
            if buf.withUnsafeBytes({ gzwrite(gz, $0.baseAddress, UInt32(n)) }) != Int32(n) { ok = false; break }
        }
        if gzclose(gz) != Z_OK { ok = false }
        if ok && fsync(out) != 0 { ok = false }
        Glibc.close(out)
        if ok && rename(tmp, path + ".gz") == 0 {
            unlink(path)
        } else {
            unlink(tmp)
        }
    }

    /// Removes the oldest rotated files of `path` beyond `retain`.
    static func prune(_ path: String, retain: Int) {
        guard retain > 0 else { return }
        let rotated = rotatedFiles(of: path)
        for old in rotated.dropLast(retain) { unlink(old) }
    }

    /// The rotated files of `path`, oldest first (their names sort in time order).
    public static func rotatedFiles(of path: String) -> [String] {
        let dir = directory(of: path)
        let base = String(path.split(separator: "/").last ?? "") + "."
        guard let d = opendir(dir.isEmpty ? "." : dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard name.hasPrefix(base), !name.hasSuffix(".tmp") else { continue }
            let rest = name.dropFirst(base.count)
            // YYYYMMDDTHHMMSSZ, then maybe -N, then maybe .gz
            guard rest.count >= 16, rest.prefix(8).allSatisfy(\.isNumber), rest.dropFirst(8).first == "T" else { continue }
            names.append(name)
        }
        return names.sorted { rotationOrder($0) < rotationOrder($1) }.map { (dir.isEmpty ? "" : dir + "/") + $0 }
    }

    /// Sort key: the stamp, then the collision counter as a number.
    private static func rotationOrder(_ name: String) -> (String, Int) {
        var n = name
        if n.hasSuffix(".gz") { n.removeLast(3) }
        guard let dash = n.lastIndex(of: "-"), let k = Int(n[n.index(after: dash)...]) else { return (n, 0) }
        return (String(n[..<dash]), k)
    }

    static func directory(of path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    }

    static func makeDirectories(_ path: String, mode: mode_t) {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            mkdir(current, mode)
        }
    }


    /// `YYYYMMDDTHHMMSSZ` (UTC).
    static func stamp(_ ns: Int64) -> String {
        var t = time_t(ns / 1_000_000_000)
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tm.tm_year + 1900)\(two(tm.tm_mon + 1))\(two(tm.tm_mday))T\(two(tm.tm_hour))\(two(tm.tm_min))\(two(tm.tm_sec))Z"
    }
}
