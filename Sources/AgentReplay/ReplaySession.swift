/// A session rebuilt from its records: what `session.start`/`session.end` said, its processes by
/// entity id (parents joined by `parent.entity_id`), its alerts, and what was left out to stay
/// within the limits.
final class ReplaySession {
    let id: String
    var cgroup = ""
    var uid: Int64?
    var labels = ""
    var homes: [String] = []
    var adopted = false
    var startNs: Int64?
    var endNs: Int64?
    /// `session.start` seen (several after daemon restarts that adopt it again).
    var starts = 0
    var ended = false
    /// Record counts `session.end` declared, and those the capture holds, by type name.
    var declaredCounts: [(type: String, count: Int64)] = []
    var seenCounts: [String: Int64] = [:]
    /// Processes by entity id, and in the order first seen.
    var processes: [String: ReplayProcess] = [:]
    var order: [ReplayProcess] = []
    var droppedProcesses = 0
    var alerts: [ReplayAlert] = []
    var droppedAlerts = 0
    /// Time of the first and last record seen (for a session without start or end).
    var firstNs: Int64?
    var lastNs: Int64?

    /// A process deeper than this below its root is shown as a root of its own: trees stay
    /// cheap to build and to print whatever the parent links say.
    static let maxDepth = 200

    init(id: String) {
        self.id = id
    }

    /// Root processes (no parent among the session's processes), each with its children, in
    /// the order first seen; only processes with something in the selected window, and their
    /// ancestors. Parent links come from untrusted records: a link that would close a cycle is
    /// left out (that process becomes a root).
    func roots() -> [ReplayProcess] {
        for p in order {
            p.children.removeAll()
            p.parent = nil
        }
        let shown = order.filter(\.shown)
        for p in shown {
            guard let parent = processes[p.parentEntityID], parent !== p, parent.shown else { continue }
            var cur: ReplayProcess? = parent
            var cycle = false
            var steps = 0
            while let c = cur {
                if c === p || steps > Self.maxDepth {
                    cycle = true
                    break
                }
                steps += 1
                cur = c.parent
            }
            if cycle { continue }
            p.parent = parent
            parent.children.append(p)
        }
        return shown.filter { $0.parent == nil }
    }

    /// Marks ancestors of processes in the window as shown, so a tree keeps its path to the root.
    func markAncestors() {
        for p in order where p.inWindow {
            var cur = p
            var steps = 0
            while let parent = processes[cur.parentEntityID], !parent.shownAsAncestor, parent !== cur, steps < order.count {
                parent.shownAsAncestor = true
                cur = parent
                steps += 1
            }
        }
    }
}

/// A process rebuilt from its records: the images it executed in order (`previous_exe` links
/// them), its parent, its lifetime and what it did.
final class ReplayProcess {
    struct Image {
        let timeNs: Int64?
        let seq: UInt64
        let exe: String
        let argv: String
        let previousExe: String
        let found: Bool
        let comm: String
    }

    let entityID: String
    let firstSeq: UInt64
    var pid: Int64 = 0
    var ppid: Int64 = 0
    var parentEntityID = ""
    var parentExe = ""
    var comm = ""
    var exe = ""
    var argv = ""
    var images: [Image] = []
    var droppedImages = 0
    var startNs: Int64?
    var exitNs: Int64?
    var exitText: String?
    var durationNs: Int64?
    var events: [ReplayEvent] = []
    var droppedEvents = 0
    /// Alerts and notable events among `events` (listed whatever the limit on other activity).
    var alertEvents = 0
    /// Read-only opens of shared libraries, locale data and the like: counted, not listed.
    var routineOpens = 0
    var opens = 0
    var connects = 0
    var bytesSent: UInt64 = 0
    var alerts = 0
    /// Something of it falls in the selected window / it leads to something that does.
    var inWindow = false
    var shownAsAncestor = false
    var shown: Bool { inWindow || shownAsAncestor }
    var children: [ReplayProcess] = []
    weak var parent: ReplayProcess?

    init(entityID: String, firstSeq: UInt64) {
        self.entityID = entityID
        self.firstSeq = firstSeq
    }

    var label: String { "\(comm.isEmpty ? "?" : comm)[\(pid)]" }

    /// How the process first showed itself: its first image (the exec chain follows it).
    var headline: (label: String, command: String) {
        let (c, e, a) = images.first.map { ($0.comm, $0.exe, $0.argv) } ?? (comm, exe, argv)
        return ("\(c.isEmpty ? "?" : c)[\(pid)]", ReplayText.clip(a.isEmpty ? e : e + "  " + a, 240))
    }

    /// What was not listed of its activity, or nil when everything was.
    var notListed: String? {
        guard droppedEvents > 0 || routineOpens > 0 else { return nil }
        var parts: [String] = []
        if droppedEvents > 0 { parts.append("\(droppedEvents) more") }
        if routineOpens > 0 { parts.append("\(routineOpens) library and locale loads") }
        return "… " + parts.joined(separator: " and ") + " not listed (\(opens) opens, \(connects) connects, \(ReplayText.bytes(bytesSent)) sent in all)"
    }
}

/// An alert: recorded live (an `alert` record) or raised again by the replay's Detector.
struct ReplayAlert {
    let replayed: Bool
    /// The alert record's seq (live) or the seq of the record that completed the match (replayed).
    let seq: UInt64
    let timeNs: Int64?
    let session: String
    let entityID: String
    let process: String
    let ruleID: String
    let title: String
    let severity: String
    let message: String
    let evidence: [UInt64]
    let suppressed: Int64
    let location: CaptureLocation
}
