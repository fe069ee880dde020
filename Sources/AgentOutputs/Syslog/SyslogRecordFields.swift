import AgentRecords

/// The fields of a native v1 record line that a syslog header carries, found by one pass of
/// the JSON reader over the line through the catalogue's table (`RecordField.table`): byte
/// ranges of the line, string values without their quotes and still JSON-escaped (`decode`
/// reads them). The pass checks what it reads and ends once it has what the header needs (for
/// most records before `process`, the bulk of the line; a record without a session is read to
/// its end), so a malformed line only leaves fields missing.
struct SyslogRecordFields {
    let line: UnsafeRawBufferPointer
    var seq: Range<Int>?
    var time: Range<Int>?
    package var type: Range<Int>?
    var hostName: Range<Int>?
    var sessionID: Range<Int>?
    var ruleID: Range<Int>?
    var severity: Range<Int>?

    /// `spans` is the pass's scratch, kept by the caller from line to line.
    init(scanning line: UnsafeRawBufferPointer, spans: inout [JSONSpan]) {
        self.line = line
        let alert = RecordType.alert.name
        func has(_ s: UnsafeBufferPointer<JSONSpan>, _ f: RecordField) -> Bool { s[f.rawValue].kind == .string }
        _ = RecordField.table.read(line, limits: .output, into: &spans) { s in
            guard s[RecordField.seq.rawValue].kind == .number, has(s, .time), has(s, .type), has(s, .hostName), has(s, .sessionID) else {
                return false
            }
            let type = s[RecordField.type.rawValue]
            let isAlert = type.end - type.start - 2 == alert.utf8CodeUnitCount
                && line[type.contents].elementsEqual(UnsafeRawBufferPointer(start: alert.utf8Start, count: alert.utf8CodeUnitCount))
            return !isAlert || (has(s, .ruleID) && has(s, .ruleSeverity))
        }
        func string(_ f: RecordField) -> Range<Int>? {
            spans[f.rawValue].kind == .string ? spans[f.rawValue].contents : nil
        }
        let s = spans[RecordField.seq.rawValue]
        seq = s.kind == .number && s.integer && !s.negative ? Int(s.start)..<Int(s.end) : nil
        time = string(.time)
        type = string(.type)
        hostName = string(.hostName)
        sessionID = string(.sessionID)
        ruleID = string(.ruleID)
        severity = string(.ruleSeverity)
    }

    /// The bytes of range `r` of the line.
    func bytes(_ r: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: line[r]) }

    /// Appends the decoded bytes of a string's contents (`r` as found) to `out`. Characters a
    /// syslog header field must not carry (control characters, and the `\udcXX` escapes that
    /// stand for bytes that are not UTF-8) become U+FFFD.
    func decode(_ r: Range<Int>, into out: inout [UInt8]) {
        JSONReading.appendString(line, from: r.lowerBound, to: r.upperBound, into: &out, controls: .replace)
    }
}
