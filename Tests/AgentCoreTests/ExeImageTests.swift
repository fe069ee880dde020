@testable import AgentPipeline
import CAgentEvents
import Foundation
import Glibc
import Testing

/// The daemon's side of exec identity: devices, the files a session wrote, and the /proc text a
/// pty driver lookup reads (kernel text, but read as if it were hostile: bounded, no crash).
@Suite("exec image and pty driver")
struct ExeImageTests {
    @Test func devices() {
        #expect(ExeImage.device(259 << 20 | 2) == "259:2")
        #expect(ExeImage.device(0 << 20 | 35) == "0:35")
        // glibc's st_dev of 259:2 and of a large minor (136:300, a pts past 255).
        #expect(ExeImage.kernelDevice(UInt64(259 << 8 | 2)) == 259 << 20 | 2)
        let big: UInt64 = (300 & 0xFF) | (136 << 8) | ((300 & ~0xFF) << 12)
        #expect(ExeImage.kernelDevice(big) == 136 << 20 | 300)
        #expect(PtyDrivers.ptsIndex(136 << 20 | 300) == 300)
        #expect(PtyDrivers.ptsIndex(4 << 20 | 1) == nil)
    }

    @Test func flags() {
        let memfd = ExeImage(ino: 1, dev: 1, mountID: 14, flags: AGENT_EXE_MEMFD.rawValue, writtenKnown: true)
        #expect(memfd.fileless && !memfd.deleted && !memfd.written)
        let deleted = ExeImage(ino: 1, dev: 1, mountID: 14, flags: AGENT_EXE_DELETED.rawValue, writtenKnown: true, writtenBy: Array("/usr/bin/curl".utf8))
        #expect(!deleted.fileless && deleted.deleted && deleted.written)
        #expect(!ExeImage(ino: 0, dev: 0, mountID: 0, flags: 0, writtenKnown: false).known)
    }

    @Test("a process found running: its image is stat(2) of /proc/PID/exe")
    func fromProc() throws {
        let (image, exe) = ExeImage.fromProc(pid: UInt32(getpid()), link: ProcessTable.procExe(getpid()))
        let i = try #require(image)
        var st = stat()
        try #require(stat("/proc/self/exe", &st) == 0)
        #expect(i.ino == UInt64(st.st_ino))
        #expect(i.dev == ExeImage.kernelDevice(UInt64(st.st_dev)))
        #expect(i.mountID > 0)
        #expect(i.flags == 0 && !i.writtenKnown)
        #expect(exe == ProcessTable.procExe(getpid()))
    }

    @Test("written files: within the window only, by identity, bounded")
    func writtenFiles() {
        var w = WrittenFiles()
        w.note(dev: 7, ino: 42, ktimeNs: 1_000, writer: Array("/usr/bin/curl".utf8))
        #expect(w.writer(dev: 7, ino: 42, nowNs: 2_000) == Array("/usr/bin/curl".utf8))
        #expect(w.writer(dev: 8, ino: 42, nowNs: 2_000) == nil)
        #expect(w.writer(dev: 7, ino: 42, nowNs: 1_000 + WrittenFiles.windowNs + 1) == nil)
        #expect(w.writer(dev: 7, ino: 42, nowNs: 500) == nil)
        for i in 0..<(WrittenFiles.limit * 3) {
            w.note(dev: 1, ino: UInt64(i), ktimeNs: UInt64(i), writer: [])
        }
        #expect(w.files.count <= WrittenFiles.limit)
        // The newest are kept.
        #expect(w.writer(dev: 1, ino: UInt64(WrittenFiles.limit * 3 - 1), nowNs: UInt64(WrittenFiles.limit * 3)) != nil)
        #expect(WrittenFiles.isWrite(UInt64(O_WRONLY | O_CREAT)))
        #expect(WrittenFiles.isWrite(UInt64(O_RDONLY | O_APPEND)))
        #expect(!WrittenFiles.isWrite(UInt64(O_RDONLY | O_CLOEXEC)))
    }

    static let tcp = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 0100007F:A7AD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 768310 1 000000001d4c6403 100 0 0 10 0
           1: 0100007F:D495 0100007F:AAA6 01 00000000:00000000 00:00000000 00000000  1000        0 5555 1 00000000e776d16a
           2: 0100007F:D496 0100007F:AAA6 06 00000000:00000000 03:00000000 00000000     0        0 0 3 00000000e776d16a
        """

    @Test("socket tables: a connected socket of the driver's, not a listener, not another's")
    func socketTables() {
        let text = Array(Self.tcp.utf8)
        #expect(PtyDrivers.socketTable(text, has: [5555], udp: false))
        #expect(!PtyDrivers.socketTable(text, has: [768310], udp: false), "a listener is not connected")
        #expect(!PtyDrivers.socketTable(text, has: [9], udp: false))
        #expect(!PtyDrivers.socketTable(text, has: [0], udp: false), "TIME_WAIT rows have inode 0")
        #expect(!PtyDrivers.socketTable(Array(Self.tcp.replacingOccurrences(of: " 01 ", with: " 07 ").utf8), has: [5555], udp: true),
                "an unconnected UDP socket (07)")
    }

    @Test func fdinfo() {
        #expect(PtyDrivers.ttyIndex(Array("pos:\t0\nflags:\t0100002\nmnt_id:\t25\nino:\t2\ntty-index:\t7\n".utf8)) == 7)
        #expect(PtyDrivers.ttyIndex(Array("pos:\t0\nflags:\t02\n".utf8)) == nil)
        #expect(PtyDrivers.ttyIndex(Array("tty-index:\t99999999999\n".utf8)) == nil)
        #expect(PtyDrivers.ttyIndex(Array("tty-index:".utf8)) == nil)
        #expect(PtyDrivers.ttyIndex([]) == nil)
    }

    @Test("hostile or cut text never matches by accident and never traps")
    func garbage() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let n = Int.random(in: 0..<400, using: &rng)
            let bytes = (0..<n).map { _ in [UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "1"), UInt8(ascii: "A"), 0xFF, UInt8(ascii: ":")].randomElement(using: &rng)! }
            _ = PtyDrivers.socketTable(bytes, has: [1, 11, 111], udp: Bool.random(using: &rng))
        }
        // A row with a 30-digit inode, a row with too few fields.
        let odd = Array("h\n 0: a b 01 c d e f g 111111111111111111111111111111\n 1: a b 01\n".utf8)
        #expect(!PtyDrivers.socketTable(odd, has: [1], udp: true))
        #expect(PtyDrivers.socketTable(Array("h\n 0: a b 01 c d e f g 11\n".utf8), has: [11], udp: true))
    }
}
