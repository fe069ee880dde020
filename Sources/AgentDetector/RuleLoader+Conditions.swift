/// Compiling conditions: expanding macros and lists, checking every field against the rule's
/// record types and every value against its field's kind, and building matchers.
import AgentRecords

extension RuleLoader {
    /// What a condition is compiled for: the rule's types, and the macros being expanded
    /// (to name them in errors and to catch cycles).
    struct ConditionContext {
        let ruleID: String
        let types: [RecordType]
        var macroChain: [String] = []

        var suffix: String {
            macroChain.last.map { " (in macro \($0), used by rule \(ruleID))" } ?? ""
        }
    }

    /// A compiled condition and its canonical text (macros and lists expanded).
    typealias Compiled = (matcher: Matcher, text: String)

    static let invalid: Compiled = (.constant(false), "<invalid>")

    /// Wraps a part that may occur in many rules (a macro, or a comparison with the same
    /// canonical text) so a record evaluates it once and every other rule reads the result.
    func memo(_ key: String, _ matcher: Matcher) -> Matcher {
        if let id = memoIDs[key] { return .memo(id: id, matcher) }
        memoIDs[key] = memoIDs.count
        return .memo(id: memoIDs.count - 1, matcher)
    }

    /// Parses a condition, reporting errors; nil when it does not parse.
    func parseCondition(_ source: ConditionSource) -> ConditionSyntax? {
        var parser = ConditionParser(source)
        do {
            let syntax = try parser.parse()
            errors += parser.diagnostics
            return syntax
        } catch {
            errors += parser.diagnostics
            errors.append(error.diagnostic)
            return nil
        }
    }

    /// Parses every macro once, so a broken macro is reported even when no rule uses it.
    func parseMacros() {
        for (name, def) in macros {
            guard let source = def.source, let syntax = parseCondition(source) else { continue }
            parsedMacros[name] = syntax
        }
    }

    /// A list's items with `@name` items spliced in.
    func resolveList(_ name: String, at: SourceLocation) -> [ListItem]? {
        if let done = resolvedLists[name] { return done }
        guard let def = lists[name] else {
            error(at, "unknown list @\(name)", hint: didYouMean(name, among: Array(lists.keys)))
            return nil
        }
        if let cycleStart = listsInProgress.firstIndex(of: name) {
            let cycle = (listsInProgress[cycleStart...] + [name]).map { "@" + $0 }.joined(separator: " → ")
            error(at, "lists splice each other in a cycle: \(cycle)")
            return nil
        }
        listsInProgress.append(name)
        defer { listsInProgress.removeLast() }
        var items: [ListItem] = []
        var ok = true
        for node in def.items {
            let text = scalarString(node) ?? ""
            let loc = def.file.location(node)
            if text.hasPrefix("@") {
                if let spliced = resolveList(String(text.dropFirst()), at: loc) {
                    items += def.identity ? spliced.map { ListItem(text: $0.text, location: $0.location, identity: true) } : spliced
                } else {
                    ok = false
                }
            } else {
                if def.identity, !(text == "~" || text.hasPrefix("~/") || text.hasPrefix("/")) {
                    error(loc, "\(Self.quote(text)) is not a path: the items of an identity list are absolute paths or start with ~/",
                          hint: "identity: true makes the list's paths part of the credential catalog; remove it for a list of names")
                }
                items.append(ListItem(text: text, location: loc, identity: def.identity))
            }
        }
        guard ok else { return nil }
        resolvedLists[name] = items
        return items
    }

    func compile(_ syntax: ConditionSyntax, _ ctx: ConditionContext) -> Compiled {
        switch syntax {
        case .invalid:
            return Self.invalid
        case .and(let parts):
            let compiled = parts.map { compile($0, ctx) }
            return (.all(compiled.map(\.matcher)), "(" + compiled.map(\.text).joined(separator: " and ") + ")")
        case .or(let parts):
            let compiled = parts.map { compile($0, ctx) }
            return (.any(compiled.map(\.matcher)), "(" + compiled.map(\.text).joined(separator: " or ") + ")")
        case .not(let inner):
            let c = compile(inner, ctx)
            return (.not(c.matcher), "not " + c.text)
        case .exists(let f):
            guard let field = f.field, present(field, f.span.location, ctx) else { return Self.invalid }
            return (.exists(slot: slot(field)), "\(field.name) exists")
        case .macro(let name, let span):
            return expandMacro(name, span, ctx)
        case .comparison(let c):
            let compiled = compileComparison(c, ctx)
            return compiled.text == Self.invalid.text ? compiled : (memo(compiled.text, compiled.matcher), compiled.text)
        }
    }

    private func expandMacro(_ name: String, _ span: Span, _ ctx: ConditionContext) -> Compiled {
        guard let def = macros[name] else {
            let candidates = Array(macros.keys)
            error(span.location, "unknown macro \(name)\(ctx.suffix)",
                  hint: didYouMean(name, among: candidates) ?? "a comparison needs an operator: field == value")
            return Self.invalid
        }
        if let start = ctx.macroChain.firstIndex(of: name) {
            let cycle = (ctx.macroChain[start...] + [name]).joined(separator: " → ")
            error(span.location, "macros use each other in a cycle: \(cycle)")
            return Self.invalid
        }
        guard def.source != nil, let syntax = parsedMacros[name] else { return Self.invalid }
        var inner = ctx
        inner.macroChain.append(name)
        let c = compile(syntax, inner)
        return (memo("macro " + name, c.matcher), "(" + c.text + ")")
    }

    /// Whether the field can be in some record the rule sees; reports when it cannot.
    func present(_ field: Field, _ at: SourceLocation, _ ctx: ConditionContext) -> Bool {
        if ctx.types.contains(where: { field.isPresent(in: $0) }) { return true }
        let names = ctx.types.map(\.typeName)
        let typesText = names.count <= 1 ? names.joined() : names.dropLast().joined(separator: ", ") + " or " + names.last!
        let carriers = RecordType.allCases.filter { field.isPresent(in: $0) }.map(\.typeName)
        error(at, "\(field.name) is never present in \(typesText) records\(ctx.suffix)",
              hint: "it is in \(carriers.joined(separator: ", ")) records")
        return false
    }

    private func compileComparison(_ c: ComparisonSyntax, _ ctx: ConditionContext) -> Compiled {
        guard let field = c.field.field else { return Self.invalid }
        guard present(field, c.field.span.location, ctx) else { return Self.invalid }
        let opLocation = c.opSpan.location
        let op = c.op
        // The values, spliced: nil when one could not be resolved (already reported).
        var items: [ValueItem] = []
        var isList = false
        switch c.value {
        case .item(let item):
            items = [item]
        case .list(let list, _):
            items = list
            isList = true
        case .listRef(let name, let span):
            guard let resolved = resolveList(name, at: span.location) else { return Self.invalid }
            if field.ruleField == .fileKnownAs, let plain = resolved.first(where: { !$0.identity }) {
                warning(span.location, "file.known_as holds only paths of the credential catalog, and @\(name) has items outside it (\(Self.quote(plain.text)))\(ctx.suffix)",
                        hint: "mark the list identity: true (or splice it from one) so its files are known by identity")
            }
            items = resolved.map { item in ValueItem(kind: .bare, text: item.text, location: { item.location }) }
            isList = true
        }
        let valueLocation: SourceLocation = switch c.value {
        case .item(let item): item.location()
        case .list(_, let span), .listRef(_, let span): span.location
        }

        switch op {
        case .eq, .ne, .ieq:
            if isList {
                error(valueLocation, "\(op.rawValue) compares with one value, not a list\(ctx.suffix)",
                      hint: op == .ne ? "use not (\(field.name) in [...])" : "use \(op == .ieq ? "iin" : "in") for a list")
                return Self.invalid
            }
        case .in, .iin:
            if !isList {
                error(valueLocation, "\(op.rawValue) needs a list: [a, b] or @list_name\(ctx.suffix)",
                      hint: "use \(op == .iin ? "ieq" : "==") for one value")
                return Self.invalid
            }
        default:
            break
        }

        let slot = slot(field)
        let canonical = "\(field.name) \(op.rawValue) [" + items.map { Self.quote($0.text) }.joined(separator: ", ") + "]"
        switch field.kind {
        case .integer:
            return compileInteger(field, slot, op, opLocation, items, ctx).map { ($0, canonical) } ?? Self.invalid
        case .boolean:
            guard op == .eq || op == .ne else {
                error(opLocation, "\(op.rawValue) does not apply to \(field.name), which is a boolean\(ctx.suffix)", hint: "use == true or == false")
                return Self.invalid
            }
            let item = items[0]
            let value: Bool
            switch item.kind {
            case .bool(let b): value = b
            case .bare where item.text == "true" || item.text == "false", .quoted where item.text == "true" || item.text == "false":
                value = item.text == "true"
            default:
                error(item.location(), "\(field.name) is a boolean: compare it with true or false\(ctx.suffix)")
                return Self.invalid
            }
            let m = Matcher.bool(slot: slot, value: value)
            return (op == .ne ? .not(m) : m, canonical)
        case .string, .list:
            guard let test = compileString(field, op, opLocation, items, ctx) else { return Self.invalid }
            if op == .regex { keptSlots.insert(slot) }
            let m = Matcher.string(slot: slot, test: test)
            return (op == .ne ? .not(m) : m, canonical)
        }
    }

    private func compileInteger(_ field: Field, _ slot: Int, _ op: RuleOperator, _ opLocation: SourceLocation,
                                _ items: [ValueItem], _ ctx: ConditionContext) -> Matcher? {
        var numbers: [Int64] = []
        for item in items {
            var n: Int64?
            if case .number(let v) = item.kind { n = v } else if case .some(.some(let v)) = parseNumber(item.text) { n = v }
            guard let n else {
                error(item.location(), "\(field.name) is an integer: \(Self.quote(item.text)) is not a number\(ctx.suffix)",
                      hint: "write a whole number such as 42, -1 or 10MiB")
                return nil
            }
            numbers.append(n)
        }
        switch op {
        case .eq, .in: return .int(slot: slot, test: IntTest(op: .equals, values: numbers))
        case .ne: return .not(.int(slot: slot, test: IntTest(op: .equals, values: numbers)))
        case .lt: return .int(slot: slot, test: IntTest(op: .less, values: numbers))
        case .le: return .int(slot: slot, test: IntTest(op: .lessOrEqual, values: numbers))
        case .gt: return .int(slot: slot, test: IntTest(op: .greater, values: numbers))
        case .ge: return .int(slot: slot, test: IntTest(op: .greaterOrEqual, values: numbers))
        default:
            error(opLocation, "\(op.rawValue) needs a string field; \(field.name) is an integer\(ctx.suffix)",
                  hint: "use ==, !=, <, <=, >, >= or in")
            return nil
        }
    }

    private func compileString(_ field: Field, _ op: RuleOperator, _ opLocation: SourceLocation,
                               _ items: [ValueItem], _ ctx: ConditionContext) -> StringTest? {
        let ci = op.caseInsensitive
        let kind: StringTest.Op
        switch op {
        case .eq, .ne, .in, .ieq, .iin: kind = .equals
        case .startswith, .istartswith: kind = .startsWith
        case .endswith, .iendswith: kind = .endsWith
        case .contains, .icontains: kind = .contains
        case .glob, .iglob: kind = .glob
        case .regex: kind = .regex
        case .cidr: kind = .cidr
        case .lt, .le, .gt, .ge:
            error(opLocation, "\(op.rawValue) needs an integer field; \(field.name) is \(field.kind.article)\(ctx.suffix)")
            return nil
        }
        var literals: [[UInt8]] = [], homeLiterals: [[UInt8]] = []
        var globs: [Glob] = [], homeGlobs: [Glob] = []
        var regexes: [Int] = []
        var blocks: [CIDRBlock] = []
        let homeAware = kind == .equals || kind == .startsWith || kind == .glob
        var ok = true
        for item in items {
            let text = item.text
            let isHome = homeAware && (text == "~" || text.hasPrefix("~/"))
            let body = isHome ? String(text.dropFirst()) : text
            let bytes = ci ? body.utf8.map(foldASCII) : Array(body.utf8)
            switch kind {
            case .equals, .startsWith, .endsWith, .contains:
                if isHome { homeLiterals.append(bytes) } else { literals.append(bytes) }
            case .glob:
                do {
                    let glob = try Glob(Array(body.utf8), caseInsensitive: ci)
                    if isHome { homeGlobs.append(glob) } else { globs.append(glob) }
                } catch {
                    self.error(item.location(), "bad glob \(Self.quote(text)): \(error.message)\(ctx.suffix)")
                    ok = false
                }
            case .regex:
                if let index = regexIndex[text] {
                    regexes.append(index)
                } else {
                    do {
                        _ = try Regex(text)
                        regexIndex[text] = regexPatterns.count
                        regexes.append(regexPatterns.count)
                        regexPatterns.append(text)
                    } catch {
                        self.error(item.location(), "bad regex \(Self.quote(text)): \(error)\(ctx.suffix)",
                                   hint: "Swift Regex syntax; quote it with '...' so backslashes stay as written")
                        ok = false
                    }
                }
            case .cidr:
                if let block = CIDRBlock(text) {
                    blocks.append(block)
                } else {
                    error(item.location(), "bad network prefix \(Self.quote(text))\(ctx.suffix)", hint: "write 10.0.0.0/8, fd00::/8 or one address")
                    ok = false
                }
            }
        }
        guard ok else { return nil }
        return StringTest(op: kind, caseInsensitive: ci, literals: literals, homeLiterals: homeLiterals, globs: globs,
                          homeGlobs: homeGlobs, regexes: regexes, blocks: blocks)
    }

    static func quote(_ s: String) -> String {
        "\"" + s.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"") + "\""
    }
}

extension String {
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
