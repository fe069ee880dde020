import CLibbpf

/// A kernel's BTF, parsed once for the questions the sensor asks of it at start (which
/// tracepoints and functions exist, which structs have which members). Loading vmlinux BTF
/// takes milliseconds; each choice asking again would repeat it.
package final class KernelBTF: @unchecked Sendable {
    /// The parsed types; nil when the BTF could not be read (then every question answers no).
    private(set) var types: OpaquePointer?

    /// The running kernel's BTF (/sys/kernel/btf/vmlinux).
    package static func running() -> KernelBTF {
        KernelBTF(btf__load_vmlinux_btf())
    }

    /// The BTF in the file at `path` (a kernel's vmlinux, or its BTF alone).
    package convenience init(path: String) {
        self.init(btf__parse(path, nil))
    }

    private init(_ btf: OpaquePointer?) {
        types = btf.flatMap { libbpf_get_error(UnsafeRawPointer($0)) == 0 ? $0 : nil }
    }

    deinit { release() }

    /// Frees the parsed types now (vmlinux's are some 20 MiB once parsed); questions asked
    /// afterwards answer no. The sensor asks its questions at start and releases the BTF then:
    /// the release build kept this object (and its types) for the daemon's whole life.
    package func release() {
        if let types { btf__free(types) }
        types = nil
    }

    /// Whether a type `name` of BTF kind `kind` (BTF_KIND_FUNC, BTF_KIND_STRUCT, ...) is there.
    func has(_ name: String, kind: Int) -> Bool {
        guard let types else { return false }
        return btf__find_by_name_kind(types, name, UInt32(kind)) > 0
    }
}
