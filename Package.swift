// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "agentwatch",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "agentwatch", targets: ["agentwatch"]),
        // For bench/micro, a package of its own that drives the pipeline and the outputs
        // without the kernel: what it uses is `public`, the rest `package`.
        .library(name: "AgentBenchKit", targets: ["AgentSupport", "AgentRecords", "AgentSensor", "AgentSessions", "AgentDetector", "AgentPipeline", "AgentOutputs"]),
    ],
    dependencies: [
        // Commands, flags and help text: the field's standard.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Structured logging for the daemon's own messages (1.16: `LogHandler.log(event:)`,
        // which DisplaySafeLogHandler implements).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        // Signals, graceful shutdown and (later) reload for the long-running daemon.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        // The YAML config file, with line and column on errors.
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        // SHA-256 for the rules and config digests and the record hash chain: a vetted
        // implementation (BoringSSL-backed on Linux) rather than one of our own.
        .package(url: "https://github.com/apple/swift-crypto", "3.12.0"..<"5.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibbpf",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev", "libelf-dev", "zlib1g-dev"])]
        ),
        // TLS for the syslog sink (RFC 5425): the system's OpenSSL, the library rsyslog itself
        // uses, with its certificate and host name verification; security updates come with
        // the distribution.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // Reading gzipped captures (and their rotated files): zlib, already linked through libbpf.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // gzip for rotated record files, written: libdeflate's level 1 compresses NDJSON records
        // 4-5 times faster than zlib's level 6 (1.5 against 7 ns a byte on this class of
        // machine) into smaller files, as standard gzip members that zlib, gzip and Python read.
        // zlib stays for reading captures back.
        .systemLibrary(
            name: "CLibdeflate",
            pkgConfig: "libdeflate",
            providers: [.apt(["libdeflate-dev"])]
        ),
        .target(name: "CAgentEvents"),
        .target(name: "CSupport"),
        .target(
            name: "BPFKit",
            dependencies: ["CLibbpf"]
        ),
        .target(
            name: "AgentProbes",
            dependencies: ["CAgentEvents"],
            plugins: ["BPFBuild"]
        ),
        // The daemon's own targets, lowest first. Each depends only on targets above it in
        // this list (docs/architecture.md draws the arrows; .ci/arrows.py checks them).
        // Errors, clocks, trusted directories, socket addresses, log escaping, the version.
        .target(
            name: "AgentSupport",
            dependencies: ["CSupport", .product(name: "Logging", package: "swift-log")]
        ),
        // The record format: record types, the JSON writer and reader, the hash chain, the
        // names of a rotated file set, the sink protocol.
        .target(
            name: "AgentRecords",
            dependencies: ["AgentSupport", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The kernel side as the daemon sees it: the BPF object, its ring buffer, the decoder.
        .target(
            name: "AgentSensor",
            dependencies: ["AgentSupport", "AgentProbes", "BPFKit", "CAgentEvents", "CLibbpf"]
        ),
        // Sessions: session roots and patterns, cgroupfs, the registry.
        .target(
            name: "AgentSessions",
            dependencies: ["AgentSupport", "AgentRecords", "CAgentEvents", "CLibbpf"]
        ),
        // Detection rules: loading, conditions, globs, the detector and its alerts.
        .target(
            name: "AgentDetector",
            dependencies: [
                "AgentSupport", "AgentRecords",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The live pipeline: decode, the process table, rule input, the recorder.
        .target(
            name: "AgentPipeline",
            dependencies: ["AgentSupport", "AgentRecords", "AgentSensor", "AgentSessions", "AgentDetector", "CAgentEvents", "CSupport"]
        ),
        // Where records go: the output worker and queue, file, syslog, and the ECS/OCSF formats.
        .target(
            name: "AgentOutputs",
            dependencies: [
                "AgentSupport", "AgentRecords", "COpenSSL", "CSupport", "CLibdeflate",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Reading captures back: replay (with rules again) and verify.
        .target(
            name: "AgentReplay",
            dependencies: ["AgentSupport", "AgentRecords", "AgentDetector", "CZlib"]
        ),
        // The daemon: its services, config, reload, control socket and metrics.
        .target(
            name: "AgentDaemon",
            dependencies: [
                "AgentSupport", "AgentRecords", "AgentSensor", "AgentSessions", "AgentDetector",
                "AgentPipeline", "AgentOutputs", "AgentReplay",
                "BPFKit", "CAgentEvents", "CLibbpf", "CSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "agentwatch",
            dependencies: [
                "AgentSupport", "AgentRecords", "AgentSessions", "AgentDetector", "AgentOutputs",
                "AgentReplay", "AgentDaemon", "CSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .plugin(name: "BPFBuild", capability: .buildTool()),
        .testTarget(
            name: "AgentCoreTests",
            dependencies: ["AgentSupport", "AgentRecords", "AgentSensor", "AgentSessions", "AgentDetector", "AgentPipeline", "AgentOutputs", "AgentReplay", "AgentDaemon", "AgentProbes", "BPFKit", "CAgentEvents", "CSupport"]
        ),
        .testTarget(
            name: "KernelTests",
            dependencies: ["AgentSupport", "AgentRecords", "AgentSensor", "AgentProbes", "AgentSessions", "AgentDetector", "AgentPipeline", "AgentOutputs", "AgentReplay", "AgentDaemon", "CAgentEvents", "BPFKit"]
        ),
    ]
)
