import AgentSupport
import COpenSSL
import Glibc

/// Syslog over TLS (RFC 5425): octet-counted frames inside a TLS 1.2+ session made by OpenSSL,
/// the receiver's certificate verified against the CA file (or the system's CAs) and its name
/// checked. OpenSSL reads and writes memory buffers and this class moves the bytes over the
/// socket itself, so that every wait is bounded by the timeout, no write can raise SIGPIPE, and
/// a failed send tells exactly which TLS records (so which messages) went out whole.
final class TLSLink: SyslogLink {
    let socket: SyslogSocket
    /// The name the certificate must carry.
    let serverName: String
    private let context: OpaquePointer
    private let ssl: OpaquePointer
    /// What the receiver sent, for OpenSSL to read; what OpenSSL wrote, for the receiver.
    private let input: OpaquePointer
    private let output: OpaquePointer
    private var cipher: [UInt8] = []
    /// For each TLS record of a batch: where its ciphertext and its plaintext end.
    private var records: [(cipher: Int, plain: Int)] = []
    private var discard = [UInt8](repeating: 0, count: 4096)

    /// The largest TLS record's plaintext: each SSL_write makes one record.
    static let recordBytes = 16384

    /// Sets up the session over a connected socket; `handshake()` then runs it.
    init(socket: SyslogSocket, settings: SyslogSettings) throws(AgentError) {
        self.socket = socket
        serverName = settings.serverName ?? settings.address
        context = try Self.makeContext(settings)
        let ssl = SSL_new(context), input = BIO_new(BIO_s_mem()), output = BIO_new(BIO_s_mem())
        guard let ssl, let input, let output else {
            let e = AgentError("syslog tls: cannot set up a TLS session: \(Self.openSSLErrors())")
            BIO_free(input)
            BIO_free(output)
            SSL_free(ssl)
            SSL_CTX_free(context)
            throw e
        }
        self.ssl = ssl
        self.input = input
        self.output = output
        SSL_set_bio(ssl, input, output)
        SSL_set_connect_state(ssl)
        try configureName()
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    /// TLS 1.2 or later, the peer verified, and the client certificate when there is one. Built
    /// at each open, so renewed certificates and CA files are read again.
    private static func makeContext(_ settings: SyslogSettings) throws(AgentError) -> OpaquePointer {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw AgentError("syslog tls: cannot make a TLS context: \(openSSLErrors())")
        }
        func fail(_ what: String) -> AgentError {
            let e = AgentError("syslog tls: \(what): \(openSSLErrors())")
            SSL_CTX_free(ctx)
            return e
        }
        ERR_clear_error()
        guard SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(TLS1_2_VERSION), nil) == 1 else { throw fail("cannot require TLS 1.2") }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        if let ca = settings.caFile {
            guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1 else { throw fail("cannot load CA file \(ca)") }
        } else {
            guard SSL_CTX_set_default_verify_paths(ctx) == 1 else { throw fail("cannot load the system's CA certificates") }
        }
        if let cert = settings.certFile {
            guard SSL_CTX_use_certificate_chain_file(ctx, cert) == 1 else { throw fail("cannot load client certificate \(cert)") }
            let key = settings.keyFile ?? cert
            guard SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1 else { throw fail("cannot load client key \(key)") }
            guard SSL_CTX_check_private_key(ctx) == 1 else { throw fail("client key \(key) does not match certificate \(cert)") }
        } else if let key = settings.keyFile {
            SSL_CTX_free(ctx)
            throw AgentError("syslog tls: client key \(key) given without a client certificate (certFile)")
        }
        return ctx
    }

    /// The name checked in the certificate: an IP address against its IP SANs, a host name
    /// against its DNS names (no partial wildcards), and sent as SNI.
    private func configureName() throws(AgentError) {
        ERR_clear_error()
        var v6 = in6_addr()
        if inet_pton(AF_INET, serverName, &v6) == 1 || inet_pton(AF_INET6, serverName, &v6) == 1 {
            // RFC 6066: SNI carries host names only.
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) == 1 else {
                throw AgentError("syslog tls: cannot check the certificate for \(serverName): \(Self.openSSLErrors())")
            }
            return
        }
        SSL_set_hostflags(ssl, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
        let sni = serverName.withCString {
            SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: $0))
        }
        guard SSL_set1_host(ssl, serverName) == 1, sni == 1 else {
            throw AgentError("syslog tls: cannot check the certificate for \(serverName): \(Self.openSSLErrors())")
        }
    }

    /// Runs the TLS handshake within the timeout.
    func handshake() throws(AgentError) {
        let deadline = Deadline(seconds: socket.timeoutS)
        while true {
            ERR_clear_error()
            let r = SSL_do_handshake(ssl)
            let err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, r)
            // What OpenSSL wrote (a ClientHello, a Finished, an alert) goes out first.
            if let failure = flushOutput() {
                throw AgentError("syslog tls: handshake with \(socket.peer): \(failure)")
            }
            switch err {
            case SSL_ERROR_NONE:
                return
            case SSL_ERROR_WANT_READ:
                switch socket.receive(until: deadline) {
                case .success(let bytes):
                    _ = BIO_write(input, bytes.baseAddress, Int32(bytes.count))
                case .failure(.timedOut):
                    throw AgentError("syslog tls: handshake with \(socket.peer) timed out after \(socket.timeoutS) s")
                case .failure(.closed):
                    throw AgentError("syslog tls: \(socket.peer) closed the connection during the handshake (is it a TLS listener?)")
                case .failure(.error(let why)):
                    throw AgentError("syslog tls: handshake with \(socket.peer): \(why)")
                }
            default:
                throw handshakeFailure()
            }
        }
    }

    private func handshakeFailure() -> AgentError {
        let verify = SSL_get_verify_result(ssl)
        if verify != Int(X509_V_OK) {
            let reason = String(cString: X509_verify_cert_error_string(verify))
            return AgentError("syslog tls: certificate verify failed for \(socket.peer) (expected name \(serverName)): \(reason)")
        }
        return AgentError("syslog tls: handshake with \(socket.peer) failed: \(Self.openSSLErrors())")
    }

    func deadReason() -> String? {
        socket.peerGone { bytes in
            // Session tickets, a close_notify alert, or (unexpected) data: OpenSSL reads them.
            _ = BIO_write(input, bytes.baseAddress, Int32(bytes.count))
            while true {
                ERR_clear_error()
                let r = discard.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
                if r > 0 { continue }
                switch SSL_get_error(ssl, r) {
                case SSL_ERROR_WANT_READ: return nil
                case SSL_ERROR_ZERO_RETURN: return "the receiver \(socket.peer) ended the TLS session"
                default: return "TLS error from \(socket.peer): \(Self.openSSLErrors())"
                }
            }
        }
    }

    func send(_ bytes: UnsafeRawBufferPointer, ends: [Int]) -> (messages: Int, failure: String?) {
        cipher.removeAll(keepingCapacity: true)
        records.removeAll(keepingCapacity: true)
        var plain = 0
        var failure: String?
        while plain < bytes.count {
            ERR_clear_error()
            let n = SSL_write(ssl, bytes.baseAddress! + plain, Int32(min(Self.recordBytes, bytes.count - plain)))
            guard n > 0 else {
                failure = "TLS write failed: \(Self.openSSLErrors())"
                break
            }
            plain += Int(n)
            takeOutput()
            records.append((cipher.count, plain))
        }
        let r = cipher.withUnsafeBytes { socket.sendAll($0) }
        // A message went out when every record holding part of it did.
        let whole = records.last(where: { $0.cipher <= r.sent })?.plain ?? 0
        return (Self.completeMessages(ends, written: whole), r.failure ?? failure)
    }

    /// Sends close_notify, then closes the connection in order.
    func close() {
        ERR_clear_error()
        SSL_shutdown(ssl)
        _ = flushOutput()
        socket.finish()
    }

    /// Moves what OpenSSL wrote to `cipher`.
    private func takeOutput() {
        let pending = Int(BIO_ctrl_pending(output))
        guard pending > 0 else { return }
        let start = cipher.count
        cipher.append(contentsOf: repeatElement(0, count: pending))
        let n = cipher.withUnsafeMutableBytes { BIO_read(output, $0.baseAddress! + start, Int32(pending)) }
        cipher.removeLast(pending - max(0, Int(n)))
    }

    /// Sends what OpenSSL wrote; why not, when it could not.
    private func flushOutput() -> String? {
        cipher.removeAll(keepingCapacity: true)
        takeOutput()
        return cipher.withUnsafeBytes { socket.sendAll($0) }.failure
    }

    /// OpenSSL's queued errors, oldest first, and the queue emptied.
    static func openSSLErrors() -> String {
        var parts: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while case let e = ERR_get_error(), e != 0 {
            ERR_error_string_n(e, &buffer, buffer.count)
            parts.append(String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return parts.isEmpty ? "no detail from OpenSSL" : parts.joined(separator: "; ")
    }
}
