@testable import AgentDetector
@testable import AgentOutputs
@testable import AgentPipeline
import AgentRecords
import AgentSessions
import AgentSupport
import CAgentEvents
import Glibc

/// A capture written the way the daemon writes one: kernel records, built as the BPF programs
/// build them, go through the real `Pipeline` (decoder, process table, rules) and the real
/// `Recorder` (header, numbering, chain) into memory. Replay's malformed-input tests start from
/// these, so replay is tested against the code that feeds it, not against a copy of it.
final class RecordedCapture: SessionSource {
    static let bootNs: UInt64 = 5_000_000_000
    private(set) var output = MemoryOutput()
    private(set) var recorder: Recorder!
    private(set) var pipeline: Pipeline!
    private let rules: RuleSet?
    private var sessionsByCgid: [UInt64: Session] = [:]
    private var fallback: Session
    private var ktime = RecordedCapture.bootNs
    /// Every line written by runs before the last `restart()`.
    private var earlier: [UInt8] = []

    init(rules: RuleSet? = nil) {
        self.rules = rules
        fallback = Session(id: "none", path: "/sys/fs/cgroup/agentwatch/none", cgroup: "/agentwatch/none", cgid: 1,
                           uid: 1000, labels: [], adopted: false, home: "/home/dev")
        (recorder, pipeline) = makePipeline()
        agentStart()
    }

    static let host = HostIdentity(name: "h", id: "0123")

    private func makePipeline() -> (Recorder, Pipeline) {
        let recorder = Recorder(sink: output, host: Self.host)
        let pipeline = Pipeline(recorder: recorder, sessions: self, table: ProcessTable(bootID: "b007b007b007"))
        // The wall clock of every run: boot time 0 is this Unix time, so captures repeat.
        pipeline.clock = WallClock(offsetNs: 1_763_740_000_000_000_000)
        pipeline.detector = rules.map { Detector(rules: $0) }
        return (recorder, pipeline)
    }

    func session(for cgid: UInt64) -> Session { sessionsByCgid[cgid] ?? fallback }

    /// The capture so far.
    var bytes: [UInt8] {
        recorder.flush()
        return earlier + output.bytes
    }

    var lines: [String] { String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init) }

    /// The daemon started again on a new file: a fresh chain, seq from 1, a new detector.
    func restart() {
        recorder.flush()
        earlier += output.bytes
        output = MemoryOutput()
        sessionsByCgid = [:]
        (recorder, pipeline) = makePipeline()
        agentStart()
    }

    func agentStart() {
        let recorder = self.recorder!
        recorder.agentRecord(.agentStart, unixNs: wall()) { j in
            j.key("version"); j.string("test"); j.raw(","); j.key("pid"); j.uint(1)
            recorder.chainOrigin(into: &j)
        }
    }

    func heartbeat() {
        recorder.agentRecord(.agentHeartbeat, unixNs: wall()) { j in j.key("pid"); j.uint(1) }
    }

    @discardableResult
    func sessionStart(_ id: String, cgid: UInt64, home: String = "/home/dev", labels: [(key: String, value: String)] = [("agent", "test")]) -> Session {
        let s = Session(id: id, path: "/sys/fs/cgroup/agentwatch/" + id, cgroup: "/agentwatch/" + id, cgid: cgid,
                        uid: 1000, labels: labels, adopted: false, home: home)
        s.startNs = wall()
        sessionsByCgid[cgid] = s
        recorder.sessionRecord(.sessionStart, s, unixNs: wall())
        return s
    }

    func sessionEnd(_ cgid: UInt64) {
        guard let s = sessionsByCgid[cgid] else { return }
        pipeline.endSession(s, unixNs: wall())
        recorder.sessionRecord(.sessionEnd, s, unixNs: wall(), ended: true)
        sessionsByCgid[cgid] = nil
    }

    // MARK: Kernel records

    /// The process every record of `pid` names: started at `pid` µs after boot.
    static func startNs(_ pid: UInt32) -> UInt64 { bootNs / 2 + UInt64(pid) * 1000 }

    private func header(_ kind: agent_kind, size: Int, pid: UInt32, session: UInt64) -> agent_hdr {
        ktime += 1_000_000
        var h = agent_hdr()
        h.kind = UInt8(kind.rawValue)
        h.size = UInt16(size)
        h.pid = pid
        h.tid = pid
        h.ktime_ns = ktime
        h.session_cgid = session
        h.cgroup_id = session
        return h
    }

    private func proc(pid: UInt32, ppid: UInt32, comm: String) -> agent_proc {
        var p = agent_proc()
        p.start_ns = Self.startNs(pid)
        p.parent_start_ns = Self.startNs(ppid)
        p.ppid = ppid
        p.uid = 1000
        p.gid = 1000
        p.euid = 1000
        p.loginuid = 1000
        p.sessionid = 3
        withUnsafeMutableBytes(of: &p.comm) { c in
            for (i, b) in comm.utf8.prefix(Int(AGENT_COMM_LEN) - 1).enumerated() { c[i] = b }
        }
        return p
    }

    private func handle(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { pipeline.handle($0) }
    }

    func fork(session: UInt64, parent: UInt32, ppid: UInt32 = 1, child: UInt32) {
        var f = agent_fork()
        f.hdr = header(AGENT_KIND_FORK, size: MemoryLayout<agent_fork>.size, pid: parent, session: session)
        f.proc = proc(pid: parent, ppid: ppid, comm: "bash")
        f.child_pid = child
        f.child_start_ns = Self.startNs(child)
        handle(rawBytes(of: f))
    }

    func exec(session: UInt64, pid: UInt32, ppid: UInt32, exe: String, argv: [String], cwd: String = "/home/dev/proj",
              filename: String? = nil, stdio: (UInt8, UInt8, UInt8) = (4, 4, 4), stdinIno: UInt64 = 0,
              exeID: agent_file_id = agent_file_id(), exeFlags: UInt32 = 0, stdinRdev: UInt32 = 0) {
        let name = Array((filename ?? exe).utf8), path = Array(exe.utf8), dir = Array(cwd.utf8)
        var args: [UInt8] = []
        for a in argv {
            args += Array(a.utf8)
            args.append(0)
        }
        var e = agent_exec()
        e.hdr = header(AGENT_KIND_EXEC, size: MemoryLayout<agent_exec>.size + name.count + path.count + dir.count + args.count,
                       pid: pid, session: session)
        e.proc = proc(pid: pid, ppid: ppid, comm: String(exe.split(separator: "/").last ?? ""))
        e.old_tid = pid
        e.filename_len = UInt16(name.count)
        e.exe_len = UInt16(path.count)
        e.cwd_len = UInt16(dir.count)
        e.args_len = UInt32(args.count)
        e.args_size = UInt32(args.count)
        e.argc = UInt32(argv.count)
        e.stdio_type = stdio
        e.stdin_ino = stdinIno
        e.exe_id = exeID
        e.exe_flags = exeFlags
        e.stdin_rdev = stdinRdev
        var bytes: [UInt8] = rawBytes(of: e)
        bytes += name
        bytes += path
        bytes += dir
        bytes += args
        handle(bytes)
    }

    /// `id` nil: the file's identity made up from the resolved path when the open succeeded
    /// (one path, one identity), none otherwise.
    func open(session: UInt64, pid: UInt32, requested: String, resolved: String?, flags: Int32 = O_RDONLY, mode: UInt32 = 0,
              result: Int64 = 3, dfd: Int32 = -100, via: UInt32 = AGENT_VIA_OPENAT.rawValue, id: agent_file_id? = nil,
              hdrFlags: UInt32 = 0) {
        let req = Array(requested.utf8), res = Array((resolved ?? "").utf8)
        var o = agent_open()
        o.hdr = header(AGENT_KIND_OPEN, size: MemoryLayout<agent_open>.size + req.count + res.count, pid: pid, session: session)
        o.hdr.flags = UInt8(hdrFlags)
        o.via = UInt8(via)
        if let id {
            o.id = id
        } else if result >= 0, let resolved {
            o.id = agent_file_id(ino: UInt64(resolved.utf8.reduce(5381) { ($0 &* 33 &+ UInt32($1)) & 0xFFFFFF }) + 2,
                                 dev: 254 << 20 | 3, mnt_id: 31)
        }
        o.start_ns = Self.startNs(pid)
        o.uid = 1000
        o.gid = 1000
        o.ret = result
        let withCloexec: Int32 = flags | O_CLOEXEC
        o.flags = UInt64(UInt32(bitPattern: withCloexec))
        o.mode = mode
        o.dfd = dfd
        o.requested_len = UInt16(req.count)
        o.path_len = UInt16(res.count)
        handle(rawBytes(of: o) + req + res)
    }

    /// A TCP connect over IPv4 (or IPv6 when `daddr` has a colon); `cookie` != 0 counts bytes.
    func connect(session: UInt64, pid: UInt32, daddr: String, dport: UInt16, result: Int32 = 0, cookie: UInt64 = 0) {
        var c = agent_connect()
        c.hdr = header(AGENT_KIND_CONNECT, size: MemoryLayout<agent_connect>.size, pid: pid, session: session)
        c.start_ns = Self.startNs(pid)
        c.uid = 1000
        c.gid = 1000
        c.ret = result
        c.fd = 5
        c.sock_type = UInt16(SOCK_STREAM.rawValue)
        c.protocol = UInt16(IPPROTO_TCP)
        c.cookie = cookie
        let (remote, local) = daddr.contains(":") ? Self.inet6(daddr, dport) : Self.inet4(daddr, dport)
        withUnsafeMutableBytes(of: &c.addr) { a in for (i, b) in remote.enumerated() { a[i] = b } }
        withUnsafeMutableBytes(of: &c.local) { a in for (i, b) in local.enumerated() { a[i] = b } }
        c.addr_len = UInt16(remote.count)
        c.local_len = UInt16(local.count)
        handle(rawBytes(of: c))
    }

    func flow(session: UInt64, pid: UInt32, cookie: UInt64, sent: UInt64, received: UInt64, sentDelta: UInt64, final: Bool) {
        var f = agent_flow()
        f.hdr = header(AGENT_KIND_FLOW, size: MemoryLayout<agent_flow>.size, pid: pid, session: session)
        f.cookie = cookie
        f.start_ns = Self.startNs(pid)
        f.bytes_sent = sent
        f.bytes_received = received
        f.sent_delta = sentDelta
        f.received_delta = received
        f.final = final ? 1 : 0
        handle(rawBytes(of: f))
    }

    func send(session: UInt64, pid: UInt32, cookie: UInt64, daddr: String, dport: UInt16, bytes: UInt64, datagrams: UInt64,
              bytesDelta: UInt64, datagramsDelta: UInt64, reason: agent_send_reason) {
        let h = header(AGENT_KIND_SEND, size: MemoryLayout<agent_send>.size, pid: pid, session: session)
        handle(NetRecords.send(h, cookie: cookie, daddr: daddr, dport: dport, saddr: daddr.contains(":") ? "fd00::2" : "10.0.0.2",
                               sport: 40001, bytes: bytes, datagrams: datagrams, bytesDelta: bytesDelta, datagramsDelta: datagramsDelta,
                               reason: reason, firstNs: h.ktime_ns - 500_000, lastNs: h.ktime_ns))
    }

    func dns(session: UInt64, pid: UInt32, cookie: UInt64, direction: agent_dns_direction, server: String, message: [UInt8]) {
        let h = header(AGENT_KIND_DNS, size: MemoryLayout<agent_dns>.size + message.count, pid: pid, session: session)
        handle(NetRecords.dns(h, cookie: cookie, direction: direction, server: server, message: message))
    }

    func exit(session: UInt64, pid: UInt32, ppid: UInt32, comm: String, status: Int32) {
        var x = agent_exit()
        x.hdr = header(AGENT_KIND_EXIT, size: MemoryLayout<agent_exit>.size, pid: pid, session: session)
        x.proc = proc(pid: pid, ppid: ppid, comm: comm)
        x.exit_code = status
        handle(rawBytes(of: x))
    }

    /// The kernel could not reserve `count` records of `kind`.
    func kernelLoss(_ kind: agent_kind, count: UInt64) {
        var l = agent_loss()
        l.hdr = header(AGENT_KIND_LOSS, size: MemoryLayout<agent_loss>.size, pid: 0, session: 0)
        withUnsafeMutableBytes(of: &l.dropped) { $0.storeBytes(of: count, toByteOffset: Int(kind.rawValue) * 8, as: UInt64.self) }
        handle(rawBytes(of: l))
    }

    /// An output could not keep the records `first...last`.
    func outputLoss(_ name: String, first: UInt64, last: UInt64) {
        var d = OutputDrops()
        d.records = last - first + 1
        d.bytes = d.records * 300
        d.firstSeq = first
        d.lastSeq = last
        recorder.sinkLoss(sink: name, drops: d, unixNs: wall())
    }

    private func wall() -> Int64 {
        ktime += 1_000_000
        return pipeline.clock.wall(bootNs: ktime)
    }

    private static func inet4(_ daddr: String, _ port: UInt16) -> ([UInt8], [UInt8]) {
        func sockaddr(_ text: String, _ port: UInt16) -> [UInt8] {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            inet_pton(AF_INET, text, &a.sin_addr)
            return rawBytes(of: a)
        }
        return (sockaddr(daddr, port), sockaddr("10.0.0.2", 40000))
    }

    private static func inet6(_ daddr: String, _ port: UInt16) -> ([UInt8], [UInt8]) {
        func sockaddr(_ text: String, _ port: UInt16) -> [UInt8] {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            inet_pton(AF_INET6, text, &a.sin6_addr)
            return rawBytes(of: a)
        }
        return (sockaddr(daddr, port), sockaddr("fd00::2", 40000))
    }
}
