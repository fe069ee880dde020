/// The `session` member every session record carries: `"session":{"id":..,"cgroup":..,"labels":{..}}`.
package enum SessionObject {
    /// Rendered once per session; the recorder copies it into each of the session's records.
    package static func render(id: String, cgroup: String, labels: [(key: String, value: String)]) -> [UInt8] {
        var j = JSONBuffer(capacity: 256)
        j.key("session")
        j.byte(UInt8(ascii: "{"))
        j.key("id"); j.string(id)
        j.raw(","); j.key("cgroup"); j.string(cgroup)
        j.raw(","); j.key("labels"); j.byte(UInt8(ascii: "{"))
        for (i, l) in labels.enumerated() {
            if i > 0 { j.raw(",") }
            j.string(l.key); j.raw(":"); j.string(l.value)
        }
        j.raw("}}")
        return j.bytes
    }
}
