import AgentDaemon
import AgentOutputs
import AgentSupport
import Foundation
import Glibc
import Testing

/// A fresh directory under /tmp, removed with everything in it when the test ends.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/agentcore-tests-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: errno \(errno)")
        path = String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Writes `text` to `name` in the directory and returns the file's path.
    func write(_ name: String, _ text: String) -> String {
        let file = path + "/" + name
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "open \(file): errno \(errno)")
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        precondition(n == bytes.count, "short write to \(file)")
        return file
    }

    deinit {
        // The tests make only flat files and plain subdirectories.
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name == "." || name == ".." { continue }
                let full = path + "/" + name
                if unlink(full) != 0 { rmdir(full) }
            }
            closedir(dir)
        }
        rmdir(path)
    }
}

/// The message of the error `body` throws, or nil when it does not throw.
private func errorMessage(_ body: () throws(AgentError) -> DaemonConfig) -> String? {
    do {
        _ = try body()
        return nil
    } catch {
        return error.message
    }
}

private func parseError(_ yaml: String) -> String? {
    errorMessage { () throws(AgentError) in try DaemonConfig.parse(yaml, file: "agentwatch.yaml") }
}

@Suite("DaemonConfig")
struct ConfigTests {
    @Test func defaults() {
        let c = DaemonConfig()
        #expect(c.output == "/var/log/agentwatch/events.ndjson")
        #expect(c.sessionRoots == ["agentwatch", "user.slice/user-*.slice/user@*.service/agentwatch.slice"])
        #expect(c.ringBufferKiB == 8192)
        #expect(c.argsMax == 4096)
        #expect(c.pollIntervalMs == 100)
        #expect(c.statusIntervalS == 5)
        #expect(c.runtimeDir == "/run/agentwatch")
        #expect(DaemonConfig.defaultPath == "/etc/agentwatch/agentwatch.yaml")
    }

    @Test(arguments: ["", "\n", "# nothing set\n", "   \n\n# a\n# b\n"])
    func emptyFileMeansDefaults(_ yaml: String) throws {
        #expect(try DaemonConfig.parse(yaml, file: "agentwatch.yaml") == DaemonConfig())
    }

    /// A template with every setting commented out usually still starts with the document
    /// marker; Yams composes that as a null scalar, not as no document.
    @Test(arguments: ["---\n", "---\n# output: \"-\"\n# args_max: 4096\n"])
    func emptyDocumentWithMarkerMeansDefaults(_ yaml: String) throws {
        #expect(try DaemonConfig.parse(yaml, file: "agentwatch.yaml") == DaemonConfig())
    }

    @Test func fullValidFile() throws {
        let yaml = """
            # every setting
            output: "-"
            session_roots:
              - agentwatch
              - /sys/fs/cgroup/ci.slice
            ring_buffer_kib: 16384
            args_max: 16384
            poll_interval_ms: 250
            status_interval_s: 0
            runtime_dir: /tmp/agentwatch-run
            catalog_scan_budget_ms: 2500
            overflow: drop
            throttle_max_pause_ms: 250

            """
        let c = try DaemonConfig.parse(yaml, file: "agentwatch.yaml")
        #expect(c.output == "-")
        #expect(c.sessionRoots == ["agentwatch", "/sys/fs/cgroup/ci.slice"])
        #expect(c.ringBufferKiB == 16384)
        #expect(c.argsMax == 16384)
        #expect(c.pollIntervalMs == 250)
        #expect(c.statusIntervalS == 0)
        #expect(c.runtimeDir == "/tmp/agentwatch-run")
        #expect(c.catalogScanBudgetMs == 2500)
        #expect(c.overflow == .drop)
        #expect(c.throttleMaxPauseMs == 250)
        #expect(DaemonConfig().overflow == .throttle)
        let block = try #require(parseError("ring_buffer_kib: 64\noverflow: block\n"))
        #expect(block.hasPrefix("agentwatch.yaml:2:1: ") && block.contains("overflow must be throttle or drop, not 'block'"), "\(block)")
        let brief = try #require(parseError("throttle_max_pause_ms: 10\n"))
        #expect(brief.contains("throttle_max_pause_ms must be a whole number from 100 to 600000"), "\(brief)")
        let slow = try #require(parseError("catalog_scan_budget_ms: 5\n"))
        #expect(slow.hasPrefix("agentwatch.yaml:1:1: ") && slow.contains("catalog_scan_budget_ms must be a whole number from 10 to 60000"), "\(slow)")
    }

    @Test func fileNamesOnlyWhatItChanges() throws {
        var expected = DaemonConfig()
        expected.argsMax = 0
        #expect(try DaemonConfig.parse("args_max: 0\n", file: "f") == expected)
    }

    @Test func boundsAreAccepted() throws {
        let low = try DaemonConfig.parse("ring_buffer_kib: 4\npoll_interval_ms: 1\nstatus_interval_s: 86400\n", file: "f")
        #expect(low.ringBufferKiB == 4)
        #expect(low.pollIntervalMs == 1)
        #expect(low.statusIntervalS == 86400)
        let high = try DaemonConfig.parse("ring_buffer_kib: 1048576\npoll_interval_ms: 10000\n", file: "f")
        #expect(high.ringBufferKiB == 1 << 20)
        #expect(high.pollIntervalMs == 10_000)
        let roots = try DaemonConfig.parse("session_roots: [a, b, c, d]\n", file: "f")
        #expect(roots.sessionRoots == ["a", "b", "c", "d"])
    }

    @Test func unknownKeyNamesFileLineAndColumn() throws {
        let message = try #require(parseError("output: /tmp/x\n\ncolour: blue\n"))
        #expect(message.hasPrefix("agentwatch.yaml:3:1: "))
        #expect(message.contains("unknown setting 'colour'"))
        // It lists what is known, so the reader can fix a typo.
        for key in DaemonConfig.knownKeys { #expect(message.contains(key)) }
    }

    @Test func unknownKeyInFlowMappingPointsAtTheKey() throws {
        let message = try #require(parseError("{output: a, zz: 1}\n"))
        #expect(message.hasPrefix("agentwatch.yaml:1:13: "))
        #expect(message.contains("unknown setting 'zz'"))
    }

    @Test func wrongType() throws {
        let message = try #require(parseError("output: x\nring_buffer_kib: \"big\"\n"))
        #expect(message == "agentwatch.yaml:2:1: ring_buffer_kib must be a whole number from 4 to 1048576")
    }

    @Test(arguments: [
        ("ring_buffer_kib: [1, 2]\n", "ring_buffer_kib must be a whole number"),
        ("ring_buffer_kib: 1.5\n", "ring_buffer_kib must be a whole number"),
        ("ring_buffer_kib: \"8192\"\n", "ring_buffer_kib must be a whole number"),
        ("args_max: true\n", "args_max must be a whole number"),
        ("poll_interval_ms: {a: 1}\n", "poll_interval_ms must be a whole number"),
        ("output: [a]\n", "output must be a non-empty string"),
        ("output: \"\"\n", "output must be a non-empty string"),
        ("output:\n", "output must be a non-empty string"),
        ("runtime_dir: {a: b}\n", "runtime_dir must be a non-empty string"),
        ("session_roots: agentwatch\n", "session_roots must be a list of cgroup paths (1 to 4 directories, then up to 4 patterns)"),
        ("session_roots: []\n", "session_roots must be a list of cgroup paths (1 to 4 directories, then up to 4 patterns)"),
        ("session_roots: [a, [b]]\n", "session_roots must be a list of cgroup paths (1 to 4 directories, then up to 4 patterns)"),
        ("session_roots: [a, \"\"]\n", "session_roots must be a list of cgroup paths (1 to 4 directories, then up to 4 patterns)"),
        ("session_roots: [a, b, c, d, e]\n", "session_roots holds at most 4 directories and 4 patterns"),
        ("session_roots: [a, b*, c*, d*, e*, f*]\n", "session_roots holds at most 4 directories and 4 patterns"),
        ("session_roots: [\"user.slice/*\", a]\n", "the first session root is where `agentwatch run` makes sessions: a directory, not the pattern user.slice/*"),
    ])
    func wrongShape(_ yaml: String, _ expected: String) throws {
        let message = try #require(parseError(yaml))
        #expect(message.hasPrefix("agentwatch.yaml:1:1: \(expected)"))
    }

    @Test(arguments: [100, 6, 12, 1000, 8191, 8193, 3 << 10])
    func ringBufferMustBeAPowerOfTwo(_ kib: Int) throws {
        let message = try #require(parseError("ring_buffer_kib: \(kib)\n"))
        #expect(message == "agentwatch.yaml:1:1: ring_buffer_kib must be a power of two")
    }

    @Test(arguments: [
        ("ring_buffer_kib: 2\n", "ring_buffer_kib must be a whole number from 4 to 1048576"),
        ("ring_buffer_kib: 0\n", "ring_buffer_kib must be a whole number from 4 to 1048576"),
        ("ring_buffer_kib: -8\n", "ring_buffer_kib must be a whole number from 4 to 1048576"),
        ("ring_buffer_kib: 2097152\n", "ring_buffer_kib must be a whole number from 4 to 1048576"),
        ("ring_buffer_kib: 99999999999999999999999\n", "ring_buffer_kib must be a whole number from 4 to 1048576"),
        ("args_max: 16385\n", "args_max must be a whole number from 0 to 16384"),
        ("args_max: -1\n", "args_max must be a whole number from 0 to 16384"),
        ("poll_interval_ms: 0\n", "poll_interval_ms must be a whole number from 1 to 10000"),
        ("poll_interval_ms: 10001\n", "poll_interval_ms must be a whole number from 1 to 10000"),
        ("status_interval_s: -1\n", "status_interval_s must be a whole number from 0 to 86400"),
        ("status_interval_s: 86401\n", "status_interval_s must be a whole number from 0 to 86400"),
    ])
    func outOfRange(_ yaml: String, _ expected: String) throws {
        let message = try #require(parseError(yaml))
        #expect(message == "agentwatch.yaml:1:1: \(expected)")
    }

    @Test func errorPointsAtTheLineOfTheBadSetting() throws {
        let yaml = "output: /tmp/a\nsession_roots:\n  - a\nargs_max: 99999\n"
        let message = try #require(parseError(yaml))
        #expect(message.hasPrefix("agentwatch.yaml:4:1: args_max"))
    }

    @Test(arguments: [
        ("output: [unclosed\n", "2:1"),
        ("output: x\n  bad: : :\n", "2:6"),
        ("\t output: x\n", "1:1"),
        ("output: x\nargs_max: \"unterminated\n", "3:1"),
    ])
    func yamlSyntaxErrorGivesLineAndColumn(_ yaml: String, _ lineColumn: String) throws {
        let message = try #require(parseError(yaml))
        #expect(message.hasPrefix("agentwatch.yaml:"))
        #expect(message.contains("\(lineColumn): YAML error: "))
    }

    /// Editors and CI annotate `file:line:col:`; the other errors use that form.
    @Test
    func yamlSyntaxErrorUsesTheSameLocationFormat() throws {
        let message = try #require(parseError("output: [unclosed\n"))
        #expect(message.hasPrefix("agentwatch.yaml:2:1: YAML error: "))
    }

    @Test
    func duplicateKeyNamesItsLine() throws {
        let message = try #require(parseError("ring_buffer_kib: 16\nring_buffer_kib: 32\n"))
        #expect(message.hasPrefix("agentwatch.yaml:2:1: "))
    }

    @Test func duplicateKeyIsAnError() throws {
        let message = try #require(parseError("ring_buffer_kib: 16\nring_buffer_kib: 32\n"))
        #expect(message.hasPrefix("agentwatch.yaml:2:1: "))
        #expect(message.contains("ring_buffer_kib"))
    }

    @Test(arguments: ["output: ~\n", "output: null\n", "runtime_dir: null\n"])
    func nullIsNotAPath(_ yaml: String) throws {
        let message = try #require(parseError(yaml))
        #expect(message.contains("must be a non-empty string"))
    }

    @Test func topLevelMustBeAMapping() throws {
        #expect(parseError("- output\n- x\n") == "agentwatch.yaml:1:1: the config must be a mapping of setting: value")
        #expect(parseError("just text\n") == "agentwatch.yaml:1:1: the config must be a mapping of setting: value")
    }

    // MARK: load(path:)

    @Test func loadReadsAFile() throws {
        let dir = TemporaryDirectory()
        let path = dir.write("agentwatch.yaml", "output: \"-\"\nring_buffer_kib: 64\n")
        let c = try DaemonConfig.load(path: path)
        #expect(c.output == "-")
        #expect(c.ringBufferKiB == 64)
    }

    @Test func loadErrorsNameTheFilePath() throws {
        let dir = TemporaryDirectory()
        let path = dir.write("bad.yaml", "output: \"-\"\nnope: 1\n")
        let message = try #require(errorMessage { () throws(AgentError) in try DaemonConfig.load(path: path) })
        #expect(message.hasPrefix("\(path):2:1: unknown setting 'nope'"))
    }

    @Test func missingFileNamesThePath() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/missing.yaml"
        let message = try #require(errorMessage { () throws(AgentError) in try DaemonConfig.load(path: path) })
        #expect(message.contains(path))
        #expect(message.hasPrefix("cannot read config \(path): "))
        #expect(message.contains(String(cString: strerror(ENOENT))))
    }

    @Test func unreadablePathNamesThePath() throws {
        // A directory cannot be read as a file, even by root (these tests may run as root,
        // where a chmod 000 file would still be readable).
        let dir = TemporaryDirectory()
        let message = try #require(errorMessage { () throws(AgentError) in try DaemonConfig.load(path: dir.path) })
        #expect(message.hasPrefix("cannot read config \(dir.path): "))
        #expect(message.contains(String(cString: strerror(EISDIR))))
    }
}

/// `outputs:`: files and syslog receivers, each setting checked where it stands.
@Suite("config outputs")
struct OutputConfigTests {
    func parseError(_ yaml: String) -> String? {
        do {
            _ = try DaemonConfig.parse(yaml, file: "agentwatch.yaml")
            return nil
        } catch {
            return error.message
        }
    }

    @Test func everySettingOfBothKinds() throws {
        let yaml = """
            outputs:
              - type: file
                path: /var/log/agentwatch/events.ndjson
                rotate_mib: 50
                rotate_interval_s: 3600
                retain: 20
                compress: false
                mode: "0600"
                group: null
                fsync_interval_ms: 0
                queue_mib: 8
              - type: syslog
                name: siem
                transport: tls
                address: siem.example.com
                port: 6514
                protocol: rfc3164
                facility: local4
                app_name: aw
                max_message_bytes: 4096
                ca_file: /etc/ssl/siem-ca.pem
                cert_file: /etc/agentwatch/client.pem
                key_file: /etc/agentwatch/client.key
                server_name: siem.internal
                timeout_s: 5
                spool_dir: /var/lib/agentwatch/spool/siem
                spool_mib: 64
                format: ecs
                records: alerts

            """
        let c = try DaemonConfig.parse(yaml, file: "agentwatch.yaml")
        let outputs = try #require(c.outputs)
        #expect(outputs.count == 2)
        guard case .file(let f) = outputs[0].kind else { Issue.record("not a file output"); return }
        #expect(outputs[0].name == "file-1" && outputs[0].queueBytes == 8 << 20)
        #expect(f.rotateBytes == 50 << 20 && f.rotateIntervalS == 3600 && f.retain == 20 && !f.compress)
        #expect(f.mode == 0o600 && f.group == nil && f.fsyncIntervalMs == 0)
        guard case .syslog(let s) = outputs[1].kind else { Issue.record("not a syslog output"); return }
        #expect(outputs[1].name == "siem" && outputs[1].format == .ecs && outputs[1].records == .alerts)
        #expect(outputs[1].spoolDirectory == "/var/lib/agentwatch/spool/siem" && outputs[1].spoolBytes == 64 << 20)
        #expect(s.transport == .tls && s.address == "siem.example.com" && s.effectivePort == 6514 && s.framing == .rfc3164)
        #expect(s.facility == "local4" && s.appName == "aw" && s.maxMessageBytes == 4096 && s.timeoutS == 5)
        #expect(s.caFile == "/etc/ssl/siem-ca.pem" && s.certFile != nil && s.keyFile != nil && s.serverName == "siem.internal")
        #expect(s.format == .ecs)
    }

    @Test func withoutOutputsTheOneFileOfOutput() throws {
        let c = try DaemonConfig.parse("output: /tmp/x.ndjson\n", file: "agentwatch.yaml")
        #expect(c.effectiveOutputs == [.file("/tmp/x.ndjson")])
        let d = try DaemonConfig.parse("outputs:\n  - {type: syslog, transport: udp, address: 127.0.0.1}\n", file: "agentwatch.yaml")
        #expect(d.effectiveOutputs.count == 1 && d.effectiveOutputs[0].spoolDirectory == "/var/lib/agentwatch/spool/syslog-1")
    }

    @Test(arguments: [
        ("outputs: []\n", "1:1: outputs must be a list of outputs"),
        ("outputs: [file]\n", "1:11: each output must be a mapping"),
        ("outputs:\n  - path: /x\n", "2:5: output 1: type must be file or syslog"),
        ("outputs:\n  - type: kafka\n", "2:11: output 1: type must be file or syslog"),
        ("outputs:\n  - type: file\n", "2:5: output 1: a file output needs a path"),
        ("outputs:\n  - type: file\n    path: /x\n    transport: udp\n", "4:5: unknown setting 'transport' for a file output"),
        ("outputs:\n  - type: file\n    path: /x\n    rotate_mib: lots\n", "4:17: rotate_mib must be a whole number"),
        ("outputs:\n  - type: file\n    path: /x\n    mode: 644\n", "4:11: mode must be octal permissions as a string"),
        ("outputs:\n  - type: file\n    path: /x\n    mode: \"0044\"\n", "4:11: mode must be octal permissions"),
        ("outputs:\n  - type: file\n    path: /x\n    compress: 1\n", "4:15: compress must be true or false"),
        ("outputs:\n  - type: file\n    path: /x\n    format: cef\n", "4:13: format must be one of native, ecs, ocsf"),
        ("outputs:\n  - type: syslog\n    transport: tcp\n", "2:5: output 1: a tcp syslog output needs an address"),
        ("outputs:\n  - type: syslog\n    transport: carrier-pigeon\n", "3:16: transport must be one of unix, udp, tcp, tls"),
        ("outputs:\n  - type: syslog\n    port: 70000\n", "3:11: port must be a whole number from 1 to 65535"),
        ("outputs:\n  - type: syslog\n    records: some\n", "3:14: records must be one of all, alerts"),
        ("outputs:\n  - type: syslog\n    cert_file: /c.pem\n", "2:5: output 1: cert_file and key_file go together"),
        ("outputs:\n  - type: syslog\n    name: a/b\n", "3:11: name may hold letters"),
        ("outputs:\n  - {type: syslog, name: x}\n  - {type: syslog, name: x}\n", "3:5: two outputs are named x"),
        ("output: /x\noutputs:\n  - {type: file, path: /y}\n", "1:1: output and outputs both given"),
    ])
    func errorsSayWhereAndWhat(_ yaml: String, _ expected: String) throws {
        let message = try #require(parseError(yaml))
        #expect(message.hasPrefix("agentwatch.yaml:\(expected)"), "\(message)")
    }
}

@Suite("shipped config")
struct ShippedConfigTests {
    /// packaging/agentwatch.yaml lists every setting with its built-in default: parsing it must
    /// give exactly the defaults, and it must name every known setting.
    @Test func theShippedFileIsTheDefaults() throws {
        let path = "\(#filePath)".split(separator: "/").dropLast(3).joined(separator: "/")
        let file = "/" + path + "/packaging/agentwatch.yaml"
        let text = try String(contentsOfFile: file, encoding: .utf8)
        var parsed = try DaemonConfig.parse(text, file: file)
        #expect(parsed.effectiveOutputs == DaemonConfig().effectiveOutputs)
        parsed.outputs = nil
        #expect(parsed == DaemonConfig())
        for key in DaemonConfig.knownKeys where key != "output" {
            #expect(text.contains("\n\(key):") || text.contains("\n# \(key):"), "\(key) is not in the shipped config")
        }
        for key in OutputConfig.commonKeys + OutputConfig.fileKeys {
            #expect(text.contains(" \(key):"), "file output setting \(key) is not in the shipped config")
        }
        for key in OutputConfig.syslogKeys {
            #expect(text.contains("#   \(key):"), "syslog output setting \(key) is not in the shipped config")
        }
    }
}

@Suite("restart-only settings")
struct RestartOnlyTests {
    @Test("the one table: its keys are config keys; a reload names the changed ones in order and keeps their running values, and applies the rest")
    func table() {
        for s in DaemonConfig.restartOnly { #expect(DaemonConfig.knownKeys.contains(s.key), "\(s.key)") }
        let running = DaemonConfig()
        var fresh = running
        fresh.controlGroup = "other"
        fresh.ringBufferKiB *= 2
        fresh.sessionRoots = ["elsewhere"]
        fresh.statusIntervalS = 60
        #expect(fresh.restartRequired(running: running) == ["session_roots", "ring_buffer_kib", "control_group"])
        fresh.keepRestartOnly(of: running)
        #expect(fresh.restartRequired(running: running) == [])
        #expect(fresh.sessionRoots == running.sessionRoots && fresh.ringBufferKiB == running.ringBufferKiB && fresh.controlGroup == running.controlGroup)
        #expect(fresh.statusIntervalS == 60)
    }
}
