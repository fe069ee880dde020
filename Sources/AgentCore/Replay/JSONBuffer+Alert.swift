extension JSONBuffer {
    /// An alert's own members, as an `alert` record carries them after its session and
    /// process: `,"rule":{...},"message":...,"evidence":[...]` and `,"suppressed":N` when
    /// matches were counted rather than raised. The replay writes its replayed alerts with it;
    /// the Recorder's `alert` writes the same members.
    mutating func alertMembers(_ a: Alert) {
        raw(",\"rule\":{\"id\":")
        string(a.rule.id)
        raw(",\"title\":")
        string(a.rule.title)
        raw(",\"severity\":")
        string(a.rule.severity.rawValue)
        raw(",\"tags\":")
        stringArray(a.rule.tags)
        raw(",\"source\":")
        string(a.rule.source)
        raw(",\"author\":")
        string(a.rule.author)
        raw("},\"message\":")
        string(a.message)
        raw(",\"evidence\":")
        uintArray(a.evidence)
        if a.suppressed > 0 {
            raw(",\"suppressed\":")
            uint(UInt64(a.suppressed))
        }
    }
}
