/// What a replay read and found: the counts behind its exit status and its last line.
package struct ReplaySummary: Sendable {
    package var files = 0
    package var lines = 0
    /// Records read and placed (whatever the selection).
    package var records = 0
    /// Records the selection kept.
    package var selected = 0
    /// Lines that could not be used: malformed, too long, incomplete, seq not rising.
    package var skipped = 0
    /// Files (or their rest) that could not be read.
    package var unreadable = 0
    /// Chain breaks, seq gaps, daemon restarts, and whether the set starts after records not given.
    package var breaks = 0
    package var gaps = 0
    package var restarts = 0
    package var anchored = false
    package var allowAnchor = false
    package var lossMarkers = 0
    package var kernelDropped: UInt64 = 0
    package var queueDropped: UInt64 = 0
    package var sessions = 0
    package var liveAlerts = 0
    package var replayedAlerts = 0
    /// Replayed alerts also raised live (same rule and evidence), replayed ones that were not,
    /// and live ones the replay did not raise; nil when no rules were given or too many alerts
    /// to compare.
    package var comparison: (same: Int, replayOnly: Int, liveOnly: Int)?
    /// The findings printed one by one (`FILE:LINE: what`), at most `ReplayLimits.findings`.
    package var findings: [String] = []
    package var findingsNotShown = 0

    /// Nothing skipped, unreadable, broken or missing, and the set starts at a daemon's first
    /// record (or may start later: `allowAnchor`).
    package var intact: Bool {
        skipped == 0 && unreadable == 0 && breaks == 0 && gaps == 0 && (!anchored || allowAnchor)
    }

    /// 0 when intact, 1 otherwise.
    package var exitStatus: Int32 { intact ? 0 : 1 }

    /// One line: intact or not, and the counts.
    package var line: String {
        var parts = ["\(records) records in \(files) file\(files == 1 ? "" : "s")", "\(sessions) session\(sessions == 1 ? "" : "s")"]
        if skipped > 0 { parts.append("\(skipped) line\(skipped == 1 ? "" : "s") skipped") }
        if unreadable > 0 { parts.append("\(unreadable) unreadable") }
        parts.append("\(breaks) chain break\(breaks == 1 ? "" : "s")")
        parts.append("\(gaps) seq gap\(gaps == 1 ? "" : "s")")
        if restarts > 0 { parts.append("\(restarts) restart\(restarts == 1 ? "" : "s")") }
        if anchored { parts.append("starts after records not given") }
        parts.append(lossMarkers == 0 ? "no loss markers"
            : "\(lossMarkers) loss marker\(lossMarkers == 1 ? "" : "s") (kernel dropped \(kernelDropped), queue dropped \(queueDropped))")
        parts.append("\(liveAlerts) live alert\(liveAlerts == 1 ? "" : "s")")
        if let c = comparison {
            parts.append("\(replayedAlerts) replayed (\(c.same) as live, \(c.replayOnly) not raised live, \(c.liveOnly) live not raised again)")
        } else if replayedAlerts > 0 {
            parts.append("\(replayedAlerts) replayed")
        }
        return (intact ? "intact: " : "NOT intact: ") + parts.joined(separator: ", ")
    }
}
