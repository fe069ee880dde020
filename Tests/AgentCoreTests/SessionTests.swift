import AgentSessions
import Testing

@Suite("Session metadata and ids")
struct SessionTests {
    @Test func encodesUidAndLabelLines() {
        let m = SessionMetadata(uid: 1000, labels: [(key: "agent", value: "claude"), (key: "ticket", value: "OPS-1")])
        #expect(String(decoding: m.encoded(), as: UTF8.self) == "uid=1000\nlabel.agent=claude\nlabel.ticket=OPS-1")
    }

    /// SessionMetadata is not Sendable, so the cases travel as plain values.
    struct Case: Sendable, CustomTestStringConvertible {
        let uid: UInt32?
        let labels: [Pair]
        struct Pair: Sendable { let key: String; let value: String }
        init(_ uid: UInt32?, _ labels: [(String, String)]) {
            self.uid = uid
            self.labels = labels.map { Pair(key: $0.0, value: $0.1) }
        }
        var metadata: SessionMetadata { SessionMetadata(uid: uid, labels: labels.map { (key: $0.key, value: $0.value) }) }
        var testDescription: String { String(decoding: metadata.encoded(), as: UTF8.self).debugDescription }
    }

    @Test(arguments: [
        Case(1000, [("agent", "claude")]),
        Case(0, []),
        Case(UInt32.max, [("a", "1"), ("b", "2"), ("a", "3")]),
        Case(nil, [("only", "labels")]),
        Case(nil, []),
        Case(5, [("url", "https://x.test/?q=a=b"), ("empty", "")]),
        Case(5, [("name", "café 😀"), ("spaces", " a b ")]),
        Case(5, [("uid", "not the uid"), ("label.nested", "x")]),
    ])
    func roundTrip(_ c: Case) {
        let m = c.metadata
        let back = SessionMetadata.decode(m.encoded())
        #expect(back == m)
        #expect(back.uid == c.uid)
        #expect(back.labels.map(\.key) == c.labels.map(\.key))
        #expect(back.labels.map(\.value) == c.labels.map(\.value))
    }

    @Test func equalityLooksAtUidAndLabelsInOrder() {
        let a = SessionMetadata(uid: 1, labels: [(key: "x", value: "1"), (key: "y", value: "2")])
        #expect(a != SessionMetadata(uid: 2, labels: a.labels))
        #expect(a != SessionMetadata(uid: nil, labels: a.labels))
        #expect(a != SessionMetadata(uid: 1, labels: [(key: "y", value: "2"), (key: "x", value: "1")]))
        #expect(a != SessionMetadata(uid: 1, labels: [(key: "x", value: "1")]))
    }

    @Test func decodeSkipsWhatItDoesNotKnow() {
        let text = "garbage\nuid=42\nother=1\n\nlabel.k=v\nlabelnodot=1\n"
        let m = SessionMetadata.decode(Array(text.utf8))
        #expect(m.uid == 42)
        #expect(m.labels.map(\.key) == ["k"])
        #expect(m.labels.map(\.value) == ["v"])
    }

    @Test func decodeRejectsABadUid() {
        #expect(SessionMetadata.decode(Array("uid=-1".utf8)).uid == nil)
        #expect(SessionMetadata.decode(Array("uid=4294967296".utf8)).uid == nil)
        #expect(SessionMetadata.decode(Array("uid=root".utf8)).uid == nil)
        #expect(SessionMetadata.decode([]) == SessionMetadata(uid: nil, labels: []))
    }

    /// `agentwatch run --label K=V` only checks that a label has a '=' and a key, so a value
    /// may hold a newline; encoded() writes it unescaped, and the value's second line is read
    /// back as a line of its own: a label can set the session's uid.
    @Test
    func labelWithNewlineDoesNotOverrideUid() {
        let m = SessionMetadata(uid: 1000, labels: [(key: "note", value: "x\nuid=0")])
        let back = SessionMetadata.decode(m.encoded())
        #expect(back.uid == 1000)
        #expect(back == m)
    }

    @Test(arguments: ["a", "A", "0", "session-1", "claude_2026.11.21", "x.y-z_Q", "a.", String(repeating: "a", count: 64)])
    func acceptedSessionIDs(_ id: String) {
        #expect(validateSessionID(id) == nil)
    }

    @Test(arguments: [
        ("", "session id must be 1 to 64 characters"),
        (String(repeating: "a", count: 65), "session id must be 1 to 64 characters"),
        (".", "session id must not start with '.'"),
        ("..", "session id must not start with '.'"),
        (".hidden", "session id must not start with '.'"),
        ("a/b", "session id may hold only letters, digits, '.', '_' and '-'"),
        ("../x", "session id must not start with '.'"),
        ("x/..", "session id may hold only letters, digits, '.', '_' and '-'"),
        ("has space", "session id may hold only letters, digits, '.', '_' and '-'"),
        ("new\nline", "session id may hold only letters, digits, '.', '_' and '-'"),
        ("nul\0", "session id may hold only letters, digits, '.', '_' and '-'"),
        ("café", "session id may hold only letters, digits, '.', '_' and '-'"),
        ("a:b", "session id may hold only letters, digits, '.', '_' and '-'"),
        ("a@b", "session id may hold only letters, digits, '.', '_' and '-'"),
        ("[x]", "session id may hold only letters, digits, '.', '_' and '-'"),
        ("`x`", "session id may hold only letters, digits, '.', '_' and '-'"),
        ("{x}", "session id may hold only letters, digits, '.', '_' and '-'"),
    ])
    func rejectedSessionIDs(_ id: String, _ problem: String) {
        #expect(validateSessionID(id) == problem)
    }

    /// 64 is counted in bytes: 32 two-byte characters would be 64 bytes but are refused for
    /// their characters anyway; 65 ASCII bytes are refused for the length.
    @Test func lengthIsCountedInBytes() {
        #expect(validateSessionID(String(repeating: "é", count: 33)) == "session id must be 1 to 64 characters")
    }
}
