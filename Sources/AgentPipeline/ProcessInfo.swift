/// What the daemon knows of one process of a session. Its `process` JSON (everything but the
/// thread id) is rendered once per exec and reused for every record the process makes.
public final class ProcessInfo {
    public let pid: UInt32
    /// CLOCK_BOOTTIME start of the process; with pid it names the process across pid reuse.
    package var startNs: UInt64
    package let entityID: String
    package var ppid: UInt32
    package var parentEntityID: String
    package var parentExe: [UInt8]
    package var uid: UInt32
    package var gid: UInt32
    package var euid: UInt32
    package var loginuid: UInt32
    package var auditSession: UInt32
    package var comm: [UInt8]
    package var exe: [UInt8]
    /// argv strings, each NUL-terminated, as the kernel laid them out.
    package var args: [UInt8]
    package var argsTruncated: Bool
    package var cwd: [UInt8]?
    /// The executed file: its identity and what it is (written on process.exec records only).
    package var image: ExeImage?
    package var sessionCgid: UInt64
    /// Where the daemon learned of the process: "kernel", or "procfs" for one found running.
    public var source: StaticString
    /// Whether `startNs` is only as precise as /proc's clock ticks (found running).
    package var approximateStart: Bool
    /// For a process found running: CLOCK_BOOTTIME just before /proc was read. An exec the
    /// kernel reports from before then is already what the procfs record shows.
    package var adoptedAtNs: UInt64 = 0
    var json: [UInt8] = []
    /// The process's fields as rules compare them, built at the first rule that asks and kept
    /// until the next exec (render clears them): a process makes many records.
    var ruleValues: [RuleValue?] = []

    init(pid: UInt32, startNs: UInt64, entityID: String, ppid: UInt32, parentEntityID: String, parentExe: [UInt8],
         uid: UInt32, gid: UInt32, euid: UInt32, loginuid: UInt32, auditSession: UInt32, comm: [UInt8], exe: [UInt8],
         args: [UInt8], argsTruncated: Bool, cwd: [UInt8]?, sessionCgid: UInt64, source: StaticString, approximateStart: Bool) {
        self.pid = pid
        self.startNs = startNs
        self.entityID = entityID
        self.ppid = ppid
        self.parentEntityID = parentEntityID
        self.parentExe = parentExe
        self.uid = uid
        self.gid = gid
        self.euid = euid
        self.loginuid = loginuid
        self.auditSession = auditSession
        self.comm = comm
        self.exe = exe
        self.args = args
        self.argsTruncated = argsTruncated
        self.cwd = cwd
        self.sessionCgid = sessionCgid
        self.source = source
        self.approximateStart = approximateStart
    }

    /// Renders the `process` fields (after `"tid":N,`) once; `clock` turns boot time to wall time.
    func render(clock: WallClock) {
        if !ruleValues.isEmpty {
            for i in ruleValues.indices { ruleValues[i] = nil }
        }
        var j = JSONBuffer(capacity: 256 + args.count + exe.count)
        j.key("entity_id"); j.string(entityID)
        j.raw(","); j.key("pid"); j.uint(UInt64(pid))
        j.raw(","); j.key("ppid"); j.uint(UInt64(ppid))
        j.raw(","); j.key("uid"); j.uint(UInt64(uid))
        j.raw(","); j.key("gid"); j.uint(UInt64(gid))
        j.raw(","); j.key("euid"); j.uint(UInt64(euid))
        if loginuid != UInt32.max { j.raw(","); j.key("auid"); j.uint(UInt64(loginuid)) }
        if auditSession != UInt32.max { j.raw(","); j.key("audit_session_id"); j.uint(UInt64(auditSession)) }
        j.raw(","); j.key("comm"); j.string(comm)
        j.raw(","); j.key("exe"); j.string(exe)
        j.raw(","); j.key("argv"); j.byte(UInt8(ascii: "["))
        var first = true
        args.withUnsafeBytes { a in
            var start = 0
            for i in 0..<a.count where a[i] == 0 {
                if !first { j.raw(",") }
                first = false
                j.string(UnsafeRawBufferPointer(rebasing: a[start..<i]))
                start = i + 1
            }
            if start < a.count {  // a last string cut short by truncation
                if !first { j.raw(",") }
                j.string(UnsafeRawBufferPointer(rebasing: a[start..<a.count]))
            }
        }
        j.raw("]")
        j.raw(","); j.key("argv_truncated"); j.bool(argsTruncated)
        if let cwd { j.raw(","); j.key("cwd"); j.string(cwd) }
        j.raw(","); j.key("start_time"); j.timestamp(unixNanoseconds: clock.wall(bootNs: startNs))
        j.raw(","); j.key("source"); j.string(String(describing: source))
        j.raw(","); j.key("parent"); j.byte(UInt8(ascii: "{"))
        j.key("entity_id"); j.string(parentEntityID)
        j.raw(","); j.key("pid"); j.uint(UInt64(ppid))
        j.raw(","); j.key("exe"); j.string(parentExe)
        j.raw("}")
        json = j.bytes
    }
}

import AgentDetector
import AgentRecords
import AgentSupport
import Glibc
