/// Every rule loaded from a set of files, compiled to matchers and indexed by record type.
/// Immutable after load, so one RuleSet can be shared by pipelines and swapped on reload.
public final class RuleSet: Sendable {
    /// Enabled and disabled rules, in load order.
    package let rules: [Rule]
    /// SHA-256 (hex) over the loaded files' bytes in load order.
    package let digest: String
    package let warnings: [RuleDiagnostic]
    /// Every field some enabled rule reads: a live `RuleInput` need compute no other.
    package let fields: Set<Field>
    /// The credential catalog: the path patterns of every list marked `identity: true` (with
    /// what they splice), once each, `~` as written. The daemon learns the identity of the files
    /// they name in each session, and `file.known_as` names the catalog path of a file reached
    /// under another.
    package let identityPaths: [String]

    /// Fields by slot: matchers refer to values by slot, the Detector caches them by slot.
    package let slotFields: [Field]
    /// Regex sources by index; each Detector compiles its own (Swift's Regex is not Sendable).
    let regexPatterns: [String]
    /// Condition parts shared between rules, remembered per record.
    let memoCount: Int
    /// Slots whose values keys, sums and regexes read, so a Detector keeps them per record.
    let keptSlots: Set<Int>
    /// Indices into `rules` of the enabled rules that see each record type.
    package let byType: [String: [Int]]

    init(rules: [Rule], digest: String, warnings: [RuleDiagnostic], slotFields: [Field], regexPatterns: [String],
         memoCount: Int, keptSlots: Set<Int>, identityPaths: [String] = []) {
        self.identityPaths = identityPaths
        self.memoCount = memoCount
        self.keptSlots = keptSlots
        self.rules = rules
        self.digest = digest
        self.warnings = warnings
        self.slotFields = slotFields
        self.regexPatterns = regexPatterns
        var byType: [String: [Int]] = [:]
        var used = Set<Int>()
        for (i, rule) in rules.enumerated() where rule.enabled {
            for type in rule.types { byType[type, default: []].append(i) }
            used.formUnion(rule.program.slots)
        }
        self.byType = byType
        fields = Set(used.map { slotFields[$0] })
    }

    /// The rule with this id, enabled or not.
    package func rule(id: String) -> Rule? { rules.first { $0.id == id } }

    /// A set holding only `rule` (enabled), sharing this set's slots: what a fixture runs on.
    func isolating(_ rule: Rule) -> RuleSet {
        var only = rule
        only.enabled = true
        return RuleSet(rules: [only], digest: digest, warnings: [], slotFields: slotFields, regexPatterns: regexPatterns, memoCount: memoCount,
                       keptSlots: keptSlots)
    }
}
