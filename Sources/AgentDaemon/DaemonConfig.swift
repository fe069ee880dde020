import AgentOutputs
import AgentReplay
import AgentSensor
import AgentSessions
import AgentSupport
import CAgentEvents
import Glibc
import Yams

/// Every setting of the daemon, each with a built-in default, so `agentwatch daemon` runs
/// without a config file. The file (YAML) names only what it changes.
package struct DaemonConfig: Sendable, Equatable {
    /// Where records go: a file path, or "-" for standard output. Shorthand for one native
    /// file output with the built-in rotation; `outputs` says more.
    package var output = "/var/log/agentwatch/events.ndjson"
    /// Every output with its settings (files, syslog receivers); nil: the one file `output`.
    package var outputs: [OutputConfig]? = nil
    /// Session roots: cgroup directories whose children are sessions. Relative paths are taken
    /// below the cgroup2 mount. An entry with `*` is a pattern: every directory matching it is a
    /// root, found when it appears (systemd user scopes: `systemd-run --user --scope
    /// --slice=agentwatch.slice`). The first entry must be a directory (`agentwatch run`'s).
    package var sessionRoots = ["agentwatch", DaemonConfig.userScopeRoots]
    /// Where systemd puts `--slice=agentwatch.slice` units of every user's manager.
    package static let userScopeRoots = "user.slice/user-*.slice/user@*.service/agentwatch.slice"
    /// Size of the kernel ring buffer in KiB: a power of two, at least 4 (a page).
    package var ringBufferKiB = 8192
    /// Bytes of argv copied per exec (at most 16384).
    package var argsMax = 4096
    /// How often the reader drains the ring buffer when the kernel does not wake it, in ms.
    package var pollIntervalMs = 100
    /// How often a summary line goes to the console, in seconds (0: never).
    package var statusIntervalS = 5
    /// A net.flow record each time a socket has sent this many more KiB (and one at close).
    package var flowReportKiB = 1024
    /// Resolve each opened file's absolute path in the kernel. Off, file.path is the path as
    /// requested: only for measuring what resolution costs (the benchmark does).
    package var resolvePaths = true
    /// How the open and connect syscalls are hooked (`sensor: auto | fentry | kprobe |
    /// tracepoint`): nil (auto), the best tier this kernel takes, as `agent.start` reports it;
    /// a tier named is used or the daemon does not start.
    package var sensor: SensorTier? = nil
    /// Rule files and directories. nil: the installed rules and /etc/agentwatch/rules.d (or
    /// `rules/` in a source tree); an empty list: no rules.
    package var rules: [String]? = nil
    /// Where the daemon keeps its pid file and control socket.
    package var runtimeDir = "/run/agentwatch"
    /// Members of this group may use the control socket (start sessions without root); the
    /// socket is root's only when the group does not exist.
    package var controlGroup = "agentwatch"
    /// Counters in the Prometheus text format, for node_exporter's textfile collector, written
    /// (atomically) every `metrics_interval_s`; nil: none.
    package var metricsTextfile: String? = nil
    package var metricsIntervalS = 15
    /// How long one scan of a session's credential catalog may take, in ms (what it did not
    /// reach by then is named in a warning and scanned at the next rescan). Raise it where
    /// homes are on a slow or networked file system.
    package var catalogScanBudgetMs = 100
    /// What happens when sessions write records faster than the daemon reads them: their
    /// sessions are paused until it caught up (`throttle`), or what does not fit is dropped
    /// and counted (`drop`).
    package var overflow = OverflowMode.throttle
    /// The longest one pause lasts, in ms: a daemon that has not drained by then resumes the
    /// session and drops (and counts) what does not fit.
    package var throttleMaxPauseMs = 5000

    package init() {}

    package static let defaultPath = "/etc/agentwatch/agentwatch.yaml"

    /// Reads a config file. Every error names the file, line and column and what to change.
    package static func load(path: String) throws(AgentError) -> DaemonConfig {
        let text: String
        do {
            text = try readFile(path)
        } catch {
            throw AgentError("cannot read config \(path): \(String(cString: strerror(error.errno))): fix the path or its permissions")
        }
        return try parse(text, file: path)
    }

    package static func parse(_ text: String, file: String) throws(AgentError) -> DaemonConfig {
        var config = DaemonConfig()
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw AgentError("\(file):\(Self.describe(error, text: text))")
        } catch {
            throw AgentError("\(file): \(error)")
        }
        // No document, or a document that is only `---` and comments: the defaults.
        guard let root, root.null == nil else { return config }
        guard case .mapping(let mapping) = root else {
            throw AgentError("\(file):\(root.mark?.line ?? 1):\(root.mark?.column ?? 1): the config must be a mapping of setting: value")
        }
        var outputAt: String?
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            let at = "\(file):\(keyNode.mark?.line ?? 0):\(keyNode.mark?.column ?? 0)"
            func int(_ range: ClosedRange<Int>) throws(AgentError) -> Int {
                guard case .scalar = value, let v = value.int, range.contains(v) else {
                    throw AgentError("\(at): \(key) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
                }
                return v
            }
            func string() throws(AgentError) -> String {
                guard case .scalar = value, value.null == nil, let v = value.string, !v.isEmpty else {
                    throw AgentError("\(at): \(key) must be a non-empty string")
                }
                return v
            }
            switch key {
            case "output":
                config.output = try string()
                outputAt = at
            case "outputs":
                guard case .sequence(let seq) = value, !seq.isEmpty else {
                    throw AgentError("\(at): outputs must be a list of outputs, each with a type (file or syslog)")
                }
                var list: [OutputConfig] = []
                for (i, node) in seq.enumerated() {
                    let o = try OutputConfig.parse(node, index: i) { "\(file):\($0.mark?.line ?? 0):\($0.mark?.column ?? 0)" }
                    if list.contains(where: { $0.name == o.name }) {
                        throw AgentError("\(file):\(node.mark?.line ?? 0):\(node.mark?.column ?? 0): two outputs are named \(o.name): give each its own name")
                    }
                    list.append(o)
                }
                config.outputs = list
            case "session_roots":
                guard case .sequence(let seq) = value, !seq.isEmpty,
                      seq.allSatisfy({ if case .scalar = $0 { return !($0.string ?? "").isEmpty } else { return false } }) else {
                    throw AgentError("\(at): session_roots must be a list of cgroup paths (1 to 4 directories, then up to 4 patterns)")
                }
                let roots = seq.compactMap { $0.string }
                let patterns = roots.filter(RootPattern.isPattern)
                guard !RootPattern.isPattern(roots[0]) else {
                    throw AgentError("\(at): the first session root is where `agentwatch run` makes sessions: a directory, not the pattern \(roots[0])")
                }
                guard roots.count - patterns.count <= Int(AGENT_MAX_ROOTS), patterns.count <= Int(AGENT_MAX_PATTERNS) else {
                    throw AgentError("\(at): session_roots holds at most \(AGENT_MAX_ROOTS) directories and \(AGENT_MAX_PATTERNS) patterns")
                }
                for (i, root) in roots.enumerated() where RootPattern.isPattern(root) {
                    let where_ = "\(file):\(seq[i].mark?.line ?? 0):\(seq[i].mark?.column ?? 0)"
                    do {
                        _ = try RootPattern.parts(of: root.hasPrefix("/") ? String(root.dropFirst()) : root, root: root, checkDepth: !root.hasPrefix("/"))
                    } catch {
                        throw AgentError("\(where_): \(error.message)")
                    }
                }
                config.sessionRoots = roots
            case "ring_buffer_kib":
                let v = try int(4...(1 << 20))
                guard v & (v - 1) == 0 else { throw AgentError("\(at): ring_buffer_kib must be a power of two") }
                config.ringBufferKiB = v
            case "args_max": config.argsMax = try int(0...16384)
            case "flow_report_kib": config.flowReportKiB = try int(4...(1 << 20))
            case "rules":
                guard case .sequence(let seq) = value,
                      seq.allSatisfy({ if case .scalar = $0 { return !($0.string ?? "").isEmpty } else { return false } }) else {
                    throw AgentError("\(at): rules must be a list of rule files or directories ([] for none)")
                }
                config.rules = seq.compactMap { $0.string }
            case "resolve_paths":
                guard case .scalar = value, let b = value.bool else { throw AgentError("\(at): resolve_paths must be true or false") }
                config.resolvePaths = b
            case "sensor":
                let v = try string()
                if v == "auto" {
                    config.sensor = nil
                } else if let tier = SensorTier(rawValue: v) {
                    config.sensor = tier
                } else {
                    throw AgentError("\(at): sensor must be auto or one of \(SensorTier.allCases.map(\.rawValue).joined(separator: ", ")), not '\(v)'")
                }
            case "poll_interval_ms": config.pollIntervalMs = try int(1...10_000)
            case "status_interval_s": config.statusIntervalS = try int(0...86_400)
            case "runtime_dir": config.runtimeDir = try string()
            case "control_group": config.controlGroup = try string()
            case "metrics_textfile": config.metricsTextfile = try string()
            case "metrics_interval_s": config.metricsIntervalS = try int(1...3600)
            case "catalog_scan_budget_ms": config.catalogScanBudgetMs = try int(10...60_000)
            case "overflow":
                let v = try string()
                guard let mode = OverflowMode(rawValue: v) else {
                    throw AgentError("\(at): overflow must be \(OverflowMode.allCases.map(\.rawValue).joined(separator: " or ")), not '\(v)'")
                }
                config.overflow = mode
            case "throttle_max_pause_ms": config.throttleMaxPauseMs = try int(100...600_000)
            default:
                throw AgentError("\(at): unknown setting '\(key)' (known: \(Self.knownKeys.joined(separator: ", ")))")
            }
        }
        if let outputAt, config.outputs != nil {
            throw AgentError("\(outputAt): output and outputs both given: list the file under outputs instead")
        }
        return config
    }

    /// The outputs to run: `outputs`, or the one file `output`.
    package var effectiveOutputs: [OutputConfig] { outputs ?? [.file(output)] }

    package static let knownKeys = ["output", "outputs", "session_roots", "ring_buffer_kib", "args_max", "flow_report_kib", "resolve_paths", "sensor", "rules", "poll_interval_ms", "status_interval_s", "runtime_dir", "control_group", "metrics_textfile", "metrics_interval_s", "catalog_scan_budget_ms", "overflow", "throttle_max_pause_ms"]

    /// `LINE:COL: YAML error: ...`, to follow `file:`.
    static func describe(_ error: YamlError, text: String) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return "\(mark.line):\(mark.column): YAML error: \(problem)"
        case .duplicatedKeysInMapping(let duplicates, let context):
            // Yams marks the mapping; point at the second occurrence of the key instead.
            var seen = Set<String>()
            for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let key = String(line.prefix(while: { $0 != ":" })).trimmingCharacters()
                guard duplicates.contains(key), line.first.map({ !$0.isWhitespace }) ?? false else { continue }
                if !seen.insert(key).inserted {
                    return "\(i + 1):1: setting \(key) is given twice: keep one"
                }
            }
            return "\(context.mark.line):\(context.mark.column): setting \(duplicates.joined(separator: ", ")) is given twice: keep one"
        default:
            return "1:1: YAML error: \(error)"
        }
    }
}
