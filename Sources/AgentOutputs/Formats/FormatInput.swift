import AgentRecords
import Glibc

/// A native v1 record line as the ECS and OCSF formatters read it: one pass of the JSON reader
/// checks the whole line (bounded by `JSONLimits.output`) and notes in the catalogue's table
/// (`RecordField.table`) where each field lies. Nothing is copied and nothing is allocated once
/// the tables exist; a value is decoded only when a formatter asks for it.
///
/// The line is untrusted: anything that is not JSON, a field of the wrong JSON type, a
/// duplicated field, a string escape that cannot stand for bytes, or a time not in the native
/// format makes `read` return false. Members the catalogue does not know are checked and skipped.
struct FormatInput {
    private(set) var values: [JSONSpan]
    /// The line being read; valid only during the formatter's `render`.
    private(set) var bytes = UnsafeRawBufferPointer(start: nil, count: 0)
    private(set) var type: RecordType? = nil
    /// Decoded strings land here (reused).
    private var scratch: [UInt8] = []

    init() {
        values = [JSONSpan](repeating: JSONSpan(), count: RecordField.table.count)
        scratch.reserveCapacity(4096)
    }

    // MARK: reading

    /// Reads `line`; false when it is not a native record the formatters can read.
    mutating func read(_ line: UnsafeRawBufferPointer) -> Bool {
        type = nil
        bytes = line
        guard line.baseAddress != nil, RecordField.table.read(line, limits: .output, into: &values),
              values[RecordField.time.rawValue].kind == .string,
              values[RecordField.seq.rawValue].kind == .number, !values[RecordField.seq.rawValue].negative
        else { return false }
        type = recordType()
        return type != nil
    }

    /// Record type names (`RecordType.allCases` builds a new array each time).
    private static let typeNames: [(RecordType, StaticString)] = RecordType.allCases.map { ($0, $0.name) }

    private func recordType() -> RecordType? {
        let v = values[RecordField.type.rawValue]
        guard v.kind == .string, v.plain else { return nil }
        let name = UnsafeRawBufferPointer(rebasing: bytes[v.contents])
        for (t, text) in Self.typeNames where text.utf8CodeUnitCount == name.count && memcmp(text.utf8Start, name.baseAddress!, name.count) == 0 {
            return t
        }
        return nil
    }

    // MARK: values

    @inline(__always)
    func has(_ f: RecordField) -> Bool { values[f.rawValue].kind != .absent }

    @inline(__always)
    func value(_ f: RecordField) -> JSONSpan { values[f.rawValue] }

    /// The value's text as it stands in the line (for a string: with its quotes).
    @inline(__always)
    func raw(_ v: JSONSpan) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[Int(v.start)..<Int(v.end)])
    }

    func uint(_ f: RecordField) -> UInt64? {
        let v = values[f.rawValue]
        return v.kind == .number && !v.negative ? v.magnitude : nil
    }

    func int(_ f: RecordField) -> Int64? {
        let v = values[f.rawValue]
        guard v.kind == .number else { return nil }
        if v.negative { return v.magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- v.magnitude) : nil }
        return v.magnitude <= UInt64(Int64.max) ? Int64(v.magnitude) : nil
    }

    func bool(_ f: RecordField) -> Bool? {
        let v = values[f.rawValue]
        return v.kind == .bool ? v.bool : nil
    }

    /// The decoded bytes of a string field (`body` must not keep them).
    mutating func withString<R>(_ f: RecordField, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        let v = values[f.rawValue]
        guard v.kind == .string else { return nil }
        return withString(v, body)
    }

    mutating func withString<R>(_ v: JSONSpan, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if v.plain { return body(UnsafeRawBufferPointer(rebasing: bytes[v.contents])) }
        scratch.removeAll(keepingCapacity: true)
        Self.appendDecoded(v, in: bytes, to: &scratch)
        return scratch.withUnsafeBytes(body)
    }

    /// Appends the decoded bytes of string `v` of `bytes` to `out`.
    static func appendDecoded(_ v: JSONSpan, in bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        guard v.kind == .string else { return }
        let r = v.contents
        if v.plain {
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[r]))
        } else {
            JSONReading.appendString(bytes, from: r.lowerBound, to: r.upperBound, into: &out)
        }
    }

    /// Whether a string field holds exactly `text`.
    func equals(_ f: RecordField, _ text: StaticString) -> Bool {
        let v = values[f.rawValue]
        guard v.kind == .string, v.plain else { return false }
        return text.withUTF8Buffer { UnsafeRawBufferPointer(rebasing: bytes[v.contents]).elementsEqual(UnsafeRawBufferPointer($0)) }
    }

    /// Whether an array field has a string element that is exactly `text`.
    func contains(_ f: RecordField, _ text: StaticString) -> Bool {
        var found = false
        text.withUTF8Buffer { t in
            Self.forEach(values[f.rawValue], in: bytes) { _, e in
                if !found, e.kind == .string, e.plain, UnsafeRawBufferPointer(rebasing: bytes[e.contents]).elementsEqual(UnsafeRawBufferPointer(t)) {
                    found = true
                }
            }
        }
        return found
    }

    /// The elements of an array field, or the members of an object field (`key` is the
    /// member's name, nil for an array element), in order.
    func forEach(_ f: RecordField, _ body: (_ key: JSONSpan?, _ value: JSONSpan) -> Void) {
        Self.forEach(values[f.rawValue], in: bytes, body)
    }

    /// The elements or members of a checked array or object `v` of `bytes`.
    static func forEach(_ v: JSONSpan, in bytes: UnsafeRawBufferPointer, _ body: (_ key: JSONSpan?, _ value: JSONSpan) -> Void) {
        JSONReader.forEach(v, in: bytes, limits: .output, body)
    }

    /// Unix time in ns of a native time string value (`JSONReading.unixNanoseconds`).
    static func unixNanoseconds(_ p: UnsafeRawBufferPointer, _ v: JSONSpan) -> Int64? {
        guard v.kind == .string, v.plain else { return nil }
        return JSONReading.unixNanoseconds(UnsafeRawBufferPointer(rebasing: p[v.contents]))
    }

    func unixNanoseconds(_ f: RecordField) -> Int64? {
        Self.unixNanoseconds(bytes, values[f.rawValue])
    }
}

extension RecordField {
    /// The details of an open that neither ECS nor OCSF has a field for.
    static let openDetails: [RecordField] = [
        .fileRequestedPath, .filePathTruncated, .fileVia, .fileDirfd, .fileFlags, .fileMode, .fileResult, .fileResultUnseen,
        .fileIA32, .fileFixedFile, .fileMountID, .fileKnownAs,
    ]
    /// The file's identity beside them, which ECS has fields for (`file.inode`, `file.device`)
    /// and OCSF does not.
    static let openIdentity: [RecordField] = [.fileInode, .fileDevice]
    static let openDetailsAndIdentity: [RecordField] = openDetails + openIdentity
    /// What an alert adds beyond its rule and message: the records that made it, the matches
    /// counted and not raised.
    static let alertDetails: [RecordField] = [.evidence, .suppressed]
}
