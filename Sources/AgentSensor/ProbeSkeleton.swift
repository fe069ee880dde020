import AgentProbes
import BPFKit
import Glibc

/// The kernel programs' object, opened through its generated skeleton: every program, map and
/// setting is named by AgentProbes.Program, .Map and .Rodata, which bpf/tools/bpf-skeleton.c
/// writes from the object at build time, so a name the object does not have fails to compile
/// (`bpftool gen skeleton`'s shape, in Swift). Open, set `rodata`, `load()`, attach.
package final class ProbeSkeleton {
    package let object: BPFObject
    /// The settings as the object holds them; written into it by `load()`, so a change after
    /// that reaches nothing.
    package var rodata: AgentProbes.Rodata
    private let programs: [AgentProbes.Program: BPFProgram]
    private let maps: [AgentProbes.Map: BPFMap]

    /// Opens the embedded object, or `bytes` (another build of it: every program, map and
    /// setting the skeleton names must be there, or the open fails naming the first that is
    /// not). `btfPath` names the kernel BTF to relocate against, when not the running kernel's.
    package init(bytes: [UInt8]? = nil, btfPath: String? = nil) throws(BPFError) {
        if let mismatch = AgentProbes.Rodata.layoutMismatch {
            throw BPFError("the skeleton's .rodata: \(mismatch)", errno: EINVAL)
        }
        let object = try BPFObject(bytes: bytes ?? AgentProbes.object(), name: "agentwatch", btfPath: btfPath)
        var programs: [AgentProbes.Program: BPFProgram] = [:]
        for p in AgentProbes.Program.allCases { programs[p] = try object.program(p.rawValue) }
        var maps: [AgentProbes.Map: BPFMap] = [:]
        for m in AgentProbes.Map.allCases { maps[m] = try object.map(m.rawValue) }
        self.object = object
        self.programs = programs
        self.maps = maps
        let section = try object.dataSection(AgentProbes.Map.rodata.rawValue, size: AgentProbes.Rodata.size)
        rodata = AgentProbes.Rodata(UnsafeRawBufferPointer(section))
    }

    package func program(_ p: AgentProbes.Program) -> BPFProgram { programs[p]! }

    package func map(_ m: AgentProbes.Map) -> BPFMap { maps[m]! }

    /// Writes `rodata` into the object, then loads every program and creates every map.
    package func load() throws(BPFError) {
        rodata.write(to: try object.dataSection(AgentProbes.Map.rodata.rawValue, size: AgentProbes.Rodata.size))
        try object.load()
    }
}
