import AgentDetector
import AgentRecords
import AgentSensor
import AgentSessions
import CAgentEvents
import CSupport
import Glibc
import Synchronization

/// The record types of NDJSON v1 (schema/agentwatch-record.schema.json).
extension Recorder {
    /// `,"session":{...},"process":{"tid":N,...}`
    @inline(__always)
    func sessionAndProcess(_ s: Session, _ p: ProcessInfo, tid: UInt32, extra: (() -> Void)? = nil) {
        buffer.raw(",")
        buffer.bytes.append(contentsOf: s.json)
        buffer.raw(",\"process\":{\"tid\":")
        buffer.uint(UInt64(tid))
        buffer.raw(",")
        buffer.bytes.append(contentsOf: p.json)
        extra?()
        buffer.raw("}")
    }

    /// `filename`: the name passed to execve, when it differs from the resolved exe (a script,
    /// a relative path, a symlink).
    package func processExec(_ s: Session, _ p: ProcessInfo, tid: UInt32, previousExe: [UInt8]?, argc: UInt32,
                     filename: UnsafeRawBufferPointer? = nil, stdio: StdioInfo? = nil, unixNs: Int64) {
        begin(.processExec, unixNs: unixNs)
        sessionAndProcess(s, p, tid: tid) {
            self.buffer.raw(",\"argc\":")
            self.buffer.uint(UInt64(argc))
            if let image = p.image { self.exeImage(image) }
            if let stdio {
                self.stdioStream("stdin", stdio.types.0, ino: stdio.stdinIno, rdev: stdio.stdinRdev, driver: stdio.driver)
                self.stdioStream("stdout", stdio.types.1, ino: stdio.stdoutIno)
                self.stdioStream("stderr", stdio.types.2, ino: 0)
            }
            if let filename {
                self.buffer.raw(",\"filename\":")
                self.buffer.string(filename)
            }
            if let previousExe {
                self.buffer.raw(",\"previous_exe\":")
                self.buffer.string(previousExe)
            }
        }
        end(.processExec)
    }

    private func stdioStream(_ name: StaticString, _ kind: UInt8, ino: UInt64, rdev: UInt32 = 0, driver: StdinDriver? = nil) {
        buffer.raw(",")
        buffer.key(name)
        buffer.raw("{\"type\":")
        buffer.raw("\"")
        buffer.raw(StdioInfo.name(kind))
        buffer.raw("\"")
        if ino != 0 {
            buffer.raw(",\"ino\":")
            buffer.uint(ino)
        }
        if rdev != 0 {
            buffer.raw(",\"device\":")
            device(rdev)
        }
        if let driver {
            buffer.raw(",\"driver\":{\"pid\":")
            buffer.uint(UInt64(driver.pid))
            buffer.raw(",\"entity_id\":")
            buffer.string(driver.entityID)
            buffer.raw(",\"exe\":")
            buffer.string(driver.exe)
            buffer.raw(",\"inet\":")
            buffer.bool(driver.inet)
            buffer.raw("}")
        }
        buffer.raw("}")
    }

    /// `"MAJOR:MINOR"` of a device in the kernel's encoding.
    private func device(_ dev: UInt32) {
        buffer.raw("\"")
        buffer.uint(UInt64(dev >> 20))
        buffer.raw(":")
        buffer.uint(UInt64(dev & 0xFFFFF))
        buffer.raw("\"")
    }

    /// `exe_fileless`, `exe_deleted`, the image's identity and `exe_written` (with its writer).
    private func exeImage(_ image: ExeImage) {
        buffer.raw(",\"exe_fileless\":")
        buffer.bool(image.fileless)
        buffer.raw(",\"exe_deleted\":")
        buffer.bool(image.deleted)
        if image.known {
            buffer.raw(",\"exe_inode\":")
            buffer.uint(image.ino)
            buffer.raw(",\"exe_device\":")
            device(image.dev)
            buffer.raw(",\"exe_mount_id\":")
            buffer.uint(UInt64(image.mountID))
        }
        if image.writtenKnown {
            buffer.raw(",\"exe_written\":")
            buffer.bool(image.written)
            if let by = image.writtenBy {
                buffer.raw(",\"exe_written_by\":")
                buffer.string(by)
            }
        }
    }

    func processExit(_ s: Session, _ p: ProcessInfo, tid: UInt32, status: Int32, durationNs: UInt64, unixNs: Int64) {
        begin(.processExit, unixNs: unixNs)
        sessionAndProcess(s, p, tid: tid) {
            let sig = status & 0x7f
            if sig == 0 {
                self.buffer.raw(",\"exit_code\":")
                self.buffer.int((status >> 8) & 0xff)
            } else {
                self.buffer.raw(",\"signal\":")
                self.buffer.int(sig)
                if status & 0x80 != 0 { self.buffer.raw(",\"core_dumped\":true") }
            }
            self.buffer.raw(",\"duration_ns\":")
            self.buffer.uint(durationNs)
        }
        end(.processExit)
    }

    /// `knownAs`: the credential catalog path of the file, when it was reached under another.
    func fileOpen(_ s: Session, _ p: ProcessInfo, _ o: agent_open, requested: UnsafeRawBufferPointer, resolved: UnsafeRawBufferPointer,
                  knownAs: String? = nil, unixNs: Int64) {
        begin(.fileOpen, unixNs: unixNs)
        sessionAndProcess(s, p, tid: o.hdr.tid)
        buffer.raw(",\"file\":{\"path\":")
        if o.hdr.flags & UInt8(AGENT_F_PATH_IS_BASE.rawValue) != 0 {
            // A failed relative open: the request made absolute against its directory.
            pathJoin.removeAll(keepingCapacity: true)
            pathJoin.append(contentsOf: resolved)
            if pathJoin.last != UInt8(ascii: "/") { pathJoin.append(UInt8(ascii: "/")) }
            pathJoin.append(contentsOf: requested)
            buffer.string(pathJoin)
            buffer.raw(",\"requested_path\":")
            buffer.string(requested)
        } else if resolved.count > 0 {
            buffer.string(resolved)
            // None requested (open_by_handle_at names a file by handle): none to show.
            if requested.count > 0,
               requested.count != resolved.count || memcmp(requested.baseAddress!, resolved.baseAddress!, requested.count) != 0 {
                buffer.raw(",\"requested_path\":")
                buffer.string(requested)
            }
        } else {
            // Not resolved (an absolute request that failed): the path as requested.
            buffer.string(requested)
        }
        if o.hdr.flags & UInt8(AGENT_F_PATH_TRUNCATED.rawValue) != 0 { buffer.raw(",\"path_truncated\":true") }
        buffer.raw(",\"via\":\"")
        buffer.raw(o.viaName)
        buffer.raw("\"")
        if o.isIA32 { buffer.raw(",\"ia32\":true") }
        if o.dfd != -100 {
            buffer.raw(",\"dirfd\":")
            buffer.int(o.dfd)
        }
        buffer.raw(",\"flags\":")
        buffer.bytes.append(contentsOf: OpenFlags.json(o.flags, cache: &flagNames))
        buffer.raw(",\"mode\":")
        buffer.uint(UInt64(o.mode))
        if o.resultUnseen {
            // Written at submission: the result was never posted (IOSQE_CQE_SKIP_SUCCESS).
            buffer.raw(",\"result_unseen\":true")
        } else {
            result(o.ret)
        }
        if o.isFixedFile { buffer.raw(",\"fixed_file\":true") }
        if o.hasIdentity {
            buffer.raw(",\"inode\":")
            buffer.uint(o.id.ino)
            buffer.raw(",\"device\":\"")
            buffer.uint(UInt64(o.id.major))
            buffer.raw(":")
            buffer.uint(UInt64(o.id.minor))
            buffer.raw("\",\"mount_id\":")
            buffer.uint(UInt64(o.id.mnt_id))
        }
        if let knownAs {
            buffer.raw(",\"known_as\":")
            buffer.string(knownAs)
        }
        buffer.raw("}")
        end(.fileOpen)
    }

    /// `,"result":N` and, for a failure, `,"error":"ENAME"`.
    @inline(__always)
    private func result<T: BinaryInteger>(_ ret: T) {
        buffer.raw(",\"result\":")
        buffer.int(ret)
        if ret < 0 {
            buffer.raw(",\"error\":")
            buffer.bytes.append(contentsOf: ErrnoNames.json(Int32(truncatingIfNeeded: -Int64(ret)), cache: &errnoNames))
        }
    }

    /// `net.connect`; `dname`: the name the session resolved the destination from.
    func netConnect(_ s: Session, _ p: ProcessInfo, _ c: agent_connect, dname: String? = nil, unixNs: Int64) {
        begin(.netConnect, unixNs: unixNs)
        sessionAndProcess(s, p, tid: c.hdr.tid)
        buffer.raw(",\"net\":{")
        addresses(c)
        dnameMember(dname)
        buffer.raw(",\"via\":\"")
        buffer.raw(LiveRuleInput.viaName(c.via))
        buffer.raw("\",\"fd\":")
        buffer.int(c.fd)
        result(c.ret)
        buffer.raw("}")
        end(.netConnect)
    }

    /// `net.flow`: bytes through a socket, with the addresses of the connect that opened it
    /// (`connect` nil when the daemon did not see that connect).
    func netFlow(_ s: Session, _ p: ProcessInfo, _ f: agent_flow, connect: agent_connect?, dname: String? = nil, unixNs: Int64) {
        begin(.netFlow, unixNs: unixNs)
        sessionAndProcess(s, p, tid: f.hdr.tid)
        buffer.raw(",\"net\":{")
        if let connect {
            addresses(connect)
            dnameMember(dname)
            buffer.raw(",")
        }
        buffer.raw("\"bytes_sent\":")
        buffer.uint(f.bytes_sent)
        buffer.raw(",\"bytes_received\":")
        buffer.uint(f.bytes_received)
        buffer.raw(",\"bytes_sent_delta\":")
        buffer.uint(f.sent_delta)
        buffer.raw(",\"bytes_received_delta\":")
        buffer.uint(f.received_delta)
        buffer.raw(",\"final\":")
        buffer.bool(f.final != 0)
        buffer.raw("}")
        end(.netFlow)
    }

    /// `alert`: a rule fired. Carries the session and, when the trigger was a process's record,
    /// the process, so a SIEM needs no join to show who did it.
    func alert(_ a: Alert, _ s: Session, _ p: ProcessInfo?, tid: UInt32, unixNs: Int64) {
        writeAlert(id: a.rule.id, title: a.rule.title, severity: a.rule.severity, tags: a.rule.tags, source: a.rule.source,
                   author: a.rule.author, message: a.message, evidence: a.evidence, suppressed: a.suppressed,
                   session: s, process: p, tid: tid, unixNs: unixNs)
    }

    /// An alert the daemon raises itself (not a rule's), in the shape of rule alerts.
    package func daemonAlert(id: String, title: String, severity: RuleSeverity, tags: [String], message: String,
                     session s: Session, process p: ProcessInfo?, tid: UInt32, unixNs: Int64) {
        writeAlert(id: id, title: title, severity: severity, tags: tags, source: "agentwatch daemon", author: "agentwatch",
                   message: message, evidence: [], suppressed: 0, session: s, process: p, tid: tid, unixNs: unixNs)
        s.counts[Int(RecordType.alert.rawValue)] += 1
    }

    private func writeAlert(id: String, title: String, severity: RuleSeverity, tags: [String], source: String, author: String,
                            message: String, evidence: [UInt64], suppressed: Int,
                            session s: Session, process p: ProcessInfo?, tid: UInt32, unixNs: Int64) {
        begin(.alert, unixNs: unixNs)
        if let p {
            sessionAndProcess(s, p, tid: tid)
        } else {
            buffer.raw(",")
            buffer.bytes.append(contentsOf: s.json)
        }
        buffer.alertMembers(id: id, title: title, severity: severity, tags: tags, source: source, author: author,
                            message: message, evidence: evidence, suppressed: suppressed)
        end(.alert)
    }

    private func addresses(_ c: agent_connect) {
        var c = c
        withUnsafeBytes(of: &c.addr) { addr in
            withUnsafeBytes(of: &c.local) { local in
                SocketAddress.write(into: &buffer, remote: UnsafeRawBufferPointer(rebasing: addr[0..<Int(min(c.addr_len, UInt16(addr.count)))]),
                                    local: UnsafeRawBufferPointer(rebasing: local[0..<Int(min(c.local_len, UInt16(local.count)))]),
                                    sockType: c.sock_type, protocol: c.protocol)
            }
        }
    }

    /// `undecoded`: at the end, uses of channels the kernel programs saw and could not decode.
    package func sessionRecord(_ type: RecordType, _ s: Session, unixNs: Int64, ended: Bool = false,
                               undecoded: [(channel: String, count: UInt64)] = []) {
        begin(type, unixNs: unixNs)
        buffer.raw(",\"session\":{\"id\":")
        buffer.string(s.id)
        buffer.raw(",\"cgroup\":")
        buffer.string(s.cgroup)
        buffer.raw(",\"cgroup_id\":")
        buffer.uint(s.cgid)
        buffer.raw(",\"uid\":")
        buffer.uint(UInt64(s.uid))
        buffer.raw(",\"labels\":{")
        for (i, l) in s.labels.enumerated() {
            if i > 0 { buffer.raw(",") }
            buffer.string(l.key); buffer.raw(":"); buffer.string(l.value)
        }
        buffer.raw("},\"homes\":")
        buffer.stringArray(s.homes)
        buffer.raw(",\"adopted\":")
        buffer.bool(s.adopted)
        buffer.raw(",\"start_time\":")
        buffer.timestamp(unixNanoseconds: s.startNs)
        if type == .sessionStart, let sight {
            buffer.raw(",\"sensor\":{\"tier\":")
            buffer.string(sight.tier.rawValue)
            buffer.raw(",\"sees\":")
            buffer.stringArray(sight.sees)
            buffer.raw(",\"blind\":")
            buffer.stringArray(sight.blind)
            buffer.raw("}")
        }
        if ended {
            buffer.raw(",\"end_time\":")
            buffer.timestamp(unixNanoseconds: unixNs)
            buffer.raw(",\"counts\":{")
            var first = true
            for t in RecordType.allCases where s.counts[Int(t.rawValue)] > 0 {
                if !first { buffer.raw(",") }
                first = false
                buffer.raw("\"")
                buffer.raw(t.name)
                buffer.raw("\":")
                buffer.uint(s.counts[Int(t.rawValue)])
            }
            buffer.raw("}")
            if !undecoded.isEmpty {
                buffer.raw(",\"undecoded\":{")
                for (i, u) in undecoded.enumerated() {
                    if i > 0 { buffer.raw(",") }
                    buffer.string(u.channel)
                    buffer.raw(":")
                    buffer.uint(u.count)
                }
                buffer.raw("}")
            }
            if s.pauses > 0 {
                buffer.raw(",\"throttle\":{\"pauses\":")
                buffer.uint(s.pauses)
                buffer.raw(",\"paused_ms\":")
                buffer.uint(UInt64(max(0, s.pausedNs) / 1_000_000))
                buffer.raw("}")
            }
        }
        buffer.raw("}")
        end(type)
    }
}

/// Open flags as a JSON array of names, rendered once per distinct value.
enum OpenFlags {
    static let names: [(Int32, String)] = {
        let gnu = aw_gnu_open_flags()
        return [
            (O_CREAT, "O_CREAT"), (O_EXCL, "O_EXCL"), (O_NOCTTY, "O_NOCTTY"), (O_TRUNC, "O_TRUNC"),
            (O_APPEND, "O_APPEND"), (O_NONBLOCK, "O_NONBLOCK"), (O_DSYNC, "O_DSYNC"), (O_ASYNC, "O_ASYNC"),
            (gnu.direct, "O_DIRECT"), (gnu.largefile, "O_LARGEFILE"), (O_DIRECTORY, "O_DIRECTORY"),
            (O_NOFOLLOW, "O_NOFOLLOW"), (gnu.noatime, "O_NOATIME"), (O_CLOEXEC, "O_CLOEXEC"),
            (O_SYNC & ~O_DSYNC, "O_SYNC"), (gnu.path, "O_PATH"), (gnu.tmpfile, "O_TMPFILE"),
        ]
    }()

    static func json(_ flags: UInt64, cache: inout [UInt64: [UInt8]]) -> [UInt8] {
        if let hit = cache[flags] { return hit }
        let parts = list(flags)
        var j = JSONBuffer(capacity: 64)
        j.raw("[")
        for (i, p) in parts.enumerated() {
            if i > 0 { j.raw(",") }
            j.string(p)
        }
        j.raw("]")
        if cache.count < 4096 { cache[flags] = j.bytes }
        return j.bytes
    }

    /// `list`, kept per flag set (programs open with a handful of flag sets).
    static let lists = Mutex<[UInt64: [String]]>([:])
    static func cachedList(_ flags: UInt64) -> [String] {
        lists.withLock { cache in
            if let hit = cache[flags] { return hit }
            let l = list(flags)
            if cache.count < 4096 { cache[flags] = l }
            return l
        }
    }

    /// The names of the flags set, access mode first; unnamed bits as one hex number.
    static func list(_ flags: UInt64) -> [String] {
        var parts: [String] = []
        switch Int32(truncatingIfNeeded: flags) & O_ACCMODE {
        case O_RDONLY: parts.append("O_RDONLY")
        case O_WRONLY: parts.append("O_WRONLY")
        case O_RDWR: parts.append("O_RDWR")
        default: parts.append("O_ACCMODE3")
        }
        var rest = flags & ~UInt64(O_ACCMODE)
        for (bit, name) in names where rest & UInt64(bit) != 0 {
            parts.append(name)
            rest &= ~UInt64(bit)
        }
        if rest != 0 { parts.append("0x" + String(rest, radix: 16)) }
        return parts
    }
}

/// errno names ("ENOENT"), rendered once per value.
enum ErrnoNames {
    static func name(_ e: Int32) -> String {
        if let n = aw_errno_name(e) { return String(cString: n) }
        return "E\(e)"
    }

    static func json(_ e: Int32, cache: inout [Int32: [UInt8]]) -> [UInt8] {
        if let hit = cache[e] { return hit }
        var j = JSONBuffer(capacity: 24)
        j.string(name(e))
        if cache.count < 1024 { cache[e] = j.bytes }
        return j.bytes
    }
}
