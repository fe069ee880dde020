import AgentRecords
import Glibc

/// The bytes of one rendered record, written through a pointer into memory the sink keeps from
/// record to record: a formatter writes a few hundred small pieces per record, and an `Array`
/// append checks uniqueness and capacity for each. Capacity is made once per piece instead.
struct ByteSink {
    /// Frees the memory when the last copy of the sink goes.
    private final class Storage {
        var base: UnsafeMutablePointer<UInt8>
        var capacity: Int
        init(capacity: Int) {
            base = .allocate(capacity: capacity)
            self.capacity = capacity
        }
        deinit { base.deallocate() }
    }

    private let storage: Storage
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private(set) var count = 0
    /// For strings that need escaping: JSONBuffer's escaping, then copied in.
    private var escaped = JSONBuffer(capacity: 256)

    init(capacity: Int = 8192) {
        storage = Storage(capacity: capacity)
        base = storage.base
        self.capacity = capacity
    }

    var written: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }
    var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    mutating func removeAll() { count = 0 }

    /// Room for `n` more bytes.
    @inline(__always)
    private mutating func reserve(_ n: Int) {
        if count + n > capacity { grow(count + n) }
    }

    private mutating func grow(_ needed: Int) {
        var c = capacity
        while c < needed { c *= 2 }
        let fresh = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        fresh.update(from: base, count: count)
        storage.base.deallocate()
        storage.base = fresh
        storage.capacity = c
        base = fresh
        capacity = c
    }

    @inline(__always)
    mutating func byte(_ b: UInt8) {
        reserve(1)
        base[count] = b
        count += 1
    }

    @inline(__always)
    mutating func append(_ p: UnsafeRawBufferPointer) {
        guard let from = p.baseAddress, p.count > 0 else { return }
        reserve(p.count)
        (base + count).update(from: from.assumingMemoryBound(to: UInt8.self), count: p.count)
        count += p.count
    }

    mutating func append(_ a: [UInt8]) {
        a.withUnsafeBytes { append($0) }
    }

    @inline(__always)
    mutating func raw(_ s: StaticString) {
        append(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// `"name":`
    @inline(__always)
    mutating func key(_ name: StaticString) {
        let n = name.utf8CodeUnitCount
        reserve(n + 3)
        base[count] = UInt8(ascii: "\"")
        (base + count + 1).update(from: name.utf8Start, count: n)
        base[count + n + 1] = UInt8(ascii: "\"")
        base[count + n + 2] = UInt8(ascii: ":")
        count += n + 3
    }

    /// A JSON string of raw bytes, escaped as `JSONBuffer.string` escapes them.
    mutating func string(_ s: UnsafeRawBufferPointer) {
        // Printable ASCII other than `"` and `\` goes in as it is; anything else is escaped.
        for b in s where b < 0x20 || b >= 0x7F || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
            escaped.bytes.removeAll(keepingCapacity: true)
            escaped.string(s)
            append(escaped.bytes)
            return
        }
        reserve(s.count + 2)
        base[count] = UInt8(ascii: "\"")
        count += 1
        append(s)
        base[count] = UInt8(ascii: "\"")
        count += 1
    }

    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { string(UnsafeRawBufferPointer($0)) }
    }

    /// Decimal digits of `v`, written from the last.
    mutating func uint(_ v: UInt64) {
        var digits = 1
        var rest = v / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        reserve(digits)
        var x = v
        var at = count + digits
        repeat {
            at -= 1
            base[at] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: x % 10)
            x /= 10
        } while x > 0
        count += digits
    }

    mutating func int(_ v: Int64) {
        if v < 0 { byte(UInt8(ascii: "-")) }
        uint(v.magnitude)
    }

    mutating func bool(_ v: Bool) {
        if v { raw("true") } else { raw("false") }
    }
}
