import CAgentEvents

// Kernel records built the way the BPF programs build them (Sources/CAgentEvents/include/
// agent_events.h): fill the C struct, take its bytes, append the variable tail, and put the
// whole length in hdr.size.

/// The session every synthetic record belongs to.
public enum SyntheticSession {
    public static let cgid: UInt64 = 0x4242
    public static let id = "bench"
    public static let cgroup = "/agentwatch/bench"
}

/// A process of the synthetic session.
public struct SyntheticProcess: Sendable {
    public var pid: UInt32
    public var startNs: UInt64
    public var ppid: UInt32
    public var parentStartNs: UInt64
    public var comm: String
    public var exe: String
    public var cwd: String
    public var argv: [String]
    public var uid: UInt32 = 1000
}

@inline(__always)
func rawBytes<T>(of value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}

enum RecordFactory {
    static func header(_ kind: agent_kind, size: Int, pid: UInt32, tid: UInt32, ktime: UInt64, flags: UInt8 = 0) -> agent_hdr {
        var h = agent_hdr()
        h.kind = UInt8(kind.rawValue)
        h.flags = flags
        h.size = UInt16(size)
        h.pid = pid
        h.tid = tid
        h.ktime_ns = ktime
        h.session_cgid = SyntheticSession.cgid
        h.cgroup_id = SyntheticSession.cgid
        return h
    }

    static func proc(_ p: SyntheticProcess) -> agent_proc {
        var r = agent_proc()
        r.start_ns = p.startNs
        r.parent_start_ns = p.parentStartNs
        r.ppid = p.ppid
        r.uid = p.uid
        r.gid = p.uid
        r.euid = p.uid
        r.loginuid = p.uid
        r.sessionid = 3
        withUnsafeMutableBytes(of: &r.comm) { c in
            for (i, b) in p.comm.utf8.prefix(Int(AGENT_COMM_LEN) - 1).enumerated() { c[i] = b }
        }
        return r
    }

    /// sched_process_exec: tail filename | exe | cwd | args (each argv string NUL-terminated).
    static func exec(_ p: SyntheticProcess, ktime: UInt64) -> [UInt8] {
        let filename = Array(p.exe.utf8), exe = Array(p.exe.utf8), cwd = Array(p.cwd.utf8)
        var args: [UInt8] = []
        for a in p.argv { args += Array(a.utf8); args.append(0) }
        var e = agent_exec()
        let size = MemoryLayout<agent_exec>.size + filename.count + exe.count + cwd.count + args.count
        e.hdr = header(AGENT_KIND_EXEC, size: size, pid: p.pid, tid: p.pid, ktime: ktime)
        e.proc = proc(p)
        e.old_tid = p.pid
        e.filename_len = UInt16(filename.count)
        e.exe_len = UInt16(exe.count)
        e.cwd_len = UInt16(cwd.count)
        e.args_len = UInt32(args.count)
        e.args_size = UInt32(args.count)
        e.argc = UInt32(p.argv.count)
        return rawBytes(of: e) + filename + exe + cwd + args
    }

    /// sched_process_fork of a new process: hdr and proc name the parent.
    static func fork(parent: SyntheticProcess, child: SyntheticProcess, ktime: UInt64) -> [UInt8] {
        var f = agent_fork()
        f.hdr = header(AGENT_KIND_FORK, size: MemoryLayout<agent_fork>.size, pid: parent.pid, tid: parent.pid, ktime: ktime)
        f.proc = proc(parent)
        f.child_start_ns = child.startNs
        f.child_pid = child.pid
        return rawBytes(of: f)
    }

    static func exit(_ p: SyntheticProcess, status: Int32, ktime: UInt64) -> [UInt8] {
        var x = agent_exit()
        x.hdr = header(AGENT_KIND_EXIT, size: MemoryLayout<agent_exit>.size, pid: p.pid, tid: p.pid, ktime: ktime)
        x.proc = proc(p)
        x.exit_code = status
        return rawBytes(of: x)
    }

    /// openat/openat2 at syscall exit: tail requested | path.
    static func open(_ p: SyntheticProcess, requested: [UInt8], path: [UInt8], flags: Int32, mode: UInt32,
                     ret: Int64, dfd: Int32, hdrFlags: UInt8, ktime: UInt64) -> [UInt8] {
        var o = agent_open()
        o.hdr = header(AGENT_KIND_OPEN, size: MemoryLayout<agent_open>.size + requested.count + path.count,
                       pid: p.pid, tid: p.pid, ktime: ktime, flags: hdrFlags)
        o.start_ns = p.startNs
        o.uid = p.uid
        o.gid = p.uid
        o.ret = ret
        o.flags = UInt64(UInt32(bitPattern: flags))
        o.mode = mode
        o.dfd = dfd
        o.requested_len = UInt16(requested.count)
        o.path_len = UInt16(path.count)
        return rawBytes(of: o) + requested + path
    }

    /// connect at syscall exit: the sockaddr passed and the local address the kernel chose.
    static func connect(_ p: SyntheticProcess, addr: [UInt8], local: [UInt8], sockType: UInt16, proto: UInt16,
                        ret: Int32, fd: Int32, ktime: UInt64) -> [UInt8] {
        var c = agent_connect()
        c.hdr = header(AGENT_KIND_CONNECT, size: MemoryLayout<agent_connect>.size, pid: p.pid, tid: p.pid, ktime: ktime)
        c.start_ns = p.startNs
        c.uid = p.uid
        c.gid = p.uid
        c.ret = ret
        c.fd = fd
        c.addr_len = UInt16(addr.count)
        c.local_len = UInt16(local.count)
        c.sock_type = sockType
        c.protocol = proto
        withUnsafeMutableBytes(of: &c.addr) { for (i, b) in addr.enumerated() { $0[i] = b } }
        withUnsafeMutableBytes(of: &c.local) { for (i, b) in local.enumerated() { $0[i] = b } }
        return rawBytes(of: c)
    }

    // sockaddr byte layouts (little-endian family, network-order port).
    static func sockaddrIn(_ a: (UInt8, UInt8, UInt8, UInt8), port: UInt16) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 16)
        b[0] = 2  // AF_INET
        b[2] = UInt8(port >> 8); b[3] = UInt8(port & 0xff)
        b[4] = a.0; b[5] = a.1; b[6] = a.2; b[7] = a.3
        return b
    }

    static func sockaddrIn6(_ a: [UInt8], port: UInt16) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 28)
        b[0] = 10  // AF_INET6
        b[2] = UInt8(port >> 8); b[3] = UInt8(port & 0xff)
        for (i, x) in a.prefix(16).enumerated() { b[8 + i] = x }
        return b
    }

    static func sockaddrUn(_ path: [UInt8]) -> [UInt8] {
        [1, 0] + path + [0]  // AF_UNIX
    }
}
