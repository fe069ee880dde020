import CAgentEvents

/// A record from the kernel, decoded in place: the byte views point into the ring buffer and
/// are valid only while the ring buffer callback runs.
public enum KernelRecord {
    case exec(agent_exec, filename: UnsafeRawBufferPointer, exe: UnsafeRawBufferPointer, cwd: UnsafeRawBufferPointer, args: UnsafeRawBufferPointer)
    case fork(agent_fork)
    case exit(agent_exit)
    case open(agent_open, requested: UnsafeRawBufferPointer, resolved: UnsafeRawBufferPointer)
    case connect(agent_connect)
    case flow(agent_flow)
    case loss(agent_loss)
    /// Not a record of the stream: a cgroup the daemon must look at now.
    case cgroup(agent_cgroup)
    /// Unconnected sends of a socket to one destination, aggregated in the kernel.
    case send(agent_send)
    /// A DNS message a session socket sent or received; `message` is its copied bytes.
    case dns(agent_dns, message: UnsafeRawBufferPointer)

    public var header: agent_hdr {
        switch self {
        case .exec(let e, _, _, _, _): e.hdr
        case .fork(let f): f.hdr
        case .exit(let x): x.hdr
        case .open(let o, _, _): o.hdr
        case .connect(let c): c.hdr
        case .flow(let f): f.hdr
        case .loss(let l): l.hdr
        case .cgroup(let c): c.hdr
        case .send(let s): s.hdr
        case .dns(let d, _): d.hdr
        }
    }
}

extension KernelRecord {
    private static let sessionOffset = MemoryLayout<agent_hdr>.offset(of: \agent_hdr.session_cgid)!

    /// The session cgroup id in a raw record's header, without decoding the rest (0: none, or
    /// too short to have a header).
    @inline(__always)
    public static func session(ofRaw raw: UnsafeRawBufferPointer) -> UInt64 {
        guard raw.count >= MemoryLayout<agent_hdr>.size else { return 0 }
        return raw.loadUnaligned(fromByteOffset: sessionOffset, as: UInt64.self)
    }
}

/// What the decoder refused, by reason: every record is either decoded or counted here.
public struct DecodeCounters: Sendable, Equatable {
    package var decoded: UInt64 = 0
    package var truncated: UInt64 = 0
    package var unknownKind: UInt64 = 0

    public var rejected: UInt64 { truncated + unknownKind }
}

/// Turns ring buffer bytes into `KernelRecord`s. Checks every length before it reads, so a
/// short, oversized or unknown record is counted and skipped, never a crash.
public struct RecordDecoder {
    public private(set) var counters = DecodeCounters()

    public init() {}

    public mutating func decode(_ raw: UnsafeRawBufferPointer) -> KernelRecord? {
        guard raw.count >= MemoryLayout<agent_hdr>.size else {
            counters.truncated += 1
            return nil
        }
        let hdr = raw.loadUnaligned(as: agent_hdr.self)
        // The record must be as long as it says it is; the ring may round its size up.
        guard Int(hdr.size) >= MemoryLayout<agent_hdr>.size, Int(hdr.size) <= raw.count else {
            counters.truncated += 1
            return nil
        }
        let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<Int(hdr.size)])
        let record: KernelRecord?
        switch UInt32(hdr.kind) {
        case AGENT_KIND_EXEC.rawValue: record = Self.exec(bytes)
        case AGENT_KIND_FORK.rawValue: record = Self.fixed(bytes, agent_fork.self).map { .fork($0) }
        case AGENT_KIND_EXIT.rawValue: record = Self.fixed(bytes, agent_exit.self).map { .exit($0) }
        case AGENT_KIND_OPEN.rawValue: record = Self.open(bytes)
        case AGENT_KIND_CONNECT.rawValue: record = Self.fixed(bytes, agent_connect.self).map { .connect($0) }
        case AGENT_KIND_FLOW.rawValue: record = Self.fixed(bytes, agent_flow.self).map { .flow($0) }
        case AGENT_KIND_LOSS.rawValue: record = Self.fixed(bytes, agent_loss.self).map { .loss($0) }
        case AGENT_KIND_CGROUP.rawValue: record = Self.fixed(bytes, agent_cgroup.self).map { .cgroup($0) }
        case AGENT_KIND_SEND.rawValue: record = Self.fixed(bytes, agent_send.self).map { .send($0) }
        case AGENT_KIND_DNS.rawValue: record = Self.dns(bytes)
        default:
            counters.unknownKind += 1
            return nil
        }
        if record == nil { counters.truncated += 1 } else { counters.decoded += 1 }
        return record
    }

    private static func fixed<T>(_ b: UnsafeRawBufferPointer, _: T.Type) -> T? {
        b.count >= MemoryLayout<T>.size ? b.loadUnaligned(as: T.self) : nil
    }

    /// The tail slice [offset, offset+count), or nil when it runs past the record.
    private static func tail(_ b: UnsafeRawBufferPointer, _ offset: Int, _ count: Int) -> UnsafeRawBufferPointer? {
        guard offset >= 0, count >= 0, offset + count <= b.count else { return nil }
        return UnsafeRawBufferPointer(rebasing: b[offset..<(offset + count)])
    }

    private static func exec(_ b: UnsafeRawBufferPointer) -> KernelRecord? {
        guard let e = fixed(b, agent_exec.self) else { return nil }
        var at = MemoryLayout<agent_exec>.size
        guard let filename = tail(b, at, Int(e.filename_len)) else { return nil }
        at += Int(e.filename_len)
        guard let exe = tail(b, at, Int(e.exe_len)) else { return nil }
        at += Int(e.exe_len)
        guard let cwd = tail(b, at, Int(e.cwd_len)) else { return nil }
        at += Int(e.cwd_len)
        guard let args = tail(b, at, Int(e.args_len)) else { return nil }
        return .exec(e, filename: filename, exe: exe, cwd: cwd, args: args)
    }

    private static func open(_ b: UnsafeRawBufferPointer) -> KernelRecord? {
        guard let o = fixed(b, agent_open.self) else { return nil }
        let at = MemoryLayout<agent_open>.size
        guard let requested = tail(b, at, Int(o.requested_len)),
              let resolved = tail(b, at + Int(o.requested_len), Int(o.path_len)) else { return nil }
        return .open(o, requested: requested, resolved: resolved)
    }
}

extension RecordDecoder {
    /// A DNS record: the message is the tail, `len` bytes, at most AGENT_DNS_MAX.
    fileprivate static func dns(_ b: UnsafeRawBufferPointer) -> KernelRecord? {
        guard b.count >= MemoryLayout<agent_dns>.size else { return nil }
        let d = b.loadUnaligned(as: agent_dns.self)
        let at = MemoryLayout<agent_dns>.size
        guard Int(d.len) <= Int(AGENT_DNS_MAX), at + Int(d.len) <= b.count else { return nil }
        return .dns(d, message: UnsafeRawBufferPointer(rebasing: b[at..<(at + Int(d.len))]))
    }
}

/// The name of a kind in `agent.loss` counts.
package func kindName(_ kind: Int) -> StaticString {
    switch UInt32(kind) {
    case AGENT_KIND_EXEC.rawValue: "exec"
    case AGENT_KIND_FORK.rawValue: "fork"
    case AGENT_KIND_EXIT.rawValue: "exit"
    case AGENT_KIND_OPEN.rawValue: "open"
    case AGENT_KIND_CONNECT.rawValue: "connect"
    case AGENT_KIND_LOSS.rawValue: "loss"
    case AGENT_KIND_FLOW.rawValue: "flow"
    case AGENT_KIND_CGROUP.rawValue: "cgroup"
    case AGENT_KIND_SEND.rawValue: "send"
    case AGENT_KIND_DNS.rawValue: "dns"
    default: "unknown"
    }
}

extension agent_cgroup {
    /// `name` as text: the directory's name, or the path a process was moved to.
    package var nameText: String { String(decoding: nameBytes, as: UTF8.self) }

    /// The name as the kernel gave it (any bytes but '/' and NUL).
    package var nameBytes: [UInt8] {
        let count = min(Int(name_len), Int(AGENT_CGROUP_NAME))
        return withUnsafeBytes(of: name) { Array($0.prefix(count)) }
    }

    /// The name or path was longer than the notice holds.
    package var nameTruncated: Bool { hdr.flags & UInt8(AGENT_F_PATH_TRUNCATED.rawValue) != 0 }
}

extension agent_open {
    /// How the open was asked (`file.via`).
    package var viaName: StaticString {
        switch UInt32(via) {
        case AGENT_VIA_OPENAT.rawValue: "openat"
        case AGENT_VIA_OPENAT2.rawValue: "openat2"
        case AGENT_VIA_OPEN.rawValue: "open"
        case AGENT_VIA_CREAT.rawValue: "creat"
        case AGENT_VIA_OPEN_BY_HANDLE_AT.rawValue: "open_by_handle_at"
        case AGENT_VIA_IO_URING.rawValue: "io_uring"
        case AGENT_VIA_OTHER.rawValue: "other"
        default: "unknown"
        }
    }

    /// The open gave a file whose identity the kernel read (`file.inode`, `file.device`,
    /// `file.mount_id`): 0s otherwise.
    package var hasIdentity: Bool { id.ino != 0 }

    /// An ia32 syscall made it (a 32-bit program, or int $0x80 from a 64-bit one).
    package var isIA32: Bool { hdr.flags & UInt8(AGENT_F_IA32.rawValue) != 0 }

    /// io_uring opened it into a fixed-file slot: no descriptor, `ret` is 0 or the slot.
    package var isFixedFile: Bool { hdr.flags & UInt8(AGENT_F_FIXED_FILE.rawValue) != 0 }

    /// Written at submission (io_uring, IOSQE_CQE_SKIP_SUCCESS): `ret` is not the result, which
    /// was never posted.
    package var resultUnseen: Bool { hdr.flags & UInt8(AGENT_F_RESULT_UNSEEN.rawValue) != 0 }
}

extension agent_file_id {
    /// The filesystem's device from the kernel's encoding (major << 20 | minor): what
    /// major(3) and minor(3) give for stat(2)'s st_dev.
    package var major: UInt32 { dev >> 20 }
    package var minor: UInt32 { dev & 0xFFFFF }

    /// `MAJOR:MINOR`, as /proc/PID/mountinfo writes a device.
    package var deviceText: String { "\(major):\(minor)" }
}
