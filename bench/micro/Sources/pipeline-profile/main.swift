// A plain loop over the benchmark's workload, for profilers (perf, valgrind) and a quick figure
// without the benchmark harness:
//
//   pipeline-profile [STAGES] [RECORDS]      STAGES: decode | correlate | pipeline-discard | pipeline-file
//
// Prints the stream's mix, ns per record (wall and CPU) and the checks of Harness.check().
import Glibc
import PipelineWorkload

let args = CommandLine.arguments
let stages = args.count > 1 ? Stages(rawValue: args[1]) : .pipelineFile
guard let stages else {
    print("usage: pipeline-profile [\(Stages.allCases.map(\.rawValue).joined(separator: "|"))] [RECORDS]")
    exit(2)
}
let records = args.count > 2 ? Int(args[2]) ?? 1_000_000 : 1_000_000

func now(_ clock: clockid_t) -> UInt64 {
    var t = timespec()
    clock_gettime(clock, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

let workload = Workload()
print("stream: \(workload.mix)")
let harness = try Harness(stages, workload: workload)

/// The measured region (for callgrind: --toggle-collect='*measuredLoop*' leaves out set-up and
/// the warm-up cycle).
@inline(never)
func measuredLoop(_ harness: Harness, _ records: Int) -> UInt64 {
    var done = 0, acc: UInt64 = 0
    while done < records {
        let n = min(1_000, records - done)
        harness.trimOutput()
        acc &+= harness.run(n)
        done += n
    }
    harness.finish()
    return acc
}

let wall0 = now(CLOCK_MONOTONIC), cpu0 = now(CLOCK_PROCESS_CPUTIME_ID)
let acc = measuredLoop(harness, records)
let wall = now(CLOCK_MONOTONIC) - wall0, cpu = now(CLOCK_PROCESS_CPUTIME_ID) - cpu0
let nsWall = Double(wall) / Double(records), nsCPU = Double(cpu) / Double(records)
print("\(stages.rawValue): \(records) records, \(Int(nsWall.rounded())) ns/record wall, \(Int(nsCPU.rounded())) ns/record CPU, "
    + "\(Int((1e9 / nsWall).rounded())) records/s (checksum \(acc & 0xffff))")
if let f = harness.fileSink {
    print("output: \(f.description), \(f.bytesWritten) bytes, \(f.bytesWritten / UInt64(max(harness.recorder.seq, 1))) B/record")
}
let problems = harness.check()
for p in problems { print("CHECK FAILED: \(p)") }
exit(problems.isEmpty ? 0 : 1)
