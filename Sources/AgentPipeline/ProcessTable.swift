import AgentSupport
import CAgentEvents
import Glibc

/// The processes of all sessions, keyed by pid, kept right by exec, fork and exit records and
/// seeded from /proc for processes that were running before the daemon saw them.
public final class ProcessTable {
    public private(set) var byPID: [UInt32: ProcessInfo] = [:]
    let bootID: String
    let clockTicks: UInt64
    /// Per session (cgroup id): the files it opened for writing lately (`process.exe_written`).
    private var written: [UInt64: WrittenFiles] = [:]
    /// Who drives each pseudo-terminal a session's shells read (`process.stdin.driver`).
    var ptyDrivers = PtyDrivers()

    public init(bootID: String = ProcessTable.readBootID()) {
        self.bootID = bootID
        clockTicks = UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))
    }

    public var count: Int { byPID.count }

    /// Exact start times (CLOCK_BOOTTIME ns) by pid, from the kernel's task iterator, taken when
    /// the daemon adopts running sessions. /proc rounds starts to a clock tick; with these an
    /// adopted process keeps the entity id an earlier daemon gave it.
    package var exactStarts: [UInt32: UInt64] = [:]

    /// The start of `pid` from the exact snapshot when /proc agrees with it (the snapshot may
    /// predate a pid reuse), else /proc's tick-rounded one.
    func bestStart(pid: UInt32, ticks: UInt64?) -> (ns: UInt64, exact: Bool) {
        let approx = ticks.map { $0 * 1_000_000_000 / clockTicks }
        if let exact = exactStarts[pid] {
            guard let approx else { return (exact, true) }
            let tick = 1_000_000_000 / clockTicks
            let diff = exact > approx ? exact - approx : approx - exact
            if diff <= 2 * tick { return (exact, true) }
        }
        return (approx ?? 0, false)
    }

    public static func readBootID() -> String {
        let raw = (try? readFile("/proc/sys/kernel/random/boot_id")) ?? ""
        let hex = raw.filter { $0.isHexDigit }
        return hex.isEmpty ? "000000000000" : String(hex.prefix(12))
    }

    /// `BOOT-STARTNS-PID`: unique across pid reuse (start time) and reboots (boot id).
    package func entityID(pid: UInt32, startNs: UInt64) -> String {
        "\(bootID)-\(String(startNs, radix: 16))-\(pid)"
    }

    /// The entry for (pid, start), or nil when the pid is unknown or now names another process.
    public func lookup(pid: UInt32, startNs: UInt64) -> ProcessInfo? {
        guard let p = byPID[pid] else { return nil }
        if p.startNs == startNs { return p }
        // Found in /proc: its start is only known to a clock tick; the first kernel record
        // makes it exact.
        if p.approximateStart {
            let tick = 1_000_000_000 / clockTicks
            let diff = p.startNs > startNs ? p.startNs - startNs : startNs - p.startNs
            if diff <= 2 * tick {
                p.startNs = startNs
                p.approximateStart = false
                return p
            }
        }
        return nil
    }

    func parentInfo(ppid: UInt32, parentStartNs: UInt64) -> (String, [UInt8]) {
        if let parent = lookup(pid: ppid, startNs: parentStartNs) { return (parent.entityID, parent.exe) }
        return (entityID(pid: ppid, startNs: parentStartNs), Self.procExe(Int32(ppid)) ?? [])
    }

    /// A process image replaced by exec: returns the entry, the previous exe, if known, and
    /// whether the exec happened before the process was read from /proc at adoption, so that its
    /// procfs record already shows it (written again, it would be a duplicate).
    func exec(_ e: agent_exec, exe exePath: UnsafeRawBufferPointer, cwd: UnsafeRawBufferPointer, args: UnsafeRawBufferPointer, clock: WallClock) -> (ProcessInfo, [UInt8]?, Bool) {
        let pid = e.hdr.pid
        let comm = Self.cString(e.proc.comm)
        let exe = Array(exePath)
        let previous = lookup(pid: pid, startNs: e.proc.start_ns)
        let shownByAdoption = previous.map { $0.adoptedAtNs != 0 && e.hdr.ktime_ns < $0.adoptedAtNs } ?? false
        let (parentID, parentExe) = previous.map { ($0.parentEntityID, $0.parentExe) }
            ?? parentInfo(ppid: e.proc.ppid, parentStartNs: e.proc.parent_start_ns)
        let p = previous ?? ProcessInfo(
            pid: pid, startNs: e.proc.start_ns, entityID: entityID(pid: pid, startNs: e.proc.start_ns), ppid: e.proc.ppid,
            parentEntityID: parentID, parentExe: parentExe, uid: 0, gid: 0, euid: 0, loginuid: 0, auditSession: 0,
            comm: [], exe: [], args: [], argsTruncated: false, cwd: nil, sessionCgid: e.hdr.session_cgid,
            source: "kernel", approximateStart: false)
        let previousExe = previous?.exe
        p.ppid = e.proc.ppid
        p.uid = e.proc.uid
        p.gid = e.proc.gid
        p.euid = e.proc.euid
        p.loginuid = e.proc.loginuid
        p.auditSession = e.proc.sessionid
        p.comm = comm
        p.exe = exe
        p.args = Array(args)
        p.cwd = cwd.isEmpty ? nil : Array(cwd)
        p.argsTruncated = e.hdr.flags & UInt8(AGENT_F_ARGS_TRUNCATED.rawValue) != 0
        var image = ExeImage(e)
        if image.known {
            image.writtenBy = written[e.hdr.session_cgid]?.writer(dev: image.dev, ino: image.ino, nowNs: e.hdr.ktime_ns)
        }
        p.image = image
        p.source = "kernel"
        p.adoptedAtNs = 0
        p.sessionCgid = e.hdr.session_cgid
        p.render(clock: clock)
        byPID[pid] = p
        return (p, previousExe, shownByAdoption)
    }

    /// A new process: it starts as a copy of its parent's image.
    func fork(_ f: agent_fork, clock: WallClock) {
        let parent = lookup(pid: f.hdr.pid, startNs: f.proc.start_ns) ?? adopt(pid: f.hdr.pid, startNs: f.proc.start_ns, session: f.hdr.session_cgid, clock: clock)
        let child = ProcessInfo(
            pid: f.child_pid, startNs: f.child_start_ns, entityID: entityID(pid: f.child_pid, startNs: f.child_start_ns),
            ppid: f.hdr.pid, parentEntityID: parent.entityID, parentExe: parent.exe, uid: parent.uid, gid: parent.gid,
            euid: parent.euid, loginuid: parent.loginuid, auditSession: parent.auditSession, comm: parent.comm,
            exe: parent.exe, args: parent.args, argsTruncated: parent.argsTruncated, cwd: parent.cwd,
            sessionCgid: f.hdr.session_cgid, source: "kernel", approximateStart: false)
        child.image = parent.image
        child.render(clock: clock)
        byPID[f.child_pid] = child
    }

    /// The entry for a record's process, adopting it from /proc when the daemon never saw it
    /// start (it was running before, or its start was lost).
    func process(pid: UInt32, startNs: UInt64, session: UInt64, clock: WallClock) -> ProcessInfo {
        lookup(pid: pid, startNs: startNs) ?? adopt(pid: pid, startNs: startNs, session: session, clock: clock)
    }

    package func remove(pid: UInt32) {
        byPID[pid] = nil
    }

    /// Builds an entry from /proc. `startNs` of 0 means: take it from /proc/PID/stat.
    @discardableResult
    package func adopt(pid: UInt32, startNs: UInt64, session: UInt64, clock: WallClock) -> ProcessInfo {
        let readAt = WallClock.bootNow()
        let stat = Self.procStat(Int32(pid))
        let best = bestStart(pid: pid, ticks: stat?.startTicks)
        let start = startNs != 0 ? startNs : best.ns
        let ppid = stat?.ppid ?? 0
        let parentStart = bestStart(pid: ppid, ticks: Self.procStat(Int32(ppid))?.startTicks).ns
        let (parentID, parentExe) = parentInfo(ppid: ppid, parentStartNs: parentStart)
        let status = Self.procStatus(Int32(pid))
        let (image, exe) = ExeImage.fromProc(pid: pid, link: Self.procExe(Int32(pid)))
        let p = ProcessInfo(
            pid: pid, startNs: start, entityID: entityID(pid: pid, startNs: start), ppid: ppid,
            parentEntityID: parentID, parentExe: parentExe,
            uid: status.uid, gid: status.gid, euid: status.euid,
            loginuid: (try? readFile("/proc/\(pid)/loginuid")).flatMap { UInt32($0.trimmingCharacters()) } ?? UInt32.max,
            auditSession: (try? readFile("/proc/\(pid)/sessionid")).flatMap { UInt32($0.trimmingCharacters()) } ?? UInt32.max,
            comm: stat?.comm ?? [], exe: exe ?? [],
            args: (try? readBytes("/proc/\(pid)/cmdline", limit: Int(AGENT_ARGS_MAX))) ?? [], argsTruncated: false,
            cwd: Self.readLink("/proc/\(pid)/cwd"), sessionCgid: session, source: "procfs",
            approximateStart: startNs == 0 && !best.exact)
        p.image = image
        p.adoptedAtNs = readAt
        p.render(clock: clock)
        byPID[pid] = p
        return p
    }

    static func cString<T>(_ tuple: T) -> [UInt8] {
        withUnsafeBytes(of: tuple) { Array($0.prefix(while: { $0 != 0 })) }
    }

    static func readLink(_ path: String) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { readlink(path, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
        return n > 0 ? Array(buf[0..<n]) : nil
    }

    static func procExe(_ pid: Int32) -> [UInt8]? { pid > 0 ? readLink("/proc/\(pid)/exe") : nil }

    /// comm, ppid and start time (clock ticks since boot) from /proc/PID/stat.
    static func procStat(_ pid: Int32) -> (comm: [UInt8], ppid: UInt32, startTicks: UInt64)? {
        guard pid > 0, let b = try? readBytes("/proc/\(pid)/stat") else { return nil }
        // comm is in parentheses and may itself hold ')' or spaces: cut at the last ')'.
        guard let open = b.firstIndex(of: UInt8(ascii: "(")), let close = b.lastIndex(of: UInt8(ascii: ")")), close > open else { return nil }
        let comm = Array(b[(open + 1)..<close])
        let rest = String(decoding: b[(close + 1)...], as: UTF8.self).split(separator: " ")
        // rest[0] is state (field 3); ppid is field 4, starttime field 22.
        guard rest.count > 19, let ppid = UInt32(rest[1]), let start = UInt64(rest[19]) else { return nil }
        return (comm, ppid, start)
    }

    static func procStatus(_ pid: Int32) -> (uid: UInt32, gid: UInt32, euid: UInt32) {
        var uid: UInt32 = 0, gid: UInt32 = 0, euid: UInt32 = 0
        guard let text = try? readFile("/proc/\(pid)/status") else { return (0, 0, 0) }
        for line in text.split(separator: "\n") {
            let f = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            if f.first == "Uid:", f.count > 2 { uid = UInt32(f[1]) ?? 0; euid = UInt32(f[2]) ?? 0 }
            if f.first == "Gid:", f.count > 1 { gid = UInt32(f[1]) ?? 0 }
        }
        return (uid, gid, euid)
    }
}

extension ProcessTable {
    /// Forgets the processes of a session that ended, and what it wrote.
    package func removeSession(_ cgid: UInt64) {
        byPID = byPID.filter { $0.value.sessionCgid != cgid }
        written[cgid] = nil
        ptyDrivers.forget(session: cgid)
    }

    /// A file.open record: a file a session opened for writing is remembered by its identity,
    /// with its writer, for `process.exe_written` of a later exec of it.
    package func opened(_ o: agent_open, by p: ProcessInfo) {
        guard o.ret >= 0, o.id.ino != 0 || o.id.dev != 0, WrittenFiles.isWrite(o.flags) else { return }
        written[o.hdr.session_cgid, default: WrittenFiles()].note(dev: o.id.dev, ino: o.id.ino, ktimeNs: o.hdr.ktime_ns, writer: p.exe)
    }

    /// What the standard descriptors of an exec were, with the driver of a shell's terminal.
    package func stdio(_ e: agent_exec, of p: ProcessInfo) -> StdioInfo {
        var stdio = StdioInfo(e)
        if stdio.types.0 == UInt8(AGENT_STDIO_TTY.rawValue), PtyDrivers.ptsIndex(e.stdin_rdev) != nil, PtyDrivers.isShell(p) {
            stdio.driver = ptyDrivers.driver(of: e.stdin_rdev, for: p, nowNs: e.hdr.ktime_ns, table: self)
        }
        return stdio
    }
}
