import AgentRecords
import AgentSupport
import Dispatch
import Logging

/// The recorder's sink when records go to several outputs: each batch of lines is copied into
/// every sink's queue; the sinks deliver on their own threads.
package final class Outputs: RecordOutput {
    package private(set) var workers: [OutputWorker]
    /// The configuration each worker was made from (nil: made directly).
    private var configs: [OutputConfig?]
    /// The outputs at start (what `agent.start` names; a reload's record names the new ones).
    package let description: String
    /// The first native file sink's tail: the stream's chain continues the main file.
    package let chainTail: RecordTail?

    package init(workers: [OutputWorker], configs: [OutputConfig?]? = nil) {
        self.workers = workers
        self.configs = configs ?? workers.map { _ in nil }
        description = workers.map(\.destination.description).joined(separator: ", ")
        chainTail = workers.lazy.compactMap { ($0.destination as? FileTransport)?.chainTail }.first
    }

    /// The configured outputs, each with its destination opened lazily by its worker.
    package convenience init(_ configs: [OutputConfig], logger: Logger) throws(AgentError) {
        var workers: [OutputWorker] = []
        for c in configs { workers.append(try c.makeWorker(logger: logger)) }
        self.init(workers: workers, configs: configs)
    }

    /// Moves to `wanted` (a config reload): outputs configured exactly as before keep running
    /// untouched; the others are all made first (so a failure changes nothing), then the old
    /// ones deliver what they hold and stop, then the new ones start. Called on the thread that
    /// writes. Returns the names of the outputs that were started and stopped.
    package func replace(with wanted: [OutputConfig], logger: Logger) throws(AgentError) -> (started: [String], stopped: [String]) {
        var next: [OutputWorker] = []
        var fresh: [OutputWorker] = []
        for c in wanted {
            if let i = configs.firstIndex(where: { $0 == c }) {
                next.append(workers[i])
            } else {
                let w = try c.makeWorker(logger: logger)
                next.append(w)
                fresh.append(w)
            }
        }
        let gone = workers.filter { old in !next.contains { $0 === old } }
        for w in gone { w.stop() }
        for w in fresh { w.start() }
        workers = next
        configs = wanted
        return (fresh.map(\.name), gone.map(\.name))
    }

    package func start() { for w in workers { w.start() } }

    package func write(_ lines: UnsafeRawBufferPointer) {
        for w in workers { w.push(lines) }
    }

    package func flush() {}

    /// Every sink delivers what it holds now, or gives it up and counts it (bounded in time,
    /// the sinks in parallel); they go on running.
    package func drain() {
        let group = DispatchGroup()
        for w in workers {
            DispatchQueue.global().async(group: group) { w.drain() }
        }
        group.wait()
    }

    /// Every sink delivers what it holds (bounded in time), closes and ends.
    package func stop() { for w in workers { w.stop() } }

    /// Reopen files (SIGHUP, after logrotate) and reconnect receivers.
    package func reopen() { for w in workers { w.reopen() } }

    /// Records each sink dropped since the last call, by sink name.
    package func takeDrops() -> [(sink: String, drops: OutputDrops)] {
        workers.compactMap { w in
            let d = w.takeDrops()
            return d.records > 0 ? (w.name, d) : nil
        }
    }
}
