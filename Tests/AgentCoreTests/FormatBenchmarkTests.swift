@testable import AgentOutputs
import Foundation
import Glibc
import Testing

/// Cost of rendering one record in each output format, over the sample stream (every record
/// type, awkward bytes included). Run on a release build:
/// `AGENTWATCH_BENCH=1 swift test -c release --filter FormatBenchmark`.
@Suite("Format benchmark", .serialized, .enabled(if: getenv("AGENTWATCH_BENCH") != nil, "set AGENTWATCH_BENCH=1 (release build) to run"))
struct FormatBenchmarkTests {
    static func nanoseconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    /// Median over `runs` of the µs per record of rendering every line `rounds` times (thread CPU
    /// time: the machine is shared), and how many lines of a round rendered.
    static func measure<F: RecordFormatter>(_ formatter: F, _ lines: [[UInt8]], rounds: Int = 2000, runs: Int = 5) -> (Double, Int) {
        var f = formatter
        var out: [UInt8] = []
        out.reserveCapacity(1 << 20)
        var samples: [Double] = []
        var rendered = 0
        for _ in 0..<runs {
            rendered = 0
            let start = nanoseconds()
            for _ in 0..<rounds {
                for l in lines {
                    out.removeAll(keepingCapacity: true)
                    if l.withUnsafeBytes({ f.render($0, into: &out) }) { rendered += 1 }
                }
            }
            samples.append(Double(nanoseconds() - start) / 1000 / Double(rounds * lines.count))
        }
        return (samples.sorted()[runs / 2], rendered / rounds)
    }

    /// µs per record by native type (a formatter per type: state such as entry leaders stays warm).
    @Test func renderCostByType() throws {
        let lines = try FormatSamples.lines()
        var byType: [String: [[UInt8]]] = [:]
        for l in lines {
            let t = String(decoding: l, as: UTF8.self)
            guard let r = t.range(of: #""type":"[a-z.]+""#, options: .regularExpression) else { continue }
            byType[String(t[r].dropFirst(8).dropLast()), default: []].append(l)
        }
        for (type, set) in byType.sorted(by: { $0.key < $1.key }) {
            let (ecs, _) = Self.measure(ECSFormatter(), set, rounds: 20000 / set.count, runs: 3)
            let (ocsf, _) = Self.measure(OCSFFormatter(), set, rounds: 20000 / set.count, runs: 3)
            print("format bench by type: \(type) ecs \(String(format: "%.2f", ecs)) µs, ocsf \(String(format: "%.2f", ocsf)) µs")
        }
    }

    @Test func renderCost() throws {
        let lines = try FormatSamples.lines()
        let sessionRecords = lines.filter { l in
            let t = String(decoding: l, as: UTF8.self)
            return t.contains("\"process\":{") && !t.contains("\"type\":\"alert\"")
        }
        for (name, set) in [("all types", lines), ("process/file/net", sessionRecords)] {
            let bytes = set.reduce(0) { $0 + $1.count } / set.count
            let (native, _) = Self.measure(NativeFormatter(), set)
            let (ecs, ecsRendered) = Self.measure(ECSFormatter(), set)
            let (ocsf, ocsfRendered) = Self.measure(OCSFFormatter(), set)
            #expect(ecsRendered == set.count && ocsfRendered > 0)
            // A yardstick measured in the same run (the machine is shared): Foundation parsing the
            // native line into objects, without writing anything.
            // (Lines with the native escapes of non-UTF-8 bytes are left out: Foundation rejects them.)
            let (foundation, _) = Self.measure(FoundationParse(), set.filter { FoundationParse.reads($0) }, rounds: 500)
            print("format bench (\(name), \(set.count) records, \(bytes) B/native record): native \(String(format: "%.3f", native)) µs/record, ecs \(String(format: "%.2f", ecs)) µs/record, ocsf \(String(format: "%.2f", ocsf)) µs/record; JSONSerialization parse alone \(String(format: "%.2f", foundation)) µs/record")
        }
    }
}

/// Parses the line with JSONSerialization and writes nothing: the cost the formatters avoid.
struct FoundationParse: RecordFormatter {
    static func reads(_ line: [UInt8]) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(line))) != nil
    }

    mutating func render(_ line: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(line))) != nil
    }
}
