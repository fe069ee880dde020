import Yams

/// The text of one rule file, split into lines only when an error needs a position.
final class RuleFileText {
    let file: String
    let text: String
    private var split: [[Unicode.Scalar]]?

    init(file: String, text: String) {
        self.file = file
        self.text = text
    }

    var lines: [[Unicode.Scalar]] {
        if let split { return split }
        var out: [[Unicode.Scalar]] = [[]]
        for s in text.unicodeScalars {
            if s == "\n" { out.append([]) } else { out[out.count - 1].append(s) }
        }
        split = out
        return out
    }

    func location(_ mark: Mark?) -> SourceLocation {
        SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    func location(_ node: Node) -> SourceLocation { location(node.mark) }
}

/// A condition string and where its YAML scalar sits, so a token inside it maps back to a
/// file position: exactly for single-line scalars, and to the right line (and usually column)
/// for block scalars (`>`, `|`) and folded flow scalars.
final class ConditionSource {
    let text: String
    let scalars: [Unicode.Scalar]
    let fileText: RuleFileText
    let mark: Mark?
    let style: Node.Scalar.Style

    init(text: String, fileText: RuleFileText, mark: Mark?, style: Node.Scalar.Style) {
        self.text = text
        self.scalars = Array(text.unicodeScalars)
        self.fileText = fileText
        self.mark = mark
        self.style = style
    }

    var file: String { fileText.file }
    var scalarLocation: SourceLocation { fileText.location(mark) }

    /// Where the token starting at `offset` (in Unicode scalars) lies in the file. The token is
    /// looked up in the file text after the scalar's start: the k-th occurrence in the value is
    /// the k-th in the source, since YAML folding only changes the whitespace between tokens.
    func location(offset: Int, token: String) -> SourceLocation {
        let fallback = scalarLocation
        guard let mark else { return fallback }
        let needle = Array(token.unicodeScalars.prefix { !$0.properties.isWhitespace })
        guard !needle.isEmpty else { return fallback }
        var k = 0
        var p = 0
        while p < offset, p + needle.count <= scalars.count {
            if starts(scalars, at: p, with: needle) { k += 1 }
            p += 1
        }
        var line = mark.line - 1
        var column = mark.column - 1
        switch style {
        case .singleQuoted, .doubleQuoted: column += 1
        case .literal, .folded: line += 1; column = 0
        default: break
        }
        let lines = fileText.lines
        let breaks = scalars.reduce(0) { $0 + ($1.properties.isWhitespace ? 1 : 0) }
        let lastLine = min(lines.count - 1, line + breaks + 2)
        guard line <= lastLine else { return fallback }
        for l in line...lastLine {
            let chars = lines[l]
            var c = l == line ? column : 0
            while c + needle.count <= chars.count {
                if starts(chars, at: c, with: needle) {
                    if k == 0 { return SourceLocation(file: file, line: l + 1, column: c + 1) }
                    k -= 1
                }
                c += 1
            }
        }
        return fallback
    }

    private func starts(_ hay: [Unicode.Scalar], at p: Int, with needle: [Unicode.Scalar]) -> Bool {
        for i in 0..<needle.count where hay[p + i] != needle[i] { return false }
        return true
    }
}

/// A token's place in a condition, resolved to a file position only when reported.
struct Span {
    let source: ConditionSource
    let offset: Int
    let text: String

    var location: SourceLocation { source.location(offset: offset, token: text) }
}
