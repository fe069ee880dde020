/// What every record line must carry for a replay to place it: seq, type, time and session.
/// A member the replay reads that appears twice at the top level makes the line malformed:
/// which one counts would be a matter of parser, and `verify` and the replay must agree.
import AgentRecords

struct RecordHeader {
    /// The seq as `ChainVerifier` reads it (a positive integer, possibly written as 1e2 or
    /// 100.0); nil when there is none.
    var seq: UInt64?
    /// nil for a type this version does not know (shown, not interpreted).
    package var type: RecordType?
    var typeNode: Int?
    var timeNs: Int64?
    /// "" for a record of the whole stream (agent.*).
    var session: String

    /// Members a replay reads from the top level of a record.
    private static let readKeys: [StaticString] = [
        "v", "seq", "time", "type", "host", "session", "process", "file", "net", "loss",
        "rule", "message", "evidence", "suppressed", "agent", "chain",
    ]

    private static let allKeys = Array(readKeys.indices)
    /// Indices into `readKeys` by name length.
    private static let byLength: [[Int]] = {
        var table = [[Int]](repeating: [], count: 16)
        for (i, k) in readKeys.enumerated() { table[k.utf8CodeUnitCount].append(i) }
        return table
    }()

    /// The header, or why the line cannot be read as a record.
    static func read(_ view: JSONTree.View) -> Result<RecordHeader, ReplayProblem> {
        guard view.isObject else { return .failure(ReplayProblem("not a JSON object")) }
        var seen: UInt32 = 0
        var twice: StaticString?
        view.forEachMember(0) { key, _ in
            let node = view.nodes[key]
            let length = Int(node.end - node.start)
            // Most names are compared only with the read names of their length.
            let candidates = node.flag ? Self.allKeys : (length < Self.byLength.count ? Self.byLength[length] : [])
            for bit in candidates where view.keyEquals(key, Self.readKeys[bit]) {
                if seen & (1 << bit) != 0 { twice = twice ?? Self.readKeys[bit] }
                seen |= 1 << bit
            }
        }
        if let twice { return .failure(ReplayProblem("member \"\(twice)\" appears twice")) }
        var h = RecordHeader(seq: nil, type: nil, typeNode: view.member(0, "type"), timeNs: nil, session: "")
        let seqNode = view.member(0, "seq")
        if let s = view.uint(seqNode) {
            h.seq = s >= 1 ? s : nil
        } else if view.kind(seqNode) == .number, let d = view.double(seqNode), d >= 1, d.rounded() == d {
            h.seq = UInt64(exactly: d)
        }
        if let t = h.typeNode {
            h.type = RecordType.allCases.first { view.stringEquals(t, $0.name) }
        }
        if let time = view.string(view.member(0, "time")) {
            h.timeNs = ReplayOptions.parseTime(time)
        }
        h.session = view.string(view.at("session", "id")) ?? ""
        return .success(h)
    }
}

/// Why a line could not be used, as said in `FILE:LINE: malformed record: ...`.
struct ReplayProblem: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
