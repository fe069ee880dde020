import AgentDaemon
import AgentSupport
import ArgumentParser
import Foundation
import Glibc

/// `agentwatch sessions` and `agentwatch status`: what the running daemon says over its control
/// socket (root or the agentwatch group).
struct ControlOptions: ParsableArguments {
    @Option(name: .long, help: "Config file, for runtime_dir (where control.sock is).")
    var config: String?

    @Flag(help: "Print the daemon's answer as JSON.")
    var json = false

    /// Asks the daemon with `ask` (given the socket's path); with `--json`, prints the answer.
    func ask<Payload>(_ op: String, _ ask: (String) throws(AgentError) -> ControlReply<Payload>) throws -> Payload {
        do {
            let settings: DaemonConfig = try config.map { p throws(AgentError) in try DaemonConfig.load(path: p) } ?? DaemonConfig()
            let reply = try ask(settings.runtimeDir + "/control.sock")
            let answer: Payload
            do { answer = try reply.get() } catch { throw AgentError(error.message) }
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.sortedKeys, .prettyPrinted]
                if let data = try? e.encode(reply) { print(String(decoding: data, as: UTF8.self)) }
            }
            return answer
        } catch let error as AgentError {
            FileHandleStderr.write("agentwatch \(op): \(error.message)\n")
            throw ExitCode(1)
        }
    }
}

struct SessionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sessions", abstract: "List the live sessions the daemon watches.")

    @OptionGroup var options: ControlOptions

    func run() throws {
        let list = try options.ask("sessions") { path throws(AgentError) in try ControlClient.sessions(path: path) }.sessions
        if options.json { return }
        if list.isEmpty { print("no sessions"); return }
        print("SESSION".padding(toLength: 24, withPad: " ", startingAt: 0) + "UID".padding(toLength: 8, withPad: " ", startingAt: 0) + "STARTED (UTC)".padding(toLength: 22, withPad: " ", startingAt: 0) + "LABELS")
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        f.timeZone = TimeZone(identifier: "UTC")
        for s in list {
            // What the daemon lists was named by the sessions themselves: escaped for the terminal.
            let labels = s.labels.sorted { $0.key < $1.key }.map { "\($0.key.displaySafe)=\($0.value.displaySafe)" }.joined(separator: " ")
            print(s.id.displaySafe.padding(toLength: 24, withPad: " ", startingAt: 0)
                  + String(s.uid).padding(toLength: 8, withPad: " ", startingAt: 0)
                  + f.string(from: Date(timeIntervalSince1970: Double(s.startNs) / 1e9)).padding(toLength: 22, withPad: " ", startingAt: 0) + labels)
        }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "The daemon's counters: sessions, records, losses, outputs.")

    @OptionGroup var options: ControlOptions

    func run() throws {
        let a = try options.ask("status") { path throws(AgentError) in try ControlClient.status(path: path) }
        if options.json { return }
        print("agentwatch \(a.version) (pid \(a.pid)): \(a.sessions) sessions, \(a.processes) processes, syscall hooks \(a.syscallHooks ? "attached" : "detached")")
        print("records \(a.records), lost in the kernel \(a.kernelDropped), undecodable \(a.decodeRejected)")
        if let t = a.throttle {
            print("throttle: \(t.pauses) pauses, \(t.pausedMs) ms paused, \(t.pausedNow) sessions paused now\(t.forcedResumes > 0 ? ", \(t.forcedResumes) resumed undrained" : "")")
        }
        for o in a.outputs {
            let err = o.lastError.isEmpty ? nil : o.lastError
            print("output \(o.name) → \(o.destination): \(o.records) records, backlog \(o.backlogBytes) B, spooled \(o.spooledBytes) B\(err.map { ", last error: \($0)" } ?? "")")
        }
    }
}
