import AgentProbes
import BPFKit
import CAgentEvents
import Testing

/// The record contract as Swift imports it must match, byte for byte, the layout the kernel
/// programs were compiled with: the daemon reads kernel records with `loadUnaligned(as:)`, so a
/// field at another offset reads garbage. The kernel side is taken from the BTF of the built
/// object (the one the daemon embeds), not worked out again from agent_events.h: a header the
/// two compilers read differently (packing, a type that is another width for -target bpf, an
/// object built from a stale header) fails here.
@Suite("Record layout (agent_events.h against the built object's BTF)")
struct RecordLayoutTests {
    /// A member of T as Swift lays it out, under the name the C header gives it.
    struct Field<T> {
        let name: String
        let offset: Int?
        let size: Int

        init<V>(_ name: String, _ path: KeyPath<T, V>) {
            self.name = name
            offset = MemoryLayout<T>.offset(of: path)
            size = MemoryLayout<V>.size
        }
    }

    /// The object the daemon embeds, opened (not loaded: no kernel needed).
    func object() throws -> BPFObject {
        try BPFObject(bytes: AgentProbes.object(), name: "agentwatch")
    }

    /// Swift's view of struct `name` against the object's: size, and each member's name, offset
    /// and size, in order. A flexible array member (a record's tail) has no Swift counterpart:
    /// it must begin where Swift's struct ends, which is where the decoder reads the tail.
    func expectLayout<T>(_: T.Type, _ name: String, _ fields: [Field<T>]) throws {
        let btf = try object().btfStruct(name)
        #expect(MemoryLayout<T>.size == btf.size, "\(name): \(MemoryLayout<T>.size) bytes in Swift, \(btf.size) in the object")
        let tails = btf.members.filter { $0.size == 0 }
        for tail in tails {
            #expect(tail.offset == MemoryLayout<T>.size, "\(name).\(tail.name): the tail begins at \(tail.offset), Swift's struct ends at \(MemoryLayout<T>.size)")
        }
        let members = btf.members.filter { $0.size > 0 }
        #expect(fields.map(\.name) == members.map(\.name), "\(name): the members Swift is checked for are not the object's")
        for (field, member) in zip(fields, members) where field.name == member.name {
            #expect(field.offset == member.offset, "\(name).\(field.name): at \(field.offset ?? -1) in Swift, \(member.offset) in the object")
            #expect(field.size == member.size, "\(name).\(field.name): \(field.size) bytes in Swift, \(member.size) in the object")
            #expect(member.bitfieldBits == nil, "\(name).\(field.name): a bitfield, which Swift cannot read in place")
        }
        // Swift's import of the struct has exactly the fields listed (none left unchecked).
        let imported = Mirror(reflecting: zeroed(T.self)).children.compactMap(\.label)
        #expect(imported == fields.map(\.name), "\(name): Swift imports \(imported)")
    }

    func zeroed<T>(_: T.Type) -> T {
        withUnsafeTemporaryAllocation(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment) { raw in
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            return raw.baseAddress!.load(as: T.self)
        }
    }

    @Test func header() throws {
        try expectLayout(agent_hdr.self, "agent_hdr", [
            .init("kind", \.kind), .init("flags", \.flags), .init("size", \.size), .init("pid", \.pid),
            .init("tid", \.tid), .init("_pad0", \._pad0), .init("ktime_ns", \.ktime_ns),
            .init("session_cgid", \.session_cgid), .init("cgroup_id", \.cgroup_id),
        ])
    }

    @Test func process() throws {
        try expectLayout(agent_proc.self, "agent_proc", [
            .init("start_ns", \.start_ns), .init("parent_start_ns", \.parent_start_ns), .init("ppid", \.ppid),
            .init("uid", \.uid), .init("gid", \.gid), .init("euid", \.euid), .init("loginuid", \.loginuid),
            .init("sessionid", \.sessionid), .init("comm", \.comm),
        ])
    }

    @Test func exec() throws {
        try expectLayout(agent_exec.self, "agent_exec", [
            .init("hdr", \.hdr), .init("proc", \.proc), .init("old_tid", \.old_tid),
            .init("filename_len", \.filename_len), .init("exe_len", \.exe_len), .init("cwd_len", \.cwd_len),
            .init("_pad0", \._pad0), .init("args_len", \.args_len), .init("args_size", \.args_size),
            .init("argc", \.argc), .init("stdio_type", \.stdio_type), .init("_pad1", \._pad1),
            .init("stdin_ino", \.stdin_ino), .init("stdout_ino", \.stdout_ino), .init("exe_id", \.exe_id),
            .init("exe_flags", \.exe_flags), .init("stdin_rdev", \.stdin_rdev),
        ])
    }

    @Test func fork() throws {
        try expectLayout(agent_fork.self, "agent_fork", [
            .init("hdr", \.hdr), .init("proc", \.proc), .init("child_start_ns", \.child_start_ns),
            .init("child_pid", \.child_pid), .init("_pad0", \._pad0),
        ])
    }

    @Test func exit() throws {
        try expectLayout(agent_exit.self, "agent_exit", [
            .init("hdr", \.hdr), .init("proc", \.proc), .init("exit_code", \.exit_code), .init("_pad0", \._pad0),
        ])
    }

    @Test func open() throws {
        try expectLayout(agent_open.self, "agent_open", [
            .init("hdr", \.hdr), .init("start_ns", \.start_ns), .init("uid", \.uid), .init("gid", \.gid),
            .init("ret", \.ret), .init("flags", \.flags), .init("mode", \.mode), .init("dfd", \.dfd),
            .init("requested_len", \.requested_len), .init("path_len", \.path_len), .init("via", \.via),
            .init("_pad0", \._pad0), .init("id", \.id),
        ])
        try expectLayout(agent_file_id.self, "agent_file_id", [.init("ino", \.ino), .init("dev", \.dev), .init("mnt_id", \.mnt_id)])
    }

    @Test func connect() throws {
        try expectLayout(agent_connect.self, "agent_connect", [
            .init("hdr", \.hdr), .init("start_ns", \.start_ns), .init("uid", \.uid), .init("gid", \.gid),
            .init("ret", \.ret), .init("fd", \.fd), .init("addr_len", \.addr_len), .init("local_len", \.local_len),
            .init("sock_type", \.sock_type), .init("protocol", \.`protocol`), .init("addr", \.addr),
            .init("local", \.local), .init("cookie", \.cookie), .init("via", \.via), .init("_pad0", \._pad0),
        ])
    }

    @Test func send() throws {
        try expectLayout(agent_send.self, "agent_send", [
            .init("hdr", \.hdr), .init("cookie", \.cookie), .init("first_ns", \.first_ns), .init("last_ns", \.last_ns),
            .init("bytes", \.bytes), .init("datagrams", \.datagrams), .init("bytes_delta", \.bytes_delta),
            .init("datagrams_delta", \.datagrams_delta), .init("uid", \.uid), .init("gid", \.gid), .init("family", \.family),
            .init("dport", \.dport), .init("sport", \.sport), .init("sock_type", \.sock_type), .init("protocol", \.`protocol`),
            .init("reason", \.reason), .init("_pad0", \._pad0), .init("daddr", \.daddr), .init("saddr", \.saddr),
        ])
    }

    @Test func dns() throws {
        try expectLayout(agent_dns.self, "agent_dns", [
            .init("hdr", \.hdr), .init("cookie", \.cookie), .init("family", \.family), .init("sport", \.sport),
            .init("dport", \.dport), .init("direction", \.direction), .init("transport", \.transport), .init("len", \.len),
            .init("msg_len", \.msg_len), .init("_pad0", \._pad0), .init("saddr", \.saddr), .init("daddr", \.daddr),
        ])
    }

    @Test func flow() throws {
        try expectLayout(agent_flow.self, "agent_flow", [
            .init("hdr", \.hdr), .init("cookie", \.cookie), .init("start_ns", \.start_ns),
            .init("bytes_sent", \.bytes_sent), .init("bytes_received", \.bytes_received),
            .init("sent_delta", \.sent_delta), .init("received_delta", \.received_delta),
            .init("final", \.final), .init("_pad0", \._pad0),
        ])
    }

    @Test func loss() throws {
        try expectLayout(agent_loss.self, "agent_loss", [.init("hdr", \.hdr), .init("dropped", \.dropped)])
        try expectLayout(agent_loss_counters.self, "agent_loss_counters", [
            .init("dropped", \.dropped), .init("reported", \.reported),
        ])
    }

    @Test func cgroupNotice() throws {
        try expectLayout(agent_cgroup.self, "agent_cgroup", [
            .init("hdr", \.hdr), .init("cgid", \.cgid), .init("parent_cgid", \.parent_cgid), .init("op", \.op),
            .init("pattern", \.pattern), .init("uid", \.uid), .init("moved_pid", \.moved_pid),
            .init("comm", \.comm), .init("name_len", \.name_len), .init("_pad0", \._pad0), .init("name", \.name),
        ])
    }

    /// The .rodata patterns the daemon writes and roots.bpf.c reads.
    @Test func pattern() throws {
        try expectLayout(agent_pattern_part.self, "agent_pattern_part", [
            .init("prefix_len", \.prefix_len), .init("suffix_len", \.suffix_len), .init("wildcard", \.wildcard),
            .init("_pad", \._pad), .init("prefix", \.prefix), .init("suffix", \.suffix),
        ])
        try expectLayout(agent_pattern.self, "agent_pattern", [
            .init("depth", \.depth), .init("_pad", \._pad), .init("parts", \.parts),
        ])
    }

    /// What the task iterator writes (not the ring buffer).
    @Test func taskStart() throws {
        try expectLayout(agent_task_start.self, "agent_task_start", [
            .init("pid", \.pid), .init("ppid", \.ppid), .init("start_ns", \.start_ns),
        ])
    }

    /// The settings the skeleton was generated for are where the object has them: its
    /// offsets are the object's BTF's, and Swift's types for them the object's sizes.
    @Test func settingsSection() throws {
        #expect(AgentProbes.Rodata.layoutMismatch == nil)
        let object = try object()
        let variables = try object.btfVariables(inSection: ".rodata")
        let patterns = try #require(variables.first { $0.name == "patterns" })
        #expect(patterns.type == .array(of: .structure(name: "agent_pattern", bytes: MemoryLayout<agent_pattern>.size), count: Int(AGENT_MAX_PATTERNS)))
        let rodata = AgentProbes.Rodata(UnsafeRawBufferPointer(try object.dataSection(".rodata", size: AgentProbes.Rodata.size)))
        // The initializers in common.bpf.h, read back at the generated offsets.
        #expect(rodata.args_max == 4096)
        #expect(rodata.wakeup_bytes == 64 * 1024)
        #expect(rodata.flow_report_bytes == 1 << 20)
        #expect(rodata.resolve_paths == 1)
        #expect(rodata.nroots == 0 && rodata.npatterns == 0)
    }

    @Test func kindValuesAreTheWireValues() {
        #expect(AGENT_KIND_EXEC.rawValue == 1)
        #expect(AGENT_KIND_FORK.rawValue == 2)
        #expect(AGENT_KIND_EXIT.rawValue == 3)
        #expect(AGENT_KIND_OPEN.rawValue == 4)
        #expect(AGENT_KIND_CONNECT.rawValue == 5)
        #expect(AGENT_KIND_LOSS.rawValue == 6)
        #expect(AGENT_KIND_FLOW.rawValue == 7)
        #expect(AGENT_KIND_CGROUP.rawValue == 8)
        #expect(AGENT_KIND_SEND.rawValue == 9)
        #expect(AGENT_KIND_DNS.rawValue == 10)
        #expect(AGENT_KIND_COUNT.rawValue == 11)
        #expect(AGENT_CGROUP_ROOT_ADDED.rawValue == 1)
        #expect(AGENT_CGROUP_SESSION_ADDED.rawValue == 2)
        #expect(AGENT_CGROUP_MOVED.rawValue == 3)
        #expect(AGENT_F_ARGS_TRUNCATED.rawValue == 1)
        #expect(AGENT_F_PATH_TRUNCATED.rawValue == 2)
        #expect(AGENT_F_ADDR_TRUNCATED.rawValue == 4)
        #expect(AGENT_F_PATH_IS_BASE.rawValue == 8)
        #expect(AGENT_F_FIXED_FILE.rawValue == 16)
        #expect(AGENT_F_RESULT_UNSEEN.rawValue == 32)
        #expect(AGENT_ABI_VERSION == 1)
    }
}
