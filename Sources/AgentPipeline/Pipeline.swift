import AgentDetector
import AgentRecords
import AgentSensor
import AgentSessions
import AgentSupport
import CAgentEvents
import Glibc

/// Finds the session a kernel record belongs to, by the session's cgroup id.
public protocol SessionSource: AnyObject {
    func session(for cgid: UInt64) -> Session
    /// The kernel saw a session root or a session directory made below a pattern's root.
    func cgroupMade(_ notice: agent_cgroup)
}

extension SessionSource {
    public func cgroupMade(_ notice: agent_cgroup) {}
}

/// What happens to each kernel record: decode it in place, keep the process table right, and
/// write its NDJSON line. The daemon drives it from the ring buffer; the micro-benchmark drives
/// it from synthetic records.
public final class Pipeline {
    package let recorder: Recorder
    public let table: ProcessTable
    // The pipeline thread's alone: no dynamic exclusivity checks per record (see Recorder).
    @exclusivity(unchecked) public internal(set) var decoder = RecordDecoder()
    @exclusivity(unchecked) package var clock = WallClock()
    /// Kernel drops reported in the stream so far, by kind.
    @exclusivity(unchecked) package var kernelDropped = [UInt64](repeating: 0, count: Int(AGENT_KIND_COUNT.rawValue))
    unowned let sessions: SessionSource
    /// The rules, when any are loaded: every session record is evaluated right after it is
    /// written (its seq is then known), and alerts follow their last evidence.
    public var detector: Detector?
    /// Connects whose sockets the kernel counts bytes for, by socket cookie: a net.flow record
    /// carries the connect's addresses. Bounded: a socket whose release was never reported
    /// (the kernel map is LRU too) cannot grow it without end.
    private var flows: [UInt64: (connect: agent_connect, dname: String?)] = [:]
    static let maxFlows = 65536
    /// The names each session resolved, by session cgroup id (net.dname).
    var names: [UInt64: SessionNames] = [:]

    public init(recorder: Recorder, sessions: SessionSource, table: ProcessTable = ProcessTable()) {
        self.recorder = recorder
        self.sessions = sessions
        self.table = table
    }

    /// One ring buffer record. `raw` is only valid during the call.
    public func handle(_ raw: UnsafeRawBufferPointer) {
        guard let record = decoder.decode(raw) else { return }
        let hdr = record.header
        let unixNs = clock.wall(bootNs: hdr.ktime_ns)
        if case .loss(let l) = record {
            let dropped = withUnsafeBytes(of: l.dropped) { Array($0.bindMemory(to: UInt64.self)) }
            for (k, v) in dropped.enumerated() { kernelDropped[k] += v }
            recorder.agentLoss(kernelDropped: dropped, queueDropped: 0, cpuReported: true, unixNs: unixNs)
            return
        }
        if case .cgroup(let c) = record {
            sessions.cgroupMade(c)
            return
        }
        let s = sessions.session(for: hdr.session_cgid)
        let type: RecordType
        let p: ProcessInfo
        let detail: LiveRuleInput.Detail
        var knownAs: String?
        switch record {
        case .exec(let e, let filename, let exe, let cwd, let args):
            let previous: [UInt8]?
            let shownByAdoption: Bool
            (p, previous, shownByAdoption) = table.exec(e, exe: exe.isEmpty ? filename : exe, cwd: cwd, args: args, clock: clock)
            // The exec happened during the startup scan, before this process was read from /proc:
            // its procfs record already shows the new image. The table now has the kernel's exact
            // values; a second record would count one exec twice.
            if shownByAdoption { return }
            let shownFilename = filename.elementsEqual(p.exe) ? nil : filename
            let stdio = table.stdio(e, of: p)
            recorder.processExec(s, p, tid: hdr.tid, previousExe: previous, argc: e.argc,
                                 filename: shownFilename, stdio: stdio, unixNs: unixNs)
            type = .processExec
            detail = .exec(stdio: stdio, previousExe: previous, filename: shownFilename)
        case .fork(let f):
            table.fork(f, clock: clock)
            return
        case .exit(let x):
            p = table.process(pid: hdr.pid, startNs: x.proc.start_ns, session: s.cgid, clock: clock)
            let duration = hdr.ktime_ns >= p.startNs ? hdr.ktime_ns - p.startNs : 0
            recorder.processExit(s, p, tid: hdr.tid, status: x.exit_code, durationNs: duration, unixNs: unixNs)
            table.remove(pid: hdr.pid)
            type = .processExit
            detail = .exit(status: x.exit_code, durationNs: duration)
        case .open(let o, let requested, let resolved):
            p = table.process(pid: hdr.pid, startNs: o.start_ns, session: s.cgid, clock: clock)
            if o.ret >= 0 { knownAs = Self.catalogPath(s, o, requested: requested, resolved: resolved) }
            recorder.fileOpen(s, p, o, requested: requested, resolved: resolved, knownAs: knownAs, unixNs: unixNs)
            table.opened(o, by: p)
            type = .fileOpen
            detail = .open(o, requested: requested, resolved: resolved)
        case .connect(let c):
            p = process(pid: hdr.pid, startNs: c.start_ns, session: s.cgid)
            let dname = names[s.cgid]?.name(for: Self.destination(c), nowNs: unixNs)
            recorder.netConnect(s, p, c, dname: dname, unixNs: unixNs)
            if c.cookie != 0 {
                if flows.count >= Self.maxFlows, let any = flows.keys.first { flows[any] = nil }
                flows[c.cookie] = (c, dname)
            }
            type = .netConnect
            detail = .connect(c, dname: dname)
        case .flow(let f):
            p = process(pid: hdr.pid, startNs: f.start_ns, session: s.cgid)
            let connect = flows[f.cookie]
            recorder.netFlow(s, p, f, connect: connect?.connect, dname: connect?.dname, unixNs: unixNs)
            if f.final != 0 { flows[f.cookie] = nil }
            type = .netFlow
            detail = .flow(f, connect: connect?.connect, dname: connect?.dname)
        case .send(let x):
            p = process(pid: hdr.pid, startNs: 0, session: s.cgid)
            var daddr = x.daddr
            let to = withUnsafeBytes(of: &daddr) { SessionNames.Address(family: x.family, bytes: $0) }
            let dname = names[s.cgid]?.name(for: to, nowNs: unixNs)
            recorder.netSend(s, p, x, dname: dname, firstNs: clock.wall(bootNs: x.first_ns), lastNs: clock.wall(bootNs: x.last_ns), unixNs: unixNs)
            type = .netSend
            detail = .send(x, dname: dname)
        case .dns(let d, let bytes):
            p = process(pid: hdr.pid, startNs: 0, session: s.cgid)
            let message = DNSMessage.parse(bytes)
            let matched = message.map { learn(d, $0, session: s.cgid, unixNs: unixNs) } ?? false
            let unmatched = d.direction == UInt8(AGENT_DNS_ANSWER.rawValue) && !matched
            recorder.netDNS(s, p, d, message, cut: d.len < d.msg_len, unmatched: unmatched, unixNs: unixNs)
            type = .netDNS
            detail = .dns(d, message, cut: d.len < d.msg_len, unmatched: unmatched)
        case .loss, .cgroup:
            return
        }
        s.counts[Int(type.rawValue)] &+= 1
        if let detector {
            let live = LiveRuleInput(type: type, seq: recorder.seq, timeNs: unixNs, session: s, process: p, tid: hdr.tid, detail: detail,
                                     knownAs: knownAs)
            detector.evaluate(live) { alert in
                recorder.alert(alert, s, p, tid: hdr.tid, unixNs: unixNs)
                s.counts[Int(RecordType.alert.rawValue)] &+= 1
            }
        }
    }

    /// A successful open's `file.known_as`: the session's catalog path of the file opened (by
    /// its device and inode), when the path it was opened by is not that. A file made with
    /// O_CREAT in a directory the catalog watches asks for the catalog to be scanned again.
    @inline(__always)
    static func catalogPath(_ s: Session, _ o: agent_open, requested: UnsafeRawBufferPointer, resolved: UnsafeRawBufferPointer) -> String? {
        let path = resolved.count > 0 ? resolved : requested
        if o.flags & UInt64(O_CREAT) != 0 { s.identities.noteCreated(path) }
        return s.identities.knownAs(dev: o.id.dev, ino: o.id.ino, path: path)
    }

    /// A session ended: alerts its rules still owe (suppressed matches), before `session.end`.
    package func endSession(_ s: Session, unixNs: Int64) {
        names[s.cgid] = nil
        detector?.endSession(s.id, timeNs: unixNs) { alert in
            recorder.alert(alert, s, nil, tid: 0, unixNs: unixNs)
            s.counts[Int(RecordType.alert.rawValue)] &+= 1
        }
    }
}
