import CLibbpf
import Glibc

/// The bytes of one of an object's data sections (.rodata) as they will be loaded: variables
/// are read and written at offsets a generated skeleton took from the object's BTF. Valid only
/// before the object is loaded; the object owns the memory.
public struct BPFDataSection {
    public let name: String
    let bytes: UnsafeMutableRawBufferPointer

    public var count: Int { bytes.count }

    /// The value of type T at `offset`.
    public func value<T: BitwiseCopyable>(at offset: Int, as: T.Type) -> T {
        bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
    }

    /// `count` values of type T from `offset` on (an array variable).
    public func values<T: BitwiseCopyable>(at offset: Int, count: Int, as: T.Type) -> [T] {
        (0..<count).map { bytes.loadUnaligned(fromByteOffset: offset + $0 * MemoryLayout<T>.stride, as: T.self) }
    }

    public func set<T: BitwiseCopyable>(_ value: T, at offset: Int) {
        bytes.storeBytes(of: value, toByteOffset: offset, as: T.self)
    }

    /// Writes an array variable of `count` elements; `values` must hold exactly that many.
    public func set<T: BitwiseCopyable>(_ values: [T], count: Int, at offset: Int, variable: String) throws(BPFError) {
        guard values.count == count else {
            throw BPFError("\(name): \(variable) holds \(count) values, given \(values.count)", errno: EINVAL)
        }
        for (i, v) in values.enumerated() {
            bytes.storeBytes(of: v, toByteOffset: offset + i * MemoryLayout<T>.stride, as: T.self)
        }
    }

    /// Checks that Swift lays T out in `size` bytes, as the object's BTF does for `variable`'s type.
    public func check<T>(_: T.Type, size: Int, variable: String) throws(BPFError) {
        guard MemoryLayout<T>.stride == size else {
            throw BPFError("\(name): \(variable)'s element is \(size) bytes in the object, \(MemoryLayout<T>.stride) in Swift (\(T.self))", errno: EINVAL)
        }
    }
}

extension BPFObject {
    /// The bytes of data section `name` before load. `size`: what a skeleton was generated for,
    /// so an object whose section differs is refused rather than written at the wrong offsets.
    public func dataSection(_ name: String, size: Int?) throws(BPFError) -> BPFDataSection {
        let map = try self.map(name)
        var actual = 0
        guard let data = bpf_map__initial_value(map.handle, &actual) else {
            throw BPFError("bpf_map__initial_value(\(name))", errno: ENOENT)
        }
        guard size == nil || actual == size else {
            throw BPFError("\(name) is \(actual) bytes in this object, the skeleton was generated for \(size ?? 0)", errno: EINVAL)
        }
        return BPFDataSection(name: name, bytes: UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(mutating: data), count: actual))
    }
}
