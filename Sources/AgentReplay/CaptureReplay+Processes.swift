import AgentRecords

extension CaptureReplay {
    /// A session process's record: its process in the tree, a timeline line, and the rules.
    func processRecord(_ view: JSONTree.View, _ h: RecordHeader, type: RecordType, seq: UInt64, selected: Bool, location: CaptureLocation) {
        let po = view.member(0, "process")
        var process: ReplayProcess?
        if let s = session(h.session) {
            track(s, h.timeNs)
            s.seenCounts[type.typeName, default: 0] += 1
            process = self.process(in: s, view, po, type: type, seq: seq)
            if selected { process?.inWindow = true }
        }
        switch type {
        case .fileOpen: process?.opens += 1
        case .netConnect: process?.connects += 1
        case .netFlow, .netSend: process?.bytesSent &+= view.uint(view.at("net", "bytes_sent_delta")) ?? 0
        default: break
        }
        // A record is described only when a report shows it: on the timeline (not for ndjson),
        // or listed under its process in a tree (a few per process).
        let timeline = selected && report.wantsEvents
        let notable = type == .netConnect || (type == .netFlow || type == .netSend) && view.bool(view.at("net", "final")) == true
        let listed = selected && process.map { listing($0, notable: notable, type == .fileOpen ? view : nil) } == true
        if timeline || listed || type == .processExit && process != nil {
            let text: String
            switch type {
            case .processExec: text = execText(view, po)
            case .processExit: text = exitText(view, po)
            case .fileOpen: text = openText(view)
            case .netConnect: text = connectText(view)
            case .netSend: text = sendText(view)
            case .netDNS: text = dnsText(view)
            default: text = flowText(view)
            }
            if let p = process, type == .processExit {
                p.exitNs = h.timeNs
                p.exitText = text
                p.durationNs = view.int(view.member(po, "duration_ns"))
            }
            if timeline || listed {
                let e = makeEvent(Self.eventKind(type), view, h, seq: seq, location: location, text: text)
                if timeline { report.event(e) }
                if listed, let p = process { list(e, under: p, notable: notable) }
            }
        } else if selected {
            report.eventNotShown()
        }
        rules?.evaluate(view, type: type, seq: seq, timeNs: h.timeNs, session: h.session) { alert in
            replayed(alert, view, h, trigger: process, location: location)
        }
    }

    /// Paths every program opens read-only as it starts (the loader, shared libraries, locale
    /// data): a process's tree entry counts these rather than list them; the timeline has them.
    static let routinePrefixes: [[UInt8]] = [
        "/usr/lib/", "/usr/lib64/", "/lib/", "/lib64/", "/usr/share/", "/etc/ld.so.cache", "/etc/ld.so.preload", "/etc/localtime",
        "/etc/locale.alias", "/etc/nsswitch.conf", "/proc/self/", "/dev/null", "/dev/tty",
        "/sys/devices/system/cpu/",
    ].map { Array($0.utf8) }

    /// Whether a file.open is a routine load: read-only, of a path under `routinePrefixes`.
    static func isRoutine(_ view: JSONTree.View) -> Bool {
        let f = view.member(0, "file")
        guard let path = view.member(f, "path"), view.nodes[path].kind == .string else { return false }
        let node = view.nodes[path]
        let routine: Bool
        if node.flag {
            let raw = view.rawBytes(path) ?? []
            routine = routinePrefixes.contains { raw.starts(with: $0) }
        } else {
            let bytes = UnsafeRawBufferPointer(rebasing: view.text[Int(node.start)..<Int(node.end)])
            routine = routinePrefixes.contains { bytes.starts(with: $0) }
        }
        guard routine else { return false }
        var write = false
        view.forEachElement(view.member(f, "flags")) { e in
            for flag in ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"] as [StaticString] where view.stringEquals(e, flag) { write = true }
        }
        return !write
    }

    static func eventKind(_ type: RecordType) -> ReplayEvent.Kind {
        switch type {
        case .processExec: .exec
        case .processExit: .exit
        case .fileOpen: .open
        case .netConnect: .connect
        case .netSend: .send
        case .netDNS: .dns
        default: .flow
        }
    }

    /// The process of a record, made on its first record (the limit allowing), with its image
    /// updated by an exec.
    func process(in s: ReplaySession, _ view: JSONTree.View, _ po: Int?, type: RecordType, seq: UInt64) -> ReplayProcess? {
        let entity = view.string(view.member(po, "entity_id")) ?? "pid-\(view.int(view.member(po, "pid")) ?? 0)"
        var p = s.processes[entity]
        if p == nil {
            guard heldProcesses < options.limits.processes else {
                s.droppedProcesses += 1
                return nil
            }
            let made = ReplayProcess(entityID: ReplayText.display(entity, limit: 256), firstSeq: seq)
            s.processes[entity] = made
            s.order.append(made)
            heldProcesses += 1
            p = made
        }
        guard let p else { return nil }
        if p.images.isEmpty && p.exe.isEmpty || type == .processExec {
            p.pid = view.int(view.member(po, "pid")) ?? 0
            p.ppid = view.int(view.member(po, "ppid")) ?? 0
            p.comm = shown(view, view.member(po, "comm"), limit: 64)
            p.exe = shown(view, view.member(po, "exe"))
            p.argv = ReplayText.clip(argv(view, view.member(po, "argv")), 512)
            let parent = view.member(po, "parent")
            p.parentEntityID = view.string(view.member(parent, "entity_id")) ?? ""
            p.parentExe = shown(view, view.member(parent, "exe"))
            if p.startNs == nil, let t = view.string(view.member(po, "start_time")) { p.startNs = ReplayOptions.parseTime(t) }
        }
        if type == .processExec || p.images.isEmpty {
            // A process first seen by another record (its exec before the capture, or lost)
            // starts its chain with the image that record shows.
            if p.images.count < 16 {
                let previous = view.member(po, "previous_exe")
                p.images.append(.init(timeNs: nil, seq: seq, exe: p.exe, argv: p.argv, previousExe: previous.map { shown(view, $0) } ?? "",
                                      found: view.stringEquals(view.member(po, "source"), "procfs"), comm: p.comm))
            } else {
                p.droppedImages += 1
            }
        }
        return p
    }

    func argv(_ view: JSONTree.View, _ node: Int?) -> String {
        var args: [[UInt8]] = []
        var bytes = 0
        var more = 0
        view.forEachElement(node) { e in
            guard bytes < ReplayText.maxBytes else {
                more += 1
                return
            }
            let a = view.rawBytes(e) ?? Array(view.source(e))
            bytes += a.count + 1
            args.append(a)
        }
        var text = ReplayText.argv(args)
        if more > 0 { text += " …(\(more) more)" }
        return text
    }

    func execText(_ view: JSONTree.View, _ po: Int?) -> String {
        var text = (view.stringEquals(view.member(po, "source"), "procfs") ? "found running: " : "exec ") + shown(view, view.member(po, "exe"))
        text += "  " + argv(view, view.member(po, "argv"))
        if view.bool(view.member(po, "argv_truncated")) == true { text += " …(argv cut)" }
        if let prev = view.member(po, "previous_exe") { text += "  (was \(shown(view, prev)))" }
        if view.bool(view.member(po, "exe_fileless")) == true { text += "  (fileless)" }
        if view.bool(view.member(po, "exe_written")) == true {
            text += "  (written by \(view.member(po, "exe_written_by").map { shown(view, $0) } ?? "the session"))"
        }
        var stdio: [String] = []
        for (name, key) in [("stdin", "stdin" as StaticString), ("stdout", "stdout"), ("stderr", "stderr")] {
            let s = view.member(po, key)
            if let t = view.member(s, "type"), !view.stringEquals(t, "tty"), !view.stringEquals(t, "char"), !view.stringEquals(t, "none") {
                stdio.append("\(name) \(shown(view, t, limit: 16))\(view.uint(view.member(s, "ino")).map { ":\($0)" } ?? "")")
            }
            if let d = view.member(s, "driver") {
                // A terminal driven by a process of the session: name it, and its network.
                let inet = view.bool(view.member(d, "inet")) == true
                stdio.append("\(name) pty driven by pid \(view.uint(view.member(d, "pid")).map(String.init) ?? "?") "
                    + shown(view, view.member(d, "exe")) + (inet ? " (connected to the network)" : ""))
            }
        }
        if !stdio.isEmpty { text += "  [" + stdio.joined(separator: ", ") + "]" }
        return text
    }

    func exitText(_ view: JSONTree.View, _ po: Int?) -> String {
        var text: String
        if let sig = view.int(view.member(po, "signal")) {
            text = "killed by signal \(sig)" + (view.bool(view.member(po, "core_dumped")) == true ? " (core dumped)" : "")
        } else {
            text = "exit \(view.int(view.member(po, "exit_code")).map(String.init) ?? "?")"
        }
        if let d = view.int(view.member(po, "duration_ns")) { text += " after \(ReplayText.duration(d))" }
        return text
    }

    func openText(_ view: JSONTree.View) -> String {
        let f = view.member(0, "file")
        var text = "open " + shown(view, view.member(f, "path"))
        if view.bool(view.member(f, "path_truncated")) == true { text += "…(cut)" }
        if let r = view.member(f, "requested_path") { text += " (as \(shown(view, r)))" }
        // openat is how nearly everything opens: only the other ways are named.
        if let via = view.member(f, "via"), view.string(via) != "openat" { text += " via " + shown(view, via, limit: 32) }
        if let k = view.member(f, "known_as") { text += " (the same file as \(shown(view, k)))" }
        var flags: [String] = []
        view.forEachElement(view.member(f, "flags")) { if flags.count < 16 { flags.append(shown(view, $0, limit: 32)) } }
        if !flags.isEmpty { text += " " + flags.joined(separator: "|") }
        let fixed = view.bool(view.member(f, "fixed_file")) == true
        if let e = view.member(f, "error") {
            text += " = " + shown(view, e, limit: 32)
        } else if let r = view.int(view.member(f, "result")) {
            if fixed {
                text += r > 0 ? " = fixed file \(r)" : " = fixed file"
            } else {
                text += r >= 0 ? " = fd \(r)" : " = \(r)"
            }
        } else if view.bool(view.member(f, "result_unseen")) == true {
            text += " = ? (no completion asked for)"
        }
        if let ino = view.uint(view.member(f, "inode")) {
            text += " [\(shown(view, view.member(f, "device"), limit: 24)) ino \(ino)]"
        }
        if let c = view.int(view.member(f, "count")), c > 1 { text += " ×\(c)" }
        return text
    }

    func address(_ view: JSONTree.View, _ n: Int?) -> String {
        if let path = view.member(n, "path") { return shown(view, path, limit: 512) }
        let addr = shown(view, view.member(n, "daddr"), limit: 64)
        let port = view.int(view.member(n, "dport")).map(String.init) ?? "?"
        let text = addr.contains(":") ? "[\(addr)]:\(port)" : "\(addr):\(port)"
        // The name the session resolved the address from.
        guard let dname = view.member(n, "dname") else { return text }
        return "\(text) (\(shown(view, dname, limit: 256)))"
    }

    func connectText(_ view: JSONTree.View) -> String {
        let n = view.member(0, "net")
        var text = "connect \(shown(view, view.member(n, "transport"), limit: 16)) \(address(view, n))"
        if let via = view.member(n, "via"), !view.stringEquals(via, "connect") { text += " via \(shown(view, via, limit: 16))" }
        if let e = view.member(n, "error") {
            text += " = " + shown(view, e, limit: 32)
        } else if let r = view.int(view.member(n, "result")) {
            text += " = \(r)"
        }
        return text
    }

    func flowText(_ view: JSONTree.View) -> String {
        let n = view.member(0, "net")
        var text = "flow \(shown(view, view.member(n, "transport"), limit: 16)) → \(address(view, n))"
        let sent = view.uint(view.member(n, "bytes_sent")) ?? 0
        text += " sent \(ReplayText.bytes(sent))"
        if let d = view.uint(view.member(n, "bytes_sent_delta")), d != sent { text += " (+\(ReplayText.bytes(d)))" }
        text += ", received \(ReplayText.bytes(view.uint(view.member(n, "bytes_received")) ?? 0))"
        if view.bool(view.member(n, "final")) == true { text += ", closed" }
        return text
    }

    func sendText(_ view: JSONTree.View) -> String {
        let n = view.member(0, "net")
        var text = "send \(shown(view, view.member(n, "transport"), limit: 16)) → \(address(view, n))"
        let sent = view.uint(view.member(n, "bytes_sent")) ?? 0
        text += " \(ReplayText.bytes(sent)) in \(view.uint(view.member(n, "datagrams")) ?? 0) datagrams"
        if let d = view.uint(view.member(n, "bytes_sent_delta")), d != sent { text += " (+\(ReplayText.bytes(d)))" }
        if view.bool(view.member(n, "evicted")) == true {
            text += ", aggregate ended (the socket sent to more destinations than are kept)"
        } else if view.bool(view.member(n, "final")) == true {
            text += ", closed"
        }
        return text
    }

    func dnsText(_ view: JSONTree.View) -> String {
        let n = view.member(0, "net"), d = view.member(0, "dns")
        let answer = view.stringEquals(view.member(d, "direction"), "answer")
        let server = address(view, n)
        var text = answer ? "dns answer from \(server):" : "dns query to \(server):"
        text += " \(shown(view, view.member(d, "type"), limit: 16)) \(shown(view, view.member(d, "name"), limit: 256))"
        if answer {
            text += " \(shown(view, view.member(d, "rcode"), limit: 16))"
            var data: [String] = []
            var more = 0
            view.forEachElement(view.member(d, "answers")) { a in
                guard data.count < 8 else { more += 1; return }
                data.append(shown(view, view.member(a, "data"), limit: 256))
            }
            if !data.isEmpty { text += " → " + data.joined(separator: ", ") + (more > 0 ? " …(\(more) more)" : "") }
            if view.bool(view.member(d, "unmatched")) == true { text += " (answers no query seen)" }
        }
        if view.bool(view.member(d, "cut")) == true { text += " (message cut)" }
        return text
    }
}
