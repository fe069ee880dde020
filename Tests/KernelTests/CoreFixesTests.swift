@testable import AgentSensor
@testable import AgentSupport
import CAgentEvents
import Foundation
import Glibc
import Testing

extension KernelSuite {
    /// The fixes of bpf/lib/core_fixes.bpf.h hold for kernel layouts this machine does not
    /// have: the programs are relocated against this kernel's BTF rewritten to an older
    /// kernel's layout, and must still load (libbpf resolves the older field, and the verifier
    /// accepts the branch that reads it while the other one, poisoned, is dead).
    @Suite("kernel layouts (core_fixes.bpf.h)")
    struct CoreFixesTests {
        /// This kernel's BTF with struct cgroup as it was before 7f203bc89eb6 (v6.1): a u64
        /// ancestor_ids[] where ancestors[] is. Written by a small libbpf program built here.
        static func btfBefore61(in dir: String) throws -> String {
            let src = dir + "/rewrite.c"
            try """
            #include <bpf/btf.h>
            #include <stdio.h>
            #include <string.h>
            int main(int argc, char **argv) {
                struct btf *btf = btf__parse("/sys/kernel/btf/vmlinux", NULL);
                if (!btf) return 1;
                int cgroup = btf__find_by_name_kind(btf, "cgroup", BTF_KIND_STRUCT);
                int u64 = btf__find_by_name_kind(btf, "u64", BTF_KIND_TYPEDEF);
                int index = btf__find_by_name_kind(btf, "unsigned int", BTF_KIND_INT);
                if (cgroup <= 0 || u64 <= 0 || index <= 0) return 2;
                int name = btf__add_str(btf, "ancestor_ids");
                int ids = btf__add_array(btf, index, u64, 0);
                const struct btf_type *t = btf__type_by_id(btf, cgroup);
                struct btf_member *m = btf_members(t);
                int found = 0;
                for (int i = 0; i < btf_vlen(t); i++, m++) {
                    if (strcmp(btf__name_by_offset(btf, m->name_off), "ancestors") == 0) {
                        m->name_off = name;
                        m->type = ids;
                        found = 1;
                    }
                }
                if (!found) return 3;
                __u32 size;
                const void *raw = btf__raw_data(btf, &size);
                FILE *f = fopen(argv[1], "w");
                return f && fwrite(raw, 1, size, f) == size && fclose(f) == 0 ? 0 : 4;
            }
            """.write(toFile: src, atomically: true, encoding: .utf8)
            let bin = dir + "/rewrite"
            let cc = runIn(nil, ["/usr/bin/cc", "-O1", "-o", bin, src, "-lbpf"])
            guard cc.status == 0 else { throw AgentError("cc rewrite.c -lbpf failed: \(cc.status)") }
            let btf = dir + "/vmlinux-before-6.1"
            let run = runIn(nil, [bin, btf])
            guard run.status == 0 else { throw AgentError("rewriting the kernel's BTF failed: \(run.status)") }
            return btf
        }

        @Test("the programs load where struct cgroup has ancestor_ids[] (5.15 to 6.0), not ancestors[]")
        func cgroupBefore61() throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aw-corefixes-\(getpid())").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let btf = try Self.btfBefore61(in: dir)
            var settings = SensorSettings(roots: [], ringBufferBytes: 1 << 16, argsMax: 4096, wakeupBytes: 1 << 16, btfPath: btf)
            // A pattern, so that the mkdir programs (which walk up the parents there) load too.
            settings.patterns = [[UInt8](repeating: 0, count: MemoryLayout<agent_pattern>.size)]
            #expect(throws: Never.self) { _ = try Sensor(settings: settings) }
        }
    }
}
