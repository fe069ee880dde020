// Records per second an output delivers on one core: real record lines (the pipeline
// benchmark's workload rendered by the real recorder) pushed through `Outputs` as the daemon's
// reader thread pushes them, delivered by the sink's worker thread, with the whole process
// pinned to one CPU, so the reader's copying and the worker's delivery share it.
//
//   sink-throughput file [RECORDS] [PATH]        the file output (size rotation at 100 MiB; no gzip)
//   sink-throughput syslog-tcp [RECORDS]         RFC 5424 over TCP to a loopback reader that counts
//
// Prints records/s, CPU ns per record and the sink's counters; exits 1 if a record was dropped.
import AgentCore
import Glibc
import Logging
import PipelineWorkload

let args = CommandLine.arguments
// One CPU for every thread: re-run under taskset (Glibc does not export sched_setaffinity).
if getenv("AGENTWATCH_SINK_BENCH_PINNED") == nil {
    setenv("AGENTWATCH_SINK_BENCH_PINNED", "1", 1)
    let argv = ["/usr/bin/taskset", "-c", "0"] + args
    var cargs = argv.map { strdup($0) } + [nil]
    execv("/usr/bin/taskset", &cargs)
    print("warning: could not pin to one CPU with taskset; running unpinned")
}
let mode = args.count > 1 ? args[1] : "file"
let records = args.count > 2 ? Int(args[2]) ?? 2_000_000 : 2_000_000

func now(_ clock: clockid_t) -> UInt64 {
    var t = timespec()
    clock_gettime(clock, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

// One cycle of the workload, rendered: the lines every batch is cut from.
let workload = Workload()
let capture = CaptureSink()
let harness = try Harness(.pipelineDiscard, workload: workload)
let recorder = Recorder(sink: capture, host: HostIdentity(name: "bench-host", id: "5c3d0a9e7b1f4e2a8c6d0b9a7e5f3c1d"))
let pipeline = Pipeline(recorder: recorder, sessions: harness.sessions, table: ProcessTable(bootID: "b007b007b007"))
for i in 0..<workload.prologue.count { pipeline.handle(workload.prologue[i]) }
for i in 0..<workload.cycle.count { pipeline.handle(workload.cycle[i]) }
recorder.flush()
let lines = capture.bytes
var lineEnds: [Int] = []
for (i, b) in lines.enumerated() where b == 0x0A { lineEnds.append(i + 1) }
let perCycle = lineEnds.count
print("lines: \(perCycle) per cycle, \(lines.count / perCycle) B/record on average")

var config: OutputConfig
var stopReader: (() -> UInt64)?
switch mode {
case "file":
    let path = args.count > 3 ? args[3] : "/tmp/agentwatch-sink-bench.ndjson"
    unlink(path)
    for old in FileTransport.rotatedFiles(of: path) { unlink(old) }
    var f = FileSettings(path: path)
    f.compress = false
    f.group = nil
    f.retain = 2
    config = OutputConfig(name: "file", kind: .file(f))
case "syslog-tcp":
    // A loopback reader that only counts bytes (on the same CPU: it costs what it costs).
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }
    listen(listener, 1)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
    let port = Int(UInt16(bigEndian: addr.sin_port))
    final class Counter: @unchecked Sendable { var bytes: UInt64 = 0; var done = false }
    let counter = Counter()
    startThread(name: "reader") {
        let c = accept(listener, nil, nil)
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buf.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            counter.bytes += UInt64(n)
        }
        // The sender's close waits for the receiver to have read everything and close.
        close(c)
        counter.done = true
    }
    var s = SyslogSettings()
    s.transport = .tcp
    s.address = "127.0.0.1"
    s.port = port
    config = OutputConfig(name: "syslog", kind: .syslog(s))
    config.spoolDirectory = nil
    stopReader = { while !counter.done { usleep(1000) }; return counter.bytes }
default:
    print("usage: sink-throughput file|syslog-tcp [RECORDS] [PATH]")
    exit(2)
}

var logger = Logger(label: "bench")
logger.logLevel = .warning
let outputs = try Outputs([config], logger: logger)
let worker = outputs.workers[0]
outputs.start()

// Batches as the recorder hands them over (it flushes at 256 KiB or after each ring drain).
let wall0 = now(CLOCK_MONOTONIC), cpu0 = now(CLOCK_PROCESS_CPUTIME_ID)
var pushed = 0
var start = 0
var line = 0
lines.withUnsafeBytes { all in
    while pushed < records {
        // About 64 KiB per batch, whole lines.
        var end = line
        while end < lineEnds.count && lineEnds[end] - start < 64 << 10 && pushed + (end - line) < records { end += 1 }
        if end == line { end = line + 1 }
        let stop = lineEnds[end - 1]
        // The daemon never waits for a sink; the benchmark does, so that nothing is dropped
        // and the figure is the sink's own rate.
        while worker.backlogBytes > 32 << 20 { sched_yield() }
        outputs.write(UnsafeRawBufferPointer(rebasing: all[start..<stop]))
        pushed += end - line
        line = end
        start = stop
        if line == lineEnds.count { line = 0; start = 0 }
    }
}
outputs.stop()
let wall = now(CLOCK_MONOTONIC) - wall0, cpu = now(CLOCK_PROCESS_CPUTIME_ID) - cpu0
let received = stopReader?()
let c = worker.counters
let drops = worker.takeDrops()
let rate = Int((Double(records) / (Double(wall) / 1e9)).rounded())
let nsCPU = Int((Double(cpu) / Double(records)).rounded())
let got = received.map { ", reader got \($0) bytes" } ?? ""
print("\(mode): \(records) records, \(rate) records/s, \(nsCPU) ns CPU/record (one CPU), delivered \(c.records) records / \(c.bytes) bytes\(got), dropped \(drops.records), errors \(c.errors)")
exit(c.records == UInt64(records) && drops.records == 0 ? 0 : 1)
