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

    func ask(_ op: String) throws -> [String: Any] {
        do {
            let settings: DaemonConfig = try config.map { p throws(AgentError) in try DaemonConfig.load(path: p) } ?? DaemonConfig()
            let answer = try ControlServer.request(["op": op], path: settings.runtimeDir + "/control.sock")
            guard answer["ok"] as? Bool == true else { throw AgentError(answer["error"] as? String ?? "the daemon said no") }
            if json, let data = try? JSONSerialization.data(withJSONObject: answer, options: [.sortedKeys, .prettyPrinted]) {
                print(String(decoding: data, as: UTF8.self))
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
        let answer = try options.ask("sessions")
        if options.json { return }
        let list = answer["sessions"] as? [[String: Any]] ?? []
        if list.isEmpty { print("no sessions"); return }
        print("SESSION".padding(toLength: 24, withPad: " ", startingAt: 0) + "UID".padding(toLength: 8, withPad: " ", startingAt: 0) + "STARTED (UTC)".padding(toLength: 22, withPad: " ", startingAt: 0) + "LABELS")
        for s in list {
            let start = Double((s["start_ns"] as? Int) ?? 0) / 1e9
            let f = DateFormatter()
            f.dateFormat = "yyyy-MM-dd HH:mm:ss"
            f.timeZone = TimeZone(identifier: "UTC")
            // What the daemon lists was named by the sessions themselves: escaped for the terminal.
            let labels = (s["labels"] as? [String: String] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key.displaySafe)=\($0.value.displaySafe)" }.joined(separator: " ")
            print(((s["id"] as? String) ?? "?").displaySafe.padding(toLength: 24, withPad: " ", startingAt: 0)
                  + String((s["uid"] as? Int) ?? -1).padding(toLength: 8, withPad: " ", startingAt: 0)
                  + f.string(from: Date(timeIntervalSince1970: start)).padding(toLength: 22, withPad: " ", startingAt: 0) + labels)
        }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "The daemon's counters: sessions, records, losses, outputs.")

    @OptionGroup var options: ControlOptions

    func run() throws {
        let a = try options.ask("status")
        if options.json { return }
        print("agentwatch \(a["version"] as? String ?? "?") (pid \(a["pid"] as? Int ?? 0)): \(a["sessions"] as? Int ?? 0) sessions, \(a["processes"] as? Int ?? 0) processes, syscall hooks \((a["syscall_hooks"] as? Bool ?? false) ? "attached" : "detached")")
        print("records \(a["records"] as? Int ?? 0), lost in the kernel \(a["kernel_dropped"] as? Int ?? 0), undecodable \(a["decode_rejected"] as? Int ?? 0)")
        for o in a["outputs"] as? [[String: Any]] ?? [] {
            let err = (o["last_error"] as? String).flatMap { $0.isEmpty ? nil : $0 }
            print("output \(o["name"] as? String ?? "?") → \(o["destination"] as? String ?? "?"): \(o["records"] as? Int ?? 0) records, backlog \(o["backlog_bytes"] as? Int ?? 0) B, spooled \(o["spooled_bytes"] as? Int ?? 0) B\(err.map { ", last error: \($0)" } ?? "")")
        }
    }
}
