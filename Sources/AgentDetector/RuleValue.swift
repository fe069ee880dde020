/// A value a rule compares: what a record field holds.
package enum RuleValue: Hashable, Sendable {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case list([String])

    /// The value as a message shows it: lists joined with spaces.
    var rendered: String {
        switch self {
        case .string(let s): s
        case .int(let i): String(i)
        case .bool(let b): b ? "true" : "false"
        case .list(let l): l.joined(separator: " ")
        }
    }
}
