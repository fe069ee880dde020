@testable import AgentDaemon
@testable import AgentSensor
@testable import AgentSupport
import CAgentEvents
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// Every way a session process can open a file gives a file.open record (bpf/file.bpf.c,
    /// bpf/uring_file.bpf.c): open(2), creat(2), open_by_handle_at(2) and io_uring's
    /// IORING_OP_OPENAT and IORING_OP_OPENAT2, each with the path the kernel resolved, how it
    /// was asked (file.via), its flags and result, and the file's identity as stat(2) gives it.
    /// The opens are made by Tests/support/open-family.c, compiled here, as an ordinary user
    /// (nobody) in a real session unless they need root.
    @Suite("the open family")
    struct OpenFamilyTests {
        static let nobody: UInt32 = 65534

        /// A directory everyone can read, holding `data` (and hard links to it) and the helper.
        final class Files {
            let dir: String
            let helper: String

            init() throws {
                dir = "/tmp/aw-openfam-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                chmod(dir, 0o777)
                helper = dir + "/open-family"
                let cc = runIn(nil, ["/usr/bin/cc", "-O1", "-Wall", "-Werror", "-o", helper,
                                     KernelEnv.packageRoot + "/Tests/support/open-family.c"])
                guard cc.status == 0 else { throw AgentError("cc Tests/support/open-family.c failed: \(cc.status)") }
                try "agentwatch\n".write(toFile: path("data"), atomically: false, encoding: .utf8)
                chmod(path("data"), 0o644)
            }

            deinit { try? FileManager.default.removeItem(atPath: dir) }

            func path(_ name: String) -> String { dir + "/" + name }

            /// A hard link to `data` named `name`.
            @discardableResult
            func link(_ name: String) -> String {
                let p = path(name)
                Glibc.link(path("data"), p)
                return p
            }

            /// argv of the helper, as nobody unless `root`.
            func run(_ args: [String], root: Bool = false) -> [String] {
                (root ? [] : ["/usr/bin/setpriv", "--reuid=\(OpenFamilyTests.nobody)", "--regid=\(OpenFamilyTests.nobody)", "--clear-groups"])
                    + [helper] + args
            }
        }

        /// What stat(2) and statx(2) say a file is: the record's file.inode, file.device and
        /// file.mount_id must say the same.
        struct Identity: Equatable, CustomStringConvertible {
            let inode: Int
            let device: String
            let mountID: Int

            var description: String { "ino \(inode) dev \(device) mnt \(mountID)" }

            init?(record r: [String: Any]) {
                guard let ino = r.int("file.inode"), let dev = r.string("file.device"), let mnt = r.int("file.mount_id") else { return nil }
                inode = ino
                device = dev
                mountID = mnt
            }

            /// stat(2) for the inode and device (major(3):minor(3) of st_dev), the helper's
            /// statx for the mount id.
            init(of path: String, files: Files) throws {
                var st = stat()
                guard stat(path, &st) == 0 else { throw AgentError("stat(\(path)): errno \(errno)") }
                let dev = UInt64(st.st_dev)
                let major = ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF)
                let minor = (dev & 0xFF) | ((dev >> 12) & ~0xFF)
                inode = Int(st.st_ino)
                device = "\(major):\(minor)"
                let out = commandOutput([files.helper, "statx", path]).split(separator: " ")
                guard out.count == 3, let mnt = Int(out[2].trimmingCharacters(in: .whitespacesAndNewlines)) else {
                    throw AgentError("statx \(path): \(out)")
                }
                #expect(Int(out[0]) == inode && out[1] == device, "statx and stat agree on \(path)")
                mountID = mnt
            }

        }

        /// Runs each command in one session, one after another, expecting each exit status;
        /// returns the session's file.open records once the last command's exit is recorded.
        func opens(_ commands: [(argv: [String], status: Int32)]) throws -> [[String: Any]] {
            let d = try TestDaemon()
            d.start()
            defer { d.stop() }
            let cg = d.makeSession("o")
            var last: pid_t = 0
            for c in commands {
                let r = runIn(cg, c.argv)
                #expect(r.status == c.status << 8, "\(c.argv.joined(separator: " ")) exited \(r.status >> 8), not \(c.status)")
                last = r.pid
            }
            let records = d.waitForRecords { $0.contains { $0.string("type") == "process.exit" && $0.int("process.pid") == Int(last) } }
            try expectValidAgainstSchema(d.output)
            return records.filter { $0.string("session.id") == "o" && $0.string("type") == "file.open" }
        }

        /// The one record of `via` whose file.path is `path`.
        func record(_ opens: [[String: Any]], _ via: String, _ path: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String: Any]? {
            let found = opens.filter { $0.string("file.via") == via && $0.string("file.path") == path }
            #expect(found.count == 1, "one \(via) record of \(path), not \(found.count): \(opens.map { "\($0["file"] ?? "?")" })",
                    sourceLocation: sourceLocation)
            return found.first
        }

        func flags(_ r: [String: Any]?) -> [String] { r?[path: "file.flags"] as? [String] ?? [] }

        /// A successful open: its descriptor (or fixed-file slot), flags, no error, no requested
        /// path (the request was the absolute path), and the file's identity.
        func expectOpened(_ r: [String: Any]?, identity: Identity, uid: UInt32 = nobody,
                          sourceLocation: SourceLocation = #_sourceLocation) {
            guard let r else { return }
            #expect((r.int("file.result") ?? -1) >= 0, "result \(r.int("file.result") ?? -1)", sourceLocation: sourceLocation)
            #expect(r.string("file.error") == nil, sourceLocation: sourceLocation)
            #expect(r.string("file.requested_path") == nil, sourceLocation: sourceLocation)
            #expect(Identity(record: r) == identity, "\(Identity(record: r).map { "\($0)" } ?? "no identity") is not \(identity)",
                    sourceLocation: sourceLocation)
            #expect(r.int("process.uid") == Int(uid), sourceLocation: sourceLocation)
        }

        /// A failed open: -errno named, the path as asked, no identity.
        func expectFailed(_ r: [String: Any]?, _ error: String, result: Int, sourceLocation: SourceLocation = #_sourceLocation) {
            guard let r else { return }
            #expect(r.int("file.result") == result, sourceLocation: sourceLocation)
            #expect(r.string("file.error") == error, sourceLocation: sourceLocation)
            #expect(r[path: "file.inode"] == nil && r[path: "file.device"] == nil && r[path: "file.mount_id"] == nil,
                    sourceLocation: sourceLocation)
        }

        #if arch(x86_64)
        @Test("open(2) and creat(2) as an ordinary user: the file, flags, result and identity; a hard link is the same file; absent files fail")
        func openAndCreat() throws {
            let f = try Files()
            let link = f.link("link")
            let data = f.path("data"), created = f.path("created"), absent = f.path("absent")
            let noDir = f.path("no-such-dir/new")
            let records = try opens([
                (f.run(["open", data, link]), 0),
                (f.run(["open", absent]), 2),
                (f.run(["creat", created]), 0),
                (f.run(["creat", noDir]), 2),
            ])
            let identity = try Identity(of: data, files: f)
            let original = record(records, "open", data)
            expectOpened(original, identity: identity)
            #expect(flags(original) == ["O_RDONLY"])
            #expect(original?.int("file.mode") == 0)
            // The other name of the same file: its own path, the same identity.
            let other = record(records, "open", link)
            expectOpened(other, identity: identity)
            #expect(Identity(record: other ?? [:]) == Identity(record: original ?? [:]))

            expectFailed(record(records, "open", absent), "ENOENT", result: -Int(ENOENT))
            #expect(flags(record(records, "open", absent)) == ["O_RDONLY"])

            let creat = record(records, "creat", created)
            expectOpened(creat, identity: try Identity(of: created, files: f))
            #expect(flags(creat) == ["O_WRONLY", "O_CREAT", "O_TRUNC"])
            #expect(creat?.int("file.mode") == 0o644)
            #expect(creat?.int("file.inode") != identity.inode)
            let refused = record(records, "creat", noDir)
            expectFailed(refused, "ENOENT", result: -Int(ENOENT))
            #expect(flags(refused) == ["O_WRONLY", "O_CREAT", "O_TRUNC"])
            // None of these went through openat: one record each, of its own way.
            #expect(!records.contains { $0.string("file.via") == "openat" && [data, link, created].contains($0.string("file.path") ?? "") })
        }
        #endif

        @Test("open_by_handle_at: as root the file by its handle, mount_fd as dirfd; refused for an ordinary user (EPERM); a stale handle (ESTALE)")
        func openByHandle() throws {
            let f = try Files()
            // gone: a file of its own (a link to data would keep the inode alive once unlinked).
            let data = f.path("data"), gone = f.path("gone")
            try "gone\n".write(toFile: gone, atomically: false, encoding: .utf8)
            let identity = try Identity(of: data, files: f)
            let records = try opens([
                (f.run(["handle", data], root: true), 0),
                (f.run(["handle", data]), 2),
                (f.run(["handle", gone, "gone"], root: true), 2),
            ])
            let byHandle = records.filter { $0.string("file.via") == "open_by_handle_at" }
            #expect(byHandle.count == 3, "\(byHandle)")
            for r in byHandle {
                // No path was asked for; the handle is opened relative to its mount's descriptor.
                #expect(r.string("file.requested_path") == nil)
                #expect(r.int("file.dirfd") == 42)
                #expect(flags(r) == ["O_RDONLY"])
            }
            // The name the kernel resolved from the descriptor it installed: the file's own.
            let root = record(records, "open_by_handle_at", data)
            expectOpened(root, identity: identity, uid: 0)
            // Without CAP_DAC_READ_SEARCH: refused, recorded with what is known (no path).
            let refused = byHandle.first { $0.int("process.uid") == Int(Self.nobody) }
            expectFailed(refused, "EPERM", result: -Int(EPERM))
            #expect(refused?.string("file.path") == "")
            // The file is gone: the handle is stale.
            let stale = byHandle.first { $0.int("file.result") == -Int(ESTALE) }
            expectFailed(stale, "ESTALE", result: -Int(ESTALE))
            #expect(stale?.int("process.uid") == 0)
        }

        @Test("io_uring OPENAT and OPENAT2 as an ordinary user: inline and in an io-wq worker, into fixed-file slots, with no completion asked for, of an absent file")
        func ioUring() throws {
            let f = try Files()
            let data = f.path("data"), absent = f.path("absent")
            // Each request opens its own name of the one file, so each record is told apart.
            let names = ["openat", "openat2-async", "slot", "alloc", "skip"].map { f.link($0) }
            let identity = try Identity(of: data, files: f)
            let records = try opens([
                (f.run(["uring", names[0]]), 0),
                (f.run(["uring", names[1], "openat2", "async"]), 0),
                (f.run(["uring", names[2], "slot"]), 0),
                (f.run(["uring", names[3], "alloc"]), 0),
                (f.run(["uring", names[4], "slot", "skip"]), 0),
                (f.run(["uring", absent]), 2),
                (f.run(["uring", absent, "openat2"]), 2),
            ])
            let uring = records.filter { $0.string("file.via") == "io_uring" }
            // No open syscall was made for any of them.
            #expect(!records.contains { $0.string("file.via") != "io_uring" && ($0.string("file.path") ?? "").hasPrefix(f.dir) })

            for name in names.prefix(4) {
                let r = record(uring, "io_uring", name)
                expectOpened(r, identity: identity)
                #expect(flags(r).first == "O_RDONLY" && r?[path: "file.write"] == nil)
                #expect(!flags(r).contains { ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"].contains($0) })
                #expect(r?.int("file.dirfd") == nil, "AT_FDCWD")
            }
            // A descriptor, installed inline or by the io-wq worker (a thread of the process).
            #expect(record(uring, "io_uring", names[0])?[path: "file.fixed_file"] == nil)
            let worker = record(uring, "io_uring", names[1])
            #expect(worker?[path: "file.fixed_file"] == nil)
            #expect(worker?.int("process.pid") != nil)
            // Fixed-file slots: no descriptor; the slot given (result 0) or picked (slot 0).
            for name in [names[2], names[3]] {
                let r = record(uring, "io_uring", name)
                #expect(r?[path: "file.fixed_file"] as? Bool == true)
                #expect(r?.int("file.result") == 0)
            }
            // IOSQE_CQE_SKIP_SUCCESS: recorded as submitted, the result never posted.
            let skipped = record(uring, "io_uring", names[4])
            #expect(skipped?[path: "file.result_unseen"] as? Bool == true)
            #expect(skipped?[path: "file.fixed_file"] as? Bool == true)
            #expect(skipped?[path: "file.result"] == nil && skipped?[path: "file.error"] == nil)
            #expect(skipped.map { Identity(record: $0) == nil } == true)
            #expect(skipped?.int("process.uid") == Int(Self.nobody))

            let failed = uring.filter { $0.string("file.path") == absent }
            #expect(failed.count == 2, "\(failed)")
            for r in failed {
                expectFailed(r, "ENOENT", result: -Int(ENOENT))
                #expect(flags(r).first == "O_RDONLY")
            }
        }

        @Test("the io_uring programs are chosen by the tracepoints the kernel has: io_uring_submit_req from 6.4, io_uring_submit_sqe before")
        func uringChoice() {
            #expect(Sensor.uringChoice(tracepoints: ["io_uring_submit_req", "io_uring_complete"])
                == [.on_uring_submit_req, .on_uring_complete, .uring_net_submit_req, .uring_net_complete])
            #expect(Sensor.uringChoice(tracepoints: ["io_uring_submit_sqe", "io_uring_complete"])
                == [.on_uring_submit_sqe, .on_uring_complete, .uring_net_submit_sqe, .uring_net_complete])
            #expect(Sensor.uringChoice(tracepoints: ["io_uring_submit_sqe"]).isEmpty)
            #expect(Sensor.uringChoice(tracepoints: []).isEmpty)
            // This kernel: 6.4 or later has io_uring_submit_req; its programs loaded.
            let here = Sensor.kernelTracepoints(["io_uring_submit_req", "io_uring_submit_sqe", "io_uring_complete"])
            if here.contains("io_uring_submit_req") {
                let sensor = try? Sensor(settings: SensorSettings(roots: [], ringBufferBytes: 1 << 16, argsMax: 4096, wakeupBytes: 1 << 16))
                #expect(sensor?.uringLoaded == [.on_uring_submit_req, .on_uring_complete, .uring_net_submit_req, .uring_net_complete])
                #expect(sensor?.openFeatures.contains("io_uring_open") == true)
                #expect(sensor?.netFeatures.contains("io_uring_connect") == true)
            }
        }

        /// This kernel's BTF with io_uring's types as `mode` says, written by a small libbpf
        /// program: "6.1" (Debian 12): the fixed-file table as an array of struct
        /// io_fixed_file (file_table.files, nr_user_files) instead of resource nodes (a kernel
        /// that has them already, before 6.13, is left as it is); "none": no
        /// struct io_open, and requests without a command area (kernels before 6.0).
        static func btf(_ mode: String, in dir: String) throws -> String {
            let src = dir + "/rewrite-uring.c"
            try """
            #include <bpf/btf.h>
            #include <stdio.h>
            #include <string.h>
            static const struct btf_type *find(struct btf *btf, const char *name, int kind, int *id) {
                *id = btf__find_by_name_kind(btf, name, kind);
                return *id > 0 ? btf__type_by_id(btf, *id) : NULL;
            }
            /* Renames member `from` of struct id (or of an anonymous struct or union in it). */
            static struct btf_member *member(struct btf *btf, int id, const char *from) {
                const struct btf_type *t = btf__type_by_id(btf, id);
                struct btf_member *m = btf_members(t);
                for (int i = 0; i < btf_vlen(t); i++, m++) {
                    const char *n = btf__name_by_offset(btf, m->name_off);
                    if (n && strcmp(n, from) == 0) return m;
                    const struct btf_type *mt = btf__type_by_id(btf, m->type);
                    if ((!n || !*n) && (btf_is_struct(mt) || btf_is_union(mt))) {
                        struct btf_member *in = member(btf, m->type, from);
                        if (in) return in;
                    }
                }
                return NULL;
            }
            int main(int argc, char **argv) {
                struct btf *btf = btf__parse("/sys/kernel/btf/vmlinux", NULL);
                if (!btf) return 1;
                /* Every addition first: the first one copies the types, and pointers into
                 * them taken before would point into the old copy. */
                int files = btf__add_str(btf, "files"), nr_name = btf__add_str(btf, "nr_user_files");
                int open_gone = btf__add_str(btf, "io_open_gone"), cmd_gone = btf__add_str(btf, "cmd_gone");
                int ulong = btf__find_by_name_kind(btf, "long unsigned int", BTF_KIND_INT);
                if (files < 0 || nr_name < 0 || open_gone < 0 || cmd_gone < 0 || ulong <= 0) return 2;
                int fixed = btf__add_struct(btf, "io_fixed_file", 8);
                if (fixed < 0 || btf__add_field(btf, "file_ptr", ulong, 0, 0)) return 3;
                int ptr = btf__add_ptr(btf, fixed);
                if (ptr < 0) return 3;
                int id;
                if (strcmp(argv[2], "6.1") == 0) {
                    if (!find(btf, "io_file_table", BTF_KIND_STRUCT, &id)) return 4;
                    /* A kernel before 6.13 (Debian's 6.12) has 6.1's table already: as it is. */
                    if (!member(btf, id, "files")) {
                        struct btf_member *data = member(btf, id, "data");
                        if (!data) return 4;
                        data->name_off = files;
                        data->type = ptr;
                        if (!find(btf, "io_ring_ctx", BTF_KIND_STRUCT, &id)) return 5;
                        /* Some unsigned int of the ring becomes nr_user_files. */
                        struct btf_member *nr = member(btf, id, "cq_entries");
                        if (!nr) return 6;
                        nr->name_off = nr_name;
                    }
                } else {
                    struct btf_type *open = (struct btf_type *)find(btf, "io_open", BTF_KIND_STRUCT, &id);
                    if (!open) return 7;
                    open->name_off = open_gone;
                    if (!find(btf, "io_kiocb", BTF_KIND_STRUCT, &id)) return 8;
                    struct btf_member *cmd = member(btf, id, "cmd");
                    if (!cmd) return 9;
                    cmd->name_off = cmd_gone;
                }
                __u32 size;
                const void *raw = btf__raw_data(btf, &size);
                FILE *f = fopen(argv[1], "w");
                return f && fwrite(raw, 1, size, f) == size && fclose(f) == 0 ? 0 : 10;
            }
            """.write(toFile: src, atomically: true, encoding: .utf8)
            let bin = dir + "/rewrite-uring"
            let cc = runIn(nil, ["/usr/bin/cc", "-O1", "-o", bin, src, "-lbpf"])
            guard cc.status == 0 else { throw AgentError("cc rewrite-uring.c -lbpf failed: \(cc.status)") }
            let btf = dir + "/vmlinux-uring-" + mode
            let run = runIn(nil, [bin, btf, mode])
            guard run.status == 0 else { throw AgentError("rewriting the kernel's BTF (\(mode)) failed: \(run.status >> 8)") }
            return btf
        }

        @Test("the io_uring open and connect programs load where io_uring's types are 6.1's, and where requests have no command area", arguments: ["6.1", "none"])
        func uringLayouts(_ mode: String) throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aw-uring-btf-\(getpid())").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let btf = try Self.btf(mode, in: dir)
            let settings = SensorSettings(roots: [], ringBufferBytes: 1 << 16, argsMax: 4096, wakeupBytes: 1 << 16, btfPath: btf)
            var sensor: Sensor?
            #expect(throws: Never.self) { sensor = try Sensor(settings: settings) }
            #expect(sensor?.uringLoaded.isEmpty == false, "the programs were loaded, not left out")
            // Requests without a command area keep no connect's arguments: not claimed as seen.
            #expect(sensor?.netFeatures.contains("io_uring_connect") == (mode == "6.1"))
        }
    }
}
