import AgentProbes
import CLibbpf
import Glibc

/// What the net hooks capture on a kernel: unconnected sends and DNS everywhere the object
/// loads; io_uring connects (bpf/uring_net.bpf.c, loaded with the io_uring open programs by
/// `uringChoice`) where the kernel's requests carry the connect's arguments in their command
/// area (6.0 on). Elsewhere those programs load and keep nothing, and an inet io_uring connect
/// is still reported by the socket hook, as `net.via` other.
extension Sensor {
    /// `agent.start`'s net features on the kernel whose BTF is at `btfPath` (the running
    /// kernel's when nil), with `uring` the io_uring programs loaded there.
    package static func netFeatures(uring: [AgentProbes.Program], btfPath: String?) -> [String] {
        guard uring.contains(.uring_net_complete) else { return ["send", "dns"] }
        let btf: OpaquePointer? = btfPath.map { btf__parse($0, nil) } ?? btf__load_vmlinux_btf()
        guard let btf, libbpf_get_error(UnsafeRawPointer(btf)) == 0 else { return ["send", "dns"] }
        defer { btf__free(btf) }
        let connect = btf__find_by_name_kind(btf, "io_connect", UInt32(BTF_KIND_STRUCT)) > 0
            && hasMember(btf, struct: "io_kiocb", member: "cmd")
        return ["send", "dns"] + (connect ? ["io_uring_connect"] : [])
    }

    /// Whether struct `name` has a member `member`, directly or in an anonymous struct or union
    /// (as CO-RE's field-exists check finds it).
    static func hasMember(_ btf: OpaquePointer, struct name: String, member: String) -> Bool {
        let id = btf__find_by_name_kind(btf, name, UInt32(BTF_KIND_STRUCT))
        guard id > 0 else { return false }
        func search(_ id: UInt32, depth: Int) -> Bool {
            guard depth < 8, let t = btf__type_by_id(btf, id), btf_is_composite(t), let members = btf_members(t) else { return false }
            for i in 0..<Int(btf_vlen(t)) {
                let m = members[i]
                let n = btf__name_by_offset(btf, m.name_off).map { String(cString: $0) } ?? ""
                if n == member { return true }
                if n.isEmpty, search(m.type, depth: depth + 1) { return true }
            }
            return false
        }
        return search(UInt32(id), depth: 0)
    }
}
