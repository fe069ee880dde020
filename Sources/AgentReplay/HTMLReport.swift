/// `--format html`: one self-contained page — no external asset, a Content-Security-Policy that
/// allows none — with the capture's integrity, then per session its alerts and process tree,
/// then the timeline (filterable; a process or an evidence seq leads to its lines). Every
/// string from the capture is escaped twice over: made visible (`ReplayText.display`), then
/// HTML-escaped; attributes carry only numbers. The page is built at the end, from the
/// sessions held and at most `ReplayLimits.htmlTimeline` timeline lines.
final class HTMLReport: ReplayReport {
    let out: ReplayOutput
    let options: ReplayOptions
    private var timeline: [ReplayEvent] = []
    private var timelineNotKept = 0

    init(_ out: ReplayOutput, options: ReplayOptions) {
        self.out = out
        self.options = options
    }

    var keepsProcesses: Bool { true }
    var wantsEvents: Bool { timeline.count < options.limits.htmlTimeline }

    func eventNotShown() {
        timelineNotKept += 1
    }

    func event(_ e: ReplayEvent) {
        if timeline.count < options.limits.htmlTimeline { timeline.append(e) } else { timelineNotKept += 1 }
    }

    func closes(_ s: ReplaySession) -> Bool { false }

    private func h(_ s: String) -> String { ReplayText.html(s) }

    func finish(_ replay: CaptureReplay) {
        let summary = replay.summary
        var processIndex: [String: Int] = [:]
        var next = 0
        for s in replay.sessionOrder {
            for p in s.order {
                processIndex[s.id + "\u{0}" + p.entityID] = next
                next += 1
            }
        }
        out.write(Self.head(title: h(ReplayText.display(options.title, limit: 256))))
        out.write("<header><h1>\(h(ReplayText.display(options.title, limit: 256)))</h1>\n")
        out.write("<p id=\"summary\" class=\"\(summary.intact ? "ok" : "bad")\">\(h(summary.line))</p>\n")
        if let s = options.since { out.write("<p>from \(ReplayText.timestamp(s))</p>") }
        if let u = options.until { out.write("<p>until \(ReplayText.timestamp(u))</p>") }
        out.write("</header>\n")
        let findings = timeline.filter { $0.kind.isIntegrity }
        if !findings.isEmpty {
            out.write("<section id=\"integrity\"><h2>Integrity and loss</h2><ul>\n")
            for e in findings {
                let cls = e.kind == .restart || e.kind == .anchor ? "note" : (e.kind == .loss ? "loss" : "bad")
                out.write("<li class=\"finding \(cls)\">\(e.seq > 0 ? "<a href=\"#r\(e.seq)\">#\(e.seq)</a> " : "")<b>\(h(e.kind.label))</b> \(h(e.text)) <span class=\"loc\">\(h(e.location.description))</span></li>\n")
            }
            out.write("</ul></section>\n")
        }
        for (k, s) in replay.sessionOrder.enumerated() {
            write(s, index: k, processIndex: processIndex)
        }
        if replay.droppedSessions > 0 {
            out.write("<p class=\"note\">\(replay.droppedSessions) records of sessions beyond the limit of \(options.limits.sessions) not shown.</p>\n")
        }
        writeTimeline(processIndex: processIndex, sessionIndex: Dictionary(replay.sessionOrder.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a }))
        out.write(Self.script)
        out.write("</body></html>\n")
        out.flush()
    }

    private func write(_ s: ReplaySession, index: Int, processIndex: [String: Int]) {
        s.markAncestors()
        let roots = s.roots()
        out.write("<section class=\"session\" id=\"s\(index)\">\n<h2>Session <span class=\"sid\">\(h(ReplayText.display(s.id, limit: 128)))</span></h2>\n<p class=\"facts\">")
        var facts: [String] = []
        if let uid = s.uid { facts.append("uid \(uid)") }
        if !s.cgroup.isEmpty { facts.append("cgroup \(s.cgroup)") }
        if !s.labels.isEmpty { facts.append("labels \(s.labels)") }
        if !s.homes.isEmpty { facts.append("home \(s.homes.joined(separator: " "))") }
        if s.adopted { facts.append("found running at daemon start") }
        let start = s.startNs ?? s.firstNs, end = s.endNs ?? s.lastNs
        facts.append((start.map(ReplayText.timestamp) ?? "?") + " → " + (end.map(ReplayText.timestamp) ?? "?") + (s.endNs == nil ? " (no end in the capture)" : ""))
        if let a = start, let b = end { facts.append(ReplayText.span(a, b)) }
        out.write(facts.map(h).joined(separator: " · ") + "</p>\n")
        let seen = s.seenCounts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
        if !seen.isEmpty { out.write("<p class=\"facts\">records: \(h(seen.joined(separator: ", ")))</p>\n") }
        out.write("<h3>Alerts (\(s.alerts.count + s.droppedAlerts))</h3>\n")
        if s.alerts.isEmpty {
            out.write("<p class=\"none\">none</p>\n")
        } else {
            out.write("<table class=\"alerts\"><thead><tr><th>time</th><th>seq</th><th>severity</th><th>rule</th><th>process</th><th>message</th><th>evidence</th><th>source</th></tr></thead><tbody>\n")
            for a in s.alerts {
                let evidence = a.evidence.prefix(64).map { "<a href=\"#r\($0)\">\($0)</a>" }.joined(separator: " ") + (a.evidence.count > 64 ? " …" : "")
                out.write("<tr class=\"alert sev-\(Self.severityClass(a.severity))\(a.replayed ? " replayed" : "")\"><td>\(a.timeNs.map(ReplayText.timestamp) ?? "?")</td><td><a href=\"#r\(a.seq)\">\(a.seq)</a></td>")
                out.write("<td class=\"sev\">\(h(a.severity))</td><td class=\"rule\" title=\"\(h(a.title))\">\(h(a.ruleID))</td><td>\(h(a.process))</td>")
                out.write("<td>\(h(a.message))\(a.suppressed > 0 ? " (\(a.suppressed) more suppressed)" : "")</td><td>\(evidence)</td><td>\(a.replayed ? "replayed" : "live")</td></tr>\n")
            }
            out.write("</tbody></table>\n")
            if s.droppedAlerts > 0 { out.write("<p class=\"note\">\(s.droppedAlerts) more alerts not listed.</p>\n") }
        }
        out.write("<h3>Process tree</h3>\n")
        if roots.isEmpty {
            out.write("<p class=\"none\">no process records</p>\n")
        } else {
            out.write("<ul class=\"tree\">\n")
            for p in roots { write(p, session: s, depth: 0, processIndex: processIndex) }
            out.write("</ul>\n")
        }
        if s.droppedProcesses > 0 { out.write("<p class=\"note\">\(s.droppedProcesses) records of processes beyond the limit not shown.</p>\n") }
        out.write("</section>\n")
    }

    private func write(_ p: ReplayProcess, session s: ReplaySession, depth: Int, processIndex: [String: Int]) {
        let index = processIndex[s.id + "\u{0}" + p.entityID].map(String.init) ?? ""
        out.write("<li class=\"proc\(p.alerts > 0 ? " has-alert" : "")\" data-p=\"\(index)\"><details open><summary>")
        let headline = p.headline
        out.write("<span class=\"pname\" data-filter-p=\"\(index)\" title=\"show its timeline\">\(h(headline.label))</span> <span class=\"cmd\">\(h(headline.command))</span>")
        var life: [String] = []
        if let t = p.startNs { life.append("started \(ReplayText.timestamp(t))") }
        life.append(p.exitText ?? "no exit in the capture")
        out.write(" <span class=\"life\">\(h(life.joined(separator: ", ")))</span>")
        if p.alerts > 0 { out.write(" <span class=\"badge\">\(p.alerts) alert\(p.alerts == 1 ? "" : "s")</span>") }
        out.write("</summary>\n")
        if p.images.count > 1 || !p.events.isEmpty || p.notListed != nil {
            out.write("<ul class=\"activity\">\n")
            for image in p.images.dropFirst() {
                out.write("<li class=\"exec\">exec \(h(ReplayText.clip(image.exe + "  " + image.argv, 240)))\(image.previousExe.isEmpty ? "" : " (was \(h(image.previousExe)))")</li>\n")
            }
            for e in p.events where e.kind != .exec && e.kind != .exit {
                let cls = e.kind == .alert || e.kind == .replayedAlert ? "alert-line" : "act"
                out.write("<li class=\"\(cls)\"><a href=\"#r\(e.seq)\">#\(e.seq)</a> \(h(e.text))</li>\n")
            }
            if let more = p.notListed { out.write("<li class=\"note\">\(h(more))</li>\n") }
            out.write("</ul>\n")
        }
        if !p.children.isEmpty {
            if depth < ReplaySession.maxDepth {
                out.write("<ul class=\"tree\">\n")
                for c in p.children { write(c, session: s, depth: depth + 1, processIndex: processIndex) }
                out.write("</ul>\n")
            } else {
                out.write("<p class=\"note\">\(p.children.count) children deeper than \(ReplaySession.maxDepth) levels not shown</p>\n")
            }
        }
        out.write("</details></li>\n")
    }

    private func writeTimeline(processIndex: [String: Int], sessionIndex: [String: Int]) {
        out.write("<section id=\"timeline\"><h2>Timeline</h2>\n<p><input id=\"filter\" type=\"search\" placeholder=\"filter lines\" autocomplete=\"off\"> ")
        out.write("<span id=\"shown\">\(timeline.count) lines</span> <button id=\"clear\" type=\"button\">show all</button></p>\n")
        if timelineNotKept > 0 {
            out.write("<p class=\"note\">\(timelineNotKept) more lines not shown: narrow the replay with --session, --since or --until.</p>\n")
        }
        out.write("<table class=\"timeline\"><thead><tr><th>time</th><th>seq</th><th>session</th><th>process</th><th>event</th></tr></thead><tbody>\n")
        var rowIDs = Set<UInt64>()
        for e in timeline {
            // The first line of a seq is its anchor (a record; its replayed alerts come after it).
            let id = e.seq > 0 && rowIDs.insert(e.seq).inserted ? " id=\"r\(e.seq)\"" : ""
            let p = e.entityID.isEmpty ? nil : processIndex[e.session + "\u{0}" + e.entityID]
            let cls: String
            switch e.kind {
            case .alert, .replayedAlert: cls = "alert sev-\(Self.severityClass(e.severity))"
            case .gap, .broken, .problem: cls = "bad"
            case .loss: cls = "loss"
            default: cls = "\(e.kind)"
            }
            let sessionCell = sessionIndex[e.session].map { "<a href=\"#s\($0)\">\(h(ReplayText.display(e.session, limit: 64)))</a>" } ?? h(ReplayText.display(e.session, limit: 64))
            out.write("<tr class=\"ev \(cls)\"\(id)\(p.map { " data-p=\"\($0)\"" } ?? "")><td>\(e.timeNs.map(ReplayText.timestamp) ?? "")</td><td>\(e.seq > 0 ? "#\(e.seq)" : "")</td>")
            let what = (e.kind.isIntegrity || e.kind == .agent ? "<b>\(h(e.kind.label))</b> " : (e.kind == .alert || e.kind == .replayedAlert ? "<b>ALERT</b> " : "")) + h(e.text)
            out.write("<td>\(sessionCell)</td><td>\(h(e.process))</td><td>\(what)\(e.kind.isIntegrity ? " <span class=\"loc\">\(h(e.location.description))</span>" : "")</td></tr>\n")
        }
        out.write("</tbody></table></section>\n")
    }

    static func severityClass(_ s: String) -> String {
        ["info", "low", "medium", "high", "critical"].contains(s) ? s : "other"
    }

    static func head(title: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(title)</title>
        <style>
        body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5em 2em;color:#1d1d1f;background:#fafafa}
        h1{font-size:1.4em;margin:.8em 0 .2em}h2{font-size:1.2em;margin:1.2em 0 .3em;border-bottom:1px solid #ddd}h3{font-size:1em;margin:.8em 0 .3em}
        #summary{font-weight:600;padding:.4em .6em;border-radius:4px}#summary.ok{background:#e6f4ea}#summary.bad{background:#fde7e7}
        .facts{color:#555;margin:.1em 0}.note,.none{color:#777;font-style:italic}.loc{color:#888;font-size:.85em}
        .finding.bad{color:#a40000}.finding.loss{color:#8a5a00}
        table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:2px 6px;vertical-align:top;border-bottom:1px solid #eee}
        td{word-break:break-all}th{background:#f0f0f0;position:sticky;top:0}
        tr.alert td{background:#fff4e5}tr.sev-high td,tr.sev-critical td{background:#fde7e7}tr.replayed td:last-child{font-style:italic}
        tr.bad td{background:#fde7e7;color:#a40000}tr.loss td{background:#fff8e1}
        tr:target td{outline:2px solid #0a66c2;background:#e8f0fe}
        ul.tree{list-style:none;padding-left:1.2em;margin:0;border-left:1px dotted #bbb}section>ul.tree{border:0;padding-left:0}
        li.proc summary{cursor:default}li.has-alert>details>summary .pname{color:#a40000}
        .pname{font-weight:600;cursor:pointer;text-decoration:underline dotted}.cmd{font-family:ui-monospace,monospace;font-size:12px}
        .life{color:#666;font-size:12px}.badge{background:#a40000;color:#fff;border-radius:8px;padding:0 6px;font-size:11px}
        ul.activity{list-style:none;padding-left:1.4em;margin:.1em 0;font-family:ui-monospace,monospace;font-size:12px;color:#333}
        li.alert-line{color:#a40000;font-weight:600}.timeline td:nth-child(5){font-family:ui-monospace,monospace;font-size:12px}
        #filter{width:24em;padding:3px}
        </style></head><body>

        """
    }

    static let script = """
        <script>
        (function () {
          var rows = Array.prototype.slice.call(document.querySelectorAll('table.timeline tr.ev'));
          var input = document.getElementById('filter'), shown = document.getElementById('shown');
          var proc = null;
          function apply() {
            var q = input.value.toLowerCase(), n = 0;
            rows.forEach(function (r) {
              var ok = (!q || r.textContent.toLowerCase().indexOf(q) >= 0) && (proc === null || r.getAttribute('data-p') === proc);
              r.hidden = !ok;
              if (ok) n++;
            });
            shown.textContent = n + ' of ' + rows.length + ' lines';
          }
          input.addEventListener('input', apply);
          document.getElementById('clear').addEventListener('click', function () { input.value = ''; proc = null; apply(); });
          document.addEventListener('click', function (e) {
            var t = e.target.closest('[data-filter-p]');
            if (t) {
              e.preventDefault();
              var p = t.getAttribute('data-filter-p');
              proc = proc === p ? null : p;
              apply();
              document.getElementById('timeline').scrollIntoView();
            }
            var a = e.target.closest('a[href^="#r"]');
            if (a) {
              var row = document.getElementById(a.getAttribute('href').slice(1));
              if (row && row.hidden) { input.value = ''; proc = null; apply(); }
            }
          });
          apply();
        })();
        </script>

        """
}
