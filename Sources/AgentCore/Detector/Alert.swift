/// A rule that fired: what the Recorder writes as an `alert` record.
public struct Alert: Sendable {
    public let rule: Rule
    public let message: String
    /// The seq of each record that triggered the rule (for a sequence, one per step in step
    /// order; for a threshold, the window's records, at most 64; for a suppression summary,
    /// the suppressed records, at most 64).
    public let evidence: [UInt64]
    /// Matches of this rule in this session that were counted, not raised, since its last alert.
    public let suppressed: Int
    public let sessionID: String
    /// The record that completed the match (for a suppression summary, the last suppressed one).
    public let triggerSeq: UInt64
    /// Record time of the trigger (for a summary: the time given to `endSession`).
    public let timeNs: Int64
}
