import AgentRecords
import AgentSupport
import CLibdeflate
import Dispatch
import Glibc

/// How a file sink writes, rotates and keeps its files.
public struct FileSettings: Sendable, Equatable {
    /// The file records are appended to; "-" for standard output (never rotated).
    package var path = "/var/log/agentwatch/events.ndjson"
    /// Rotate before the file would exceed this many bytes (0: never by size).
    public var rotateBytes = 100 << 20
    /// Rotate a non-empty file this many seconds after it was started (0: never by time).
    public var rotateIntervalS = 86_400
    /// Rotated files kept (the oldest beyond this are removed; 0: keep all).
    public var retain = 10
    /// gzip rotated files, in the background.
    public var compress = true
    /// Mode and group of new files (and of the directory, with x for the group).
    package var mode: mode_t = 0o640
    public var group: String? = "adm"
    /// fdatasync at most this often, in ms (0: leave it to the kernel).
    package var fsyncIntervalMs = 1000

    package init() {}
    public init(path: String) { self.path = path }
}

/// NDJSON records appended to a file: rotated by size and time into `PATH.YYYYMMDDTHHMMSSZ`
/// (gzipped in the background when `compress`), the oldest removed beyond `retain`, reopened on
/// request (after logrotate moved it). A write that fails part way is cut back to the last whole
/// line, so a line is never half written into the middle of the file; the rest stays with the
/// worker. The hash chain simply continues from one file to the next. Every file is opened,
/// renamed and removed through the file's `TrustedDirectory`, never by path.
public final class FileTransport: OutputTransport {
    package let settings: FileSettings
    public let description: String
    /// What the file ended with when first opened (see `RecordOutput`).
    package let chainTail: RecordTail?
    /// What the start found of rotations an earlier run left unfinished, and did about it.
    package let leftovers: RotationLeftovers
    /// The file's directory, checked at start and again at each open; nil for standard output.
    private var directory: TrustedDirectory?
    private let directoryPath: String
    /// The file's name in `directory`.
    private let name: String
    private let purpose: String
    private var fd: Int32 = -1
    private var size = 0
    /// When the current file was started (wall clock ns), for time rotation.
    private var startedNs: Int64 = 0
    private let gid: gid_t?
    package private(set) var rotations = 0
    private var lastStamp = ""
    private var lastStampCount = 0
    private let isStdout: Bool
    /// Compression runs here, one file at a time, off the worker's thread.
    private let compressor = DispatchQueue(label: "agentwatch-compress", qos: .utility)

    /// Checks (or makes) the file's directory, finishes what an interrupted rotation left (see
    /// `leftovers`), reads the chain tail of an existing file and ends a last line cut short by a
    /// crash with a newline, so the stream can continue it. Opening is `open()`'s job.
    /// `purpose` names the output in messages ("output main").
    public init(settings: FileSettings, purpose: String = "output") throws(AgentError) {
        self.settings = settings
        self.purpose = purpose
        isStdout = settings.path == "-"
        description = isStdout ? "standard output" : settings.path
        if let g = settings.group, !isStdout {
            guard let gr = getgrnam(g) else {
                throw AgentError("\(purpose) \(settings.path): group '\(g)' does not exist: create it or set the sink's group")
            }
            gid = gr.pointee.gr_gid
        } else {
            gid = nil
        }
        if isStdout {
            chainTail = nil
            leftovers = RotationLeftovers()
            directory = nil
            directoryPath = ""
            name = ""
            return
        }
        let (dirPath, name) = TrustedDirectory.split(settings.path)
        guard TrustedDirectory.isName(name) else {
            throw AgentError("\(purpose): \(settings.path) does not name a file: set a path that ends with the file's name")
        }
        let dir = try Self.checkDirectory(dirPath, purpose: purpose, group: gid)
        if let st = dir.status(name), st.st_mode & S_IFMT != S_IFREG {
            let what = st.st_mode & S_IFMT == S_IFLNK ? "a symbolic link" : "not a regular file"
            throw AgentError("\(purpose): \(settings.path) is \(what): remove it or choose another path")
        }
        directory = dir
        directoryPath = dirPath
        self.name = name
        let (found, uncompressed) = Self.finishRotations(dir, base: name, compress: settings.compress)
        leftovers = found
        // Read by path: the name was just found a regular file in a directory only root can change.
        let tail = RecordChain.tail(path: settings.path)
        if !tail.endsWithNewline {
            let fd = dir.open(name, O_WRONLY | O_APPEND)
            if fd >= 0 {
                var nl = UInt8(ascii: "\n")
                _ = Glibc.write(fd, &nl, 1)
                Glibc.close(fd)
            }
        }
        chainTail = tail
        if !uncompressed.isEmpty {
            // As rotate would have: in the background, then retention.
            let retain = settings.retain
            compressor.async {
                for n in uncompressed { Self.gzip(dir, n) }
                Self.prune(dir, base: name, retain: retain)
            }
        }
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
        guard !directoryPath.isEmpty else { return }
        // Again at each open (rotation, reopen, a retry): a directory removed, replaced or
        // loosened since the start is seen, and never written into unseen.
        let directory = try Self.checkDirectory(directoryPath, purpose: purpose, group: gid)
        self.directory = directory
        let f = directory.open(name, O_WRONLY | O_APPEND | O_CREAT, mode: settings.mode)
        guard f >= 0 else {
            let e = errno
            if e == ELOOP || e == EINVAL {
                throw AgentError("cannot open \(purpose) \(settings.path): it is \(e == ELOOP ? "a symbolic link" : "not a regular file"): remove it or choose another path")
            }
            throw AgentError("cannot open \(purpose) \(settings.path): \(String(cString: strerror(e)))")
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

    /// A directory made here is 0750 with the files' group, so that group reaches them.
    private static func checkDirectory(_ path: String, purpose: String, group: gid_t?) throws(AgentError) -> TrustedDirectory {
        try TrustedDirectory(path, purpose: purpose, create: 0o750, group: group)
    }

    package func close() {
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
                RecorderLine.forEach(in: UnsafeRawBufferPointer(rebasing: lines[done...])) { line in
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
    package func maintain() throws(DeliveryFailure) {
        if fd >= 0 && timeRotationDue() { try rotate(delivered: 0) }
    }

    package func flush() throws(DeliveryFailure) {
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
        let off = writeFully(fd, chunk)
        if off < chunk.count {
            let reason = errno != 0 ? String(cString: strerror(errno)) : "no progress"
            // Cut back to the last whole line written, so the file never holds half a line.
            var whole = off
            while whole > 0 && chunk[whole - 1] != 0x0A { whole -= 1 }
            if whole < off && !isStdout { _ = ftruncate(fd, off_t(size + whole)) }
            size += whole
            throw DeliveryFailure(delivered: alreadyDelivered + whole, reason: "writing \(description): \(reason)")
        }
        size += off
    }

    /// Moves the current file aside and starts a new one.
    private func rotate(delivered: Int) throws(DeliveryFailure) {
        _ = fdatasync(fd)
        // PATH.STAMP, then PATH.STAMP-1, -2... within one second: always a higher number than
        // the last, even when retention removed that one, so names keep the order of rotation.
        guard let dir = directory else { return }
        let stamp = RotatedFiles.stamp(WallClock.realtimeNs())
        var n = stamp == lastStamp ? lastStampCount + 1 : 0
        func rotated(_ n: Int) -> String { name + "." + stamp + (n == 0 ? "" : "-" + String(n)) }
        while dir.exists(rotated(n)) || dir.exists(rotated(n) + ".gz") || dir.exists(rotated(n) + ".gz.tmp") { n += 1 }
        let target = rotated(n)
        lastStamp = stamp
        lastStampCount = n
        guard dir.rename(name, to: target) else {
            throw DeliveryFailure(delivered: delivered, reason: "rotating \(description): \(String(cString: strerror(errno)))")
        }
        close()
        rotations += 1
        do {
            try open()
        } catch {
            throw DeliveryFailure(delivered: delivered, reason: error.message)
        }
        let base = name
        let retain = settings.retain
        if settings.compress {
            compressor.async {
                Self.gzip(dir, target)
                Self.prune(dir, base: base, retain: retain)
            }
        } else {
            Self.prune(dir, base: base, retain: retain)
        }
    }

    /// Waits for the compression of rotated files to finish (tests, shutdown).
    package func waitForCompression() { compressor.sync {} }

    /// `NAME.gz` from `NAME` in `dir` (`compress`), written to `NAME.gz.tmp` first (made new: a
    /// leftover there is removed, the name and never what it may point to). Crash-safe order:
    /// the compressed copy is complete and synced before it is renamed to `NAME.gz`, and that
    /// rename is synced before the original is removed, so a `NAME.gz` beside `NAME` is complete
    /// and the original can go (what `finishRotations` does at the next start).
    @discardableResult
    static func gzip(_ dir: TrustedDirectory, _ name: String) -> Bool {
        let src = dir.open(name, O_RDONLY)
        guard src >= 0 else { return false }
        defer { Glibc.close(src) }
        var st = stat()
        fstat(src, &st)
        let tmp = name + ".gz.tmp"
        var out = dir.open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode: st.st_mode & 0o777)
        if out < 0 && errno == EEXIST {
            dir.unlink(tmp)
            out = dir.open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode: st.st_mode & 0o777)
        }
        guard out >= 0 else { return false }
        // The rotated file's group and mode, whatever the umask.
        _ = fchown(out, uid_t.max, st.st_gid)
        _ = fchmod(out, st.st_mode & 0o777)
        let ok = Self.compress(from: src, to: out)
        let synced = ok && fsync(out) == 0
        Glibc.close(out)
        guard synced && dir.rename(tmp, to: name + ".gz") else {
            dir.unlink(tmp)
            return false
        }
        dir.sync()
        dir.unlink(name)
        return true
    }

    /// How much of a rotated file one gzip member holds.
    /// 1 MiB: the ratio is that of a whole-file stream within 1%, and the two buffers (read and
    /// compressed) stay small beside the daemon's peak memory.
    static let gzipMemberBytes = 1 << 20

    /// Copies `src` to `out` as gzip: one member per `gzipMemberBytes` read (a file of several
    /// members is one gzip file to zlib, gzip(1) and Python), each compressed whole by
    /// libdeflate at level 1. On NDJSON records that is some 1.5 ns a byte against zlib's 7 at
    /// level 6, and the files come out smaller; the compression runs on the laptop beside the
    /// agent at every rotation, so its CPU is what matters. False on a read, write or
    /// compression error.
    static func compress(from src: Int32, to out: Int32) -> Bool {
        guard let compressor = libdeflate_alloc_compressor(1) else { return false }
        defer { libdeflate_free_compressor(compressor) }
        let chunk = gzipMemberBytes
        let bound = libdeflate_gzip_compress_bound(compressor, chunk)
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: bound, alignment: 16)
        defer { input.deallocate(); output.deallocate() }
        var empty = true
        while true {
            // A full chunk, unless the file ends first.
            var got = 0
            while got < chunk {
                let n = read(src, input.baseAddress! + got, chunk - got)
                if n < 0 && errno == EINTR { continue }
                if n < 0 { return false }
                if n == 0 { break }
                got += n
            }
            // An empty file still becomes a (one-member) gzip file.
            if got == 0 && !empty { return true }
            empty = false
            let size = libdeflate_gzip_compress(compressor, input.baseAddress, got, output.baseAddress, bound)
            guard size > 0, writeFully(out, UnsafeRawBufferPointer(rebasing: output[0..<size])) == size else { return false }
            if got < chunk { return true }
        }
    }

    /// Removes the oldest rotated files of `base` in `dir` beyond `retain`.
    static func prune(_ dir: TrustedDirectory, base: String, retain: Int) {
        guard retain > 0 else { return }
        for old in RotatedFiles.names(of: base, in: dir.names()).dropLast(retain) { dir.unlink(old) }
    }

    /// What an interrupted rotation left beside `base`, finished or removed: partial
    /// compressions (`*.gz.tmp`) go; an uncompressed rotated file whose `.gz` exists goes (the
    /// `.gz` is complete, see `gzip`); the uncompressed ones left are returned to be compressed
    /// when `compress` is on. Without this, `verify PATH*` reads a file twice (a false alarm).
    static func finishRotations(_ dir: TrustedDirectory, base: String, compress: Bool) -> (RotationLeftovers, [String]) {
        var found = RotationLeftovers()
        let prefix = base + "."
        for n in dir.names() where n.hasPrefix(prefix) && n.hasSuffix(".gz.tmp")
            && RotatedFiles.isStamp(n.dropFirst(prefix.count).dropLast(7)) && dir.unlink(n) {
            found.removedPartial.append(dir.path(of: n))
        }
        let rotated = RotatedFiles.names(of: base, in: dir.names())
        let all = Set(rotated)
        var uncompressed: [String] = []
        for n in rotated where !n.hasSuffix(".gz") {
            if all.contains(n + ".gz") {
                if dir.unlink(n) { found.removedCompressed.append(dir.path(of: n)) }
            } else if compress {
                uncompressed.append(n)
                found.compressing.append(dir.path(of: n))
            }
        }
        return (found, uncompressed)
    }

}

/// What a file output's start found of rotations an earlier run did not finish (a stop during
/// compression) and did about it, for the daemon to log. Paths in full.
package struct RotationLeftovers: Sendable, Equatable {
    /// Partial compressions (`PATH.STAMP.gz.tmp`) removed.
    package var removedPartial: [String] = []
    /// Uncompressed rotated files removed because their complete `.gz` was there.
    package var removedCompressed: [String] = []
    /// Uncompressed rotated files being compressed in the background (with `compress` on).
    package var compressing: [String] = []

    package init() {}

    package var isEmpty: Bool { removedPartial.isEmpty && removedCompressed.isEmpty && compressing.isEmpty }
}
