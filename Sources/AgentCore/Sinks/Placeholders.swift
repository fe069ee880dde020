// Placeholders until the syslog and formats branches merge; removed at the merge.
extension OutputFormat {
    public func makeFormatter() -> any RecordFormatter { NativeFormatter() }
}
public final class SyslogDestination: RecordDestination {
    public init(settings: SyslogSettings, formatter: any RecordFormatter) {}
    public static func facilityCode(_ name: String) -> Int? { 1 }
    public var description: String { "syslog" }
    public func open() throws(AgentError) { throw AgentError("placeholder") }
    public func deliver(_ lines: UnsafeRawBufferPointer) throws(DeliveryFailure) { throw DeliveryFailure(delivered: 0, reason: "placeholder") }
    public func flush() throws(DeliveryFailure) {}
    public func close() {}
}
