/// UTF-8 well-formedness, byte by byte: what the JSON writer, the log escaper and the JSON reader
/// agree a valid sequence is. Inlinable: it runs for every non-ASCII byte of every record.
package enum UTF8Validation {
    /// Length of the well-formed UTF-8 sequence starting at `i` (Unicode table 3-7), or 0.
    @inlinable @inline(__always)
    package static func sequenceLength(_ s: UnsafeRawBufferPointer, at i: Int) -> Int {
        let n = s.count
        let b0 = s[i]
        @inline(__always) func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
            k < n && s[k] >= lo && s[k] <= hi
        }
        switch b0 {
        case 0xC2...0xDF:
            return cont(i + 1) ? 2 : 0
        case 0xE0:
            return cont(i + 1, 0xA0, 0xBF) && cont(i + 2) ? 3 : 0
        case 0xE1...0xEC, 0xEE...0xEF:
            return cont(i + 1) && cont(i + 2) ? 3 : 0
        case 0xED:
            return cont(i + 1, 0x80, 0x9F) && cont(i + 2) ? 3 : 0
        case 0xF0:
            return cont(i + 1, 0x90, 0xBF) && cont(i + 2) && cont(i + 3) ? 4 : 0
        case 0xF1...0xF3:
            return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0
        case 0xF4:
            return cont(i + 1, 0x80, 0x8F) && cont(i + 2) && cont(i + 3) ? 4 : 0
        default:
            return 0
        }
    }
}
