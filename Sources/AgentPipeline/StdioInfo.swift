import CAgentEvents

/// What a process's standard descriptors were at exec: the kernel's classification, with the
/// inode of a pipe or socket so that two ends of `curl | sh` can be joined.
package struct StdioInfo: Sendable, Equatable {
    package var types: (UInt8, UInt8, UInt8)
    package var stdinIno: UInt64
    package var stdoutIno: UInt64

    package init(_ e: agent_exec) {
        types = e.stdio_type
        stdinIno = e.stdin_ino
        stdoutIno = e.stdout_ino
    }

    package init(types: (UInt8, UInt8, UInt8), stdinIno: UInt64 = 0, stdoutIno: UInt64 = 0) {
        self.types = types
        self.stdinIno = stdinIno
        self.stdoutIno = stdoutIno
    }

    package static func == (a: StdioInfo, b: StdioInfo) -> Bool {
        a.types == b.types && a.stdinIno == b.stdinIno && a.stdoutIno == b.stdoutIno
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
