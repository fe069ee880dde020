import AgentProbes
import CLibbpf
import Glibc

/// What the net hooks capture on a kernel: unconnected sends and DNS everywhere the object
/// loads; io_uring connects (bpf/uring_net.bpf.c, loaded with the io_uring open programs by
/// `uringChoice`) where the kernel's requests carry the connect's arguments in their command
/// area (6.0 on). Elsewhere those programs load and keep nothing, and an inet io_uring connect
/// is still reported by the socket hook, as `net.via` other.
extension Sensor {
    /// `agent.start`'s net features on the kernel described by `btf` (the BTF the object is
    /// relocated with), with `uring` the io_uring programs loaded there.
    package static func netFeatures(uring: [AgentProbes.Program], btf: KernelBTF) -> [String] {
        guard uring.contains(.uring_net_complete), let types = btf.types else { return ["send", "dns"] }
        let connect = btf.has("io_connect", kind: BTF_KIND_STRUCT) && hasMember(types, struct: "io_kiocb", member: "cmd")
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
