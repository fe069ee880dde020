import AgentRecords
import AgentSessions
import CAgentEvents

/// What the net records need beyond their kernel record: the process of a record the socket
/// hooks wrote (they cannot read the task, so no start time), the names a session resolved.
extension Pipeline {
    /// The process `pid`: by pid and start when the record has the start, else the entry the
    /// table holds for the pid (a socket program's record names a process that is running).
    func process(pid: UInt32, startNs: UInt64, session: UInt64) -> ProcessInfo {
        if startNs == 0, let p = table.byPID[pid] { return p }
        return table.process(pid: pid, startNs: startNs, session: session, clock: clock)
    }

    /// The destination of a connect, for its name.
    static func destination(_ c: agent_connect) -> SessionNames.Address? {
        var c = c
        return withUnsafeBytes(of: &c.addr) { SessionNames.Address(sockaddr: UnsafeRawBufferPointer(rebasing: $0[0..<Int(min(c.addr_len, UInt16($0.count)))])) }
    }

    /// A DNS message of session `session`: a query waits for its answer, an answer to it binds
    /// its addresses to the name asked. Returns whether an answer answered a query seen.
    func learn(_ d: agent_dns, _ m: DNSMessage, session: UInt64, unixNs: Int64) -> Bool {
        var server = d.daddr
        guard let address = withUnsafeBytes(of: &server, { SessionNames.Address(family: d.family, bytes: $0) }) else { return false }
        let table: SessionNames
        if let t = names[session] {
            table = t
        } else {
            table = SessionNames()
            names[session] = table
        }
        if d.direction == UInt8(AGENT_DNS_QUERY.rawValue) {
            if !m.isResponse, let name = m.name { table.query(cookie: d.cookie, id: m.id, name: name, server: address, nowNs: unixNs) }
            return false
        }
        return m.isResponse && table.answer(cookie: d.cookie, message: m, server: address, nowNs: unixNs)
    }
}
