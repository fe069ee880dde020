import AgentRecords
import Synchronization

/// Keeps record lines in memory: for tests and for tools that read the stream in-process.
package final class MemoryOutput: RecordOutput, Sendable {
    private let data = Mutex<[UInt8]>([])
    package let description = "memory"

    package init() {}

    package func write(_ lines: UnsafeRawBufferPointer) {
        data.withLock { $0.append(contentsOf: lines) }
    }

    package func flush() {}

    /// Every byte written so far.
    package var bytes: [UInt8] { data.withLock { $0 } }

    /// Every complete line written so far.
    package var lines: [String] {
        data.withLock { String(decoding: $0, as: UTF8.self).split(separator: "\n").map(String.init) }
    }
}
