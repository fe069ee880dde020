import AgentRecords
import Foundation

extension JSONTree.View {
    /// The value as JSONSerialization would give it (String, Int, UInt64, Double, Bool, NSNull,
    /// [Any], [String: Any]): what `ChainVerifier.parse` hands to tests. A name that repeats
    /// keeps its first value, as `member` reads it.
    func foundation(_ i: Int) -> Any {
        let node = nodes[i]
        switch node.kind {
        case .string:
            return string(i)!
        case .number:
            if node.flag {
                if let v = int(i) { return Int(v) }
                if let v = uint(i) { return v }
            }
            return double(i) ?? 0.0
        case .bool:
            return node.flag
        case .null, .absent:
            return NSNull()
        case .array:
            return elements(i).map { foundation($0) }
        case .object:
            var out: [String: Any] = [:]
            forEachMember(i) { k, v in
                let key = string(k)!
                if out[key] == nil { out[key] = foundation(v) }
            }
            return out
        }
    }
}
