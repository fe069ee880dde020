/// A record as rules see it, live (built from kernel records by the daemon) or replayed
/// (built from NDJSON). Implementations compute values lazily; `value` is called only for
/// fields some loaded rule uses: once per field and record for the conditions, and again for
/// the fields of an alert's message when one is raised.
package protocol RuleInput {
    /// The record type, as rules name it: "file.open".
    var typeName: String { get }
    var seq: UInt64 { get }
    /// Record time, Unix ns: every rule window runs on it, never on the wall clock.
    var timeNs: Int64 { get }
    var sessionID: String { get }
    /// What `~` means for this record's session (usually one home; may be empty).
    var homes: [String] { get }
    /// The field's value, or nil when the record does not carry it.
    func value(_ field: Field) -> RuleValue?
}
