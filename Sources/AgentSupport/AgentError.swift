/// An error the daemon reports to the person running it: one line that says what to do.
public struct AgentError: Error, CustomStringConvertible {
    package let message: String
    package init(_ message: String) { self.message = message }
    public var description: String { message }
}
