/// What a replay selects, how it shows it, and the rules it runs again.
import AgentDetector

package struct ReplayOptions {
    package enum Format: String, CaseIterable, Sendable {
        /// Per session, the process tree (exec chains, lifetimes, activity) with alerts marked.
        case tree
        /// One line per event, in capture order (which is time order).
        case timeline
        /// The selected records as they are, plus the replayed alerts.
        case ndjson
        /// One self-contained page: sessions, process trees, alerts, timeline.
        case html
    }

    /// Only these sessions (empty: all). Stream records (loss markers, daemon starts) are kept.
    package var sessions: Set<String> = []
    /// Only records from this time on (Unix ns), and before `until`.
    package var since: Int64?
    package var until: Int64?
    /// Rules to run again over the records, with a fresh Detector per daemon run.
    package var rules: RuleSet?
    package var format: Format = .tree
    /// The capture may start after records rotated away: its first record anchors the chain.
    package var allowAnchor = false
    package var limits = ReplayLimits()
    /// Names shown for the capture files (the HTML title).
    package var title = "agentwatch replay"

    package init() {}

    /// An RFC 3339 time as Unix ns (`CapturedRuleInput.parseTimestamp`), nil when it is not one or
    /// lies outside what Int64 ns can hold (years 1678-2261): a capture may say year 9999, and
    /// the parser must not be given a time its arithmetic overflows on.
    package static func parseTime(_ text: String) -> Int64? {
        let year = text.utf8.prefix(4)
        guard year.count == 4, year.allSatisfy({ $0 >= 48 && $0 <= 57 }), let y = Int(String(decoding: year, as: UTF8.self)),
              (1678...2261).contains(y) else { return nil }
        return CapturedRuleInput.parseTimestamp(text)
    }

    func selects(session: String, timeNs: Int64?) -> Bool {
        if !sessions.isEmpty && !session.isEmpty && !sessions.contains(session) { return false }
        return inWindow(timeNs)
    }

    func inWindow(_ timeNs: Int64?) -> Bool {
        guard since != nil || until != nil else { return true }
        guard let t = timeNs else { return false }
        if let since, t < since { return false }
        if let until, t >= until { return false }
        return true
    }
}

/// What a replay holds at most, so memory stays bounded whatever the capture's size. Beyond a
/// limit, what is left out is counted and the report says so. Records are never held: only the
/// rebuilt sessions and processes (and, for HTML, the timeline it will show).
package struct ReplayLimits: Sendable {
    /// Sessions held at once (tree: until their end is printed; html: all shown).
    package var sessions = 10_000
    /// Processes held over all sessions held.
    package var processes = 50_000
    /// Activity lines listed under one process (the rest are counted).
    package var eventsPerProcess = 12
    /// Activity lines listed under processes, over all of them.
    package var processEvents = 100_000
    /// Alerts listed per session (the rest are counted).
    package var alertsPerSession = 1_000
    /// Timeline lines an HTML page carries (the rest are counted).
    package var htmlTimeline = 20_000
    /// Findings (malformed lines, gaps, breaks) printed one by one; the rest are counted.
    package var findings = 1_000
    /// Alert keys remembered to compare replayed alerts with live ones.
    package var comparedAlerts = 100_000

    package init() {}
}
