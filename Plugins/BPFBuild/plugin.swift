import Foundation
import PackagePlugin

/// Compiles bpf/*.bpf.c into one BPF object on every build whose inputs changed, and embeds it
/// in the target as a generated Swift source, so the daemon carries its programs inside itself;
/// bpf/tools/bpf-skeleton.c writes the object's skeleton beside it (AgentProbes.Program, Map,
/// Rodata).
@main
struct BPFBuild: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let package = context.package.directoryURL
        let bpf = package.appending(path: "bpf")
        let header = package.appending(path: "Sources/CAgentEvents/include/agent_events.h")
        let work = context.pluginWorkDirectoryURL
        let output = work.appending(path: "EmbeddedBPFObject.swift")
        let skeleton = work.appending(path: "AgentProbes+Skeleton.swift")

        var inputs = [bpf.appending(path: "build.sh"), bpf.appending(path: "tools/bpf-skeleton.c"), header]
        for dir in [bpf, bpf.appending(path: "lib")] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            for name in names.sorted() where name.hasSuffix(".bpf.c") || name.hasSuffix(".bpf.h") || name == "vmlinux.h" {
                inputs.append(dir.appending(path: name))
            }
        }
        let clang = try context.tool(named: "clang").url
        return [
            .buildCommand(
                displayName: "Compiling BPF programs (bpf/*.bpf.c)",
                executable: URL(filePath: "/bin/sh"),
                arguments: [bpf.appending(path: "build.sh").path, clang.path, work.appending(path: "obj").path, output.path,
                            skeleton.path],
                inputFiles: inputs,
                outputFiles: [output, skeleton]
            )
        ]
    }
}
