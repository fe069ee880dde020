@testable import AgentDetector
@testable import AgentOutputs
@testable import AgentPipeline
@testable import AgentSessions
@testable import AgentSupport
import CAgentEvents
import Foundation
import Testing

/// Native records of every type for the format tests, written by the real Recorder: kernel
/// records (built as the BPF programs build them) go through the real Pipeline, with a rule
/// that fires; session and agent records come from the Recorder calls the daemon makes.
enum FormatSamples {
    static let cgid: UInt64 = 0x4242
    /// Pids no process on the test machine has (above the default pid_max of 4194304), so the
    /// process table learns them from the records alone.
    static let shellPID: UInt32 = 4_300_001
    static let toolPID: UInt32 = 4_300_002
    static let unknownParent: UInt32 = 4_300_000
    static let bootStart: UInt64 = 5_000_000_000

    final class OneSession: SessionSource {
        let s: Session
        init(_ s: Session) { self.s = s }
        func session(for cgid: UInt64) -> Session { s }
    }

    static let rules = """
    rules:
      - id: test-ssh-key-read
        title: SSH private key read
        severity: high
        author: agentwatch tests
        tags: [attack.credential_access, attack.t1552.004]
        types: [file.open]
        condition: file.path glob "/home/dev/.ssh/id_*" and file.result >= 0
        message: "{process.exe} read {file.path}"
        suppress: 10m
        fixtures: []
    """

    /// One stream with every record type and the awkward cases: bytes that are not UTF-8 and
    /// control characters in argv and paths, failed opens, refused and in-progress connects,
    /// unix sockets, a flow, exits by code and by signal, alerts with and without a process.
    static func lines() throws -> [[UInt8]] {
        let sink = MemoryOutput()
        let recorder = Recorder(sink: sink, host: HostIdentity(name: "devbox", id: "0123456789abcdef0123456789abcdef"))
        let labels: [(key: String, value: String)] = [("ticket", "OPS-1"), ("team.name", "a\"b\u{1}"), ("agent", "claude")]
        let session = Session(id: "sess-1", path: "", cgroup: "/agentwatch/sess-1", cgid: cgid, uid: 1000,
                              labels: labels, adopted: false, home: "/home/dev")
        let sessions = OneSession(session)
        let pipeline = Pipeline(recorder: recorder, sessions: sessions)
        pipeline.detector = Detector(rules: try RuleSet.parse(rules, file: "/usr/share/agentwatch/rules/credentials.yaml"))
        let t0 = pipeline.clock.wall(bootNs: bootStart)
        session.startNs = t0

        recorder.agentRecord(.agentStart, unixNs: t0) { j in
            j.key("version"); j.string(AgentVersion.string)
            j.raw(","); j.key("pid"); j.uint(4242)
            j.raw(","); j.key("kernel"); j.string("6.8.0")
            j.raw(","); j.key("output"); j.string("file:/var/log/agentwatch/records.ndjson")
            j.raw(","); j.key("session_roots"); j.stringArray(["/sys/fs/cgroup/agentwatch"])
            j.raw(","); j.key("features"); j.stringArray(["exec", "open"])
            recorder.chainOrigin(into: &j)
        }
        recorder.sessionRecord(.sessionStart, session, unixNs: t0)

        var k = bootStart + 1_000_000
        func feed(_ record: [UInt8]) {
            k += 1_000_000
            record.withUnsafeBytes { pipeline.handle($0) }
        }
        let shell = Proc(pid: shellPID, start: bootStart + 10, ppid: unknownParent, parentStart: 1, comm: "bash")
        let tool = Proc(pid: toolPID, start: bootStart + 20, ppid: shellPID, parentStart: bootStart + 10, comm: "cu\u{1}rl")
        feed(exec(shell, exe: "/usr/bin/bash", argv: ["bash", "-c", "curl …"], cwd: "/home/dev/src", ktime: k))
        feed(fork(parent: shell, child: tool, ktime: k))
        feed(exec(tool, exe: "/usr/bin/curl", filename: "curl",
                  argv: [Array("curl".utf8), Array("-T".utf8), [0x2F, 0x74, 0xFF, 0xFE, 0x0A, 0x22, 0x5C], Array("naïve €".utf8)],
                  cwd: "/home/dev/src", stdio: (2, 3, 4), ktime: k))
        // The same file twice (one identity), asked two ways.
        let key = agent_file_id(ino: 1_234_567, dev: 8 << 20 | 1, mnt_id: 29)
        feed(open(tool, requested: "../.ssh/id_ed25519", path: "/home/dev/.ssh/id_ed25519", flags: O_RDONLY, ret: 3, id: key, ktime: k))
        feed(open(tool, requested: "/home/dev/.ssh/id_ed25519", path: "/home/dev/.ssh/id_ed25519", flags: O_RDONLY, ret: 4,
                  via: UInt8(AGENT_VIA_OPENAT2.rawValue), id: key, ktime: k))
        feed(open(tool, requested: "missing.txt", path: "/home/dev/src", flags: O_RDONLY | O_CLOEXEC, ret: -2,
                  hdrFlags: UInt8(AGENT_F_PATH_IS_BASE.rawValue), dfd: 5, ktime: k))
        feed(open(tool, requested: "/tmp/new.tar.gz", path: "/tmp/new.tar.gz", flags: O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, mode: 0o644, ret: 5, ktime: k))
        feed(open(tool, requested: "/", path: "/", flags: O_RDONLY | O_DIRECTORY, ret: 6, ktime: k))
        feed(open(tool, requested: "/tmp/\u{7}bell\u{7F}", path: [0x2F, 0x74, 0x6D, 0x70, 0x2F, 0x07, 0xC3, 0x28, 0x7F], flags: O_RDONLY, ret: 7, ktime: k))
        // io_uring into a fixed-file slot the kernel picked (slot 2), a large device number;
        // an io_uring open recorded at submission (no completion asked for); a refused
        // open_by_handle_at (no path, mount_fd 3).
        feed(open(tool, requested: "/etc/shadow", path: "/etc/shadow", flags: O_RDONLY, ret: 2,
                  hdrFlags: UInt8(AGENT_F_FIXED_FILE.rawValue), via: UInt8(AGENT_VIA_IO_URING.rawValue),
                  id: agent_file_id(ino: 4242, dev: 259 << 20 | 0xFFFFF, mnt_id: 1), ktime: k))
        feed(open(tool, requested: "/home/dev/.aws/credentials", path: "", flags: O_RDONLY, ret: 0,
                  hdrFlags: UInt8(AGENT_F_RESULT_UNSEEN.rawValue | AGENT_F_FIXED_FILE.rawValue), via: UInt8(AGENT_VIA_IO_URING.rawValue), ktime: k))
        feed(open(tool, requested: "", path: "", flags: O_RDONLY, ret: -1, dfd: 3, via: UInt8(AGENT_VIA_OPEN_BY_HANDLE_AT.rawValue), ktime: k))
        feed(connect(tool, addr: sockaddrIn((93, 184, 216, 34), port: 443), local: sockaddrIn((10, 0, 0, 5), port: 51000),
                     sockType: 1, proto: 6, ret: 0, cookie: 77, ktime: k))
        feed(connect(tool, addr: sockaddrIn6([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1], port: 80),
                     local: [], sockType: 1, proto: 6, ret: -115, ktime: k))
        feed(connect(tool, addr: sockaddrIn((127, 0, 0, 1), port: 9), local: [], sockType: 1, proto: 6, ret: -111, ktime: k))
        feed(connect(tool, addr: sockaddrIn6([UInt8](repeating: 0, count: 10) + [0xFF, 0xFF, 192, 168, 1, 1], port: 53),
                     local: [], sockType: 2, proto: 17, ret: -101, ktime: k))
        feed(connect(tool, addr: [1, 0] + Array("/run/systemd/journal/socket".utf8) + [0], local: [], sockType: 2, proto: 0, ret: 0, ktime: k))
        feed(connect(tool, addr: [1, 0, 0] + Array("abstract\u{1}name".utf8), local: [], sockType: 1, proto: 0, ret: 0, ktime: k))
        feed(connect(tool, addr: [0, 0], local: [], sockType: 2, proto: 17, ret: 0, ktime: k))
        feed(flow(tool, cookie: 77, sent: 2_000_000, received: 4096, sentDelta: 1_048_576, receivedDelta: 0, final: false, ktime: k))
        feed(flow(tool, cookie: 77, sent: 3_000_000, received: 8192, sentDelta: 1_000_000, receivedDelta: 4096, final: true, ktime: k))
        feed(flow(tool, cookie: 99, sent: 10, received: 20, sentDelta: 10, receivedDelta: 20, final: true, ktime: k))
        // A lookup (query and answer), a connect to the answer (net.dname), unconnected sends.
        feed(NetRecords.dns(header(AGENT_KIND_DNS, size: 0, tool, ktime: k), cookie: 120, direction: AGENT_DNS_QUERY, server: "127.0.0.53",
                            message: DNSWire.query(id: 4242, name: "upload.example.com")))
        feed(NetRecords.dns(header(AGENT_KIND_DNS, size: 0, tool, ktime: k), cookie: 120, direction: AGENT_DNS_ANSWER, server: "127.0.0.53",
                            message: DNSWire.answer(id: 4242, name: "upload.example.com", alias: "edge.example.net",
                                                    addresses: [DNSWire.v4("93.184.216.34"), DNSWire.v6("2001:db8::34")])))
        feed(NetRecords.dns(header(AGENT_KIND_DNS, size: 0, tool, ktime: k), cookie: 121, direction: AGENT_DNS_ANSWER, server: "10.0.0.1",
                            transport: 6, message: DNSWire.answer(id: 1, name: "gone.example.com", addresses: [], rcode: 3)))
        feed(connect(tool, addr: sockaddrIn((93, 184, 216, 34), port: 8443), local: sockaddrIn((10, 0, 0, 5), port: 51001),
                     sockType: 1, proto: 6, ret: 0, cookie: 122, ktime: k))
        feed(NetRecords.send(header(AGENT_KIND_SEND, size: 0, tool, ktime: k), cookie: 123, daddr: "93.184.216.34", dport: 4500,
                             saddr: "10.0.0.5", sport: 51002, bytes: 1200, datagrams: 1, bytesDelta: 1200, datagramsDelta: 1,
                             reason: AGENT_SEND_FIRST, firstNs: k, lastNs: k))
        feed(NetRecords.send(header(AGENT_KIND_SEND, size: 0, tool, ktime: k), cookie: 123, daddr: "93.184.216.34", dport: 4500,
                             saddr: "10.0.0.5", sport: 51002, bytes: 2_400_000, datagrams: 2000, bytesDelta: 2_398_800, datagramsDelta: 1999,
                             reason: AGENT_SEND_FINAL, firstNs: k - 1_000_000, lastNs: k))
        feed(NetRecords.send(header(AGENT_KIND_SEND, size: 0, tool, ktime: k), cookie: 124, daddr: "2001:db8::9", dport: 0,
                             saddr: "fd00::5", sport: 0, bytes: 64, datagrams: 1, bytesDelta: 64, datagramsDelta: 1,
                             reason: AGENT_SEND_EVICTED, firstNs: k, lastNs: k, sockType: 3, proto: 58))
        feed(exit(tool, status: 1 << 8, ktime: k))
        feed(exit(shell, status: 9 | 0x80, ktime: k))
        pipeline.endSession(session, unixNs: pipeline.clock.wall(bootNs: k))
        recorder.sessionRecord(.sessionEnd, session, unixNs: pipeline.clock.wall(bootNs: k + 1), ended: true)
        recorder.agentLoss(kernelDropped: [0, 3, 0, 0, 1], queueDropped: 2, cpuReported: true, unixNs: t0 + 10)
        recorder.agentRecord(.agentHeartbeat, unixNs: t0 + 11) { j in j.key("note"); j.string("alive") }
        recorder.agentRecord(.agentReload, unixNs: t0 + 12) { j in
            j.key("ok"); j.bool(false)
            j.raw(","); j.key("errors"); j.uint(1)
            j.raw(","); j.key("error"); j.string("rules/x.yaml:3:1: bad")
        }
        recorder.agentRecord(.agentStop, unixNs: t0 + 13) { j in
            j.key("version"); j.string(AgentVersion.string)
            j.raw(","); j.key("records"); j.uint(40)
            j.raw(","); j.key("kernel_dropped"); j.uint(4)
            j.raw(","); j.key("decode_rejected"); j.uint(0)
            j.raw(","); j.key("sessions"); j.uint(1)
        }
        recorder.flush()
        return sink.lines.map { Array($0.utf8) }
    }

    /// A native record, parsed by Foundation (as `parseOutput` reads it).
    static func parse(_ line: [UInt8]) -> [String: Any]? {
        parseOutput(line)
    }

    // MARK: kernel records

    struct Proc {
        var pid: UInt32
        var start: UInt64
        var ppid: UInt32
        var parentStart: UInt64
        var comm: String
    }

    static func header(_ kind: agent_kind, size: Int, _ p: Proc, ktime: UInt64, flags: UInt8 = 0) -> agent_hdr {
        var h = agent_hdr()
        h.kind = UInt8(kind.rawValue)
        h.flags = flags
        h.size = UInt16(size)
        h.pid = p.pid
        h.tid = p.pid
        h.ktime_ns = ktime
        h.session_cgid = cgid
        h.cgroup_id = cgid
        return h
    }

    static func proc(_ p: Proc) -> agent_proc {
        var r = agent_proc()
        r.start_ns = p.start
        r.parent_start_ns = p.parentStart
        r.ppid = p.ppid
        r.uid = 1000
        r.gid = 1001
        r.euid = 0
        r.loginuid = 1000
        r.sessionid = 7
        withUnsafeMutableBytes(of: &r.comm) { c in
            for (i, b) in p.comm.utf8.prefix(15).enumerated() { c[i] = b }
        }
        return r
    }

    static func exec(_ p: Proc, exe: String, filename: String? = nil, argv: [String], cwd: String, ktime: UInt64) -> [UInt8] {
        exec(p, exe: exe, filename: filename, argv: argv.map { Array($0.utf8) }, cwd: cwd, stdio: (4, 4, 4), ktime: ktime)
    }

    static func exec(_ p: Proc, exe: String, filename: String? = nil, argv: [[UInt8]], cwd: String,
                     stdio: (UInt8, UInt8, UInt8), ktime: UInt64) -> [UInt8] {
        let name = Array((filename ?? exe).utf8), exeBytes = Array(exe.utf8), cwdBytes = Array(cwd.utf8)
        var args: [UInt8] = []
        for a in argv { args += a; args.append(0) }
        var e = agent_exec()
        e.hdr = header(AGENT_KIND_EXEC, size: MemoryLayout<agent_exec>.size + name.count + exeBytes.count + cwdBytes.count + args.count, p, ktime: ktime)
        e.proc = proc(p)
        e.old_tid = p.pid
        e.filename_len = UInt16(name.count)
        e.exe_len = UInt16(exeBytes.count)
        e.cwd_len = UInt16(cwdBytes.count)
        e.args_len = UInt32(args.count)
        e.args_size = UInt32(args.count)
        e.argc = UInt32(argv.count)
        e.stdio_type = stdio
        e.stdin_ino = stdio.0 == 2 ? 12345 : 0
        return rawBytes(of: e) + name + exeBytes + cwdBytes + args
    }

    static func fork(parent: Proc, child: Proc, ktime: UInt64) -> [UInt8] {
        var f = agent_fork()
        f.hdr = header(AGENT_KIND_FORK, size: MemoryLayout<agent_fork>.size, parent, ktime: ktime)
        f.proc = proc(parent)
        f.child_start_ns = child.start
        f.child_pid = child.pid
        return rawBytes(of: f)
    }

    static func exit(_ p: Proc, status: Int32, ktime: UInt64) -> [UInt8] {
        var x = agent_exit()
        x.hdr = header(AGENT_KIND_EXIT, size: MemoryLayout<agent_exit>.size, p, ktime: ktime)
        x.proc = proc(p)
        x.exit_code = status
        return rawBytes(of: x)
    }

    static func open(_ p: Proc, requested: String, path: String, flags: Int32, mode: UInt32 = 0, ret: Int64,
                     hdrFlags: UInt8 = 0, dfd: Int32 = -100, via: UInt8 = UInt8(AGENT_VIA_OPENAT.rawValue),
                     id: agent_file_id = agent_file_id(), ktime: UInt64) -> [UInt8] {
        open(p, requested: requested, path: Array(path.utf8), flags: flags, mode: mode, ret: ret, hdrFlags: hdrFlags, dfd: dfd,
             via: via, id: id, ktime: ktime)
    }

    static func open(_ p: Proc, requested: String, path: [UInt8], flags: Int32, mode: UInt32 = 0, ret: Int64,
                     hdrFlags: UInt8 = 0, dfd: Int32 = -100, via: UInt8 = UInt8(AGENT_VIA_OPENAT.rawValue),
                     id: agent_file_id = agent_file_id(), ktime: UInt64) -> [UInt8] {
        let req = Array(requested.utf8)
        var o = agent_open()
        o.hdr = header(AGENT_KIND_OPEN, size: MemoryLayout<agent_open>.size + req.count + path.count, p, ktime: ktime, flags: hdrFlags)
        o.start_ns = p.start
        o.uid = 1000
        o.gid = 1001
        o.ret = ret
        o.flags = UInt64(UInt32(bitPattern: flags))
        o.mode = mode
        o.dfd = dfd
        o.requested_len = UInt16(req.count)
        o.path_len = UInt16(path.count)
        o.via = via
        o.id = id
        return rawBytes(of: o) + req + path
    }

    static func connect(_ p: Proc, addr: [UInt8], local: [UInt8], sockType: UInt16, proto: UInt16, ret: Int32,
                        cookie: UInt64 = 0, ktime: UInt64) -> [UInt8] {
        var c = agent_connect()
        c.hdr = header(AGENT_KIND_CONNECT, size: MemoryLayout<agent_connect>.size, p, ktime: ktime)
        c.start_ns = p.start
        c.uid = 1000
        c.gid = 1001
        c.ret = ret
        c.fd = 9
        c.addr_len = UInt16(addr.count)
        c.local_len = UInt16(local.count)
        c.sock_type = sockType
        c.protocol = proto
        c.cookie = cookie
        withUnsafeMutableBytes(of: &c.addr) { for (i, b) in addr.enumerated() { $0[i] = b } }
        withUnsafeMutableBytes(of: &c.local) { for (i, b) in local.enumerated() { $0[i] = b } }
        return rawBytes(of: c)
    }

    static func flow(_ p: Proc, cookie: UInt64, sent: UInt64, received: UInt64, sentDelta: UInt64, receivedDelta: UInt64,
                     final: Bool, ktime: UInt64) -> [UInt8] {
        var f = agent_flow()
        f.hdr = header(AGENT_KIND_FLOW, size: MemoryLayout<agent_flow>.size, p, ktime: ktime)
        f.cookie = cookie
        f.start_ns = p.start
        f.bytes_sent = sent
        f.bytes_received = received
        f.sent_delta = sentDelta
        f.received_delta = receivedDelta
        f.final = final ? 1 : 0
        return rawBytes(of: f)
    }

    static func sockaddrIn(_ a: (UInt8, UInt8, UInt8, UInt8), port: UInt16) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 16)
        b[0] = 2
        b[2] = UInt8(port >> 8); b[3] = UInt8(port & 0xff)
        b[4] = a.0; b[5] = a.1; b[6] = a.2; b[7] = a.3
        return b
    }

    static func sockaddrIn6(_ a: [UInt8], port: UInt16) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 28)
        b[0] = 10
        b[2] = UInt8(port >> 8); b[3] = UInt8(port & 0xff)
        for (i, x) in a.prefix(16).enumerated() { b[8 + i] = x }
        return b
    }
}

/// A formatter's output for one native line, or nil when it declined.
func render<F: RecordFormatter>(_ f: inout F, _ line: [UInt8]) -> [UInt8]? {
    var out: [UInt8] = [0x41]
    let ok = line.withUnsafeBytes { f.render($0, into: &out) }
    #expect(out.first == 0x41, "render must append, not replace")
    if !ok {
        #expect(out == [0x41], "a declined line leaves the output as it was")
        return nil
    }
    return Array(out.dropFirst())
}

/// Python's json module: a second, independent JSON reader (strict about what RFC 8259 allows;
/// with `uniqueKeys`, an object naming a member twice counts as invalid too).
func pythonJSONValid(_ lines: [[UInt8]], uniqueKeys: Bool = true) throws -> [Bool] {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments = ["-c", """
    import json, sys
    def unique(pairs):
        if \(uniqueKeys ? "True" : "False") and len(set(k for k, _ in pairs)) != len(pairs):
            raise ValueError("duplicate key")
        return dict(pairs)
    for raw in sys.stdin.buffer.read().split(b"\\n")[:-1]:
        try:
            json.loads(raw.decode("utf-8"), parse_constant=lambda c: 1 / 0, object_pairs_hook=unique)
            print(1)
        except Exception:
            print(0)
    """]
    let input = Pipe(), output = Pipe()
    p.standardInput = input
    p.standardOutput = output
    try p.run()
    var data = Data()
    for l in lines { data.append(contentsOf: l); data.append(0x0A) }
    input.fileHandleForWriting.write(data)
    try input.fileHandleForWriting.close()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: out, as: UTF8.self).split(separator: "\n").map { $0 == "1" }
}

/// Each (document, path) decoded by Python's json and encoded back with surrogateescape: the
/// bytes a native string stood for.
func pythonSurrogateEscape(_ items: [([UInt8], [String])]) throws -> [[UInt8]] {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    p.arguments = ["-c", """
    import json, sys
    lines = sys.stdin.buffer.read().split(b"\\n")[:-1]
    for i in range(0, len(lines), 2):
        v = json.loads(lines[i].decode("utf-8"))
        for k in json.loads(lines[i + 1]):
            v = v[int(k)] if isinstance(v, list) else v[k]
        print(v.encode("utf-8", "surrogateescape").hex())
    """]
    let input = Pipe(), output = Pipe()
    p.standardInput = input
    p.standardOutput = output
    try p.run()
    var data = Data()
    for (line, path) in items {
        data.append(contentsOf: line)
        data.append(0x0A)
        data.append(try JSONSerialization.data(withJSONObject: path))
        data.append(0x0A)
    }
    input.fileHandleForWriting.write(data)
    try input.fileHandleForWriting.close()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: out, as: UTF8.self).split(separator: "\n").map { hex in
        stride(from: 0, to: hex.count, by: 2).map { i in
            let s = hex.index(hex.startIndex, offsetBy: i)
            return UInt8(hex[s..<hex.index(s, offsetBy: 2)], radix: 16)!
        }
    }
}

/// A formatter's output as Foundation objects. Foundation rejects the lone surrogates of the
/// native escaping (`\udcXX` for a byte that is not UTF-8), which are valid JSON text: they are
/// read as `\u00XX` here (Python's json reads them as they are: `pythonJSONValid`).
func parseOutput(_ bytes: [UInt8]) -> [String: Any]? {
    var b = bytes
    var i = 0
    var inString = false
    while i < b.count {
        let c = b[i]
        if inString {
            if c == UInt8(ascii: "\\") {
                if i + 5 < b.count, b[i + 1] == UInt8(ascii: "u"), (b[i + 2] | 0x20) == UInt8(ascii: "d"), (b[i + 3] | 0x20) == UInt8(ascii: "c"),
                   let hi = Int(String(decoding: b[(i + 4)...(i + 4)], as: UTF8.self), radix: 16), hi >= 8 {
                    b[i + 2] = UInt8(ascii: "0")
                    b[i + 3] = UInt8(ascii: "0")
                }
                i += 2
                continue
            }
            if c == UInt8(ascii: "\"") { inString = false }
        } else if c == UInt8(ascii: "\"") {
            inString = true
        }
        i += 1
    }
    return (try? JSONSerialization.jsonObject(with: Data(b))) as? [String: Any]
}

/// The field tables taken from the ECS and OCSF sources (Tests/FormatTables; extract.py made
/// them and names the release and commit each came from).
enum FormatTables {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FormatTables")

    static func load(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static var ecs: [String: Any] { get throws { try load("ecs-9.4.0-fields.json") } }
    static var ocsf: [String: Any] { get throws { try load("ocsf-1.8.0-classes.json") } }
}

/// Whether `text` is an IPv4 or IPv6 address.
func isIPAddress(_ text: String) -> Bool {
    var v4 = in_addr(), v6 = in6_addr()
    return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
}

/// RFC 3339 date-time (with a time zone; fraction optional).
func isRFC3339(_ text: String) -> Bool {
    text.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"#, options: .regularExpression) != nil
}

/// JSON numbers from Foundation: integral, and not a Bool in disguise.
func isInteger(_ v: Any) -> Bool {
    guard let n = v as? NSNumber, !isBool(v) else { return false }
    return n.doubleValue.rounded() == n.doubleValue
}

/// JSONSerialization gives `true` as an NSNumber of ObjC type "c" (as CapturedRuleInput reads it).
func isBool(_ v: Any) -> Bool {
    if type(of: v) == Bool.self { return true }
    if let n = v as? NSNumber { return String(cString: n.objCType) == "c" }
    return false
}
