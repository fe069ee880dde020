/// The bounds of one JSON read, and what its strings may hold beyond RFC 8259. Every record
/// line read back is untrusted (a capture, a damaged file): within these bounds a hostile line
/// costs time linear in its length and memory within the bounds, and is refused with a
/// `JSONReadError` saying what and where.
package struct JSONLimits: Sendable {
    /// Longest text read.
    package var maxBytes: Int
    /// Deepest nesting of objects and arrays (the top-level value is at depth 0).
    package var maxDepth: Int
    /// Longest string, in bytes between its quotes.
    package var maxStringBytes: Int
    /// Longest number, in characters.
    package var maxNumberBytes: Int
    /// Most values in one text, member names counted.
    package var maxValues: Int
    package var strings: JSONStringRule

    package init(maxBytes: Int, maxDepth: Int, maxStringBytes: Int, maxNumberBytes: Int, maxValues: Int, strings: JSONStringRule) {
        self.maxBytes = maxBytes
        self.maxDepth = maxDepth
        self.maxStringBytes = maxStringBytes
        self.maxNumberBytes = maxNumberBytes
        self.maxValues = maxValues
        self.strings = strings
    }

    /// A record line of a capture (replay, verify, rule input). Records nest four levels and
    /// carry about a hundred values (argv of a few thousand at most); lines are at most
    /// 4 MiB (`ChainVerifier.maxLineBytes`). The node array stays within 5 MiB.
    package static let capture = JSONLimits(maxBytes: 4 << 20, maxDepth: 64, maxStringBytes: 4 << 20, maxNumberBytes: 256,
                                            maxValues: 1 << 18, strings: .utf8)

    /// A record line an output renders (ECS, OCSF, syslog headers): native lines go three deep
    /// and stay far below 1 MiB (argv is at most 16 KiB of bytes).
    package static let output = JSONLimits(maxBytes: 1 << 20, maxDepth: 12, maxStringBytes: 1 << 20, maxNumberBytes: 256,
                                           maxValues: 1 << 20, strings: .bytes)
}

/// What a string may hold besides RFC 8259's grammar.
package enum JSONStringRule: Sendable {
    /// Raw bytes must be valid UTF-8; any `\u` escape is taken (a lone surrogate reads back as
    /// U+FFFD, `\udcXX` as the byte XX: `JSONReading.appendString`).
    case utf8
    /// Strings stand for bytes, as the record format writes them: raw bytes that are not UTF-8
    /// are taken as they are (a line not written by the Recorder), and every escape must stand
    /// for bytes (a lone surrogate other than `\udc80`-`\udcff` is refused).
    case bytes
}

/// Why a JSON text was refused, and at which byte.
package struct JSONReadError: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Reason: Sendable, Equatable {
        case empty
        case tooLong(limit: Int)
        /// The text ends inside a value, a string, an object or an array.
        case truncated(JSONReadError.Inside)
        case unexpectedByte(UInt8)
        case expectedMemberName
        case expectedColon
        case expectedSeparator(object: Bool)
        case badEscape
        case badUnicodeEscape
        case loneSurrogate
        case controlCharacter(UInt8)
        case invalidUTF8
        case badNumber
        case unknownLiteral(JSONReadError.Literal)
        case tooDeep(limit: Int)
        case tooManyValues(limit: Int)
        case stringTooLong(limit: Int)
        case numberTooLong(limit: Int)
        case trailingText
    }

    package enum Inside: Sendable, Equatable { case value, string, object, array }
    package enum Literal: Sendable, Equatable { case `true`, `false`, null }

    package let reason: Reason
    /// Where reading stopped: the byte's offset from the start of the text.
    package let offset: Int

    package init(_ reason: Reason, at offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    /// What is wrong, in the words `replay` shows (`malformed record: ... (byte N)`).
    package var message: String {
        switch reason {
        case .empty: "empty line"
        case .tooLong(let limit): "line longer than \(limit) bytes"
        case .truncated(.value): "the line ends inside a value (truncated?)"
        case .truncated(.string): "the line ends inside a string (truncated?)"
        case .truncated(.object): "the line ends inside an object (truncated?)"
        case .truncated(.array): "the line ends inside an array (truncated?)"
        case .unexpectedByte(let b): "unexpected byte 0x\(String(b, radix: 16)) where a value should be"
        case .expectedMemberName: "expected a member name"
        case .expectedColon: "expected ':' after a member name"
        case .expectedSeparator(let object): object ? "expected ',' or '}'" : "expected ',' or ']'"
        case .badEscape: "bad escape in a string"
        case .badUnicodeEscape: "bad \\u escape in a string"
        case .loneSurrogate: "a \\u escape in a string stands for no bytes (a lone surrogate)"
        case .controlCharacter(let c): "raw control character 0x\(String(c, radix: 16)) in a string"
        case .invalidUTF8: "invalid UTF-8 in a string"
        case .badNumber: "bad number"
        case .unknownLiteral(let l): "unknown literal (expected \(l == .true ? "true" : l == .false ? "false" : "null"))"
        case .tooDeep(let limit): "nested deeper than \(limit) levels"
        case .tooManyValues(let limit): "more than \(limit) values in one record"
        case .stringTooLong(let limit): "a string longer than \(limit) bytes"
        case .numberTooLong(let limit): "a number longer than \(limit) characters"
        case .trailingText: "text after the JSON value"
        }
    }

    package var description: String { "\(message) (byte \(offset + 1))" }
}
