import CLibbpf
import Glibc

/// An open libbpf object: programs and maps parsed from an ELF image, loaded into the kernel by
/// `load()`. Owns the handle; the object and everything in it go away with it.
public final class BPFObject {
    let handle: OpaquePointer
    /// libbpf keeps a pointer to the image until the object is closed.
    private let image: UnsafeMutableRawBufferPointer

    /// Opens an object from the bytes of a BPF ELF file. `btfPath` names the kernel BTF to
    /// relocate against when it is not the running kernel's /sys/kernel/btf/vmlinux.
    public init(bytes: [UInt8], name: String, btfPath: String? = nil) throws(BPFError) {
        let image = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
        image.copyBytes(from: bytes)
        var opts = bpf_object_open_opts()
        opts.sz = MemoryLayout<bpf_object_open_opts>.size
        let opened: OpaquePointer?
        do {
            opened = name.withCString { cname in
                opts.object_name = cname
                guard let btfPath else { return bpf_object__open_mem(image.baseAddress, image.count, &opts) }
                return btfPath.withCString { cbtf in
                    opts.btf_custom_path = cbtf
                    return bpf_object__open_mem(image.baseAddress, image.count, &opts)
                }
            }
        }
        let err = libbpf_get_error(UnsafeRawPointer(opened))
        guard let opened, err == 0 else {
            image.deallocate()
            throw BPFError("bpf_object__open_mem(\(name))", errno: Int32(err == 0 ? Int(EINVAL) : -err))
        }
        self.handle = opened
        self.image = image
    }

    deinit {
        bpf_object__close(handle)
        image.deallocate()
    }

    /// Loads every program and creates every map in the kernel.
    public func load() throws(BPFError) {
        try check(bpf_object__load(handle), "bpf_object__load")
    }

    /// The program named `name` (its C function name). The daemon names programs through the
    /// generated skeleton (ProbeSkeleton in AgentSensor), which looks each up once, at open.
    public func program(_ name: String) throws(BPFError) -> BPFProgram {
        let p = try check(bpf_object__find_program_by_name(handle, name), "bpf_object__find_program_by_name(\(name))")
        return BPFProgram(handle: p, owner: self)
    }

    /// The map named `name`; a data section's map by the section's name (".rodata").
    public func map(_ name: String) throws(BPFError) -> BPFMap {
        let m = try check(bpf_object__find_map_by_name(handle, name), "bpf_object__find_map_by_name(\(name))")
        return BPFMap(handle: m, owner: self)
    }

    /// The bytes of data section `name` (".rodata") as they will be loaded, writable until
    /// `load()`; the object owns them. `size`: what a skeleton was generated for, so an object
    /// whose section differs is refused rather than written at the wrong offsets.
    public func dataSection(_ name: String, size: Int) throws(BPFError) -> UnsafeMutableRawBufferPointer {
        let map = try self.map(name)
        var actual = 0
        guard let data = bpf_map__initial_value(map.handle, &actual) else {
            throw BPFError("bpf_map__initial_value(\(name))", errno: ENOENT)
        }
        guard actual == size else {
            throw BPFError("\(name) is \(actual) bytes in this object, the skeleton was generated for \(size)", errno: EINVAL)
        }
        return UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(mutating: data), count: actual)
    }
}

/// A program inside a `BPFObject`.
public struct BPFProgram {
    let handle: OpaquePointer
    let owner: BPFObject

    public var name: String { String(cString: bpf_program__name(handle)) }
    public var fd: Int32 { bpf_program__fd(handle) }
    /// Its ELF section: what it attaches to (`fexit/__x64_sys_openat`, `tracepoint/syscalls/...`).
    public var section: String { String(cString: bpf_program__section_name(handle)) }

    /// Whether the program is loaded with the object (set before load).
    public func setAutoload(_ on: Bool) throws(BPFError) {
        try check(bpf_program__set_autoload(handle, on), "bpf_program__set_autoload(\(name))")
    }

    /// Attaches by the program's section name (tracepoint, tp_btf, raw_tp...).
    public func attach() throws(BPFError) -> BPFLink {
        let link = bpf_program__attach(handle)
        let err = libbpf_get_error(UnsafeRawPointer(link))
        guard let link, err == 0 else {
            throw BPFError("bpf_program__attach(\(name))", errno: Int32(err == 0 ? Int(EINVAL) : -err))
        }
        return BPFLink(handle: link, name: name)
    }

    /// Attaches a cgroup program (cgroup_skb, cgroup/connect4, cgroup/sock_release...) to the
    /// cgroup open at `cgroupFD`, where it runs for that cgroup and every descendant. Other
    /// programs on the same cgroup keep running (a link attaches with BPF_F_ALLOW_MULTI).
    public func attachCgroup(fd cgroupFD: Int32, path: String) throws(BPFError) -> BPFLink {
        let link = bpf_program__attach_cgroup(handle, cgroupFD)
        let err = libbpf_get_error(UnsafeRawPointer(link))
        guard let link, err == 0 else {
            throw BPFError("bpf_program__attach_cgroup(\(name), \(path))", errno: Int32(err == 0 ? Int(EINVAL) : -err))
        }
        return BPFLink(handle: link, name: name)
    }

    /// Runs an iterator program (SEC("iter/...")) once and returns everything it wrote.
    public func readIterator(limit: Int = 64 << 20) throws(BPFError) -> [UInt8] {
        let link = bpf_program__attach_iter(handle, nil)
        let err = libbpf_get_error(UnsafeRawPointer(link))
        guard let link, err == 0 else {
            throw BPFError("bpf_program__attach_iter(\(name))", errno: Int32(err == 0 ? Int(EINVAL) : -err))
        }
        defer { bpf_link__destroy(link) }
        let fd = try check(bpf_iter_create(bpf_link__fd(link)), "bpf_iter_create(\(name))")
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while out.count < limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw BPFError("read(iterator \(name))", errno: errno) }
            if n == 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    /// Kernel statistics (run count and time) when kernel.bpf_stats_enabled is on.
    public func stats() throws(BPFError) -> (runCount: UInt64, runTimeNs: UInt64) {
        var info = bpf_prog_info()
        var len = UInt32(MemoryLayout<bpf_prog_info>.size)
        try check(bpf_obj_get_info_by_fd(fd, &info, &len), "bpf_obj_get_info_by_fd(\(name))")
        return (info.run_cnt, info.run_time_ns)
    }
}

/// An attachment of a program to a hook; detached when released.
public final class BPFLink {
    let handle: OpaquePointer
    public let name: String

    init(handle: OpaquePointer, name: String) {
        self.handle = handle
        self.name = name
    }

    deinit { bpf_link__destroy(handle) }
}

/// A map inside a `BPFObject`.
public struct BPFMap {
    let handle: OpaquePointer
    let owner: BPFObject

    public var name: String { String(cString: bpf_map__name(handle)) }
    public var fd: Int32 { bpf_map__fd(handle) }
    public var maxEntries: UInt32 { bpf_map__max_entries(handle) }

    public func setMaxEntries(_ n: UInt32) throws(BPFError) {
        try check(bpf_map__set_max_entries(handle, n), "bpf_map__set_max_entries(\(name), \(n))")
    }

    /// Writes `value` at `key` (BPF_ANY). Both must have the map's key and value sizes.
    public func update<K, V>(key: K, value: V) throws(BPFError) {
        var k = key, v = value
        let rc = bpf_map_update_elem(fd, &k, &v, UInt64(BPF_ANY))
        if rc != 0 { throw BPFError("bpf_map_update_elem(\(name))", errno: Glibc.errno) }
    }

    /// Removes `key`; a key that is not there is not an error.
    public func delete<K>(key: K) throws(BPFError) {
        var k = key
        if bpf_map_delete_elem(fd, &k) != 0 && Glibc.errno != ENOENT {
            throw BPFError("bpf_map_delete_elem(\(name))", errno: Glibc.errno)
        }
    }

    /// The value at `key`, or nil when it is not there.
    public func lookup<K, V>(key: K, as: V.Type) -> V? {
        var k = key
        var buf = [UInt8](repeating: 0, count: MemoryLayout<V>.size)
        let rc = buf.withUnsafeMutableBytes { bpf_map_lookup_elem(fd, &k, $0.baseAddress) }
        return rc == 0 ? buf.withUnsafeBytes { $0.loadUnaligned(as: V.self) } : nil
    }

    /// Reads a per-CPU array's value at `key`: one buffer of `valueSize` bytes per possible CPU.
    public func lookupPerCPU(key: UInt32, valueSize: Int) throws(BPFError) -> [[UInt8]] {
        let cpus = Int(libbpf_num_possible_cpus())
        guard cpus > 0 else { throw BPFError("libbpf_num_possible_cpus", errno: Int32(-cpus)) }
        let stride = (valueSize + 7) & ~7
        var buf = [UInt8](repeating: 0, count: stride * cpus)
        var k = key
        let rc = buf.withUnsafeMutableBytes { bpf_map_lookup_elem(fd, &k, $0.baseAddress) }
        if rc != 0 { throw BPFError("bpf_map_lookup_elem(\(name))", errno: Glibc.errno) }
        return (0..<cpus).map { Array(buf[($0 * stride)..<($0 * stride + valueSize)]) }
    }
}

extension BPFProgram {
    /// The kernel's id for the loaded program.
    public func id() throws(BPFError) -> UInt32 {
        var info = bpf_prog_info()
        var len = UInt32(MemoryLayout<bpf_prog_info>.size)
        try check(bpf_obj_get_info_by_fd(fd, &info, &len), "bpf_obj_get_info_by_fd(\(name))")
        return info.id
    }
}

/// The BPF links that exist in the kernel right now, as the kernel reports them.
public enum KernelLinks {
    /// Program ids of every link on the host (every attachment made through a link).
    public static func programIDs() -> [UInt32] {
        var ids: [UInt32] = []
        var id: UInt32 = 0
        while bpf_link_get_next_id(id, &id) == 0 {
            let fd = bpf_link_get_fd_by_id(id)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var info = bpf_link_info()
            var len = UInt32(MemoryLayout<bpf_link_info>.size)
            if bpf_obj_get_info_by_fd(fd, &info, &len) == 0 { ids.append(info.prog_id) }
        }
        return ids
    }
}
