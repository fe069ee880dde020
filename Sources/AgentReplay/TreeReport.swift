/// `--format tree`: per session, its process tree — each process with its command, lifetime,
/// exec chain and activity, alerts marked `!` — then the capture's findings. A session is
/// written when it ends and then let go, so only open sessions are held.
final class TreeReport: ReplayReport {
    let out: ReplayOutput
    let options: ReplayOptions
    /// Findings about the stream (gaps, breaks, loss), listed after the sessions.
    private var findings: [ReplayEvent] = []
    private var findingsNotKept = 0
    private static let maxFindings = 500

    init(_ out: ReplayOutput, options: ReplayOptions) {
        self.out = out
        self.options = options
    }

    var keepsProcesses: Bool { true }
    /// Records are shown under their processes, not as a timeline; findings come all the same.
    var wantsEvents: Bool { false }

    func event(_ e: ReplayEvent) {
        guard e.kind.isIntegrity || e.kind == .unknown else { return }
        if findings.count < Self.maxFindings { findings.append(e) } else { findingsNotKept += 1 }
    }

    func closes(_ s: ReplaySession) -> Bool {
        write(s)
        return true
    }

    func finish(_ replay: CaptureReplay) {
        for s in replay.sessionOrder where !s.ended { write(s) }
        if replay.droppedSessions > 0 {
            out.write("(\(replay.droppedSessions) records of sessions beyond the limit of \(options.limits.sessions) held at once not shown)\n\n")
        }
        if !findings.isEmpty {
            out.write("capture:\n")
            for e in findings {
                let time = e.timeNs.map { ReplayText.timestamp($0) + " " } ?? ""
                out.write("  \(e.kind.isIntegrity && e.kind != .restart && e.kind != .anchor ? "!!" : "--") \(e.location): \(time)\(e.kind.label) \(e.text)\n")
            }
            if findingsNotKept > 0 { out.write("  … \(findingsNotKept) more\n") }
            out.write("\n")
        }
        out.write(replay.summary.line + "\n")
        out.flush()
    }

    package func write(_ s: ReplaySession) {
        s.markAncestors()
        let roots = s.roots()
        guard !roots.isEmpty || !s.alerts.isEmpty || options.inWindow(s.startNs) || options.inWindow(s.endNs) else { return }
        var head = "session \(ReplayText.display(s.id, limit: 128))"
        var facts: [String] = []
        if let uid = s.uid { facts.append("uid \(uid)") }
        if !s.cgroup.isEmpty { facts.append("cgroup \(s.cgroup)") }
        if !s.labels.isEmpty { facts.append("labels \(s.labels)") }
        if s.adopted { facts.append("found running at daemon start") }
        if !facts.isEmpty { head += " (" + facts.joined(separator: ", ") + ")" }
        out.write(head + "\n")
        let start = s.startNs ?? s.firstNs, end = s.endNs ?? s.lastNs
        var when = "  " + (start.map(ReplayText.timestamp) ?? "?") + " → "
        when += s.endNs != nil ? ReplayText.timestamp(s.endNs!) : (end.map { ReplayText.timestamp($0) + " (no end in the capture)" } ?? "?")
        if let a = start, let b = end { when += " (\(ReplayText.span(a, b)))" }
        if s.starts == 0 { when += "; its start is not in the capture" }
        out.write(when + "\n")
        if !s.homes.isEmpty { out.write("  home " + s.homes.joined(separator: " ") + "\n") }
        let seen = s.seenCounts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
        if !seen.isEmpty { out.write("  records: " + seen.joined(separator: ", ") + "\n") }
        let missing = s.declaredCounts.compactMap { d -> String? in
            let have = s.seenCounts[d.type] ?? 0
            return d.type != "alert" && have < d.count ? "\(d.count - have) \(d.type)" : nil
        }
        if !missing.isEmpty { out.write("  !! the session's end counts more records than the capture holds: \(missing.joined(separator: ", ")) missing\n") }
        for (i, root) in roots.enumerated() {
            write(root, prefix: "  ", last: i == roots.count - 1, depth: 0)
        }
        if s.droppedProcesses > 0 { out.write("  (\(s.droppedProcesses) records of processes beyond the limit of \(options.limits.processes) not shown)\n") }
        if !s.alerts.isEmpty {
            out.write("  alerts:\n")
            for a in s.alerts {
                let time = a.timeNs.map(ReplayText.timestamp) ?? "?"
                out.write("    ! \(time) #\(a.seq) \(a.process.isEmpty ? "" : a.process + " ")\(CaptureReplay.text(a))\n")
            }
            if s.droppedAlerts > 0 { out.write("    … \(s.droppedAlerts) more alerts\n") }
        }
        out.write("\n")
    }

    private func write(_ p: ReplayProcess, prefix: String, last: Bool, depth: Int) {
        let branch = depth == 0 ? "" : (last ? "└─ " : "├─ ")
        let below = prefix + (depth == 0 ? "" : (last ? "   " : "│  "))
        let headline = p.headline
        var line = prefix + branch + headline.label + "  " + headline.command
        if let x = p.exitText { line += "  [\(x)]" } else { line += "  [no exit in the capture]" }
        if p.alerts > 0 { line += "  ! \(p.alerts) alert\(p.alerts == 1 ? "" : "s")" }
        out.write(line + "\n")
        let inner = below + (p.children.isEmpty ? "   " : "│  ")
        for image in p.images.dropFirst() {
            out.write(inner + "exec \(ReplayText.clip(image.exe + "  " + image.argv, 240))\(image.previousExe.isEmpty ? "" : "  (was \(image.previousExe))")\n")
        }
        if p.droppedImages > 0 { out.write(inner + "… \(p.droppedImages) more execs\n") }
        for e in p.events where e.kind != .exec && e.kind != .exit {
            let mark = e.kind == .alert || e.kind == .replayedAlert ? "! ALERT " : ""
            out.write(inner + mark + e.text + "\n")
        }
        if let more = p.notListed { out.write(inner + more + "\n") }
        guard depth < ReplaySession.maxDepth else {
            if !p.children.isEmpty { out.write(inner + "… \(p.children.count) children deeper than \(ReplaySession.maxDepth) levels not shown\n") }
            return
        }
        for (i, c) in p.children.enumerated() {
            write(c, prefix: below, last: i == p.children.count - 1, depth: depth + 1)
        }
    }
}
