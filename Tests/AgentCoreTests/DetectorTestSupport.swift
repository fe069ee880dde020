@testable import AgentDetector
import Glibc
import Testing

/// Builds records and runs rules for the Detector tests.
enum DT {
    static let home = "/home/dev"
    static let t0: Int64 = 1_700_000_000_000_000_000
    static let second: Int64 = 1_000_000_000

    /// A record from dotted keys: `["file.path": "/x"]` becomes `{"file": {"path": "/x"}}`.
    static func record(_ type: String, _ fields: [String: Any] = [:], seq: UInt64 = 1, at: Int64 = 0,
                       session: String = "s1", homes: [String] = [home]) -> CapturedRuleInput {
        var dict: [String: Any] = ["type": type, "seq": Int(seq), "session": ["id": session]]
        for (path, value) in fields {
            insert(&dict, path.split(separator: ".").map(String.init)[...], value)
        }
        return CapturedRuleInput(dict, homes: homes, timeNs: t0 + at)
    }

    private static func insert(_ dict: inout [String: Any], _ path: ArraySlice<String>, _ value: Any) {
        let key = path.first!
        if path.count == 1 {
            dict[key] = value
            return
        }
        var inner = dict[key] as? [String: Any] ?? [:]
        insert(&inner, path.dropFirst(), value)
        dict[key] = inner
    }

    static func rules(_ yaml: String, file: String = "test.yaml") throws -> RuleSet {
        try RuleSet.parse(yaml, file: file)
    }

    /// A rule file with one rule over `types` with `condition` (and extra YAML lines).
    static func oneRule(_ condition: String, types: String = "[file.open]", extra: String = "", prelude: String = "") -> String {
        """
        \(prelude)
        rules:
          - id: r1
            title: test rule
            severity: high
            types: \(types)
            condition: \(condition)
            message: "hit {process.exe}"
            suppress: 0
            fixtures: []
        \(extra)
        """
    }

    static func alerts(_ set: RuleSet, _ records: [CapturedRuleInput]) -> [Alert] {
        let d = Detector(rules: set)
        var out: [Alert] = []
        for r in records { d.evaluate(r) { out.append($0) } }
        return out
    }

    /// Whether a one-rule condition fires on one record.
    static func fires(_ condition: String, _ type: String = "file.open", _ fields: [String: Any], homes: [String] = [home],
                      types: String? = nil, prelude: String = "") throws -> Bool {
        let set = try rules(oneRule(condition, types: types ?? "[\(type)]", prelude: prelude))
        return !alerts(set, [record(type, fields, homes: homes)]).isEmpty
    }

    /// The diagnostics of a load that must fail, as printed.
    static func errors(_ yaml: String, file: String = "test.yaml") -> [String] {
        do {
            _ = try RuleSet.parse(yaml, file: file)
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }
}

/// A fresh directory for rule files, removed when the test ends.
final class DetectorTempDir {
    let path: String

    init() {
        var template = Array("/tmp/agentwatch-rules-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil)
        path = String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let file = path + "/" + name
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(fd >= 0)
        defer { close(fd) }
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        return file
    }

    deinit {
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(dir)
        }
        rmdir(path)
    }
}
