import CLibbpf
import Glibc

/// A consumer of a BPF ring buffer map. Records are handed to `handler` in place: the buffer is
/// only valid during the call, and the handler must neither throw nor keep it.
public final class RingBuffer {
    public typealias Handler = (UnsafeRawBufferPointer) -> Void

    private var handle: OpaquePointer?
    private let handler: Handler
    /// The ring's two position pages, mapped read-only (the consumer's, then the producer's):
    /// what waits is read without a system call, as often as the reader likes.
    private let positions: UnsafeRawPointer
    private let pageSize: Int
    /// The ring's data size in bytes (the map's max_entries).
    public let size: UInt64

    public init(map: BPFMap, handler: @escaping Handler) throws(BPFError) {
        self.handler = handler
        pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let mapped = mmap(nil, 2 * pageSize, PROT_READ, MAP_SHARED, map.fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            throw BPFError("mmap(\(map.name) positions)", errno: errno)
        }
        positions = UnsafeRawPointer(mapped)
        size = UInt64(map.maxEntries)
        let ctx = Unmanaged.passUnretained(self).toOpaque()
        // The callback captures nothing: the ring buffer finds its owner through ctx.
        let rb = ring_buffer__new(map.fd, { ctx, data, size in
            guard let ctx, let data else { return 0 }
            let me = Unmanaged<RingBuffer>.fromOpaque(ctx).takeUnretainedValue()
            me.handler(UnsafeRawBufferPointer(start: data, count: Int(size)))
            return 0
        }, ctx, nil)
        let err = libbpf_get_error(UnsafeRawPointer(rb))
        guard let rb, err == 0 else {
            throw BPFError("ring_buffer__new(\(map.name))", errno: Int32(err == 0 ? Int(EINVAL) : -err))
        }
        handle = rb
    }

    deinit {
        if let handle { ring_buffer__free(handle) }
        munmap(UnsafeMutableRawPointer(mutating: positions), 2 * pageSize)
    }

    /// Bytes written by the kernel and not yet consumed (record headers included): the reader
    /// advances its position after each record, so this falls as a drain goes on.
    public var waiting: UInt64 {
        // Acquire loads pair with the kernel's release stores of each position.
        let consumer = aw_load_acquire_u64(positions)
        let producer = aw_load_acquire_u64(positions + pageSize)
        return producer &- consumer
    }

    /// The epoll descriptor that becomes readable when the kernel wakes the reader.
    public var epollFD: Int32 { ring_buffer__epoll_fd(handle) }

    /// Hands every record available now to the handler; returns how many.
    @discardableResult
    public func consume() throws(BPFError) -> Int {
        Int(try check(ring_buffer__consume(handle), "ring_buffer__consume"))
    }
}
