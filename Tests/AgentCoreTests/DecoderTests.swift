@testable import AgentSensor
import CAgentEvents
import Testing

// Records are built the way the kernel builds them: fill the C struct, take its bytes, append
// the variable tail, and put the whole length in hdr.size.

private func header(_ kind: UInt32, size: Int, pid: UInt32 = 4242) -> agent_hdr {
    var h = agent_hdr()
    h.kind = UInt8(kind)
    h.size = UInt16(truncatingIfNeeded: size)
    h.pid = pid
    h.tid = pid + 1
    h.ktime_ns = 1_234_567_890
    h.session_cgid = 77
    h.cgroup_id = 78
    return h
}

private func execRecord(filename: [UInt8], exe: [UInt8] = [], cwd: [UInt8] = [], args: [UInt8], argc: UInt32 = 0) -> [UInt8] {
    var e = agent_exec()
    let size = MemoryLayout<agent_exec>.size + filename.count + exe.count + cwd.count + args.count
    e.hdr = header(AGENT_KIND_EXEC.rawValue, size: size)
    e.proc.ppid = 1
    e.proc.uid = 1000
    e.filename_len = UInt16(filename.count)
    e.exe_len = UInt16(exe.count)
    e.cwd_len = UInt16(cwd.count)
    e.args_len = UInt32(args.count)
    e.args_size = UInt32(args.count)
    e.argc = argc
    return rawBytes(of: e) + filename + exe + cwd + args
}

private func openRecord(requested: [UInt8], resolved: [UInt8] = [], via: UInt32 = AGENT_VIA_OPENAT.rawValue,
                        id: agent_file_id = agent_file_id(), ret: Int64 = -2) -> [UInt8] {
    var o = agent_open()
    o.hdr = header(AGENT_KIND_OPEN.rawValue, size: MemoryLayout<agent_open>.size + requested.count + resolved.count)
    o.ret = ret
    o.flags = 0o2_000_000  // O_CLOEXEC
    o.dfd = -100
    o.requested_len = UInt16(requested.count)
    o.path_len = UInt16(resolved.count)
    o.via = UInt8(via)
    o.id = id
    return rawBytes(of: o) + requested + resolved
}

private func forkRecord() -> [UInt8] {
    var f = agent_fork()
    f.hdr = header(AGENT_KIND_FORK.rawValue, size: MemoryLayout<agent_fork>.size)
    f.child_pid = 5555
    f.child_start_ns = 99
    return rawBytes(of: f)
}

/// Offsets of the length fields, from the header (checked in RecordLayoutTests).
private let hdrSizeOffset = 2
private let execFilenameLenOffset = 100
private let execExeLenOffset = 102
private let execCwdLenOffset = 104
private let execArgsLenOffset = 108
private let openRequestedLenOffset = 80
private let openPathLenOffset = 82

private func patch16(_ bytes: inout [UInt8], at offset: Int, _ value: UInt16) {
    bytes[offset] = UInt8(value & 0xff)
    bytes[offset + 1] = UInt8(value >> 8)
}

private func patch32(_ bytes: inout [UInt8], at offset: Int, _ value: UInt32) {
    for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
}

/// Decodes `bytes` and hands the record to `body` while the buffer is still alive: the
/// record's tails point into it.
private func decode<R>(_ bytes: [UInt8], _ decoder: inout RecordDecoder, _ body: (KernelRecord?) -> R) -> R {
    bytes.withUnsafeBytes { body(decoder.decode($0)) }
}

@Suite("RecordDecoder")
struct DecoderTests {
    // MARK: valid records

    @Test func execWithFilenameAndArgs() {
        let filename = Array("/usr/bin/env".utf8)
        let args = Array("env\0-i\0ls\0".utf8)
        let bytes = execRecord(filename: filename, args: args, argc: 3)
        var d = RecordDecoder()
        let ok = decode(bytes, &d) { r -> Bool in
            guard case .exec(let e, let f, _, _, let a) = r else { return false }
            #expect(Array(f) == filename)
            #expect(Array(a) == args)
            #expect(e.argc == 3)
            #expect(e.proc.uid == 1000)
            #expect(e.hdr.pid == 4242)
            #expect(e.hdr.tid == 4243)
            #expect(e.hdr.session_cgid == 77)
            #expect(r?.header.cgroup_id == 78)
            return true
        }
        #expect(ok)
        #expect(d.counters == DecodeCounters(decoded: 1, truncated: 0, unknownKind: 0))
    }

    @Test func execArgsSkipExeAndCwd() {
        let filename = Array("ls".utf8)
        let exe = Array("/usr/bin/ls".utf8)
        let cwd = Array("/home/agent".utf8)
        let args = Array("ls\0-l\0".utf8)
        var d = RecordDecoder()
        let ok = decode(execRecord(filename: filename, exe: exe, cwd: cwd, args: args), &d) { r -> Bool in
            guard case .exec(_, let f, _, _, let a) = r else { return false }
            #expect(Array(f) == filename)
            #expect(Array(a) == args)
            return true
        }
        #expect(ok)
        #expect(d.counters.decoded == 1)
    }

    @Test func execWithEmptyTails() {
        var d = RecordDecoder()
        let ok = decode(execRecord(filename: [], args: []), &d) { r -> Bool in
            guard case .exec(_, let f, _, _, let a) = r else { return false }
            return f.isEmpty && a.isEmpty
        }
        #expect(ok)
        #expect(d.counters.decoded == 1)
    }

    /// The ring rounds a record up to 8 bytes: bytes past hdr.size are not part of the record.
    @Test func recordInALargerBufferEndsAtItsSize() {
        let args = Array("a\0".utf8)
        let bytes = execRecord(filename: Array("f".utf8), args: args) + [0xAA, 0xBB, 0xCC, 0xDD, 0xEE]
        var d = RecordDecoder()
        let ok = decode(bytes, &d) { r -> Bool in
            guard case .exec(_, let f, _, _, let a) = r else { return false }
            #expect(Array(f) == Array("f".utf8))
            #expect(Array(a) == args)
            return true
        }
        #expect(ok)
    }

    @Test func openWithRequestedPath() {
        let requested = Array("../etc/passwd".utf8)
        var d = RecordDecoder()
        let ok = decode(openRecord(requested: requested), &d) { r -> Bool in
            guard case .open(let o, let req, let res) = r else { return false }
            #expect(Array(req) == requested)
            #expect(res.isEmpty)
            #expect(o.ret == -2)
            #expect(o.dfd == -100)
            return true
        }
        #expect(ok)
        #expect(d.counters.decoded == 1)
    }

    @Test func openWithRequestedAndResolvedPath() {
        let requested = Array("x".utf8)
        let resolved = Array("/tmp/x".utf8)
        var d = RecordDecoder()
        let ok = decode(openRecord(requested: requested, resolved: resolved), &d) { r -> Bool in
            guard case .open(_, let req, let res) = r else { return false }
            #expect(Array(req) == requested)
            #expect(Array(res) == resolved)
            return true
        }
        #expect(ok)
    }

    @Test("an open's via and file identity: the device split as the kernel encodes it (major << 20 | minor)")
    func openViaAndIdentity() {
        var d = RecordDecoder()
        let id = agent_file_id(ino: 0xFFFF_FFFF_FFFF_FFFE, dev: 259 << 20 | 0xABCDE, mnt_id: 4_000_000_000)
        let ok = decode(openRecord(requested: [], resolved: Array("/x".utf8), via: AGENT_VIA_IO_URING.rawValue, id: id, ret: 5), &d) { r -> Bool in
            guard case .open(let o, let req, let res) = r else { return false }
            #expect(req.isEmpty)
            #expect(Array(res) == Array("/x".utf8))
            #expect("\(o.viaName)" == "io_uring")
            #expect(o.hasIdentity)
            #expect(o.id.ino == 0xFFFF_FFFF_FFFF_FFFE && o.id.mnt_id == 4_000_000_000)
            #expect(o.id.major == 259 && o.id.minor == 0xABCDE)
            #expect(o.id.deviceText == "259:703710")
            return true
        }
        #expect(ok)
        var names: [String] = []
        for via in [AGENT_VIA_OPENAT, AGENT_VIA_OPENAT2, AGENT_VIA_OPEN, AGENT_VIA_CREAT, AGENT_VIA_OPEN_BY_HANDLE_AT, AGENT_VIA_IO_URING] {
            _ = decode(openRecord(requested: Array("a".utf8), via: via.rawValue), &d) { r -> Bool in
                guard case .open(let o, _, _) = r else { return false }
                #expect(!o.hasIdentity)
                names.append("\(o.viaName)")
                return true
            }
        }
        #expect(names == ["openat", "openat2", "open", "creat", "open_by_handle_at", "io_uring"])
    }

    @Test func fork() {
        var d = RecordDecoder()
        let ok = decode(forkRecord(), &d) { r -> Bool in
            guard case .fork(let f) = r else { return false }
            #expect(f.child_pid == 5555)
            #expect(f.child_start_ns == 99)
            #expect(f.hdr.pid == 4242)
            return true
        }
        #expect(ok)
        #expect(d.counters.decoded == 1)
    }

    @Test func exit() {
        var x = agent_exit()
        x.hdr = header(AGENT_KIND_EXIT.rawValue, size: MemoryLayout<agent_exit>.size, pid: 9)
        x.exit_code = 0x8B  // SIGSEGV with core
        var d = RecordDecoder()
        let ok = decode(rawBytes(of: x), &d) { r -> Bool in
            guard case .exit(let e) = r else { return false }
            #expect(e.exit_code == 0x8B)
            #expect(e.hdr.pid == 9)
            return true
        }
        #expect(ok)
        #expect(d.counters.decoded == 1)
    }

    @Test func connect() {
        var c = agent_connect()
        c.hdr = header(AGENT_KIND_CONNECT.rawValue, size: MemoryLayout<agent_connect>.size)
        c.ret = -115
        c.fd = 7
        c.addr_len = 16
        c.addr.0 = 2
        c.addr.111 = 0x5A
        c.local.31 = 0xA5
        var d = RecordDecoder()
        let ok = decode(rawBytes(of: c), &d) { r -> Bool in
            guard case .connect(let got) = r else { return false }
            #expect(got.ret == -115)
            #expect(got.fd == 7)
            #expect(got.addr_len == 16)
            #expect(got.addr.0 == 2)
            #expect(got.addr.111 == 0x5A)
            #expect(got.local.31 == 0xA5)
            return true
        }
        #expect(ok)
        #expect(d.counters.decoded == 1)
    }

    @Test func loss() {
        var l = agent_loss()
        l.hdr = header(AGENT_KIND_LOSS.rawValue, size: MemoryLayout<agent_loss>.size)
        l.dropped.1 = 3
        l.dropped.4 = 1000
        l.dropped.6 = UInt64.max
        var d = RecordDecoder()
        let ok = decode(rawBytes(of: l), &d) { r -> Bool in
            guard case .loss(let got) = r else { return false }
            #expect(got.dropped.0 == 0)
            #expect(got.dropped.1 == 3)
            #expect(got.dropped.4 == 1000)
            #expect(got.dropped.6 == UInt64.max)
            return true
        }
        #expect(ok)
        #expect(d.counters.decoded == 1)
    }

    /// The decoder reads with loadUnaligned: a record at an odd address decodes the same.
    @Test func unalignedBuffer() {
        let record = execRecord(filename: Array("/bin/true".utf8), args: Array("true\0".utf8))
        let padded = [0x00] + record
        var d = RecordDecoder()
        let ok = padded.withUnsafeBytes { all -> Bool in
            let raw = UnsafeRawBufferPointer(rebasing: all[1...])
            guard case .exec(_, let f, _, _, let a) = d.decode(raw) else { return false }
            return Array(f) == Array("/bin/true".utf8) && Array(a) == Array("true\0".utf8)
        }
        #expect(ok)
    }

    // MARK: hostile input

    struct Hostile: Sendable, CustomTestStringConvertible {
        let name: String
        let bytes: [UInt8]
        /// true: counted as truncated; false: counted as unknown kind.
        let truncated: Bool
        var testDescription: String { name }
    }

    static let hostile: [Hostile] = {
        var cases: [Hostile] = []
        cases.append(Hostile(name: "empty buffer", bytes: [], truncated: true))
        cases.append(Hostile(name: "39 bytes", bytes: Array(forkRecord().prefix(39)), truncated: true))
        cases.append(Hostile(name: "one byte", bytes: [UInt8(AGENT_KIND_FORK.rawValue)], truncated: true))

        // hdr.size larger than the buffer.
        cases.append(Hostile(name: "fork cut short", bytes: Array(forkRecord().prefix(100)), truncated: true))
        var huge = forkRecord()
        patch16(&huge, at: hdrSizeOffset, 0xFFFF)
        cases.append(Hostile(name: "size 65535 in a 112-byte buffer", bytes: huge, truncated: true))

        // hdr.size smaller than the header.
        for size: UInt16 in [0, 1, 39] {
            var b = forkRecord()
            patch16(&b, at: hdrSizeOffset, size)
            cases.append(Hostile(name: "size \(size)", bytes: b, truncated: true))
        }
        // hdr.size covers the header but not the fixed record.
        for (kind, name) in [(AGENT_KIND_EXEC, "exec"), (AGENT_KIND_FORK, "fork"), (AGENT_KIND_EXIT, "exit"),
                             (AGENT_KIND_OPEN, "open"), (AGENT_KIND_CONNECT, "connect"), (AGENT_KIND_LOSS, "loss"),
                             (AGENT_KIND_FLOW, "flow"), (AGENT_KIND_CGROUP, "cgroup")] {
            var b = rawBytes(of: header(kind.rawValue, size: 40)) + [UInt8](repeating: 0, count: 300)
            cases.append(Hostile(name: "\(name) with size 40", bytes: b, truncated: true))
            // Size names the whole fixed part minus one.
            let fixed = [144, 112, 104, 88, 224, 112, 96, 352][Int(kind.rawValue) - 1]
            patch16(&b, at: hdrSizeOffset, UInt16(fixed - 1))
            cases.append(Hostile(name: "\(name) one byte short", bytes: b, truncated: true))
        }

        // exec tails past the end.
        var e = execRecord(filename: Array("abc".utf8), args: Array("x\0".utf8))
        patch16(&e, at: execFilenameLenOffset, 0xFFFF)
        cases.append(Hostile(name: "exec filename_len past the end", bytes: e, truncated: true))
        e = execRecord(filename: Array("abc".utf8), args: Array("x\0".utf8))
        patch16(&e, at: execFilenameLenOffset, 6)
        cases.append(Hostile(name: "exec filename_len one past the end", bytes: e, truncated: true))
        e = execRecord(filename: Array("abc".utf8), args: Array("x\0".utf8))
        patch32(&e, at: execArgsLenOffset, 3)
        cases.append(Hostile(name: "exec args_len one past the end", bytes: e, truncated: true))
        e = execRecord(filename: Array("abc".utf8), args: Array("x\0".utf8))
        patch32(&e, at: execArgsLenOffset, UInt32.max)
        cases.append(Hostile(name: "exec args_len 2^32-1", bytes: e, truncated: true))
        e = execRecord(filename: Array("abc".utf8), args: [])
        patch16(&e, at: execExeLenOffset, 1)
        cases.append(Hostile(name: "exec exe_len pushes empty args past the end", bytes: e, truncated: true))
        e = execRecord(filename: [], args: [])
        patch16(&e, at: execExeLenOffset, 0xFFFF)
        patch16(&e, at: execCwdLenOffset, 0xFFFF)
        cases.append(Hostile(name: "exec exe_len and cwd_len 65535", bytes: e, truncated: true))
        // args fit the buffer but not hdr.size: the ring's padding is not part of the record.
        e = execRecord(filename: Array("abc".utf8), args: []) + Array("pad\0".utf8)
        patch32(&e, at: execArgsLenOffset, 4)
        cases.append(Hostile(name: "exec args in the padding past hdr.size", bytes: e, truncated: true))

        // open tails past the end.
        var o = openRecord(requested: Array("/etc".utf8))
        patch16(&o, at: openRequestedLenOffset, 5)
        cases.append(Hostile(name: "open requested_len past the end", bytes: o, truncated: true))
        o = openRecord(requested: Array("/etc".utf8))
        patch16(&o, at: openPathLenOffset, 1)
        cases.append(Hostile(name: "open path_len past the end", bytes: o, truncated: true))
        o = openRecord(requested: [], resolved: [])
        patch16(&o, at: openRequestedLenOffset, 0xFFFF)
        patch16(&o, at: openPathLenOffset, 0xFFFF)
        cases.append(Hostile(name: "open both lengths 65535", bytes: o, truncated: true))

        // Unknown kinds with a plausible size.
        for kind: UInt32 in [0, AGENT_KIND_COUNT.rawValue, 200, 255] {
            let b = rawBytes(of: header(kind, size: 112)) + [UInt8](repeating: 0, count: 72)
            cases.append(Hostile(name: "kind \(kind)", bytes: b, truncated: false))
        }
        return cases
    }()

    @Test(arguments: hostile)
    func hostileInputIsCountedNotDecoded(_ c: Hostile) {
        var d = RecordDecoder()
        let decoded = decode(c.bytes, &d) { $0 != nil }
        #expect(!decoded)
        #expect(d.counters.decoded == 0)
        #expect(d.counters.truncated == (c.truncated ? 1 : 0))
        #expect(d.counters.unknownKind == (c.truncated ? 0 : 1))
        #expect(d.counters.rejected == 1)
    }

    /// The size check comes before the kind: an unknown kind that also lies about its size is
    /// counted once, as truncated.
    @Test func unknownKindWithBadSizeCountsOnce() {
        var d = RecordDecoder()
        let bytes = rawBytes(of: header(200, size: 500))
        #expect(decode(bytes, &d) { $0 } == nil)
        #expect(d.counters.truncated == 1)
        #expect(d.counters.unknownKind == 0)
    }

    @Test func countersAccumulateAcrossRecords() {
        var d = RecordDecoder()
        _ = decode(forkRecord(), &d) { $0 }
        _ = decode([], &d) { $0 }
        _ = decode(rawBytes(of: header(0, size: 40)), &d) { $0 }
        _ = decode(openRecord(requested: Array("/".utf8)), &d) { $0 }
        _ = decode(Array(forkRecord().prefix(50)), &d) { $0 }
        #expect(d.counters == DecodeCounters(decoded: 2, truncated: 2, unknownKind: 1))
        #expect(d.counters.rejected == 3)
    }

    /// 10,000 random buffers, half pure noise and half with a plausible kind, size and tail
    /// lengths: nothing crashes, every buffer is either decoded or counted, and whatever decodes
    /// lies inside the bytes it came from.
    @Test func randomBuffersNeverCrash() {
        var rng = SeededGenerator(seed: 0xA6E7_3A7C_4D00_0001)
        var d = RecordDecoder()
        var decoded: UInt64 = 0
        var rejected: UInt64 = 0
        var decodedKinds = Set<UInt8>()
        for i in 0..<10_000 {
            let length = Int(rng.next() % 301)
            var b = rng.bytes(length)
            if i % 2 == 1, length >= 40 {
                b[0] = UInt8(rng.next() % 11)
                patch16(&b, at: hdrSizeOffset, UInt16(Int(rng.next() % UInt64(length + 16)) + 24))
                let sizeField = Int(b[2]) | Int(b[3]) << 8
                if b[0] == UInt8(AGENT_KIND_EXEC.rawValue), length >= 120 {
                    let room = max(0, sizeField - 120)
                    patch16(&b, at: execFilenameLenOffset, UInt16(rng.next() % UInt64(room / 2 + 2)))
                    patch16(&b, at: execExeLenOffset, UInt16(rng.next() % 3))
                    patch16(&b, at: execCwdLenOffset, UInt16(rng.next() % 3))
                    patch32(&b, at: execArgsLenOffset, UInt32(rng.next() % UInt64(room / 2 + 2)))
                } else if b[0] == UInt8(AGENT_KIND_OPEN.rawValue), length >= 88 {
                    let room = max(0, sizeField - 88)
                    patch16(&b, at: openRequestedLenOffset, UInt16(rng.next() % UInt64(room / 2 + 2)))
                    patch16(&b, at: openPathLenOffset, UInt16(rng.next() % UInt64(room / 2 + 2)))
                } else if b[0] == UInt8(AGENT_KIND_DNS.rawValue), length >= 96 {
                    patch16(&b, at: MemoryLayout<agent_dns>.offset(of: \agent_dns.len)!, UInt16(rng.next() % UInt64(max(0, sizeField - 96) + 8)))
                }
            }
            let inBounds = b.withUnsafeBytes { raw -> Bool? in
                guard let r = d.decode(raw) else { return nil }
                let size = Int(r.header.size)
                guard size >= 40, size <= raw.count else { return false }
                let lo = raw.baseAddress!, hi = lo + size
                func inside(_ t: UnsafeRawBufferPointer) -> Bool {
                    t.isEmpty || (t.baseAddress! >= lo && t.baseAddress! + t.count <= hi)
                }
                decodedKinds.insert(r.header.kind)
                switch r {
                case .exec(_, let f, _, _, let a): return size >= 144 && inside(f) && inside(a)
                case .open(_, let q, let p): return size >= 88 && inside(q) && inside(p)
                case .fork: return size >= 112
                case .exit: return size >= 104
                case .connect: return size >= 232
                case .flow: return size >= 96
                case .loss: return size >= 112
                case .cgroup: return size >= 352
                case .send: return size >= 152
                case .dns(_, let m): return size >= 96 && inside(m)
                }
            }
            switch inBounds {
            case nil: rejected += 1
            case true?: decoded += 1
            case false?:
                decoded += 1
                Issue.record("buffer \(i): decoded record reaches outside its bytes")
            }
        }
        #expect(decoded + rejected == 10_000)
        #expect(d.counters.decoded == decoded)
        #expect(d.counters.rejected == rejected)
        #expect(d.counters.decoded + d.counters.truncated + d.counters.unknownKind == 10_000)
        // The structured half must reach the decoders, or this test proves little.
        #expect(d.counters.unknownKind > 0)
        #expect(decodedKinds.isSuperset(of: [1, 2, 3, 4, 6]))
    }
}
