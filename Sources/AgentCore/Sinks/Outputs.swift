import Logging

/// The recorder's sink when records go to several outputs: each batch of lines is copied into
/// every sink's queue; the sinks deliver on their own threads.
public final class Outputs: RecordSink {
    public let workers: [SinkWorker]
    public let description: String
    /// The first native file sink's tail: the stream's chain continues the main file.
    public let chainTail: [UInt8]?

    public init(workers: [SinkWorker]) {
        self.workers = workers
        description = workers.map(\.destination.description).joined(separator: ", ")
        chainTail = workers.lazy.compactMap { ($0.destination as? FileDestination)?.chainTail }.first
    }

    /// The configured outputs, each with its destination opened lazily by its worker.
    public convenience init(_ configs: [OutputConfig], logger: Logger) throws(AgentError) {
        var workers: [SinkWorker] = []
        for c in configs { workers.append(try c.makeWorker(logger: logger)) }
        self.init(workers: workers)
    }

    public func start() { for w in workers { w.start() } }

    public func write(_ lines: UnsafeRawBufferPointer) {
        for w in workers { w.push(lines) }
    }

    public func flush() {}

    /// Every sink delivers what it holds (bounded in time), closes and ends.
    public func stop() { for w in workers { w.stop() } }

    /// Reopen files (SIGHUP, after logrotate) and reconnect receivers.
    public func reopen() { for w in workers { w.reopen() } }

    /// Records each sink dropped since the last call, by sink name.
    public func takeDrops() -> [(sink: String, drops: SinkDrops)] {
        workers.compactMap { w in
            let d = w.takeDrops()
            return d.records > 0 ? (w.name, d) : nil
        }
    }
}
