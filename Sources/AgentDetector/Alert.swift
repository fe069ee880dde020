/// A rule that fired: what the Recorder writes as an `alert` record.
package struct Alert: Sendable {
    package let rule: Rule
    package let message: String
    /// The seq of each record that triggered the rule (for a sequence, one per step in step
    /// order; for a threshold, the window's records, at most 64; for a suppression summary,
    /// the suppressed records, at most 64).
    package let evidence: [UInt64]
    /// Matches of this rule in this session that were counted, not raised, since its last alert.
    package let suppressed: Int
    package let sessionID: String
    /// The record that completed the match (for a suppression summary, the last suppressed one).
    package let triggerSeq: UInt64
    /// Record time of the trigger (for a summary: the time given to `endSession`).
    package let timeNs: Int64
}
