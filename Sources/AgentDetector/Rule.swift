/// How bad a rule's alert is, from `info` to `critical`.
package enum RuleSeverity: String, CaseIterable, Sendable, Comparable {
    case info, low, medium, high, critical

    package static func < (a: RuleSeverity, b: RuleSeverity) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// Whether a rule fires on one record, on a sequence of records, or on a sum over a window.
package enum RuleKind: String, Sendable {
    case condition, sequence, threshold
}

/// One detection rule as loaded from a rule file, with its compiled matchers.
package struct Rule: Sendable {
    package let id: String
    package let title: String
    package let description: String
    package let severity: RuleSeverity
    package let tags: [String]
    package let author: String
    /// The file the rule came from, and the line of its `id`.
    package let source: String
    package let line: Int
    package internal(set) var enabled: Bool
    /// Record type names the rule sees ("file.open").
    package let types: [String]
    package let kind: RuleKind
    /// The message template as written (`{field}` placeholders).
    package let message: String
    /// Repeated alerts of this rule in one session within this many ns are counted, not raised.
    package let suppressNs: Int64
    package let fixtures: [RuleFixture]

    let program: RuleProgram
}

/// A rule's compiled form: what the Detector runs.
final class RuleProgram: Sendable {
    let kind: RuleKind
    /// Condition and threshold rules: the condition.
    let condition: ConditionProgram?
    let threshold: ThresholdSpec?
    let sequence: SequenceSpec?
    /// Holds when any exception holds; nil when the rule has none.
    let exceptions: ConditionProgram?
    let message: MessageTemplate
    /// What the rule matches, canonically (macros and lists expanded): two loads of an
    /// unchanged rule give the same text, so a reload can keep the rule's state.
    let definition: String
    /// Every slot the rule reads (conditions, keys, sums, message).
    let slots: Set<Int>

    init(kind: RuleKind, condition: ConditionProgram?, threshold: ThresholdSpec?, sequence: SequenceSpec?,
         exceptions: ConditionProgram?, message: MessageTemplate, definition: String, slots: Set<Int>) {
        self.kind = kind
        self.condition = condition
        self.threshold = threshold
        self.sequence = sequence
        self.exceptions = exceptions
        self.message = message
        self.definition = definition
        self.slots = slots
    }
}

struct SequenceSpec: Sendable {
    struct Step: Sendable {
        let condition: ConditionProgram
        /// Slots of the fields whose values key this step's state.
        let by: [Int]
    }

    let steps: [Step]
    let withinNs: Int64
    let ordered: Bool
    /// The steps' conditions as plain references, for the per-record loop.
    let conditions: [Unmanaged<ConditionProgram>]

    init(steps: [Step], withinNs: Int64, ordered: Bool) {
        self.steps = steps
        self.withinNs = withinNs
        self.ordered = ordered
        conditions = steps.map { Unmanaged.passUnretained($0.condition) }
    }
}

struct ThresholdSpec: Sendable {
    let by: [Int]
    /// The slot of the summed integer field; nil counts records.
    let sum: Int?
    let over: Int64
    let withinNs: Int64
}

/// One fixture of a rule: records run through a fresh Detector holding only that rule, and how
/// many alerts they must raise.
package struct RuleFixture: Sendable {
    package let name: String
    package let line: Int
    package let home: String
    package let expectedAlerts: Int
    /// Records as written (with `~/` already expanded), and their times in ns.
    let records: [FixtureValue]
    let timesNs: [Int64]
}

/// A YAML value of a fixture record, kept Sendable; converted to `[String: Any]` when run.
indirect enum FixtureValue: Sendable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case double(Double)
    case list([FixtureValue])
    case map([(String, FixtureValue)])

    var any: Any {
        switch self {
        case .string(let s): s
        case .int(let i): i
        case .bool(let b): b
        case .double(let d): d
        case .list(let l): l.map(\.any)
        case .map(let m): Dictionary(m.map { ($0.0, $0.1.any) }, uniquingKeysWith: { _, last in last })
        }
    }
}
