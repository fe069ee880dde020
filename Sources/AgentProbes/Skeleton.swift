import BPFKit

extension AgentProbes {
    /// The kernel programs opened from their object, with every program, map and setting named
    /// by the generated `Program`, `Map` and `Rodata` (bpf-skeleton, run on the object at build
    /// time), so a name the object does not have is a compile error: `bpftool gen skeleton`'s
    /// shape in Swift. Open, set `rodata`, `load()`, attach.
    public final class Skeleton {
        public let object: BPFObject
        /// The settings as the object holds them; written into it by `load()`, so a change
        /// after that reaches nothing.
        public var rodata: Rodata
        private let programs: [Program: BPFProgram]
        private let maps: [Map: BPFMap]

        /// Opens the embedded object, or `bytes` (another build of it: every program, map and
        /// setting the skeleton names must be there, or the open fails naming the first that
        /// is not). `btfPath` names the kernel BTF to relocate against, when not the running
        /// kernel's.
        public init(bytes: [UInt8]? = nil, btfPath: String? = nil) throws(BPFError) {
            let object = try BPFObject(bytes: bytes ?? AgentProbes.object(), name: "agentwatch", btfPath: btfPath)
            var programs: [Program: BPFProgram] = [:]
            for p in Program.allCases { programs[p] = try object.program(p.rawValue) }
            var maps: [Map: BPFMap] = [:]
            for m in Map.allCases { maps[m] = try object.map(m.rawValue) }
            self.object = object
            self.programs = programs
            self.maps = maps
            rodata = try Rodata(object.dataSection(Map.rodata.rawValue, size: Rodata.size))
        }

        public func program(_ p: Program) -> BPFProgram { programs[p]! }

        public func map(_ m: Map) -> BPFMap { maps[m]! }

        /// Writes `rodata` into the object, then loads every program and creates every map.
        public func load() throws(BPFError) {
            try rodata.write(to: object.dataSection(Map.rodata.rawValue, size: Rodata.size))
            try object.load()
        }
    }
}
