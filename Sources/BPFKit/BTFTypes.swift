import CLibbpf
import Glibc

/// A struct as a BPF object's BTF records it: its size and where each member sits. The layout
/// the programs were compiled with, to compare with the one Swift imports from the same header.
public struct BTFStruct: Sendable, Equatable {
    /// A member: its byte offset and size (0 for a flexible array), and for a bitfield its
    /// width in bits.
    public struct Member: Sendable, Equatable {
        public let name: String
        public let offset: Int
        public let size: Int
        public let bitfieldBits: Int?
    }

    public let name: String
    public let size: Int
    public let members: [Member]

    /// The byte offset of member `name`, or nil when the struct has none of that name.
    public func offset(of name: String) -> Int? {
        members.first { $0.name == name }?.offset
    }
}

/// The type of a value in BTF, with typedefs and qualifiers (const, volatile) looked through.
public indirect enum BTFType: Sendable, Equatable {
    /// An integer (char and enums included) of `bytes` bytes.
    case integer(bytes: Int, signed: Bool)
    case array(of: BTFType, count: Int)
    /// A struct or union, by its C name ("" when anonymous).
    case structure(name: String, bytes: Int)
    /// Anything else (a pointer, a float): only its size.
    case other(bytes: Int)

    public var bytes: Int {
        switch self {
        case .integer(let n, _), .structure(_, let n), .other(let n): n
        case .array(let element, let count): element.bytes * count
        }
    }
}

/// A global variable of one of an object's data sections (`const volatile` ones are in
/// .rodata): where it sits in the section and what it holds.
public struct BTFVariable: Sendable, Equatable {
    public let name: String
    public let offset: Int
    public let size: Int
    public let type: BTFType
}

extension BPFObject {
    /// The object's own BTF (the types its programs were compiled with).
    private func btf() throws(BPFError) -> OpaquePointer {
        guard let btf = bpf_object__btf(handle) else { throw BPFError("bpf_object__btf", errno: ENOENT) }
        return btf
    }

    /// The layout of `struct name` in the object's BTF.
    public func btfStruct(_ name: String) throws(BPFError) -> BTFStruct {
        let btf = try btf()
        let id = btf__find_by_name_kind(btf, name, UInt32(BTF_KIND_STRUCT))
        guard id > 0, let t = btf__type_by_id(btf, UInt32(id)) else {
            throw BPFError("btf__find_by_name_kind(struct \(name))", errno: ENOENT)
        }
        var members: [BTFStruct.Member] = []
        let first = btf_members(t)!
        for i in 0..<Int(btf_vlen(t)) {
            let m = first[i]
            let bits = Int(btf_member_bitfield_size(t, UInt32(i)))
            let size = btf__resolve_size(btf, m.type)
            members.append(BTFStruct.Member(
                name: String(cString: btf__name_by_offset(btf, m.name_off)),
                offset: Int(btf_member_bit_offset(t, UInt32(i))) / 8,
                size: size > 0 ? Int(size) : 0,
                bitfieldBits: bits == 0 ? nil : bits))
        }
        return BTFStruct(name: name, size: Int(t.pointee.size), members: members)
    }

    /// The variables of data section `section` (".rodata", ".bss", ".data"), in offset order.
    public func btfVariables(inSection section: String) throws(BPFError) -> [BTFVariable] {
        let btf = try btf()
        // BTF_KIND_DATASEC: Swift sees it twice (linux/btf.h's enum and bpf/btf.h's #define).
        let id = btf__find_by_name_kind(btf, section, 15)
        guard id > 0, let datasec = btf__type_by_id(btf, UInt32(id)) else {
            throw BPFError("btf__find_by_name_kind(\(section))", errno: ENOENT)
        }
        let infos = btf_var_secinfos(datasec)!
        var variables: [BTFVariable] = []
        for i in 0..<Int(btf_vlen(datasec)) {
            let info = infos[i]
            guard let v = btf__type_by_id(btf, info.type), btf_is_var(v) else { continue }
            variables.append(BTFVariable(
                name: String(cString: btf__name_by_offset(btf, v.pointee.name_off)),
                offset: Int(info.offset), size: Int(info.size),
                type: Self.type(btf, v.pointee.type)))
        }
        return variables.sorted { $0.offset < $1.offset }
    }

    private static func type(_ btf: OpaquePointer, _ id: UInt32) -> BTFType {
        let resolved = btf__resolve_type(btf, id)
        guard resolved >= 0, let t = btf__type_by_id(btf, UInt32(resolved)) else { return .other(bytes: 0) }
        if btf_is_int(t) {
            return .integer(bytes: Int(t.pointee.size), signed: btf_int_encoding(t) & UInt8(BTF_INT_SIGNED) != 0)
        }
        if btf_is_any_enum(t) {
            return .integer(bytes: Int(t.pointee.size), signed: btf_kflag(t))
        }
        if btf_is_array(t) {
            let a = btf_array(t)!.pointee
            return .array(of: type(btf, a.type), count: Int(a.nelems))
        }
        if btf_is_composite(t) {
            return .structure(name: String(cString: btf__name_by_offset(btf, t.pointee.name_off)), bytes: Int(t.pointee.size))
        }
        let size = btf__resolve_size(btf, UInt32(resolved))
        return .other(bytes: size > 0 ? Int(size) : 0)
    }
}
