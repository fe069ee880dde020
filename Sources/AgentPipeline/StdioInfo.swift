import CAgentEvents

/// What a process's standard descriptors were at exec: the kernel's classification, with the
/// inode of a pipe or socket so that two ends of `curl | sh` can be joined, the device of a
/// terminal on stdin and, for a shell, who drives that terminal.
package struct StdioInfo: Sendable, Equatable {
    package var types: (UInt8, UInt8, UInt8)
    package var stdinIno: UInt64
    package var stdoutIno: UInt64
    /// The terminal on descriptor 0 (kernel encoding), 0 when it is not one.
    package var stdinRdev: UInt32
    /// The session process holding the master side of the pseudo-terminal on descriptor 0.
    package var driver: StdinDriver?

    package init(_ e: agent_exec) {
        types = e.stdio_type
        stdinIno = e.stdin_ino
        stdoutIno = e.stdout_ino
        stdinRdev = e.stdio_type.0 == UInt8(AGENT_STDIO_TTY.rawValue) ? e.stdin_rdev : 0
    }

    package init(types: (UInt8, UInt8, UInt8), stdinIno: UInt64 = 0, stdoutIno: UInt64 = 0, stdinRdev: UInt32 = 0,
                 driver: StdinDriver? = nil) {
        self.types = types
        self.stdinIno = stdinIno
        self.stdoutIno = stdoutIno
        self.stdinRdev = stdinRdev
        self.driver = driver
    }

    package static func == (a: StdioInfo, b: StdioInfo) -> Bool {
        a.types == b.types && a.stdinIno == b.stdinIno && a.stdoutIno == b.stdoutIno && a.stdinRdev == b.stdinRdev
            && a.driver == b.driver
    }

    /// The record's name for a descriptor kind (enum agent_stdio).
    package static func name(_ kind: UInt8) -> StaticString {
        switch UInt32(kind) {
        case AGENT_STDIO_NONE.rawValue: "none"
        case AGENT_STDIO_FILE.rawValue: "file"
        case AGENT_STDIO_PIPE.rawValue: "pipe"
        case AGENT_STDIO_SOCKET.rawValue: "socket"
        case AGENT_STDIO_TTY.rawValue: "tty"
        case AGENT_STDIO_CHAR.rawValue: "char"
        default: "other"
        }
    }
}
