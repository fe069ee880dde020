/// An alert message with `{field}` placeholders, split at load into text and field slots.
import AgentSupport

struct MessageTemplate: Sendable {
    enum Part: Sendable {
        case text(String)
        case field(Int)
    }

    let parts: [Part]

    /// Fills the placeholders from the record: lists joined with spaces, missing fields as `-`.
    func render(_ cache: RecordCache, _ fetch: Fetch) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .text(let t): out += t
            case .field(let slot): out += cache.value(slot, fetch)?.rendered ?? "-"
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
                let name = String(String.UnicodeScalarView(s[(i + 1)..<close])).trimmingCharacters()
                if !literal.isEmpty {
                    parts.append(.text(String(literal)))
                    literal = String.UnicodeScalarView()
                }
                if let slot = resolve(name, i + 1) { parts.append(.field(slot)) } else { ok = false }
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

/// A template that cannot be split; offset -1 means the problems were already reported.
struct MessageTemplateError: Error {
    let offset: Int
    let message: String
    let hint: String?
}
