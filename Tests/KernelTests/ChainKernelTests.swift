@testable import AgentDaemon
@testable import AgentReplay
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// The hash chain across a real daemon restart on one output file.
    @Suite("chain")
    struct ChainKernelTests {
        @Test("a second daemon on the same file continues the chain: intact, one restart, schema-valid")
        func restartContinuesChain() throws {
            let first = try TestDaemon()
            first.start()
            let cg = first.makeSession("chain-a")
            let r = runIn(cg, ["/bin/cat", "/etc/hostname"])
            #expect(r.status == 0)
            first.waitForRecords { $0.contains { $0.string("type") == "process.exit" && $0.int("process.pid") == Int(r.pid) } }
            first.stop()
            let firstRecords = first.records()
            #expect(firstRecords.first?[path: "agent.chain_start"] as? Bool == true)
            #expect(firstRecords.last?.string("type") == "agent.stop")
            let lastChain = try #require(firstRecords.last?.string("chain"))

            let second = try TestDaemon(output: first.output)
            #expect(second.output == first.output)
            second.start()
            let cg2 = second.makeSession("chain-b")
            let r2 = runIn(cg2, ["/bin/true"])
            #expect(r2.status == 0)
            second.waitForRecords { $0.contains { $0.string("type") == "process.exit" && $0.int("process.pid") == Int(r2.pid) } }
            second.stop()

            let all = second.records()
            let restart = try #require(all.dropFirst(firstRecords.count).first)
            #expect(restart.string("type") == "agent.start" && restart.int("seq") == 1)
            #expect(restart.string("agent.chain_prev") == lastChain)
            #expect(restart[path: "agent.chain_start"] == nil)

            let v = ChainVerifier.verify(paths: [first.output])
            #expect(v.intact, "\(v.failure.map { "\($0)" } ?? "") gaps: \(v.gaps)")
            #expect(v.records == all.count)
            #expect(v.restarts.map(\.description) == ["\(first.output):\(firstRecords.count + 1): seq 1: daemon restart, chain continued"])
            print("chain: \(v.summary)")

            // Every record, chain included, is valid against the schema.
            try expectValidAgainstSchema(first.output)
        }
    }
}
