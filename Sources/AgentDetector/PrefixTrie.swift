/// Byte-string keys mapped to item numbers, laid out flat. Walking a value visits every item
/// whose key is a prefix of it, so a list of fifty globs or prefixes costs one walk down the
/// value's first bytes instead of fifty comparisons.
struct PrefixTrie: Sendable {
    /// Per node: its first edge and edge count, its first item and item count.
    private let edgeStart: [Int32]
    private let edgeCount: [Int32]
    private let itemStart: [Int32]
    private let itemCount: [Int32]
    private let edgeByte: [UInt8]
    private let edgeTarget: [Int32]
    private let items: [Int32]
    let isEmpty: Bool

    init(_ keys: [[UInt8]]) {
        // Build with per-node lists, then flatten so a walk reads plain arrays.
        var children: [[(UInt8, Int)]] = [[]]
        var nodeItems: [[Int32]] = [[]]
        for (index, key) in keys.enumerated() {
            var node = 0
            for byte in key {
                if let next = children[node].first(where: { $0.0 == byte })?.1 {
                    node = next
                } else {
                    children.append([])
                    nodeItems.append([])
                    children[node].append((byte, children.count - 1))
                    node = children.count - 1
                }
            }
            nodeItems[node].append(Int32(index))
        }
        var edgeStart: [Int32] = [], edgeCount: [Int32] = [], itemStart: [Int32] = [], itemCount: [Int32] = []
        var edgeByte: [UInt8] = [], edgeTarget: [Int32] = [], items: [Int32] = []
        for node in children.indices {
            edgeStart.append(Int32(edgeByte.count))
            edgeCount.append(Int32(children[node].count))
            for (byte, target) in children[node] {
                edgeByte.append(byte)
                edgeTarget.append(Int32(target))
            }
            itemStart.append(Int32(items.count))
            itemCount.append(Int32(nodeItems[node].count))
            items += nodeItems[node]
        }
        self.edgeStart = edgeStart
        self.edgeCount = edgeCount
        self.itemStart = itemStart
        self.itemCount = itemCount
        self.edgeByte = edgeByte
        self.edgeTarget = edgeTarget
        self.items = items
        isEmpty = keys.isEmpty
    }

    /// Calls `body` with each item whose key prefixes `value[from...]` (shortest keys first)
    /// until it returns true; returns whether one did.
    func walk(_ value: UnsafeBufferPointer<UInt8>, from: Int, caseInsensitive: Bool, _ body: (Int) -> Bool) -> Bool {
        var node = 0
        var i = from
        while true {
            let first = Int(itemStart[node])
            for k in first..<(first + Int(itemCount[node])) where body(Int(items[k])) { return true }
            guard i < value.count else { return false }
            let c = caseInsensitive ? foldASCII(value[i]) : value[i]
            let start = Int(edgeStart[node])
            var next = -1
            for e in start..<(start + Int(edgeCount[node])) where edgeByte[e] == c {
                next = Int(edgeTarget[e])
                break
            }
            guard next >= 0 else { return false }
            node = next
            i += 1
        }
    }
}
