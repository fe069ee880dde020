import AgentSessions
import AgentSupport
import Glibc
import Logging

/// The daemon's answers to control requests, on the control server's threads. `start` makes a
/// session cgroup for the caller and moves the process that connected (held by its pidfd,
/// `ControlPeer`) into it; `end` removes one; `sessions` and `status` read what the capture loop
/// published. What the loop must hear of — a refused escape (an alert), a session to remove once
/// empty — is posted to its inbox.
package final class DaemonControl: ControlHandler {
    let published: PublishedState
    let inbox: LoopInbox
    /// Where `start` makes sessions: the first root, fixed at start.
    let root: String
    let cgroupMount: String
    let logger: Logger

    init(published: PublishedState, inbox: LoopInbox, root: String, cgroupMount: String, logger: Logger) {
        self.published = published
        self.inbox = inbox
        self.root = root
        self.cgroupMount = cgroupMount
        self.logger = logger
    }

    package func handle(_ request: ControlRequest, peer: ControlPeer) -> ControlAnswer {
        switch request {
        case .start(let start): return self.start(start, peer: peer)
        case .end(let session): return end(session, peer: peer)
        case .sessions: return .sessions(SessionList(sessions: published.snapshot.sessions))
        case .status:
            let s = published.snapshot
            let c = s.counters
            let outputs = s.outputs.map { w in
                let st = w.counters
                return OutputStatus(name: w.name, destination: w.destination.description, records: st.records, errors: st.errors,
                                    connected: st.connected, spooledBytes: st.spooledBytes, backlogBytes: w.backlogBytes, lastError: st.lastError)
            }
            return .status(DaemonStatus(version: AgentVersion.string, pid: getpid(), sessions: c.sessions, processes: c.processes,
                                        records: c.records, kernelDropped: c.kernelDropped, decodeRejected: c.decodeRejected,
                                        syscallHooks: c.syscallHooksAttached, outputs: outputs, throttle: c.throttle))
        }
    }

    /// The session directory below a root that holds `path`, if any.
    private func sessionHolding(_ path: String, roots: [String]) -> String? {
        for r in roots where path.hasPrefix(r + "/") {
            let rest = path.dropFirst(r.count + 1)
            return r + "/" + (rest.split(separator: "/").first.map(String.init) ?? "")
        }
        return nil
    }

    private func start(_ request: StartRequest, peer: ControlPeer) -> ControlAnswer {
        // The pid must still be the process that connected, running as the caller.
        if let problem = peer.ownershipProblem() { return .refused(problem) }
        // The socket is bound before the loop starts: a move waits until the loop has found
        // the sessions and roots that exist, which tell whether the caller is inside one (5 s,
        // and 3 s for the watch below: within the 10 s `agentwatch run` waits for an answer).
        guard waitUntilCapturing(timeoutMs: 5_000) else { return .refused("the daemon is still starting: try again") }
        guard let current = ControlPeer.cgroup(of: peer.pid, mount: cgroupMount) else { return .refused("cannot read the cgroup of process \(peer.pid)") }
        let id = request.session ?? SessionLauncher.generatedID()
        let roots = published.snapshot.roots
        if let holding = sessionHolding(current, roots: roots) {
            // Never out of a session, nor into another: refused, and a SIEM hears of it.
            inbox.post { $0.escapes.append(.init(peer: peer, holding: holding, requested: id)) }
            return .refused("process \(peer.pid) is inside session \(String(holding.split(separator: "/").last ?? "")): a process never leaves its session; start new sessions from outside one")
        }
        if let problem = validateSessionID(id) { return .refused("session \(id): \(problem)") }
        var labels: [(key: String, value: String)] = []
        for k in (Array(request.labels.keys) + request.labelsNotStrings).sorted() {
            guard let v = request.labels[k] else { return .refused("label \(k): the value must be a string") }
            if let problem = validateLabel(k + "=" + v) { return .refused("label \(k): \(problem)") }
            labels.append((k, v))
        }
        // The session's user is the caller, and ~ is that user's home from passwd.
        let path: String
        do {
            path = try SessionLauncher.create(id: id, metadata: SessionMetadata(uid: peer.uid, labels: labels), root: root)
        } catch {
            return .refused(error.message)
        }
        if let problem = peer.move(into: path, refuseLeaving: { [self] in sessionHolding($0, roots: published.snapshot.roots) != nil }) {
            rmdir(path)
            return .refused(problem)
        }
        inbox.post { $0.removeWhenEmpty.append(path) }
        let watched = SessionLauncher.waitUntilWatched(path: path, timeoutMs: 3000)
        logger.info("session \(id) started for uid \(peer.uid) (process \(peer.pid)) through the control socket")
        return .started(SessionStarted(session: id, cgroup: path, watched: watched))
    }

    private func waitUntilCapturing(timeoutMs: Int) -> Bool {
        var waited = 0
        while !published.snapshot.capturing {
            guard waited < timeoutMs else { return false }
            usleep(5_000)
            waited += 5
        }
        return true
    }

    private func end(_ session: String?, peer: ControlPeer) -> ControlAnswer {
        guard let id = session, validateSessionID(id) == nil else { return .refused("give the session id") }
        let path = root + "/" + id
        guard access(path, F_OK) == 0 else { return .ended(SessionEnded(ended: true)) }
        let owner = CgroupFS.getxattr(path, SessionMetadata.xattr).map { SessionMetadata.decode($0).uid } ?? nil
        guard peer.uid == 0 || owner == peer.uid else { return .refused("session \(id) is not yours") }
        if rmdir(path) == 0 { return .ended(SessionEnded(ended: true)) }
        // Still has processes: it ends when they do.
        inbox.post { $0.removeWhenEmpty.append(path) }
        return .ended(SessionEnded(ended: false))
    }
}
