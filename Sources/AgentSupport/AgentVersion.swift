/// agentwatch's version, as `agent.start`, the OCSF metadata and `--version` give it.
package enum AgentVersion {
    package static let string = "0.1.0"
}
