/// One problem found while loading rules, as `file:line:column: message (hint)`: the column
/// points at the offending token inside a condition where it can be found.
package struct RuleDiagnostic: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Level: String, Sendable { case error, warning }

    package let file: String
    /// 1-based; 0 when the problem concerns the whole file (it cannot be read).
    package let line: Int
    package let column: Int
    package let message: String
    /// What to do about it, or a "did you mean" suggestion.
    package let hint: String?
    package let level: Level

    package init(file: String, line: Int, column: Int, message: String, hint: String? = nil, level: Level = .error) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        self.hint = hint
        self.level = level
    }

    init(_ at: SourceLocation, _ message: String, hint: String? = nil, level: Level = .error) {
        self.init(file: at.file, line: at.line, column: at.column, message: message, hint: hint, level: level)
    }

    package var description: String {
        var s = file
        if line > 0 { s += ":\(line):\(column)" }
        s += level == .warning ? ": warning: " : ": "
        s += message
        if let hint { s += " (\(hint))" }
        return s
    }
}

/// Every error found while loading a set of rule files, not just the first.
package struct RuleErrors: Error, Sendable, CustomStringConvertible {
    package let diagnostics: [RuleDiagnostic]
    /// Warnings found along the way, so a failed check can still show them.
    package let warnings: [RuleDiagnostic]

    package init(diagnostics: [RuleDiagnostic], warnings: [RuleDiagnostic] = []) {
        self.diagnostics = diagnostics
        self.warnings = warnings
    }

    package var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// A place in a rule file.
struct SourceLocation: Sendable, Equatable {
    var file: String
    var line: Int
    var column: Int
}

/// "did you mean X?" for a misspelt name: the closest candidate within a few edits, or one
/// whose last dotted component is the name itself (`pid` → `process.pid`).
func didYouMean(_ name: String, among candidates: [String]) -> String? {
    if let byTail = candidates.first(where: { $0.hasSuffix("." + name) }) { return "did you mean \(byTail)?" }
    let limit = max(2, name.count / 3)
    var best: (String, Int)?
    for c in candidates {
        let d = editDistance(name, c, limit: limit)
        if d <= limit, d < (best?.1 ?? Int.max) { best = (c, d) }
    }
    return best.map { "did you mean \($0.0)?" }
}

/// Levenshtein distance, giving up (returning limit + 1) once it must exceed `limit`.
func editDistance(_ a: String, _ b: String, limit: Int) -> Int {
    let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
    if abs(a.count - b.count) > limit { return limit + 1 }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        current[0] = i
        var rowMin = current[0]
        for j in 1...max(b.count, 1) where !b.isEmpty {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            rowMin = min(rowMin, current[j])
        }
        if rowMin > limit { return limit + 1 }
        swap(&previous, &current)
    }
    return a.isEmpty ? b.count : previous[b.count]
}
