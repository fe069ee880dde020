import CAgentEvents
import Testing

/// The record contract as Swift sees it must match the C header byte for byte: the daemon reads
/// kernel records with `loadUnaligned(as:)`, so a field at a different offset reads garbage.
/// Offsets are worked out by hand from agent_events.h; sizes match its `_Static_assert`s.
@Suite("Record layout (agent_events.h)")
struct RecordLayoutTests {
    @Test func headerSizeAndOffsets() {
        #expect(MemoryLayout<agent_hdr>.size == 40)
        #expect(MemoryLayout<agent_hdr>.stride == 40)
        #expect(MemoryLayout<agent_hdr>.alignment == 8)
        #expect(MemoryLayout<agent_hdr>.offset(of: \.kind) == 0)
        #expect(MemoryLayout<agent_hdr>.offset(of: \.flags) == 1)
        #expect(MemoryLayout<agent_hdr>.offset(of: \.size) == 2)
        #expect(MemoryLayout<agent_hdr>.offset(of: \.pid) == 4)
        #expect(MemoryLayout<agent_hdr>.offset(of: \.tid) == 8)
        #expect(MemoryLayout<agent_hdr>.offset(of: \._pad0) == 12)
        #expect(MemoryLayout<agent_hdr>.offset(of: \.ktime_ns) == 16)
        #expect(MemoryLayout<agent_hdr>.offset(of: \.session_cgid) == 24)
        #expect(MemoryLayout<agent_hdr>.offset(of: \.cgroup_id) == 32)
    }

    @Test func procSizeAndOffsets() {
        #expect(MemoryLayout<agent_proc>.size == 56)
        #expect(MemoryLayout<agent_proc>.offset(of: \.start_ns) == 0)
        #expect(MemoryLayout<agent_proc>.offset(of: \.parent_start_ns) == 8)
        #expect(MemoryLayout<agent_proc>.offset(of: \.ppid) == 16)
        #expect(MemoryLayout<agent_proc>.offset(of: \.uid) == 20)
        #expect(MemoryLayout<agent_proc>.offset(of: \.gid) == 24)
        #expect(MemoryLayout<agent_proc>.offset(of: \.euid) == 28)
        #expect(MemoryLayout<agent_proc>.offset(of: \.loginuid) == 32)
        #expect(MemoryLayout<agent_proc>.offset(of: \.sessionid) == 36)
        #expect(MemoryLayout<agent_proc>.offset(of: \.comm) == 40)
        #expect(MemoryLayout.size(ofValue: agent_proc().comm) == Int(AGENT_COMM_LEN))
    }

    @Test func execSizeAndOffsets() {
        #expect(MemoryLayout<agent_exec>.size == 144)
        #expect(MemoryLayout<agent_exec>.offset(of: \.hdr) == 0)
        #expect(MemoryLayout<agent_exec>.offset(of: \.proc) == 40)
        #expect(MemoryLayout<agent_exec>.offset(of: \.proc.comm) == 80)
        #expect(MemoryLayout<agent_exec>.offset(of: \.old_tid) == 96)
        #expect(MemoryLayout<agent_exec>.offset(of: \.filename_len) == 100)
        #expect(MemoryLayout<agent_exec>.offset(of: \.exe_len) == 102)
        #expect(MemoryLayout<agent_exec>.offset(of: \.cwd_len) == 104)
        #expect(MemoryLayout<agent_exec>.offset(of: \._pad0) == 106)
        #expect(MemoryLayout<agent_exec>.offset(of: \.args_len) == 108)
        #expect(MemoryLayout<agent_exec>.offset(of: \.args_size) == 112)
        #expect(MemoryLayout<agent_exec>.offset(of: \.argc) == 116)
        #expect(MemoryLayout<agent_exec>.offset(of: \.stdio_type) == 120)
        #expect(MemoryLayout<agent_exec>.offset(of: \._pad1) == 123)
        #expect(MemoryLayout<agent_exec>.offset(of: \.stdin_ino) == 128)
        #expect(MemoryLayout<agent_exec>.offset(of: \.stdout_ino) == 136)
    }

    @Test func forkSizeAndOffsets() {
        #expect(MemoryLayout<agent_fork>.size == 112)
        #expect(MemoryLayout<agent_fork>.offset(of: \.hdr) == 0)
        #expect(MemoryLayout<agent_fork>.offset(of: \.proc) == 40)
        #expect(MemoryLayout<agent_fork>.offset(of: \.child_start_ns) == 96)
        #expect(MemoryLayout<agent_fork>.offset(of: \.child_pid) == 104)
        #expect(MemoryLayout<agent_fork>.offset(of: \._pad0) == 108)
    }

    @Test func exitSizeAndOffsets() {
        #expect(MemoryLayout<agent_exit>.size == 104)
        #expect(MemoryLayout<agent_exit>.offset(of: \.hdr) == 0)
        #expect(MemoryLayout<agent_exit>.offset(of: \.proc) == 40)
        #expect(MemoryLayout<agent_exit>.offset(of: \.exit_code) == 96)
        #expect(MemoryLayout<agent_exit>.offset(of: \._pad0) == 100)
    }

    @Test func openSizeAndOffsets() {
        #expect(MemoryLayout<agent_open>.size == 88)
        #expect(MemoryLayout<agent_open>.offset(of: \.hdr) == 0)
        #expect(MemoryLayout<agent_open>.offset(of: \.start_ns) == 40)
        #expect(MemoryLayout<agent_open>.offset(of: \.uid) == 48)
        #expect(MemoryLayout<agent_open>.offset(of: \.gid) == 52)
        #expect(MemoryLayout<agent_open>.offset(of: \.ret) == 56)
        #expect(MemoryLayout<agent_open>.offset(of: \.flags) == 64)
        #expect(MemoryLayout<agent_open>.offset(of: \.mode) == 72)
        #expect(MemoryLayout<agent_open>.offset(of: \.dfd) == 76)
        #expect(MemoryLayout<agent_open>.offset(of: \.requested_len) == 80)
        #expect(MemoryLayout<agent_open>.offset(of: \.path_len) == 82)
        #expect(MemoryLayout<agent_open>.offset(of: \._pad0) == 84)
    }

    @Test func connectSizeAndOffsets() {
        #expect(MemoryLayout<agent_connect>.size == 224)
        #expect(MemoryLayout<agent_connect>.offset(of: \.hdr) == 0)
        #expect(MemoryLayout<agent_connect>.offset(of: \.start_ns) == 40)
        #expect(MemoryLayout<agent_connect>.offset(of: \.uid) == 48)
        #expect(MemoryLayout<agent_connect>.offset(of: \.gid) == 52)
        #expect(MemoryLayout<agent_connect>.offset(of: \.ret) == 56)
        #expect(MemoryLayout<agent_connect>.offset(of: \.fd) == 60)
        #expect(MemoryLayout<agent_connect>.offset(of: \.addr_len) == 64)
        #expect(MemoryLayout<agent_connect>.offset(of: \.local_len) == 66)
        #expect(MemoryLayout<agent_connect>.offset(of: \.sock_type) == 68)
        #expect(MemoryLayout<agent_connect>.offset(of: \.`protocol`) == 70)
        #expect(MemoryLayout<agent_connect>.offset(of: \.addr) == 72)
        #expect(MemoryLayout<agent_connect>.offset(of: \.local) == 184)
        #expect(MemoryLayout<agent_connect>.offset(of: \.cookie) == 216)
        #expect(MemoryLayout.size(ofValue: agent_connect().addr) == Int(AGENT_SOCKADDR_MAX))
        #expect(MemoryLayout.size(ofValue: agent_connect().local) == Int(AGENT_LOCAL_ADDR_MAX))
    }

    @Test func flowSizeAndOffsets() {
        #expect(MemoryLayout<agent_flow>.size == 96)
        #expect(MemoryLayout<agent_flow>.offset(of: \.hdr) == 0)
        #expect(MemoryLayout<agent_flow>.offset(of: \.cookie) == 40)
        #expect(MemoryLayout<agent_flow>.offset(of: \.start_ns) == 48)
        #expect(MemoryLayout<agent_flow>.offset(of: \.bytes_sent) == 56)
        #expect(MemoryLayout<agent_flow>.offset(of: \.bytes_received) == 64)
        #expect(MemoryLayout<agent_flow>.offset(of: \.sent_delta) == 72)
        #expect(MemoryLayout<agent_flow>.offset(of: \.received_delta) == 80)
        #expect(MemoryLayout<agent_flow>.offset(of: \.final) == 88)
        #expect(MemoryLayout<agent_flow>.offset(of: \._pad0) == 89)
    }

    @Test func lossSizeAndOffsets() {
        #expect(MemoryLayout<agent_loss>.size == 112)
        #expect(MemoryLayout<agent_loss>.offset(of: \.hdr) == 0)
        #expect(MemoryLayout<agent_loss>.offset(of: \.dropped) == 40)
        #expect(MemoryLayout.size(ofValue: agent_loss().dropped) == 8 * Int(AGENT_KIND_COUNT.rawValue))
    }

    @Test func cgroupNoticeSizeAndOffsets() {
        #expect(MemoryLayout<agent_cgroup>.size == 352)
        #expect(MemoryLayout<agent_cgroup>.offset(of: \.cgid) == 40)
        #expect(MemoryLayout<agent_cgroup>.offset(of: \.parent_cgid) == 48)
        #expect(MemoryLayout<agent_cgroup>.offset(of: \.op) == 56)
        #expect(MemoryLayout<agent_cgroup>.offset(of: \.pattern) == 60)
        #expect(MemoryLayout<agent_cgroup>.offset(of: \.uid) == 64)
        #expect(MemoryLayout<agent_cgroup>.offset(of: \.moved_pid) == 68)
        #expect(MemoryLayout<agent_cgroup>.offset(of: \.comm) == 72)
        #expect(MemoryLayout<agent_cgroup>.offset(of: \.name_len) == 88)
        #expect(MemoryLayout<agent_cgroup>.offset(of: \.name) == 96)
    }

    /// The .rodata patterns the daemon writes and roots.bpf.c reads.
    @Test func patternSizeAndOffsets() {
        #expect(MemoryLayout<agent_pattern_part>.size == 136)
        #expect(MemoryLayout<agent_pattern_part>.offset(of: \.prefix_len) == 0)
        #expect(MemoryLayout<agent_pattern_part>.offset(of: \.suffix_len) == 1)
        #expect(MemoryLayout<agent_pattern_part>.offset(of: \.wildcard) == 2)
        #expect(MemoryLayout<agent_pattern_part>.offset(of: \.prefix) == 8)
        #expect(MemoryLayout<agent_pattern_part>.offset(of: \.suffix) == 72)
        #expect(MemoryLayout<agent_pattern>.size == 1096)
        #expect(MemoryLayout<agent_pattern>.offset(of: \.depth) == 0)
        #expect(MemoryLayout<agent_pattern>.offset(of: \.parts) == 8)
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
        #expect(AGENT_KIND_COUNT.rawValue == 9)
        #expect(AGENT_CGROUP_ROOT_ADDED.rawValue == 1)
        #expect(AGENT_CGROUP_SESSION_ADDED.rawValue == 2)
        #expect(AGENT_CGROUP_MOVED.rawValue == 3)
        #expect(AGENT_F_ARGS_TRUNCATED.rawValue == 1)
        #expect(AGENT_F_PATH_TRUNCATED.rawValue == 2)
        #expect(AGENT_F_ADDR_TRUNCATED.rawValue == 4)
        #expect(AGENT_ABI_VERSION == 1)
    }
}
