/// An error the daemon reports to the person running it: one line that says what to do.
package struct AgentError: Error, CustomStringConvertible {
    package let message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}
