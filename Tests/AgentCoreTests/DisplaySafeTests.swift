import AgentDetector
import AgentOutputs
import AgentSessions
import AgentSupport
import Logging
import Synchronization
import Testing

/// What a watched agent names (session ids, labels, paths, cgroup names) reaches the journal
/// and terminals escaped: it cannot end a line, move the cursor or reorder what is shown.
@Suite("Escaping for logs and terminals")
struct DisplaySafeTests {
    @Test(arguments: [
        ("plain-id_1.2", "plain-id_1.2"),
        ("a b", "a b"),
        ("x\n2026-12-01T00:00:00+0000 info agentwatch: [AgentCore] session victim ended", "x\\x0a2026-12-01T00:00:00+0000 info agentwatch: [AgentCore] session victim ended"),
        ("cr\rover", "cr\\x0dover"),
        ("esc\u{1B}[2Jclear", "esc\\x1b[2Jclear"),
        ("tab\there", "tab\\x09here"),
        ("del\u{7F}", "del\\x7f"),
        ("c1\u{85}nel\u{9B}csi", "c1\\u{85}nel\\u{9b}csi"),
        ("evil\u{202E}txt.exe", "evil\\u{202e}txt.exe"),
        ("iso\u{2066}late\u{2069}", "iso\\u{2066}late\\u{2069}"),
        ("zero\u{200B}width\u{FEFF}", "zero\\u{200b}width\\u{feff}"),
        ("line\u{2028}sep", "line\\u{2028}sep"),
        ("back\\slash", "back\\\\slash"),
        ("café 😀", "café 😀"),
    ])
    func escapes(_ input: String, _ expected: String) {
        let out = input.displaySafe
        #expect(out == expected)
        #expect(!out.unicodeScalars.contains { DisplayText.isControl($0.value) })
    }

    @Test("the escaping can be undone: distinct inputs stay distinct")
    func injective() {
        let inputs = ["\\x0a", "\n", "\\\n", "\\\\x0a", "\u{202E}", "\\u{202e}"]
        let outs = Set(inputs.map(\.displaySafe))
        #expect(outs.count == inputs.count)
    }

    /// Collects what the wrapped handler is given.
    final class Collected: @unchecked Sendable {
        let lines = Mutex<[String]>([])
    }

    struct CollectingHandler: LogHandler {
        let sink: Collected
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let meta = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            sink.lines.withLock { $0.append(event.message.description + (meta.isEmpty ? "" : " " + meta)) }
        }
    }

    @Test("the daemon's log handler escapes whatever a call site interpolates, message and metadata")
    func logHandler() {
        let sink = Collected()
        let logger = Logger(label: "t") { _ in DisplaySafeLogHandler(wrapping: CollectingHandler(sink: sink)) }
        let id = "x\n2026-12-01T22:00:00+0000 info agentwatch: [AgentCore] session victim ended"
        logger.warning("refused: process 7 of session s asked to start session \(id)", metadata: ["label": "\u{1B}]0;title\u{07}"])
        let lines = sink.lines.withLock { $0 }
        #expect(lines.count == 1)
        #expect(!lines[0].contains("\n"))
        #expect(lines[0].contains("session x\\x0a2026-12-01T22:00:00+0000 info agentwatch"))
        #expect(lines[0].contains("label=\\x1b]0;title\\x07"))
    }

    @Test("labels may not hold C0, C1, bidi or invisible format characters")
    func labels() {
        #expect(validateLabel("k=ok value") == nil)
        for bad in ["k=a\u{85}b", "k=\u{202E}gpj", "k=x\u{200F}", "k=\u{9B}31m", "k=a\nb"] {
            #expect(validateLabel(bad) != nil, "\(bad.debugDescription)")
        }
    }

    @Test("a session directory's name becomes an id: itself when valid, else escaped, reversibly, never a valid id",
          arguments: [
            Array("run-1".utf8), Array("a b".utf8), Array(".hidden".utf8), Array("..x".utf8), [0x78, 0xFF, 0x1B, 0x5B],
            Array("100%".utf8), Array("café".utf8), Array(repeating: UInt8(ascii: "z"), count: 65), Array("a%20b".utf8),
          ])
    func sessionIDs(_ name: [UInt8]) {
        let id = sessionID(directoryName: name)
        #expect(sessionDirectoryName(id: id) == name)
        let plain = !name.isEmpty && name[0] != UInt8(ascii: ".")
            && name.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }
        #expect((id == String(decoding: name, as: UTF8.self)) == plain)
        if !plain { #expect(validateSessionID(id) != nil && id.contains("%")) }
        #expect(id.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F })
    }
}
