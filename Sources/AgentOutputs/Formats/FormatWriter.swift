import AgentRecords
import Glibc

/// Writes one nested JSON object into a `ByteSink`, placing commas itself. An object opened
/// with `open` appears only once a member is written into it, so a mapping can open
/// `"process":{` for fields that may all turn out absent without leaving `{}` behind.
struct FormatWriter {
    var j = ByteSink()

    private struct Frame {
        var key: StaticString
        var written: Bool
        var members: Int
    }
    private var frames: [Frame] = []
    /// Frames below this index are written.
    private var writtenDepth = 0

    init() { frames.reserveCapacity(16) }

    // MARK: structure

    /// Starts a record in the emptied sink.
    mutating func begin() {
        j.removeAll()
        frames.removeAll(keepingCapacity: true)
        j.byte(UInt8(ascii: "{"))
        frames.append(Frame(key: "", written: true, members: 0))
        writtenDepth = 1
    }

    mutating func end() {
        while frames.count > 1 { close() }
        frames.removeAll(keepingCapacity: true)
        writtenDepth = 0
        j.byte(UInt8(ascii: "}"))
    }

    /// `"name":{`, written when its first member is.
    mutating func open(_ name: StaticString) {
        frames.append(Frame(key: name, written: false, members: 0))
    }

    mutating func close() {
        let f = frames.removeLast()
        if f.written {
            j.byte(UInt8(ascii: "}"))
            writtenDepth = frames.count
        }
    }

    /// Writes the pending opens above the innermost written object.
    @inline(__always)
    private mutating func materialize() {
        while writtenDepth < frames.count {
            separate(writtenDepth - 1)
            j.key(frames[writtenDepth].key)
            j.byte(UInt8(ascii: "{"))
            frames[writtenDepth].written = true
            writtenDepth += 1
        }
    }

    @inline(__always)
    private mutating func separate(_ depth: Int) {
        if frames[depth].members != 0 { j.byte(UInt8(ascii: ",")) }
        frames[depth].members += 1
    }

    /// `"name":` in the innermost object.
    @inline(__always)
    mutating func key(_ name: StaticString) {
        materialize()
        separate(frames.count - 1)
        j.key(name)
    }

    /// A member name from bytes (escaped like any string), then `:`.
    mutating func key(bytes name: UnsafeRawBufferPointer) {
        materialize()
        separate(frames.count - 1)
        j.string(name)
        j.byte(UInt8(ascii: ":"))
    }

    /// A member name taken from a native object's key, re-escaped, then `:`.
    mutating func copyKey(_ line: inout FormatInput, _ name: JSONSpan) {
        materialize()
        separate(frames.count - 1)
        copyValue(&line, name)
        j.byte(UInt8(ascii: ":"))
    }

    /// Members already rendered as `"a":1,"b":2` (no braces).
    mutating func members(_ rendered: [UInt8]) {
        guard !rendered.isEmpty else { return }
        materialize()
        separate(frames.count - 1)
        j.append(rendered)
    }

    /// `"name":[` ... `arrayEnd()`; elements through `element()`.
    mutating func array(_ name: StaticString) {
        key(name)
        j.byte(UInt8(ascii: "["))
        frames.append(Frame(key: "", written: true, members: 0))
        writtenDepth = frames.count
    }

    /// Before each array element.
    @inline(__always)
    mutating func element() {
        separate(frames.count - 1)
    }

    /// An object as the next array element; `close()` it.
    mutating func elementObject() {
        element()
        j.byte(UInt8(ascii: "{"))
        frames.append(Frame(key: "", written: true, members: 0))
        writtenDepth = frames.count
    }

    mutating func arrayEnd() {
        frames.removeLast()
        writtenDepth = frames.count
        j.byte(UInt8(ascii: "]"))
    }

    // MARK: members with values

    mutating func string(_ name: StaticString, _ value: StaticString) {
        key(name)
        j.byte(UInt8(ascii: "\""))
        j.raw(value)
        j.byte(UInt8(ascii: "\""))
    }

    mutating func string(_ name: StaticString, bytes value: UnsafeRawBufferPointer) {
        key(name)
        j.string(value)
    }

    mutating func uint(_ name: StaticString, _ value: UInt64) {
        key(name)
        j.uint(value)
    }

    mutating func int(_ name: StaticString, _ value: Int64) {
        key(name)
        j.int(value)
    }

    mutating func bool(_ name: StaticString, _ value: Bool) {
        key(name)
        j.bool(value)
    }

    /// A number as a JSON string ("1000"): ECS keeps ids as keywords.
    mutating func uintString(_ name: StaticString, _ value: UInt64) {
        key(name)
        j.byte(UInt8(ascii: "\""))
        j.uint(value)
        j.byte(UInt8(ascii: "\""))
    }

    // MARK: native values

    /// The native field's value, strings re-escaped (`JSONBuffer.string`'s scheme), numbers
    /// and literals as they are, arrays and objects member by member. Nothing when absent.
    mutating func copy(_ name: StaticString, _ line: inout FormatInput, _ f: RecordField) {
        guard line.has(f) else { return }
        key(name)
        copyValue(&line, line.value(f))
    }

    /// Each present field as a member named as in the native record.
    mutating func copy(_ line: inout FormatInput, _ fields: [RecordField]) {
        for f in fields { copy(f.key, &line, f) }
    }

    /// `"name":{...}` with each present field named as in the native record (nothing when none is).
    mutating func copy(_ name: StaticString, _ line: inout FormatInput, _ fields: [RecordField]) {
        open(name)
        copy(&line, fields)
        close()
    }

    /// A native string field's value as a string member.
    mutating func copyString(_ name: StaticString, _ line: inout FormatInput, _ f: RecordField) {
        let v = line.value(f)
        guard v.kind == .string else { return }
        key(name)
        copyValue(&line, v)
    }

    /// A native number field as a string member ("1000").
    mutating func copyNumberString(_ name: StaticString, _ line: FormatInput, _ f: RecordField) {
        let v = line.value(f)
        guard v.kind == .number else { return }
        key(name)
        j.byte(UInt8(ascii: "\""))
        j.append(line.raw(v))
        j.byte(UInt8(ascii: "\""))
    }

    mutating func copyValue(_ line: inout FormatInput, _ v: JSONSpan) {
        switch v.kind {
        case .string:
            if v.plain {
                j.append(line.raw(v))
            } else {
                line.withString(v) { j.string($0) }
            }
        case .array, .object:
            copyContainer(&line, v)
        case .number, .bool, .null:
            j.append(line.raw(v))
        case .absent:
            j.raw("null")
        }
    }

    private mutating func copyContainer(_ line: inout FormatInput, _ v: JSONSpan) {
        j.byte(v.kind == .object ? UInt8(ascii: "{") : UInt8(ascii: "["))
        var first = true
        FormatInput.forEach(v, in: line.bytes) { key, e in
            if !first { j.byte(UInt8(ascii: ",")) }
            first = false
            if let key {
                copyValue(&line, key)
                j.byte(UInt8(ascii: ":"))
            }
            copyValue(&line, e)
        }
        j.byte(v.kind == .object ? UInt8(ascii: "}") : UInt8(ascii: "]"))
    }
}
