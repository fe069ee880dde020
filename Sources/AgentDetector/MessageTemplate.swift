/// An alert message with `{field}` placeholders, split at load into text and field slots.
import AgentSupport

struct MessageTemplate: Sendable {
    enum Part: Sendable {
        case text(String)
        case field(Int)
        /// `{field?text}`: the text, with `%` as the value, only when the record has the field.
        case optional(Int, [String])
    }

    let parts: [Part]

    /// Fills the placeholders from the record: lists joined with spaces, missing fields as `-`.
    func render(_ cache: RecordCache, _ fetch: Fetch) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .text(let t): out += t
            case .field(let slot): out += cache.value(slot, fetch)?.rendered ?? "-"
            case .optional(let slot, let pieces):
                if let v = cache.value(slot, fetch)?.rendered { out += pieces.joined(separator: v) }
            }
        }
        return out
    }

    /// Splits a template; `{{` and `}}` are literal braces. Each placeholder is handed to
    /// `resolve` with its offset (in Unicode scalars), which returns its slot or nil when it
    /// reported an error.
    package static func parse(_ text: String, resolve: (String, Int) -> Int?) -> Result<MessageTemplate, MessageTemplateError> {
        var parts: [Part] = []
        var literal = String.UnicodeScalarView()
        let s = Array(text.unicodeScalars)
        var i = 0
        var ok = true
        while i < s.count {
            let c = s[i]
            if c == "{", i + 1 < s.count, s[i + 1] == "{" {
                literal.append("{")
                i += 2
            } else if c == "}", i + 1 < s.count, s[i + 1] == "}" {
                literal.append("}")
                i += 2
            } else if c == "{" {
                guard let close = s[(i + 1)...].firstIndex(of: "}") else {
                    return .failure(MessageTemplateError(offset: i, message: "'{' in the message is never closed", hint: "write {{ for a literal brace"))
                }
                let inner = s[(i + 1)..<close]
                let question = inner.firstIndex(of: "?")
                let name = String(String.UnicodeScalarView(inner[..<(question ?? close)])).trimmingCharacters()
                if !literal.isEmpty {
                    parts.append(.text(String(literal)))
                    literal = String.UnicodeScalarView()
                }
                if let slot = resolve(name, i + 1) {
                    if let question {
                        parts.append(.optional(slot, Self.pieces(inner[(question + 1)...])))
                    } else {
                        parts.append(.field(slot))
                    }
                } else {
                    ok = false
                }
                i = close + 1
            } else {
                literal.append(c)
                i += 1
            }
        }
        if !literal.isEmpty { parts.append(.text(String(literal))) }
        return ok ? .success(MessageTemplate(parts: parts)) : .failure(MessageTemplateError(offset: -1, message: "", hint: nil))
    }
}

extension MessageTemplate {
    /// The text of `{field?text}` split at each `%` (where the value goes); `%%` is a literal `%`.
    static func pieces(_ text: ArraySlice<Unicode.Scalar>) -> [String] {
        var pieces: [String] = []
        var current = String.UnicodeScalarView()
        var i = text.startIndex
        while i < text.endIndex {
            if text[i] == "%", i + 1 < text.endIndex, text[i + 1] == "%" {
                current.append("%")
                i += 2
            } else if text[i] == "%" {
                pieces.append(String(current))
                current = String.UnicodeScalarView()
                i += 1
            } else {
                current.append(text[i])
                i += 1
            }
        }
        pieces.append(String(current))
        return pieces
    }
}

/// A template that cannot be split; offset -1 means the problems were already reported.
struct MessageTemplateError: Error {
    let offset: Int
    let message: String
    let hint: String?
}
