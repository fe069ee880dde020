@testable import AgentOutputs
@testable import AgentPipeline
import Testing

/// `CaptureBuilder` crafts records the recorder never writes (members of wrong types, unknown
/// record types, forced seqs) for replay's hostile-input tests. What it shares with a real
/// record, the header, the numbering and the chain, must stay the recorder's byte for byte, or
/// those tests test replay against a drifted copy.
@Suite("capture builder")
struct CaptureBuilderTests {
    @Test("a crafted record has the header, seq and chain the real recorder writes for it")
    func sameAsRecorder() {
        var crafted = CaptureBuilder(start: false)
        crafted.add("agent.heartbeat", #""agent":{"pid":1}"#)
        crafted.add("agent.heartbeat", #""agent":{"pid":2}"#)

        let output = MemoryOutput()
        let recorder = Recorder(sink: output, host: RecordedCapture.host)
        recorder.agentRecord(.agentHeartbeat, unixNs: CaptureBuilder.t0 + 1_000_000) { j in j.key("pid"); j.uint(1) }
        recorder.agentRecord(.agentHeartbeat, unixNs: CaptureBuilder.t0 + 2_000_000) { j in j.key("pid"); j.uint(2) }
        recorder.flush()
        #expect(crafted.lines == output.lines)
    }
}
