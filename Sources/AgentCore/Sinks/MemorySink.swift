import Synchronization

/// Keeps record lines in memory: for tests and for tools that read the stream in-process.
public final class MemorySink: RecordSink, Sendable {
    private let data = Mutex<[UInt8]>([])
    public let description = "memory"

    public init() {}

    public func write(_ lines: UnsafeRawBufferPointer) {
        data.withLock { $0.append(contentsOf: lines) }
    }

    public func flush() {}

    /// Every complete line written so far.
    public var lines: [String] {
        data.withLock { String(decoding: $0, as: UTF8.self).split(separator: "\n").map(String.init) }
    }
}
