import CLibbpf
import Glibc

/// A consumer of a BPF ring buffer map. Records are handed to `handler` in place: the buffer is
/// only valid during the call, and the handler must neither throw nor keep it.
public final class RingBuffer {
    public typealias Handler = (UnsafeRawBufferPointer) -> Void

    private var handle: OpaquePointer?
    private let handler: Handler

    public init(map: BPFMap, handler: @escaping Handler) throws(BPFError) {
        self.handler = handler
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

    deinit { if let handle { ring_buffer__free(handle) } }

    /// The epoll descriptor that becomes readable when the kernel wakes the reader.
    public var epollFD: Int32 { ring_buffer__epoll_fd(handle) }

    /// Hands every record available now to the handler; returns how many.
    @discardableResult
    public func consume() throws(BPFError) -> Int {
        Int(try check(ring_buffer__consume(handle), "ring_buffer__consume"))
    }
}
