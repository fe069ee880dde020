import AgentRecords

extension JSONBuffer {
    /// An alert's own members, as an `alert` record carries them after its session and
    /// process: `,"rule":{...},"message":...,"evidence":[...]` and `,"suppressed":N` when
    /// matches were counted rather than raised. The Recorder writes live alerts with it, the
    /// replay its replayed ones.
    package mutating func alertMembers(_ a: Alert) {
        alertMembers(id: a.rule.id, title: a.rule.title, severity: a.rule.severity, tags: a.rule.tags, source: a.rule.source,
                     author: a.rule.author, message: a.message, evidence: a.evidence, suppressed: a.suppressed)
    }

    package mutating func alertMembers(id: String, title: String, severity: RuleSeverity, tags: [String], source: String, author: String,
                               message: String, evidence: [UInt64], suppressed: Int) {
        raw(",\"rule\":{\"id\":")
        string(id)
        raw(",\"title\":")
        string(title)
        raw(",\"severity\":")
        string(severity.rawValue)
        raw(",\"tags\":")
        stringArray(tags)
        raw(",\"source\":")
        string(source)
        raw(",\"author\":")
        string(author)
        raw("},\"message\":")
        string(message)
        raw(",\"evidence\":")
        uintArray(evidence)
        if suppressed > 0 {
            raw(",\"suppressed\":")
            uint(UInt64(suppressed))
        }
    }
}
