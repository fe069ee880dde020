import AgentSupport
import Crypto
import Glibc

extension RuleSet {
    /// Loads rule files and directories (their `*.yaml`/`*.yml`, sorted by name, not
    /// recursive). All files share one namespace for lists, macros and rule ids.
    public static func load(paths: [String]) throws(RuleErrors) -> RuleSet {
        var sources: [(file: String, bytes: [UInt8])] = []
        var errors: [RuleDiagnostic] = []
        for path in paths {
            var st = stat()
            guard stat(path, &st) == 0 else {
                errors.append(RuleDiagnostic(file: path, line: 0, column: 0, message: "cannot read: \(String(cString: strerror(errno)))",
                                             hint: "give a rule file or a directory of them"))
                continue
            }
            let files: [String]
            if st.st_mode & S_IFMT == S_IFDIR {
                files = ruleFiles(in: path).map { path.hasSuffix("/") ? path + $0 : path + "/" + $0 }
            } else {
                files = [path]
            }
            for file in files {
                do {
                    sources.append((file, try readBytes(file, limit: 16 << 20)))
                } catch {
                    errors.append(RuleDiagnostic(file: file, line: 0, column: 0, message: "cannot read: \(String(cString: strerror(error.errno)))"))
                }
            }
        }
        return try compile(sources, errors: errors)
    }

    /// Loads one rule file's text (tests, and callers that hold the text already).
    package static func parse(_ text: String, file: String) throws(RuleErrors) -> RuleSet {
        try compile([(file, Array(text.utf8))], errors: [])
    }

    /// The installed rules directory, or `rules/` when run from a source tree.
    package static func defaultPaths(installed: String = "/usr/share/agentwatch/rules", local: String = "/etc/agentwatch/rules.d") -> [String] {
        var st = stat()
        var paths: [String] = []
        if stat(installed, &st) == 0 { paths.append(installed) } else if stat("rules", &st) == 0 { paths.append("rules") }
        if stat(local, &st) == 0 { paths.append(local) }
        return paths
    }

    static func compile(_ sources: [(file: String, bytes: [UInt8])], errors: [RuleDiagnostic]) throws(RuleErrors) -> RuleSet {
        let loader = RuleLoader()
        loader.errors = errors
        var hash = SHA256()
        for source in sources {
            hash.update(data: source.bytes)
            loader.collect(RuleFileText(file: source.file, text: String(decoding: source.bytes, as: UTF8.self)))
        }
        let rules = loader.compileAll()
        let digest = hash.finalize().map { String($0, radix: 16).leftPadded(2) }.joined()
        let fileOrder = Dictionary(sources.enumerated().map { ($1.file, $0) }, uniquingKeysWith: { first, _ in first })
        let errors = Self.ordered(loader.errors, fileOrder)
        let warnings = Self.ordered(loader.warnings, fileOrder)
        guard errors.isEmpty else { throw RuleErrors(diagnostics: errors, warnings: warnings) }
        return RuleSet(rules: rules, digest: digest, warnings: warnings, slotFields: loader.slotFields, regexPatterns: loader.regexPatterns, memoCount: loader.memoIDs.count, keptSlots: loader.keptSlots,
                       identityPaths: loader.identityPaths())
    }

    /// Diagnostics once each, in file, line and column order.
    private static func ordered(_ diagnostics: [RuleDiagnostic], _ fileOrder: [String: Int]) -> [RuleDiagnostic] {
        var seen = Set<String>()
        let unique = diagnostics.filter { seen.insert($0.description).inserted }
        return unique.enumerated().sorted { a, b in
            let fa = fileOrder[a.element.file] ?? -1, fb = fileOrder[b.element.file] ?? -1
            if fa != fb { return fa < fb }
            if a.element.line != b.element.line { return a.element.line < b.element.line }
            if a.element.column != b.element.column { return a.element.column < b.element.column }
            return a.offset < b.offset
        }.map(\.element)
    }

    private static func ruleFiles(in directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard !name.hasPrefix("."), name.hasSuffix(".yaml") || name.hasSuffix(".yml") else { continue }
            names.append(name)
        }
        return names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
