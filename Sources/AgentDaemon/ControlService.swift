import AgentSupport
import Logging
import ServiceLifecycle

/// The control socket as a `Service`: bound first (the capture loop starts once it is, so a
/// daemon that captures answers it), served until a graceful shutdown, which closes it before
/// the capture loop drains. A socket that cannot be made is said once; the daemon runs on
/// without it.
struct ControlService: Service {
    let handler: DaemonControl
    let directory: TrustedDirectory
    let group: String?
    let logger: Logger
    /// Reached once the socket is bound, or could not be.
    let bound: Readiness

    func run() async {
        var server: ControlServer?
        do {
            server = try ControlServer(directory: directory, group: group, handler: handler, logger: logger)
            server?.start()
        } catch {
            logger.error("\(error.message): sessions can be started as root only")
        }
        bound.reach()
        try? await gracefulShutdown()
        server?.stop()
    }
}
