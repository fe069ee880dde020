import Benchmark
import MallocInterposerSwift
import PipelineWorkload

// One benchmark per stage set (Stages): each iteration handles 1,000 records of the replayed
// synthetic stream (scalingFactor .kilo), so the scaled metrics (marked * in the output) are per
// record: wall clock ns per record, bytes written per record; throughput is records per second.
// The pipeline runs on the benchmark's thread: one core.
//
// Allocations are read from the malloc interposer right around the 1,000 records, so the
// benchmark harness's own allocations are not in them, and reported per 1,000 records (the
// table shows integers; per record they are fractions).
//
// Adding the detection stage: add a case to Stages (between correlate and pipeline-discard) and
// it is benchmarked here with no other change.

let mallocsPer1k = BenchmarkMetric.custom("Mallocs per 1k records", polarity: .prefersSmaller, useScalingFactor: false)
let mallocBytes = BenchmarkMetric.custom("Malloc bytes per record", polarity: .prefersSmaller, useScalingFactor: true)

let benchmarks: @Sendable () -> Void = {
    for stages in Stages.allCases {
        Benchmark(
            stages.rawValue,
            configuration: .init(
                // .mallocCountTotal makes the benchmark turn the interposer's counting on;
                // it includes the harness's own allocations and shows 0 once rounded per record.
                metrics: [.throughput, .wallClock, .writeBytesLogical, .peakMemoryResident, .mallocCountTotal, mallocsPer1k, mallocBytes],
                timeUnits: .nanoseconds,
                warmupIterations: 16,
                scalingFactor: .kilo,
                maxDuration: .seconds(3),
                maxIterations: 1_000_000
            )
        ) { benchmark, harness in
            harness.trimOutput()
            benchmark.startMeasurement()
            let before = MallocInterposerSwift.getStatistics()
            blackHole(harness.run(benchmark.scaledIterations.count))
            let after = MallocInterposerSwift.getStatistics()
            benchmark.stopMeasurement()
            benchmark.measurement(mallocsPer1k, after.mallocCount - before.mallocCount)
            benchmark.measurement(mallocBytes, after.mallocBytesCount - before.mallocBytesCount)
        } setup: {
            try Harness(stages, workload: Workload())
        }
    }
}
