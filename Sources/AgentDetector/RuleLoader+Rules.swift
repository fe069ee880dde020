import AgentRecords
import Yams

/// Compiling rules: metadata, types, condition or sequence or threshold, exceptions,
/// message, suppression and fixtures.
extension RuleLoader {
    static let ruleKeys = ["id", "title", "description", "severity", "tags", "author", "enabled", "types", "condition",
                           "sequence", "threshold", "exceptions", "message", "suppress", "fixtures"]
    static let defaultSuppressNs: Int64 = 60_000_000_000

    /// A compiled rule waiting for its programs: they are laid out once every rule is known,
    /// so a part shared by several rules is remembered per record and any other is not.
    typealias PendingRule = (build: (_ shared: Set<Int>) -> Rule, trees: [Matcher])

    /// Compiles every collected rule; errors go to `errors`.
    func compileAll() -> [Rule] {
        parseMacros()
        // Resolving every list reports broken ones even when no rule uses them.
        for name in lists.keys.sorted() { _ = resolveList(name, at: lists[name]!.location) }
        var ids: [String: SourceLocation] = [:]
        var pending: [PendingRule] = []
        for (file, node) in ruleNodes {
            if let rule = compileRule(node, file, &ids) { pending.append(rule) }
        }
        var uses: [Int: Int] = [:]
        for rule in pending { for tree in rule.trees { tree.countMemos(into: &uses) } }
        let shared = Set(uses.filter { $0.value > 1 }.keys)
        return pending.map { $0.build(shared) }
    }

    private func compileRule(_ node: Node, _ file: RuleFileText, _ ids: inout [String: SourceLocation]) -> PendingRule? {
        let errorsBefore = errors.count
        guard let map = mapping(node, "a rule", file, allowed: Self.ruleKeys) else { return nil }
        guard let idNode = map["id"], let id = scalarString(idNode) else {
            error(file.location(node), "a rule needs an id", hint: "lowercase letters, digits, '.', '_' and '-'")
            return nil
        }
        let idAt = file.location(idNode)
        if id.wholeMatch(of: /[a-z0-9][a-z0-9._-]*/) == nil {
            error(idAt, "rule id \(Self.quote(id)) must start with a lowercase letter or digit and hold only a-z 0-9 . _ -")
        }
        if let first = ids[id] {
            error(idAt, "duplicate rule id \(id)", hint: "first defined at \(first.file):\(first.line):\(first.column)")
        } else {
            ids[id] = idAt
        }
        let title = string(map, "title", file, required: true, in: "rule \(id)", at: idNode) ?? ""
        let description = string(map, "description", file, required: false, in: "rule \(id)", at: idNode) ?? ""
        let author = string(map, "author", file, required: false, in: "rule \(id)", at: idNode) ?? ""
        var severity = RuleSeverity.medium
        if let s = string(map, "severity", file, required: true, in: "rule \(id)", at: idNode) {
            if let v = RuleSeverity(rawValue: s) {
                severity = v
            } else {
                error(file.location(map["severity"]!), "unknown severity \(Self.quote(s))",
                      hint: didYouMean(s, among: RuleSeverity.allCases.map(\.rawValue)) ?? "one of info, low, medium, high, critical")
            }
        }
        var tags: [String] = []
        if let t = map["tags"], t.null == nil { tags = stringList(t, "tags", file)?.map(\.0) ?? [] }
        var enabled = true
        if let e = map["enabled"], e.null == nil {
            if let b = yamlBool(e) { enabled = b } else { error(file.location(e), "enabled must be true or false") }
        }

        let types = compileTypes(map, file, idNode, id)
        let ctx = ConditionContext(ruleID: id, types: types ?? RecordType.allCases)

        var kind = RuleKind.condition
        var condition: Matcher?
        var threshold: ThresholdSpec?
        var sequence: (steps: [(tree: Matcher, by: [Int])], within: Int64, ordered: Bool)?
        var definition = "types=\((types ?? []).map(\.typeName).joined(separator: ","))"
        switch (map["condition"], map["sequence"], map["threshold"]) {
        case (_?, _?, _):
            error(file.location(map["sequence"]!), "a rule has either a condition or a sequence, not both")
        case (nil, nil, _):
            error(idAt, "rule \(id) has no condition", hint: "add condition: (or sequence:)")
        case (nil, _?, _?):
            error(file.location(map["threshold"]!), "a threshold counts records that match the rule's condition: add condition:")
        case (nil, let seq?, nil):
            kind = .sequence
            if let spec = compileSequence(seq, file, ctx) {
                sequence = (spec.steps, spec.within, spec.ordered)
                definition += ";sequence=" + spec.text
            }
        case (let cond?, nil, let thresholdNode):
            let c = compileCondition(cond, file, ctx)
            definition += ";condition=" + c.text
            condition = c.matcher
            if let thresholdNode {
                kind = .threshold
                if let spec = compileThreshold(thresholdNode, file, ctx) {
                    threshold = spec.spec
                    definition += ";threshold=" + spec.text
                }
            }
        }

        var exceptions: [Matcher] = []
        if let exNode = map["exceptions"], exNode.null == nil {
            if case .sequence(let seq) = exNode {
                for ex in seq {
                    guard let exMap = mapping(ex, "an exception", file, allowed: ["name", "condition"]) else { continue }
                    _ = string(exMap, "name", file, required: true, in: "an exception", at: ex)
                    guard let cond = exMap["condition"] else {
                        error(file.location(ex), "an exception has no condition")
                        continue
                    }
                    let c = compileCondition(cond, file, ctx)
                    exceptions.append(c.matcher)
                    definition += ";except=" + c.text
                }
            } else {
                error(file.location(exNode), "exceptions must be a list of name/condition entries")
            }
        }

        let messageText = string(map, "message", file, required: false, in: "rule \(id)", at: idNode) ?? title
        let message = compileMessage(messageText, map["message"], file, ctx)

        var suppressNs = Self.defaultSuppressNs
        if let s = map["suppress"], s.null == nil, let v = duration(s, "suppress", file) { suppressNs = v }
        definition += ";suppress=\(suppressNs)"

        var fixtures: [RuleFixture] = []
        if let f = map["fixtures"], f.null == nil {
            fixtures = compileFixtures(f, file)
        } else {
            warning(idAt, "rule \(id) has no fixtures", hint: "add one that raises an alert and a near miss that does not")
        }

        guard errors.count == errorsBefore, let message, let types,
              condition != nil || sequence != nil, kind != .threshold || threshold != nil else { return nil }
        var used = Set<Int>()
        condition?.slots(into: &used)
        if let threshold {
            used.formUnion(threshold.by)
            if let s = threshold.sum { used.insert(s) }
        }
        if let sequence {
            for step in sequence.steps {
                step.tree.slots(into: &used)
                used.formUnion(step.by)
            }
        }
        for e in exceptions { e.slots(into: &used) }
        for part in message.parts {
            switch part {
            case .field(let s), .optional(let s, _): used.insert(s)
            case .text: break
            }
        }
        let exceptionTree: Matcher? = exceptions.isEmpty ? nil : .any(exceptions)
        let trees = [condition, exceptionTree].compactMap { $0 } + (sequence?.steps.map(\.tree) ?? [])
        let build = { [kind, threshold, definition] (shared: Set<Int>) -> Rule in
            let spec = sequence.map { s in
                SequenceSpec(steps: s.steps.map { SequenceSpec.Step(condition: ConditionProgram($0.tree, shared: shared), by: $0.by) },
                             withinNs: s.within, ordered: s.ordered)
            }
            let program = RuleProgram(kind: kind, condition: condition.map { ConditionProgram($0, shared: shared) }, threshold: threshold,
                                      sequence: spec, exceptions: exceptionTree.map { ConditionProgram($0, shared: shared) },
                                      message: message, definition: definition, slots: used)
            return Rule(id: id, title: title, description: description, severity: severity, tags: tags, author: author,
                        source: file.file, line: idAt.line, enabled: enabled, types: types.map(\.typeName), kind: kind,
                        message: messageText, suppressNs: suppressNs, fixtures: fixtures, program: program)
        }
        return (build, trees)
    }

    private func compileTypes(_ map: Node.Mapping, _ file: RuleFileText, _ idNode: Node, _ id: String) -> [RecordType]? {
        guard let node = map["types"], node.null == nil else {
            error(file.location(idNode), "rule \(id) has no types", hint: "list the record types it sees, e.g. types: [file.open]")
            return nil
        }
        guard let names = stringList(node, "types", file) else { return nil }
        guard !names.isEmpty else {
            error(file.location(node), "types must name at least one record type")
            return nil
        }
        var types: [RecordType] = []
        var ok = true
        for (name, n) in names {
            if let t = RecordType.byTypeName[name] {
                if !types.contains(t) { types.append(t) }
            } else {
                error(file.location(n), "unknown record type \(name)",
                      hint: didYouMean(name, among: RecordType.allCases.map(\.typeName)))
                ok = false
            }
        }
        return ok ? types : nil
    }

    func compileCondition(_ node: Node, _ file: RuleFileText, _ ctx: ConditionContext) -> Compiled {
        guard let source = conditionSource(node, file), let syntax = parseCondition(source) else { return Self.invalid }
        return compile(syntax, ctx)
    }

    /// Fields named in `by:` (or `sum:`), each in the catalogue and present in the rule's types.
    private func fieldList(_ node: Node?, _ key: String, _ file: RuleFileText, _ ctx: ConditionContext) -> [Field]? {
        guard let node, node.null == nil else { return [Field(.sessionID)] }
        guard let names = stringList(node, key, file) else { return nil }
        guard !names.isEmpty else {
            error(file.location(node), "\(key) must name at least one field")
            return nil
        }
        var fields: [Field] = []
        for (name, n) in names {
            guard let f = Field.named(name) else {
                error(file.location(n), "unknown field \(name)", hint: didYouMean(name, among: Field.allNames))
                return nil
            }
            guard present(f, file.location(n), ctx) else { return nil }
            fields.append(f)
        }
        return fields
    }

    private func compileSequence(_ node: Node, _ file: RuleFileText, _ ctx: ConditionContext)
        -> (steps: [(tree: Matcher, by: [Int])], within: Int64, ordered: Bool, text: String)? {
        guard let map = mapping(node, "a sequence", file, allowed: ["by", "within", "ordered", "steps"]) else { return nil }
        let by = fieldList(map["by"], "by", file, ctx)
        var within: Int64?
        if let w = map["within"] {
            within = duration(w, "within", file)
            if within == 0 { error(file.location(w), "within must be longer than 0"); within = nil }
        } else {
            error(file.location(node), "a sequence needs within: (how long all steps may take)")
        }
        var ordered = true
        if let o = map["ordered"], o.null == nil {
            if let b = yamlBool(o) { ordered = b } else { error(file.location(o), "ordered must be true or false") }
        }
        guard let stepsNode = map["steps"], case .sequence(let stepNodes) = stepsNode else {
            error(file.location(map["steps"] ?? node), "a sequence needs steps: a list of conditions")
            return nil
        }
        guard stepNodes.count >= 2 else {
            error(file.location(stepsNode), "a sequence needs at least two steps", hint: "for one step use condition:")
            return nil
        }
        guard stepNodes.count <= 32 else {
            error(file.location(stepsNode), "a sequence has at most 32 steps")
            return nil
        }
        var steps: [(tree: Matcher, by: [Int])] = []
        var texts: [String] = []
        var keyKinds: [FieldKind]?
        var ok = by != nil
        for (i, stepNode) in stepNodes.enumerated() {
            guard let stepMap = mapping(stepNode, "a sequence step", file, allowed: ["condition", "by"]) else { ok = false; continue }
            guard let cond = stepMap["condition"] else {
                error(file.location(stepNode), "step \(i + 1) has no condition")
                ok = false
                continue
            }
            let c = compileCondition(cond, file, ctx)
            let stepBy = stepMap["by"].map { fieldList($0, "by", file, ctx) } ?? by
            guard let stepBy else { ok = false; continue }
            // Keys of different steps are compared as values, so they must line up.
            let kinds = stepBy.map { $0.kind == .list ? .string : $0.kind }
            if let keyKinds, keyKinds != kinds {
                error(file.location(stepMap["by"] ?? stepNode),
                      keyKinds.count != kinds.count
                        ? "step \(i + 1) is keyed by \(kinds.count) fields but an earlier step by \(keyKinds.count): all steps need by lists of the same length"
                        : "step \(i + 1)'s by fields are not of the same kinds as the earlier steps' (\(kinds.map(\.rawValue)) vs \(keyKinds.map(\.rawValue)))")
                ok = false
            }
            keyKinds = keyKinds ?? kinds
            steps.append((c.matcher, stepBy.map(slot)))
            keptSlots.formUnion(stepBy.map(slot))
            texts.append("{" + c.text + " by " + stepBy.map(\.name).joined(separator: ",") + "}")
        }
        guard ok, let within else { return nil }
        let text = "within=\(within);ordered=\(ordered);steps=" + texts.joined(separator: ",")
        return (steps, within, ordered, text)
    }

    private func compileThreshold(_ node: Node, _ file: RuleFileText, _ ctx: ConditionContext) -> (spec: ThresholdSpec, text: String)? {
        guard let map = mapping(node, "a threshold", file, allowed: ["by", "sum", "count", "over", "within"]) else { return nil }
        let by = fieldList(map["by"], "by", file, ctx)
        var sum: Field?
        var ok = by != nil
        switch (map["sum"], map["count"]) {
        case (let s?, nil):
            if let fields = fieldList(s, "sum", file, ctx) {
                if fields.count == 1, fields[0].kind == .integer {
                    sum = fields[0]
                } else {
                    error(file.location(s), "sum names one integer field", hint: "for example net.bytes_sent_delta")
                    ok = false
                }
            } else {
                ok = false
            }
        case (nil, let c?):
            if yamlBool(c) != true {
                error(file.location(c), "count must be true (or use sum: FIELD)")
                ok = false
            }
        case (_?, _?):
            error(file.location(node), "a threshold has either sum: or count: true, not both")
            ok = false
        case (nil, nil):
            error(file.location(node), "a threshold needs sum: FIELD or count: true")
            ok = false
        }
        var over: Int64?
        if let o = map["over"], let text = scalarString(o) {
            if case .some(.some(let n)) = parseNumber(text), n >= 0 { over = n } else {
                error(file.location(o), "over must be a whole number (10MiB, 500)", hint: "suffixes KiB, MiB and GiB are allowed")
            }
        } else {
            error(file.location(map["over"] ?? node), "a threshold needs over: (the sum it must exceed)")
        }
        var within: Int64?
        if let w = map["within"] {
            within = duration(w, "within", file)
            if within == 0 { error(file.location(w), "within must be longer than 0"); within = nil }
        } else {
            error(file.location(node), "a threshold needs within: (the window)")
        }
        guard ok, let by, let over, let within else { return nil }
        let text = "by=\(by.map(\.name));sum=\(sum?.name ?? "count");over=\(over);within=\(within)"
        keptSlots.formUnion(by.map(slot))
        if let sum { keptSlots.insert(slot(sum)) }
        return (ThresholdSpec(by: by.map(slot), sum: sum.map(slot), over: over, withinNs: within), text)
    }

    private func compileMessage(_ text: String, _ node: Node?, _ file: RuleFileText, _ ctx: ConditionContext) -> MessageTemplate? {
        let source: ConditionSource? = node.flatMap { n in
            guard case .scalar(let s) = n else { return nil }
            return ConditionSource(text: s.string, fileText: file, mark: s.mark, style: s.style)
        }
        func at(_ offset: Int, _ token: String) -> SourceLocation {
            source?.location(offset: offset, token: token) ?? file.location(node?.mark)
        }
        let result = MessageTemplate.parse(text) { name, offset in
            guard let field = Field.named(name) else {
                error(at(offset, name), "unknown field {\(name)} in the message",
                      hint: didYouMean(name, among: Field.allNames) ?? "write {{ for a literal brace")
                return nil
            }
            guard present(field, at(offset, name), ctx) else { return nil }
            return slot(field)
        }
        switch result {
        case .success(let template): return template
        case .failure(let e):
            if e.offset >= 0 { error(at(e.offset, "{"), e.message, hint: e.hint) }
            return nil
        }
    }
}
