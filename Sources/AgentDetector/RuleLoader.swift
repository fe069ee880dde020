import Yams

/// Turns rule files into compiled rules: first collects every file's lists, macros and rule
/// nodes (one namespace for all files), then compiles each rule, collecting every error on the
/// way rather than stopping at the first.
final class RuleLoader {
    var errors: [RuleDiagnostic] = []
    var warnings: [RuleDiagnostic] = []

    struct ListDefinition {
        let location: SourceLocation
        let file: RuleFileText
        let items: [Node]
        /// `identity: true`: the list's paths join the credential catalog, known by identity.
        var identity = false
    }

    struct MacroDefinition {
        let location: SourceLocation
        /// nil when the condition is not a string (already reported).
        let source: ConditionSource?
    }

    /// One value of a named list after splicing, with where it was written.
    struct ListItem {
        let text: String
        let location: SourceLocation
        /// The item comes from a list marked `identity: true` (itself, or spliced from one).
        var identity = false
    }

    var lists: [String: ListDefinition] = [:]
    var macros: [String: MacroDefinition] = [:]
    var ruleNodes: [(file: RuleFileText, node: Node)] = []

    // Compilation state shared by all rules: slots and regexes are numbered across the set.
    var slots: [Field: Int] = [:]
    package var slotFields: [Field] = []
    var regexPatterns: [String] = []
    var regexIndex: [String: Int] = [:]
    var resolvedLists: [String: [ListItem]] = [:]
    var listsInProgress: [String] = []
    var parsedMacros: [String: ConditionSyntax] = [:]
    var memoIDs: [String: Int] = [:]
    /// Slots whose whole values are needed per record (keys, sums, regexes).
    var keptSlots = Set<Int>()

    static let namePattern = "[a-z0-9_]+"

    func error(_ at: SourceLocation, _ message: String, hint: String? = nil) {
        errors.append(RuleDiagnostic(at, message, hint: hint))
    }

    func warning(_ at: SourceLocation, _ message: String, hint: String? = nil) {
        warnings.append(RuleDiagnostic(at, message, hint: hint, level: .warning))
    }

    func slot(_ field: Field) -> Int {
        if let s = slots[field] { return s }
        slots[field] = slotFields.count
        slotFields.append(field)
        return slotFields.count - 1
    }

    /// The paths of the lists marked `identity: true`, spliced, once each (lists by name).
    func identityPaths() -> [String] {
        var seen = Set<String>()
        var out: [String] = []
        for name in lists.keys.sorted() where lists[name]!.identity {
            for item in resolvedLists[name] ?? [] where seen.insert(item.text).inserted { out.append(item.text) }
        }
        return out
    }

    // MARK: Collecting

    /// Reads one file's top level: `lists`, `macros`, `rules`.
    func collect(_ file: RuleFileText) {
        let root: Node?
        do {
            // The basic resolver: Yams's default one matches shared NSRegularExpressions, which
            // crash when two loads run at once on Linux; scalars are read by plainInt/plainBool.
            root = try Yams.compose(yaml: file.text, .basic)
        } catch let e as YamlError {
            errors.append(Self.describe(e, file: file.file))
            return
        } catch {
            errors.append(RuleDiagnostic(file: file.file, line: 1, column: 1, message: "YAML error: \(error)"))
            return
        }
        guard let root, root.null == nil else { return }
        guard case .mapping(let top) = root else {
            error(file.location(root), "a rule file must be a mapping with lists, macros and rules")
            return
        }
        for (keyNode, value) in top {
            let key = keyNode.scalar?.string ?? ""
            guard ["lists", "macros", "rules"].contains(key) else {
                error(file.location(keyNode), "unknown top-level key '\(key)'",
                      hint: didYouMean(key, among: ["lists", "macros", "rules"]) ?? "a rule file holds lists, macros and rules")
                continue
            }
            if value.null != nil { continue }
            guard case .sequence(let entries) = value else {
                error(file.location(value), "\(key) must be a list (each entry starting with '- ')")
                continue
            }
            for entry in entries {
                switch key {
                case "lists": collectList(entry, file)
                case "macros": collectMacro(entry, file)
                default: ruleNodes.append((file, entry))
                }
            }
        }
    }

    private func collectList(_ node: Node, _ file: RuleFileText) {
        guard let map = mapping(node, "a list", file, allowed: ["list", "items", "identity"]) else { return }
        guard let name = requiredName(map, "list", node, file) else { return }
        let at = file.location(map["list"] ?? node)
        if let first = lists[name.text] {
            error(at, "duplicate list \(name.text)", hint: "first defined at \(first.location.file):\(first.location.line):\(first.location.column)")
            return
        }
        var items: [Node] = []
        if let itemsNode = map["items"] {
            if case .sequence(let seq) = itemsNode {
                for item in seq {
                    if case .scalar = item, item.null == nil { items.append(item) } else {
                        error(file.location(item), "list items must be strings")
                    }
                }
            } else if itemsNode.null == nil {
                error(file.location(itemsNode), "items must be a list of strings")
            }
        } else {
            error(at, "list \(name.text) has no items")
        }
        var identity = false
        if let node = map["identity"], node.null == nil {
            if let b = yamlBool(node) {
                identity = b
            } else {
                error(file.location(node), "identity must be true or false",
                      hint: "identity: true makes the list's paths part of the credential catalog, known by identity (file.known_as)")
            }
        }
        lists[name.text] = ListDefinition(location: at, file: file, items: items, identity: identity)
    }

    private func collectMacro(_ node: Node, _ file: RuleFileText) {
        guard let map = mapping(node, "a macro", file, allowed: ["macro", "condition"]) else { return }
        guard let name = requiredName(map, "macro", node, file) else { return }
        let at = file.location(map["macro"] ?? node)
        if let first = macros[name.text] {
            error(at, "duplicate macro \(name.text)", hint: "first defined at \(first.location.file):\(first.location.line):\(first.location.column)")
            return
        }
        if Field.named(name.text) != nil || ConditionParser.keywords.contains(name.text) || RuleOperator(rawValue: name.text) != nil {
            error(at, "macro name \(name.text) is taken by a field or keyword", hint: "choose another name")
        }
        var source: ConditionSource?
        if let cond = map["condition"] {
            source = conditionSource(cond, file)
        } else {
            error(at, "macro \(name.text) has no condition")
        }
        macros[name.text] = MacroDefinition(location: at, source: source)
    }

    private func requiredName(_ map: Node.Mapping, _ key: String, _ node: Node, _ file: RuleFileText) -> (text: String, node: Node)? {
        guard let nameNode = map[key] else {
            error(file.location(node), "missing \(key): give it a name of lowercase letters, digits and _")
            return nil
        }
        guard let text = scalarString(nameNode), text.wholeMatch(of: /[a-z0-9_]+/) != nil else {
            error(file.location(nameNode), "\(key) name must be lowercase letters, digits and _", hint: nil)
            return nil
        }
        return (text, nameNode)
    }

    // MARK: YAML helpers

    /// The node as a mapping whose keys are all in `allowed`; unknown keys are reported.
    func mapping(_ node: Node, _ what: String, _ file: RuleFileText, allowed: [String]) -> Node.Mapping? {
        guard case .mapping(let map) = node else {
            error(file.location(node), "\(what) must be a mapping of key: value")
            return nil
        }
        for key in map.keys {
            let k = key.scalar?.string ?? ""
            if !allowed.contains(k) {
                error(file.location(key), "unknown key '\(k)' in \(what)", hint: didYouMean(k, among: allowed) ?? "known keys: \(allowed.joined(separator: ", "))")
            }
        }
        return map
    }

    func scalarString(_ node: Node) -> String? {
        guard case .scalar(let s) = node, node.null == nil else { return nil }
        return s.string
    }

    /// A required or optional string value; reports a non-string.
    func string(_ map: Node.Mapping, _ key: String, _ file: RuleFileText, required: Bool, in what: String, at owner: Node) -> String? {
        guard let node = map[key], node.null == nil else {
            if required { error(file.location(owner), "\(what) has no \(key)") }
            return nil
        }
        guard let s = scalarString(node) else {
            error(file.location(node), "\(key) must be a string")
            return nil
        }
        return s
    }

    func stringList(_ node: Node, _ key: String, _ file: RuleFileText) -> [(String, Node)]? {
        if let s = scalarString(node) { return [(s, node)] }
        guard case .sequence(let seq) = node else {
            error(file.location(node), "\(key) must be a list of strings")
            return nil
        }
        var out: [(String, Node)] = []
        for item in seq {
            guard let s = scalarString(item) else {
                error(file.location(item), "\(key) must be a list of strings")
                return nil
            }
            out.append((s, item))
        }
        return out
    }

    func conditionSource(_ node: Node, _ file: RuleFileText) -> ConditionSource? {
        guard case .scalar(let s) = node, node.null == nil else {
            error(file.location(node), "a condition must be a string")
            return nil
        }
        return ConditionSource(text: s.string, fileText: file, mark: s.mark, style: s.style)
    }

    /// `10m`, `60s`, `500ms`, `1h`, `1d`, or `0`.
    func duration(_ node: Node, _ key: String, _ file: RuleFileText) -> Int64? {
        guard let text = scalarString(node), let ns = Self.parseDuration(text) else {
            error(file.location(node), "\(key) must be a duration", hint: "write 500ms, 30s, 10m or 1h")
            return nil
        }
        return ns
    }

    static func parseDuration(_ text: String) -> Int64? {
        if text == "0" { return 0 }
        let units: [(String, Int64)] = [("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000),
                                        ("h", 3_600_000_000_000), ("d", 86_400_000_000_000)]
        for (unit, scale) in units where text.hasSuffix(unit) {
            let digits = text.dropLast(unit.count)
            guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int64(digits) else { return nil }
            let (v, overflow) = n.multipliedReportingOverflow(by: scale)
            return overflow ? nil : v
        }
        return nil
    }

    static func describe(_ error: YamlError, file: String) -> RuleDiagnostic {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return RuleDiagnostic(file: file, line: mark.line, column: mark.column, message: "YAML error: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return RuleDiagnostic(file: file, line: context.mark.line, column: context.mark.column,
                                  message: "YAML error: key \(duplicates.joined(separator: ", ")) is given twice in one mapping",
                                  hint: "keep one")
        default:
            return RuleDiagnostic(file: file, line: 1, column: 1, message: "YAML error: \(error)")
        }
    }
}

/// An unquoted whole number (`3`, `-1`).
func yamlInt(_ node: Node) -> Int? {
    guard case .scalar(let s) = node, s.style == .plain || s.style == .any else { return nil }
    return Int(s.string)
}

/// An unquoted `true` or `false` (YAML 1.2: not yes/no/on/off).
func yamlBool(_ node: Node) -> Bool? {
    guard case .scalar(let s) = node, s.style == .plain || s.style == .any else { return nil }
    switch s.string {
    case "true", "True", "TRUE": return true
    case "false", "False", "FALSE": return false
    default: return nil
    }
}
