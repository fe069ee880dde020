import AgentDetector
import AgentRecords
import AgentSensor
import AgentSessions
import CAgentEvents
import Glibc

/// A record as the rules see it in the daemon: each value computed on demand from the kernel
/// record, the process and the session, as the record's NDJSON line shows it, so replaying that
/// line gives the rules the same values. Valid only during the ring buffer callback (it may
/// point into the ring).
struct LiveRuleInput: RuleInput {
    enum Detail {
        case exec(stdio: StdioInfo, previousExe: [UInt8]?, filename: UnsafeRawBufferPointer?)
        case exit(status: Int32, durationNs: UInt64)
        case open(agent_open, requested: UnsafeRawBufferPointer, resolved: UnsafeRawBufferPointer)
        case connect(agent_connect, dname: String?)
        case flow(agent_flow, connect: agent_connect?, dname: String?)
        case send(agent_send, dname: String?)
        case dns(agent_dns, DNSMessage?, cut: Bool, unmatched: Bool)
    }

    package let type: RecordType
    let seq: UInt64
    let timeNs: Int64
    let session: Session
    let process: ProcessInfo
    let tid: UInt32
    let detail: Detail
    /// A file.open's `file.known_as`: the catalog path of a file reached under another path.
    var knownAs: String? = nil

    package var typeName: String { type.typeName }
    var sessionID: String { session.id }
    var homes: [String] { session.homes }

    func value(_ field: Field) -> RuleValue? {
        let id = field.ruleField
        if Self.isProcessField[id.rawValue] {
            if process.ruleValues.isEmpty {
                process.ruleValues = [RuleValue?](repeating: nil, count: RuleField.allCases.count)
            }
            if let v = process.ruleValues[id.rawValue] { return v }
            let v = processValue(id)
            process.ruleValues[id.rawValue] = v
            return v
        }
        return recordValue(field)
    }

    /// Fields that belong to the process, the same for all its records until it execs again.
    static let isProcessField: [Bool] = RuleField.allCases.map { processFields.contains($0) }
    static let processFields: Set<RuleField> = [
        .processEntityID, .processComm, .processExe, .processName, .processCwd, .processArgs, .processSource,
        .processPID, .processPPID, .processUID, .processGID, .processEUID, .processAUID, .processArgv,
        .processArgvTruncated, .parentEntityID, .parentExe, .parentName, .parentPID,
        .processExeFileless, .processExeDeleted, .processExeInode, .processExeDevice, .processExeMountID,
        .processExeWritten, .processExeWrittenBy,
    ]

    private func processValue(_ id: RuleField) -> RuleValue? {
        let p = process
        switch id {
        case .processEntityID: return .string(p.entityID)
        case .processComm: return .string(Self.text(p.comm))
        case .processExe: return .string(Self.text(p.exe))
        case .processName: return .string(Self.text(Self.basename(p.exe)))
        case .processCwd: return p.cwd.map { .string(Self.text($0)) }
        case .processArgs: return .string(Self.argv(p.args).joined(separator: " "))
        case .processSource: return .string("\(p.source)")
        case .processPID: return .int(Int64(p.pid))
        case .processPPID: return .int(Int64(p.ppid))
        case .processUID: return .int(Int64(p.uid))
        case .processGID: return .int(Int64(p.gid))
        case .processEUID: return .int(Int64(p.euid))
        case .processAUID: return p.loginuid == UInt32.max ? nil : .int(Int64(p.loginuid))
        case .processArgv: return .list(Self.argv(p.args))
        case .processArgvTruncated: return .bool(p.argsTruncated)
        case .parentEntityID: return .string(p.parentEntityID)
        case .parentExe: return p.parentExe.isEmpty ? nil : .string(Self.text(p.parentExe))
        case .parentName: return p.parentExe.isEmpty ? nil : .string(Self.text(Self.basename(p.parentExe)))
        case .parentPID: return .int(Int64(p.ppid))
        // The exec record's image fields (the catalogue has them in process.exec only).
        case .processExeFileless: return p.image.map { .bool($0.fileless) }
        case .processExeDeleted: return p.image.map { .bool($0.deleted) }
        case .processExeInode: return p.image.flatMap { $0.known ? .int(Int64(bitPattern: $0.ino)) : nil }
        case .processExeDevice: return p.image.flatMap { $0.known ? .string(ExeImage.device($0.dev)) : nil }
        case .processExeMountID: return p.image.flatMap { $0.known ? .int(Int64($0.mountID)) : nil }
        case .processExeWritten: return p.image.flatMap { $0.writtenKnown ? .bool($0.written) : nil }
        case .processExeWrittenBy: return p.image?.writtenBy.map { .string(Self.text($0)) }
        default: return nil
        }
    }

    private func recordValue(_ field: Field) -> RuleValue? {
        switch field.ruleField {
        case .type: return .string(typeName)
        case .seq: return .int(Int64(seq))
        case .sessionID: return .string(session.id)
        case .sessionCgroup: return .string(session.cgroup)
        case .sessionUID: return .int(Int64(session.uid))
        case .sessionLabel: return session.labels.first { $0.key == field.labelKey }.map { .string($0.value) }
        case .processTID: return .int(Int64(tid))
        default: break
        }
        switch detail {
        case .exec(let stdio, let previousExe, let filename):
            switch field.ruleField {
            case .processPreviousExe: return previousExe.map { .string(Self.text($0)) }
            case .processFilename: return filename.map { .string(Self.text(Array($0))) }
            case .stdinType: return .string("\(StdioInfo.name(stdio.types.0))")
            case .stdoutType: return .string("\(StdioInfo.name(stdio.types.1))")
            case .stderrType: return .string("\(StdioInfo.name(stdio.types.2))")
            case .stdinIno: return stdio.stdinIno == 0 ? nil : .int(Int64(bitPattern: stdio.stdinIno))
            case .stdoutIno: return stdio.stdoutIno == 0 ? nil : .int(Int64(bitPattern: stdio.stdoutIno))
            case .stdinDevice: return stdio.stdinRdev == 0 ? nil : .string(ExeImage.device(stdio.stdinRdev))
            case .stdinDriverPID: return stdio.driver.map { .int(Int64($0.pid)) }
            case .stdinDriverEntityID: return stdio.driver.map { .string($0.entityID) }
            case .stdinDriverExe: return stdio.driver.map { .string(Self.text($0.exe)) }
            case .stdinDriverInet: return stdio.driver.map { .bool($0.inet) }
            default: return nil
            }
        case .exit(let status, let durationNs):
            let sig = status & 0x7f
            switch field.ruleField {
            case .exitCode: return sig == 0 ? .int(Int64((status >> 8) & 0xff)) : nil
            case .signal: return sig != 0 ? .int(Int64(sig)) : nil
            case .durationNs: return .int(Int64(durationNs))
            default: return nil
            }
        case .open(let o, let requested, let resolved):
            return openValue(field.ruleField, o, requested: requested, resolved: resolved)
        case .connect(let c, let dname):
            if field.ruleField == .netResult { return .int(Int64(c.ret)) }
            if field.ruleField == .netError { return c.ret < 0 ? .string(ErrnoNames.name(-c.ret)) : nil }
            if field.ruleField == .netVia { return .string("\(Self.viaName(c.via))") }
            if field.ruleField == .netDname { return dname.map { .string($0) } }
            return Self.address(field.ruleField, c)
        case .flow(let f, let connect, let dname):
            switch field.ruleField {
            case .netBytesSent: return .int(Int64(bitPattern: f.bytes_sent))
            case .netBytesReceived: return .int(Int64(bitPattern: f.bytes_received))
            case .netBytesSentDelta: return .int(Int64(bitPattern: f.sent_delta))
            case .netFinal: return .bool(f.final != 0)
            case .netDname: return dname.map { .string($0) }
            default: return connect.flatMap { Self.address(field.ruleField, $0) }
            }
        case .send(let x, let dname):
            return sendValue(field.ruleField, x, dname: dname)
        case .dns(let d, let m, _, let unmatched):
            return dnsValue(field.ruleField, d, m, unmatched: unmatched)
        }
    }

    private func openValue(_ field: RuleField, _ o: agent_open, requested: UnsafeRawBufferPointer, resolved: UnsafeRawBufferPointer) -> RuleValue? {
        switch field {
        case .filePath, .fileName, .fileRequestedPath:
            // The same choice the Recorder makes for file.path and requested_path, built straight
            // from the record's bytes (one string, no intermediate array).
            if o.hdr.flags & UInt8(AGENT_F_PATH_IS_BASE.rawValue) != 0 {
                if field == .fileRequestedPath { return .string(Self.text(requested)) }
                var path = Array(resolved)
                if path.last != UInt8(ascii: "/") { path.append(UInt8(ascii: "/")) }
                path += requested
                return .string(Self.text(field == .fileName ? Self.basename(path) : path[...]))
            }
            let shown = resolved.count > 0 ? resolved : requested
            switch field {
            case .filePath: return .string(Self.text(shown))
            case .fileName: return .string(Self.text(Self.basename(shown)))
            default:
                return resolved.count > 0 && requested.count > 0 && !requested.elementsEqual(resolved) ? .string(Self.text(requested)) : nil
            }
        case .fileError: return o.ret < 0 && !o.resultUnseen ? .string(ErrnoNames.name(Int32(truncatingIfNeeded: -o.ret))) : nil
        case .fileFlags: return .list(OpenFlags.cachedList(o.flags))
        case .fileWrite:
            let f = Int32(truncatingIfNeeded: o.flags)
            let acc = f & O_ACCMODE
            return .bool(acc == O_WRONLY || acc == O_RDWR || f & (O_CREAT | O_TRUNC | O_APPEND) != 0)
        case .fileResult: return o.resultUnseen ? nil : .int(Int64(o.ret))
        case .fileMode: return .int(Int64(o.mode))
        case .fileVia: return .string("\(o.viaName)")
        case .fileIA32: return o.isIA32 ? .bool(true) : nil
        case .fileFixedFile: return o.isFixedFile ? .bool(true) : nil
        case .fileResultUnseen: return o.resultUnseen ? .bool(true) : nil
        // As the record writes them, when the open gave a file; an inode past Int64 is no
        // integer to the rules (nor in a replay).
        case .fileInode: return o.hasIdentity && o.id.ino <= UInt64(Int64.max) ? .int(Int64(o.id.ino)) : nil
        case .fileDevice: return o.hasIdentity ? .string(o.id.deviceText) : nil
        case .fileMountID: return o.hasIdentity ? .int(Int64(o.id.mnt_id)) : nil
        case .fileKnownAs: return knownAs.map { .string($0) }
        default: return nil
        }
    }

    /// The net fields both connect and flow records carry, from the connect's addresses.
    static func address(_ field: RuleField, _ c: agent_connect) -> RuleValue? {
        var c = c
        let family = Int32(c.addr_len >= 2 ? withUnsafeBytes(of: &c.addr) { $0.loadUnaligned(as: UInt16.self) } : 0)
        switch field {
        case .netFamily:
            switch family {
            case AF_INET: return .string("ipv4")
            case AF_INET6: return .string("ipv6")
            case AF_UNIX: return .string("unix")
            case AF_UNSPEC: return .string("unspec")
            default: return .string("af_\(family)")
            }
        case .netTransport:
            let quoted = "\(SocketAddress.transport(family: family, sockType: c.sock_type, protocol: c.protocol))"
            return .string(String(quoted.dropFirst().dropLast()))
        case .netDaddr, .netDport:
            return withUnsafeBytes(of: &c.addr) { a in
                inet(UnsafeRawBufferPointer(rebasing: a[0..<Int(min(c.addr_len, UInt16(a.count)))]), port: field == .netDport)
            }
        case .netSaddr, .netSport:
            return withUnsafeBytes(of: &c.local) { a in
                inet(UnsafeRawBufferPointer(rebasing: a[0..<Int(min(c.local_len, UInt16(a.count)))]), port: field == .netSport)
            }
        case .netPath:
            guard family == AF_UNIX else { return nil }
            return withUnsafeBytes(of: &c.addr) { a -> RuleValue? in
                let path = a[2..<Int(min(max(c.addr_len, 2), UInt16(a.count)))]
                guard let first = path.first else { return nil }
                if first == 0 { return .string(text([UInt8(ascii: "@")] + path.dropFirst())) }
                return .string(text(Array(path.prefix(while: { $0 != 0 }))))
            }
        default: return nil
        }
    }

    private static func inet(_ sockaddr: UnsafeRawBufferPointer, port: Bool) -> RuleValue? {
        var out: RuleValue?
        SocketAddress.inet(sockaddr) { addr, p in
            out = port ? .int(Int64(p)) : .string(String(decoding: addr, as: UTF8.self))
        }
        return out
    }

    /// Bytes as rules compare them: UTF-8, an invalid byte as U+FFFD (replay decodes the
    /// record's `\udcXX` escapes back to the same bytes first, so both sides agree).
    static func text<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        String(decoding: bytes, as: UTF8.self)
    }

    static func basename<C: BidirectionalCollection>(_ path: C) -> C.SubSequence where C.Element == UInt8 {
        guard let slash = path.lastIndex(of: UInt8(ascii: "/")) else { return path[...] }
        return path[path.index(after: slash)...]
    }

    /// argv from the kernel's NUL-separated argument area.
    static func argv(_ args: [UInt8]) -> [String] {
        var out: [String] = []
        var start = 0
        for (i, b) in args.enumerated() where b == 0 {
            out.append(text(args[start..<i]))
            start = i + 1
        }
        if start < args.count { out.append(text(args[start...])) }
        return out
    }
}
