import AgentSupport
import Glibc
import Logging
import Yams

/// One output of the daemon, as configured under `outputs:`.
package struct OutputConfig: Sendable, Equatable {
    package enum Kind: Sendable, Equatable {
        case file(FileSettings)
        case syslog(SyslogSettings)
    }
    package var name: String
    package var kind: Kind
    package var format = OutputFormat.native
    package var records = RecordFilter.all
    /// Bytes held in memory for this sink before records are dropped (and reported).
    package var queueBytes = 64 << 20
    /// Where undeliverable records wait (syslog only); nil: memory only.
    package var spoolDirectory: String?
    package var spoolBytes = 256 << 20

    package init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
        if case .syslog = kind { spoolDirectory = "/var/lib/agentwatch/spool/" + name }
    }

    /// The shorthand `output: PATH`: one native file sink with the built-in rotation.
    package static func file(_ path: String) -> OutputConfig {
        OutputConfig(name: "file", kind: .file(FileSettings(path: path)))
    }

    package static let commonKeys = ["type", "name", "format", "records", "queue_mib"]
    package static let fileKeys = ["path", "rotate_mib", "rotate_interval_s", "retain", "compress", "mode", "group", "fsync_interval_ms"]
    package static let syslogKeys = ["transport", "address", "port", "protocol", "facility", "app_name", "max_message_bytes",
                                    "ca_file", "cert_file", "key_file", "server_name", "timeout_s", "spool_dir", "spool_mib"]

    /// The sink's worker, destination and formatter, ready to start.
    package func makeWorker(logger: Logger) throws(AgentError) -> OutputWorker {
        let destination: any OutputTransport
        var flushMs = 0
        switch kind {
        case .file(let f):
            let file = try FileTransport(settings: f, purpose: "output \(name)")
            destination = format == .native ? file : FormattingTransport(inner: file, formatter: format.makeFormatter())
            flushMs = f.fsyncIntervalMs
        case .syslog(let s):
            destination = SyslogTransport(settings: s, formatter: format.makeFormatter())
        }
        return try OutputWorker(name: name, destination: destination, filter: records, queueBytes: queueBytes,
                              spoolDirectory: spoolDirectory, spoolBytes: spoolBytes, flushIntervalMs: flushMs, logger: logger)
    }

    /// Parses one entry of `outputs:`. `at(node)` renders `file:line:col` for errors.
    package static func parse(_ node: Node, index: Int, at: (Node) -> String) throws(AgentError) -> OutputConfig {
        guard case .mapping(let map) = node else {
            throw AgentError("\(at(node)): each output must be a mapping with a type (file or syslog)")
        }
        var values: [String: (key: Node, value: Node)] = [:]
        for (k, v) in map { values[k.string ?? ""] = (k, v) }
        guard let typeEntry = values["type"], let type = typeEntry.value.string, ["file", "syslog"].contains(type) else {
            throw AgentError("\(at(values["type"]?.value ?? node)): output \(index + 1): type must be file or syslog")
        }
        let allowed = commonKeys + (type == "file" ? fileKeys : syslogKeys)
        for (k, _) in map where !allowed.contains(k.string ?? "") {
            throw AgentError("\(at(k)): unknown setting '\(k.string ?? "")' for a \(type) output (known: \(allowed.joined(separator: ", ")))")
        }
        func value(_ key: String) -> Node? { values[key]?.value }
        func string(_ key: String) throws(AgentError) -> String? {
            guard let v = value(key) else { return nil }
            guard case .scalar = v, v.null == nil, let s = v.string, !s.isEmpty else {
                throw AgentError("\(at(v)): \(key) must be a non-empty string")
            }
            return s
        }
        func int(_ key: String, _ range: ClosedRange<Int>) throws(AgentError) -> Int? {
            guard let v = value(key) else { return nil }
            guard case .scalar = v, let i = v.int, range.contains(i) else {
                throw AgentError("\(at(v)): \(key) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return i
        }
        func bool(_ key: String) throws(AgentError) -> Bool? {
            guard let v = value(key) else { return nil }
            guard case .scalar = v, let b = v.bool else { throw AgentError("\(at(v)): \(key) must be true or false") }
            return b
        }
        func choice<E: RawRepresentable & CaseIterable>(_ key: String, _: E.Type) throws(AgentError) -> E? where E.RawValue == String {
            guard let s = try string(key) else { return nil }
            guard let e = E(rawValue: s) else {
                throw AgentError("\(at(value(key)!)): \(key) must be one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return e
        }

        let name = try string("name") ?? "\(type)-\(index + 1)"
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw AgentError("\(at(value("name")!)): name may hold letters, digits, - and _ only (it names the spool directory)")
        }
        var out: OutputConfig
        if type == "file" {
            var f = FileSettings()
            guard let path = try string("path") else { throw AgentError("\(at(node)): output \(index + 1): a file output needs a path") }
            f.path = path
            if let v = try int("rotate_mib", 0...(1 << 20)) { f.rotateBytes = v << 20 }
            if let v = try int("rotate_interval_s", 0...(366 * 86_400)) { f.rotateIntervalS = v }
            if let v = try int("retain", 0...100_000) { f.retain = v }
            if let v = try bool("compress") { f.compress = v }
            if let v = value("mode") {
                guard case .scalar = v, let s = v.string, s.hasPrefix("0"), s.count == 4, let m = mode_t(s, radix: 8), m & 0o600 == 0o600 else {
                    throw AgentError("\(at(v)): mode must be octal permissions as a string, 0 then three digits, with owner read and write (\"0640\")")
                }
                f.mode = m
            }
            if let v = value("group") { f.group = v.null != nil ? nil : try string("group") }
            if let v = try int("fsync_interval_ms", 0...3_600_000) { f.fsyncIntervalMs = v }
            out = OutputConfig(name: name, kind: .file(f))
        } else {
            var s = SyslogSettings()
            if let v = try choice("transport", SyslogSettings.Transport.self) { s.transport = v }
            if let v = try string("address") {
                s.address = v
            } else if s.transport != .unix {
                throw AgentError("\(at(node)): output \(index + 1): a \(s.transport.rawValue) syslog output needs an address (host name or IP)")
            }
            if let v = try int("port", 1...65535) { s.port = v }
            if let v = try choice("protocol", SyslogSettings.Framing.self) { s.framing = v }
            if let v = try string("facility") {
                guard SyslogTransport.facilityCode(v) != nil else { throw AgentError("\(at(value("facility")!)): unknown syslog facility '\(v)'") }
                s.facility = v
            }
            if let v = try string("app_name") { s.appName = v }
            if let v = try int("max_message_bytes", 480...(1 << 20)) { s.maxMessageBytes = v }
            s.caFile = try string("ca_file")
            s.certFile = try string("cert_file")
            s.keyFile = try string("key_file")
            s.serverName = try string("server_name")
            if (s.certFile == nil) != (s.keyFile == nil) {
                throw AgentError("\(at(node)): output \(index + 1): cert_file and key_file go together")
            }
            if let v = try int("timeout_s", 1...600) { s.timeoutS = v }
            out = OutputConfig(name: name, kind: .syslog(s))
            if let v = try string("spool_dir") { out.spoolDirectory = v }
            if let v = try int("spool_mib", 0...(1 << 20)) {
                out.spoolBytes = v << 20
                if v == 0 { out.spoolDirectory = nil }
            }
        }
        if let v = try choice("format", OutputFormat.self) { out.format = v }
        if let v = try choice("records", RecordFilter.self) { out.records = v }
        if let v = try int("queue_mib", 1...4096) { out.queueBytes = v << 20 }
        if case .syslog(var s) = out.kind {
            s.format = out.format
            out.kind = .syslog(s)
        }
        return out
    }
}
