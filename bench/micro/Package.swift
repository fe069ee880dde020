// swift-tools-version: 6.1
// The pipeline micro-benchmark (issue 3): synthetic kernel records through decode, correlation
// and JSON writing, measured with ordo-one/benchmark. A package of its own so that the main
// build and CI never resolve or build the benchmark dependency.
import PackageDescription

import Foundation

// The agentwatch package under test: this repository's root by default. AGENTWATCH_PACKAGE_PATH
// points it at another checkout (for example another branch;
// see README.md).
let agentwatchPath = ProcessInfo.processInfo.environment["AGENTWATCH_PACKAGE_PATH"] ?? "../.."
// SwiftPM names a path dependency after its directory, which is whatever the clone is called.
let agentwatchPackage = URL(fileURLWithPath: agentwatchPath,
                            relativeTo: URL(fileURLWithPath: Context.packageDirectory, isDirectory: true))
    .standardizedFileURL.lastPathComponent.lowercased()

let package = Package(
    name: "agentwatch-micro",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: agentwatchPath),
        // MallocInterposer: malloc/free counting on Swift 6.3 without jemalloc.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
        // Already in the graph through benchmark: read directly for exact allocation counts of
        // the records alone, without the harness's own allocations.
        .package(url: "https://github.com/ordo-one/malloc-interposer.git", from: "1.6.0"),
    ],
    targets: [
        // The synthetic record stream and the harness that drives AgentPipeline.Pipeline with it;
        // shared by the benchmarks and by the plain profiling executable.
        .target(
            name: "PipelineWorkload",
            dependencies: [.product(name: "AgentBenchKit", package: agentwatchPackage)]
        ),
        // A plain loop over the same workload, for perf/valgrind (no benchmark harness around it).
        .executableTarget(
            name: "pipeline-profile",
            dependencies: ["PipelineWorkload"]
        ),
        // The outputs on their own threads: records/s a file or syslog sink delivers on one core.
        .executableTarget(
            name: "sink-throughput",
            dependencies: ["PipelineWorkload"]
        ),
        .executableTarget(
            name: "PipelineBenchmarks",
            dependencies: [
                "PipelineWorkload",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            path: "Benchmarks/PipelineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
