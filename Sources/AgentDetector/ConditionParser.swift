/// The comparison operators of the condition language.
package enum RuleOperator: String, CaseIterable, Sendable {
    case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
    case `in`, startswith, endswith, contains, glob, regex, cidr
    case ieq, iin, istartswith, iendswith, icontains, iglob

    var caseInsensitive: Bool {
        switch self {
        case .ieq, .iin, .istartswith, .iendswith, .icontains, .iglob: true
        default: false
        }
    }
}

/// A parsed condition, before macros are expanded and values checked against field kinds.
indirect enum ConditionSyntax {
    case and([ConditionSyntax])
    case or([ConditionSyntax])
    case not(ConditionSyntax)
    case comparison(ComparisonSyntax)
    case exists(FieldSyntax)
    case macro(String, Span)
    /// Stands in for a part that already produced an error, so checking can go on.
    case invalid
}

struct FieldSyntax {
    /// nil when the name is not in the catalogue (already reported).
    let field: Field?
    let span: Span
}

struct ComparisonSyntax {
    let field: FieldSyntax
    let op: RuleOperator
    let opSpan: Span
    let value: ValueSyntax
}

enum ValueSyntax {
    case item(ValueItem)
    case list([ValueItem], Span)
    case listRef(String, Span)
}

/// One literal value: from the condition, or an item of a named list.
struct ValueItem {
    enum Kind { case quoted, bare, number(Int64), bool(Bool) }
    let kind: Kind
    /// The string the value stands for (numbers: their text as written).
    let text: String
    let location: () -> SourceLocation
}

/// A problem in a condition, at a token.
struct ConditionError: Error {
    let diagnostic: RuleDiagnostic

    init(span: Span, message: String, hint: String? = nil) {
        diagnostic = RuleDiagnostic(span.location, message, hint: hint)
    }
}

/// Lexer and recursive-descent parser for the condition language (see rules/README.md).
/// Syntax errors stop the condition; unknown fields are collected and parsing goes on, so
/// one load reports as much as it can.
struct ConditionParser {
    enum TokenKind: Equatable { case lparen, rparen, lbracket, rbracket, comma, string, word, end }

    struct Token {
        let kind: TokenKind
        /// The raw text; for strings the decoded value is in `value`.
        let text: String
        let value: String
        let offset: Int
    }

    let source: ConditionSource
    private var tokens: [Token] = []
    private var index = 0
    private(set) var diagnostics: [RuleDiagnostic] = []

    static let keywords: Set<String> = ["and", "or", "not", "exists", "true", "false"]

    init(_ source: ConditionSource) {
        self.source = source
    }

    /// Parses the whole condition.
    package mutating func parse() throws(ConditionError) -> ConditionSyntax {
        tokens = try Self.lex(source)
        index = 0
        if tokens.count == 1 {
            throw ConditionError(span: span(tokens[0]), message: "the condition is empty")
        }
        let expr = try parseOr()
        let t = tokens[index]
        if t.kind != .end {
            throw ConditionError(span: span(t), message: "unexpected '\(t.text)'", hint: "join conditions with and/or")
        }
        return expr
    }

    private func span(_ t: Token) -> Span { Span(source: source, offset: t.offset, text: t.text) }

    private mutating func next() -> Token {
        let t = tokens[index]
        if t.kind != .end { index += 1 }
        return t
    }

    private var peek: Token { tokens[index] }

    private func isWord(_ t: Token, _ w: String) -> Bool { t.kind == .word && t.text == w }

    private mutating func parseOr() throws(ConditionError) -> ConditionSyntax {
        var parts = [try parseAnd()]
        while isWord(peek, "or") {
            _ = next()
            parts.append(try parseAnd())
        }
        return parts.count == 1 ? parts[0] : .or(parts)
    }

    private mutating func parseAnd() throws(ConditionError) -> ConditionSyntax {
        var parts = [try parseUnary()]
        while isWord(peek, "and") {
            _ = next()
            parts.append(try parseUnary())
        }
        return parts.count == 1 ? parts[0] : .and(parts)
    }

    private mutating func parseUnary() throws(ConditionError) -> ConditionSyntax {
        if isWord(peek, "not") {
            _ = next()
            return .not(try parseUnary())
        }
        return try parsePrimary()
    }

    private mutating func parsePrimary() throws(ConditionError) -> ConditionSyntax {
        let t = next()
        switch t.kind {
        case .lparen:
            let inner = try parseOr()
            let close = next()
            guard close.kind == .rparen else {
                throw ConditionError(span: span(close.kind == .end ? t : close),
                                     message: close.kind == .end ? "'(' is never closed" : "expected ')' but found '\(close.text)'")
            }
            return inner
        case .word:
            if Self.keywords.contains(t.text) {
                throw ConditionError(span: span(t), message: "expected a field or macro but found '\(t.text)'")
            }
            return try parseWordPrimary(t)
        case .end:
            let at = index > 0 ? tokens[index - 1] : t
            throw ConditionError(span: span(at), message: "the condition ends too early: expected a field or macro")
        default:
            throw ConditionError(span: span(t), message: "expected a field or macro but found '\(t.text)'")
        }
    }

    /// A bare word starts a comparison when an operator follows it, or when it names a field;
    /// otherwise it names a macro.
    private mutating func parseWordPrimary(_ word: Token) throws(ConditionError) -> ConditionSyntax {
        let after = peek
        let followedByOperator = after.kind == .word && (RuleOperator(rawValue: after.text) != nil || after.text == "exists")
        let looksLikeField = Field.named(word.text) != nil || word.text.contains(".")
        if looksLikeField, word.text.unicodeScalars.contains(where: { "=<>!".unicodeScalars.contains($0) }) {
            throw ConditionError(span: span(word), message: "unknown field \(word.text)",
                                 hint: "put spaces around the operator: field == value")
        }
        if !followedByOperator && !looksLikeField { return .macro(word.text, span(word)) }
        let field = resolveField(word)
        let opToken = next()
        guard opToken.kind == .word, !["and", "or"].contains(opToken.text) else {
            throw ConditionError(span: span(opToken.kind == .end ? word : opToken),
                                 message: "expected an operator after \(word.text)",
                                 hint: "for example == , in, glob, or exists")
        }
        if opToken.text == "exists" { return .exists(field) }
        guard let op = RuleOperator(rawValue: opToken.text) else {
            let names = RuleOperator.allCases.map(\.rawValue) + ["exists"]
            var hint = didYouMean(opToken.text, among: names)
            if opToken.text == "=" || opToken.text == "===" { hint = "did you mean ==?" }
            throw ConditionError(span: span(opToken), message: "unknown operator '\(opToken.text)'", hint: hint)
        }
        let value = try parseValue(after: opToken)
        return .comparison(ComparisonSyntax(field: field, op: op, opSpan: span(opToken), value: value))
    }

    private mutating func resolveField(_ t: Token) -> FieldSyntax {
        let field = Field.named(t.text)
        if field == nil {
            diagnostics.append(RuleDiagnostic(span(t).location, "unknown field \(t.text)",
                                              hint: didYouMean(t.text, among: Field.allNames)))
        }
        return FieldSyntax(field: field, span: span(t))
    }

    private mutating func parseValue(after op: Token) throws(ConditionError) -> ValueSyntax {
        let t = next()
        switch t.kind {
        case .lbracket:
            var items: [ValueItem] = []
            if peek.kind == .rbracket {
                _ = next()
                return .list(items, span(t))
            }
            while true {
                let v = next()
                guard v.kind == .string || v.kind == .word, !v.text.hasPrefix("@") || v.kind == .string else {
                    throw ConditionError(span: span(v.kind == .end ? t : v), message: v.text.hasPrefix("@")
                                         ? "a list cannot be put inside [...]: write \(v.text) on its own"
                                         : "expected a value in the list")
                }
                items.append(try item(v))
                let sep = next()
                if sep.kind == .rbracket { break }
                guard sep.kind == .comma else {
                    throw ConditionError(span: span(sep.kind == .end ? t : sep),
                                         message: sep.kind == .end ? "'[' is never closed" : "expected ',' or ']' in the list")
                }
            }
            return .list(items, span(t))
        case .string:
            return .item(try item(t))
        case .word where t.text.hasPrefix("@"):
            let name = String(t.text.dropFirst())
            guard !name.isEmpty else { throw ConditionError(span: span(t), message: "'@' must be followed by a list name") }
            return .listRef(name, span(t))
        case .word where !["and", "or", "not", "exists"].contains(t.text):
            return .item(try item(t))
        default:
            throw ConditionError(span: span(t.kind == .end ? op : t), message: "expected a value after \(op.text)")
        }
    }

    private func item(_ t: Token) throws(ConditionError) -> ValueItem {
        let sp = span(t)
        let location = { sp.location }
        if t.kind == .string { return ValueItem(kind: .quoted, text: t.value, location: location) }
        if t.text == "true" { return ValueItem(kind: .bool(true), text: t.text, location: location) }
        if t.text == "false" { return ValueItem(kind: .bool(false), text: t.text, location: location) }
        switch parseNumber(t.text) {
        case .some(.some(let n)): return ValueItem(kind: .number(n), text: t.text, location: location)
        case .some(.none): throw ConditionError(span: sp, message: "number \(t.text) is out of range")
        case .none: return ValueItem(kind: .bare, text: t.text, location: location)
        }
    }

    /// Lexes the whole condition; offsets count Unicode scalars.
    static func lex(_ source: ConditionSource) throws(ConditionError) -> [Token] {
        let s = source.scalars
        var tokens: [Token] = []
        var i = 0
        func span(_ at: Int, _ text: String) -> Span { Span(source: source, offset: at, text: text) }
        while i < s.count {
            let c = s[i]
            if c.properties.isWhitespace {
                i += 1
                continue
            }
            switch c {
            case "(": tokens.append(Token(kind: .lparen, text: "(", value: "(", offset: i)); i += 1
            case ")": tokens.append(Token(kind: .rparen, text: ")", value: ")", offset: i)); i += 1
            case "[": tokens.append(Token(kind: .lbracket, text: "[", value: "[", offset: i)); i += 1
            case "]": tokens.append(Token(kind: .rbracket, text: "]", value: "]", offset: i)); i += 1
            case ",": tokens.append(Token(kind: .comma, text: ",", value: ",", offset: i)); i += 1
            case "\"", "'":
                let start = i
                var value = String.UnicodeScalarView()
                i += 1
                var closed = false
                while i < s.count {
                    let d = s[i]
                    if d == c {
                        closed = true
                        i += 1
                        break
                    }
                    if d == "\\", c == "\"", i + 1 < s.count {
                        let e = s[i + 1]
                        switch e {
                        case "\\", "\"", "'": value.append(e)
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        default:
                            // Unknown escapes stay as written, so "\d+" reaches a regex intact.
                            value.append(d)
                            value.append(e)
                        }
                        i += 2
                        continue
                    }
                    value.append(d)
                    i += 1
                }
                let raw = String(String.UnicodeScalarView(s[start..<i]))
                guard closed else {
                    throw ConditionError(span: span(start, raw), message: "string is not closed: add \(c)")
                }
                tokens.append(Token(kind: .string, text: raw, value: String(value), offset: start))
            default:
                let start = i
                while i < s.count, !s[i].properties.isWhitespace, !"()[],\"'".unicodeScalars.contains(s[i]) { i += 1 }
                let text = String(String.UnicodeScalarView(s[start..<i]))
                tokens.append(Token(kind: .word, text: text, value: text, offset: start))
            }
        }
        tokens.append(Token(kind: .end, text: "", value: "", offset: s.count))
        return tokens
    }
}

/// `-?[0-9]+` with an optional `KiB`/`MiB`/`GiB` suffix. nil: not a number; .some(nil): a
/// number that does not fit 64 bits.
func parseNumber(_ text: String) -> Int64?? {
    var digits = Substring(text)
    var scale: Int64 = 1
    for (suffix, factor) in [("KiB", Int64(1) << 10), ("MiB", Int64(1) << 20), ("GiB", Int64(1) << 30)] where digits.hasSuffix(suffix) {
        digits = digits.dropLast(3)
        scale = factor
    }
    var negative = false
    if digits.first == "-" {
        negative = true
        digits = digits.dropFirst()
    }
    guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
    guard let magnitude = Int64(digits) else { return .some(nil) }
    let (scaled, overflow) = magnitude.multipliedReportingOverflow(by: scale)
    guard !overflow else { return .some(nil) }
    return .some(negative ? -scaled : scaled)
}
