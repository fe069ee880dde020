@testable import AgentOutputs
import Foundation
import Glibc

/// A real rsyslogd for the syslog tests, in a temporary directory of its own: a local socket,
/// UDP, TCP, TLS and mutual-TLS listeners on free loopback ports (certificates made with the
/// openssl CLI), each input writing what it receives to its own file, one line per message with
/// the header fields rsyslog parsed, tab-separated. Missing rsyslogd or openssl is an error:
/// the tests that use it fail, never skip.
final class RsyslogHarness {
    enum Input: String, CaseIterable {
        case unix, udp, tcp, tls, mtls
    }

    /// One message as rsyslog parsed it.
    struct Received {
        let pri: Int
        let timestamp: String
        let hostname: String
        let appName: String
        let procID: String
        let msgID: String
        let structuredData: String
        let msg: String

        /// The PARAM-NAME="PARAM-VALUE" pairs of the SD element, values unescaped.
        var params: [String: String] { RsyslogHarness.parseSD(structuredData) }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    let dir: String
    let unixSocket: String
    let udpPort: Int
    let tcpPort: Int
    let tlsPort: Int
    let mtlsPort: Int
    /// The CA that signed the server's certificate (for `localhost` and 127.0.0.1), one that did
    /// not, and a client certificate and key the mutual-TLS listener accepts.
    let caFile: String
    let otherCAFile: String
    let clientCert: String
    let clientKey: String

    static func rsyslogd() throws -> String {
        for p in ["/usr/sbin/rsyslogd", "/sbin/rsyslogd", "/usr/local/sbin/rsyslogd"] where access(p, X_OK) == 0 { return p }
        throw Failure("rsyslogd not found: the syslog tests need a real rsyslog; install rsyslog and rsyslog-openssl (packaging/install-deps.sh does)")
    }

    init() throws {
        let rsyslogd = try Self.rsyslogd()
        var template = Array("/tmp/aw-rsyslog-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else { throw Failure("mkdtemp: \(errnoText())") }
        dir = String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        unixSocket = dir + "/log.sock"
        udpPort = try Self.freePort(datagram: true)
        tcpPort = try Self.freePort(datagram: false)
        tlsPort = try Self.freePort(datagram: false)
        mtlsPort = try Self.freePort(datagram: false)
        caFile = dir + "/ca.pem"
        otherCAFile = dir + "/other-ca.pem"
        clientCert = dir + "/client.pem"
        clientKey = dir + "/client.key"
        mkdir(dir + "/work", 0o700)
        try makeCertificates()
        try writeConfig()
        // The configuration is checked first, so a mistake in it is named rather than a timeout.
        let check = try Self.run(rsyslogd, ["-N1", "-f", dir + "/rsyslog.conf"])
        guard check.status == 0 else { throw Failure("rsyslogd -N1 rejects the test configuration:\n\(check.output)") }
        try start()
    }

    deinit {
        stop()
        _ = try? Self.run("/bin/rm", ["-rf", dir])
    }

    /// rsyslogd's process id while it runs, else 0.
    private(set) var pid: pid_t = 0

    /// Starts rsyslogd in the foreground and waits (at most 10 s) until every input listens.
    /// posix_spawn with an empty signal mask: a test thread may block SIGTERM, and rsyslogd
    /// would inherit that and never stop.
    func start() throws {
        let rsyslogd = try Self.rsyslogd()
        let log = dir + "/rsyslogd.log"
        let args = [rsyslogd, "-n", "-f", dir + "/rsyslog.conf", "-i", dir + "/rsyslogd.pid"]
        var attr = posix_spawnattr_t()
        var actions = posix_spawn_file_actions_t()
        posix_spawnattr_init(&attr)
        posix_spawn_file_actions_init(&actions)
        defer {
            posix_spawnattr_destroy(&attr)
            posix_spawn_file_actions_destroy(&actions)
        }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var cargs = args.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, rsyslogd, &actions, &attr, &cargs, environ)
        guard rc == 0 else { throw Failure("cannot start \(rsyslogd): \(errnoText(rc))") }
        pid = child
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            var status: Int32 = 0
            if waitpid(child, &status, WNOHANG) == child {
                pid = 0
                break
            }
            if Self.listening(tcp: [tcpPort, tlsPort, mtlsPort], udp: [udpPort]) && access(unixSocket, F_OK) == 0 { return }
            usleep(50_000)
        }
        let text = self.log
        stop()
        throw Failure("rsyslogd did not listen on \(unixSocket), udp \(udpPort), tcp \(tcpPort), tls \(tlsPort), \(mtlsPort) within 10 s (is rsyslog-openssl installed?); its output:\n\(text)")
    }

    /// SIGTERM, and waits (at most 10 s, then SIGKILL) for it to exit.
    func stop() {
        guard pid > 0 else { return }
        let child = pid
        pid = 0
        kill(child, SIGCONT)
        kill(child, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        var status: Int32 = 0
        while waitpid(child, &status, WNOHANG) == 0 {
            if Date() > deadline {
                kill(child, SIGKILL)
                waitpid(child, &status, 0)
                return
            }
            usleep(20_000)
        }
    }

    /// Stops rsyslogd (SIGSTOP) now and lets it go on (SIGCONT) `seconds` later, from a
    /// thread of its own so the caller can go on sending. Returns when it will go on.
    func pause(seconds: Double) -> Date {
        let child = pid
        kill(child, SIGSTOP)
        Thread.detachNewThread {
            usleep(UInt32(seconds * 1_000_000))
            kill(child, SIGCONT)
        }
        return Date().addingTimeInterval(seconds)
    }

    /// Every message received on `input` so far, in the order rsyslog wrote them.
    func received(_ input: Input) -> [Received] {
        guard let data = FileManager.default.contents(atPath: "\(dir)/\(input.rawValue).out") else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).compactMap { line in
            let f = line.split(separator: "\t", maxSplits: 7, omittingEmptySubsequences: false).map(String.init)
            guard f.count == 8, let pri = Int(f[0]) else { return nil }
            return Received(pri: pri, timestamp: f[1], hostname: f[2], appName: f[3], procID: f[4], msgID: f[5], structuredData: f[6], msg: f[7])
        }
    }

    /// Waits until `input` has received `count` messages (or `seconds` passed, or nothing new
    /// came for `quiet` seconds), and returns what it received. While waiting it only counts
    /// the lines rsyslog appended, so a long wait costs rsyslog little CPU.
    func waitFor(_ input: Input, count: Int, seconds: Double = 30, quiet: Double = 10) -> [Received] {
        let deadline = Date().addingTimeInterval(seconds)
        var lines = 0
        var offset: UInt64 = 0
        var lastChange = Date()
        while lines < count && Date() < deadline && Date().timeIntervalSince(lastChange) < quiet {
            usleep(50_000)
            guard let file = FileHandle(forReadingAtPath: "\(dir)/\(input.rawValue).out") else { continue }
            file.seek(toFileOffset: offset)
            let data = file.readDataToEndOfFile()
            try? file.close()
            guard !data.isEmpty else { continue }
            offset += UInt64(data.count)
            lines += data.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
            lastChange = Date()
        }
        return received(input)
    }

    /// Settings for a destination that sends to `input`.
    func settings(_ input: Input) -> SyslogSettings {
        var s = SyslogSettings()
        s.timeoutS = 10
        switch input {
        case .unix:
            s.transport = .unix
            s.address = unixSocket
        case .udp:
            s.transport = .udp
            s.address = "127.0.0.1"
            s.port = udpPort
        case .tcp:
            s.transport = .tcp
            s.address = "127.0.0.1"
            s.port = tcpPort
        case .tls, .mtls:
            s.transport = .tls
            s.address = "127.0.0.1"
            s.port = input == .tls ? tlsPort : mtlsPort
            s.serverName = "localhost"
            s.caFile = caFile
            if input == .mtls {
                s.certFile = clientCert
                s.keyFile = clientKey
            }
        }
        return s
    }

    /// Packets the kernel dropped on the UDP input's socket (/proc/net/udp, last column).
    func udpDrops() -> Int {
        let hexPort = String(format: ":%04X", udpPort)
        guard let text = try? String(contentsOfFile: "/proc/net/udp", encoding: .utf8) else { return -1 }
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ")
            if f.count > 2, f[1].hasSuffix(hexPort), let d = Int(f.last!) { return d }
        }
        return -1
    }

    var log: String { (try? String(contentsOfFile: dir + "/rsyslogd.log", encoding: .utf8)) ?? "" }

    // MARK: - Setup

    private func makeCertificates() throws {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        func openssl(_ args: [String]) throws {
            let r = try Self.run("/usr/bin/env", ["openssl"] + args)
            guard r.status == 0 else { throw Failure("openssl \(args.joined(separator: " ")) failed (is the openssl CLI installed?):\n\(r.output)") }
        }
        try openssl(["req", "-x509"] + ec + ["-keyout", dir + "/ca.key", "-out", caFile, "-days", "2", "-subj", "/CN=agentwatch test CA"])
        try openssl(["req", "-x509"] + ec + ["-keyout", dir + "/other-ca.key", "-out", otherCAFile, "-days", "2", "-subj", "/CN=agentwatch other CA"])
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n".write(toFile: dir + "/server.ext", atomically: true, encoding: .utf8)
        try "extendedKeyUsage=clientAuth\n".write(toFile: dir + "/client.ext", atomically: true, encoding: .utf8)
        for (name, subject) in [("server", "/CN=localhost"), ("client", "/CN=agentwatch test client")] {
            try openssl(["req"] + ec + ["-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).csr", "-subj", subject])
            try openssl(["x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", caFile, "-CAkey", dir + "/ca.key", "-CAcreateserial",
                         "-out", "\(dir)/\(name).pem", "-days", "2", "-extfile", "\(dir)/\(name).ext"])
        }
    }

    private func writeConfig() throws {
        let tls = { (port: Int, input: Input, auth: String) in
            """
            input(type="imtcp" address="127.0.0.1" port="\(port)" ruleset="\(input.rawValue)" streamDriver.name="ossl" \
            streamDriver.mode="1" streamDriver.authMode="\(auth)" streamDriver.caFile="\(self.caFile)" \
            streamDriver.certFile="\(self.dir)/server.pem" streamDriver.keyFile="\(self.dir)/server.key")
            """
        }
        let conf = """
        global(workDirectory="\(dir)/work")
        # One worker: messages are written in the order they were received.
        main_queue(queue.workerThreads="1")
        module(load="imuxsock" SysSock.Use="off")
        module(load="imudp")
        module(load="imtcp")
        template(name="fields" type="list") {
          property(name="pri") constant(value="\\t")
          property(name="timereported" dateFormat="rfc3339") constant(value="\\t")
          property(name="hostname") constant(value="\\t")
          property(name="app-name") constant(value="\\t")
          property(name="procid") constant(value="\\t")
          property(name="msgid") constant(value="\\t")
          property(name="structured-data") constant(value="\\t")
          property(name="msg") constant(value="\\n")
        }
        \(Input.allCases.map { "ruleset(name=\"\($0.rawValue)\") { action(type=\"omfile\" file=\"\(dir)/\($0.rawValue).out\" template=\"fields\") }" }.joined(separator: "\n"))
        # The normal parsers (RFC 5424 and 3164 with a host name), not imuxsock's own for syslog(3),
        # and the message's own time, not the time it came.
        input(type="imuxsock" socket="\(unixSocket)" ruleset="unix" ratelimit.interval="0" useSpecialParser="off" parseHostname="on" ignoreTimestamp="off")
        input(type="imudp" address="127.0.0.1" port="\(udpPort)" ruleset="udp" rcvBufSize="8m")
        input(type="imtcp" address="127.0.0.1" port="\(tcpPort)" ruleset="tcp")
        \(tls(tlsPort, .tls, "anon"))
        \(tls(mtlsPort, .mtls, "x509/certvalid"))

        """
        try conf.write(toFile: dir + "/rsyslog.conf", atomically: true, encoding: .utf8)
    }

    /// A loopback port nothing uses now (bound, read back, released).
    static func freePort(datagram: Bool) throws -> Int {
        let (fd, port) = try bindLoopback(datagram: datagram)
        close(fd)
        return port
    }

    /// A socket bound to a free port on 127.0.0.1, and the port.
    static func bindLoopback(datagram: Bool) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(datagram ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket: \(errnoText())") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else {
            close(fd)
            throw Failure("bind: \(errnoText())")
        }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    /// Whether 127.0.0.1 has listening TCP sockets on `tcp` and bound UDP sockets on `udp`.
    static func listening(tcp: [Int], udp: [Int]) -> Bool {
        func ports(_ file: String, state: String?) -> Set<Int> {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return [] }
            var found: Set<Int> = []
            for line in text.split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ")
                guard f.count > 3, f[1].hasPrefix("0100007F:") else { continue }
                if let state, f[3] != Substring(state) { continue }
                if let p = Int(f[1].dropFirst(9), radix: 16) { found.insert(p) }
            }
            return found
        }
        return Set(tcp).isSubset(of: ports("/proc/net/tcp", state: "0A")) && Set(udp).isSubset(of: ports("/proc/net/udp", state: nil))
    }

    static func run(_ path: String, _ args: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// RFC 5424 SD-ELEMENTs → their params (`\"`, `\\`, `\]` unescaped); nil-value `-` → [:].
    static func parseSD(_ sd: String) -> [String: String] {
        var params: [String: String] = [:]
        let b = Array(sd.utf8)
        var i = 0
        while i < b.count, b[i] == UInt8(ascii: "[") {
            i += 1
            while i < b.count, b[i] != UInt8(ascii: " "), b[i] != UInt8(ascii: "]") { i += 1 }
            while i < b.count, b[i] == UInt8(ascii: " ") {
                i += 1
                let nameStart = i
                while i < b.count, b[i] != UInt8(ascii: "=") { i += 1 }
                let name = String(decoding: b[nameStart..<i], as: UTF8.self)
                i += 2 // ="
                var value: [UInt8] = []
                while i < b.count, b[i] != UInt8(ascii: "\"") {
                    if b[i] == UInt8(ascii: "\\"), i + 1 < b.count, [UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "]")].contains(b[i + 1]) { i += 1 }
                    value.append(b[i])
                    i += 1
                }
                i += 1
                params[name] = String(decoding: value, as: UTF8.self)
            }
            i += 1 // ]
        }
        return params
    }
}
