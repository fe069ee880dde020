/// A destination that takes its records in another format (ECS, OCSF in a file): each native
/// line is rendered before delivery, and what the inner destination delivered is mapped back to
/// whole native lines. A line the format has no rendering for is skipped and counted.
import AgentRecords
import AgentSupport

final class FormattingTransport: OutputTransport {
    let inner: any OutputTransport
    var formatter: any RecordFormatter
    private var rendered: [UInt8] = []
    /// For each rendered line: where it ends in `rendered`, and where its native line ends.
    private var ends: [(rendered: Int, native: Int)] = []
    private(set) var skipped: UInt64 = 0

    init(inner: any OutputTransport, formatter: any RecordFormatter) {
        self.inner = inner
        self.formatter = formatter
    }

    var description: String { inner.description }
    func open() throws(AgentError) { try inner.open() }
    func flush() throws(DeliveryFailure) { try inner.flush() }
    func maintain() throws(DeliveryFailure) { try inner.maintain() }
    func close() { inner.close() }

    func deliver(_ lines: UnsafeRawBufferPointer) throws(DeliveryFailure) {
        rendered.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        RecorderLine.forEach(in: lines) { line in
            let nativeEnd = line.baseAddress! - lines.baseAddress! + line.count + 1
            if formatter.render(line, into: &rendered) {
                rendered.append(0x0A)
            } else {
                skipped += 1
            }
            ends.append((rendered.count, min(nativeEnd, lines.count)))
        }
        let failure: DeliveryFailure? = rendered.withUnsafeBytes { r in
            do throws(DeliveryFailure) {
                try inner.deliver(r)
                return nil
            } catch {
                return error
            }
        }
        if let failure {
            // The native lines whose rendering was delivered whole.
            let native = ends.last { $0.rendered <= failure.delivered }?.native ?? 0
            throw DeliveryFailure(delivered: native, reason: failure.reason)
        }
    }
}
