/// The credential catalog of one session, by what its files are: the identity (device and
/// inode) of each existing file whose path matches an item of a rule list marked
/// `identity: true`, with that path. The daemon's catalog scanner (AgentDaemon) fills it when
/// the session starts and keeps it current; the pipeline asks it, for every successful open,
/// whether the file opened is a catalog file reached under another path (a hard link, a bind
/// mount, `/proc/PID/root/...`): that path is the record's `file.known_as`.
///
/// Lives on the capture loop's thread, like the session.
package final class FileIdentities {
    /// A file's identity as the kernel records it (`agent_file_id`): the device in the kernel's
    /// encoding (major << 20 | minor) and the inode number.
    package struct Key: Hashable, Sendable {
        package let dev: UInt32
        package let ino: UInt64

        package init(dev: UInt32, ino: UInt64) {
            self.dev = dev
            self.ino = ino
        }
    }

    /// One catalog file: the catalog paths it is known by (sorted; the first is the one shown).
    package struct Entry: Sendable {
        package let paths: [[UInt8]]
        /// `paths[0]` as text, for the record and the rules.
        package let shown: String

        package init(paths: [[UInt8]]) {
            let sorted = paths.sorted { $0.lexicographicallyPrecedes($1) }
            self.paths = sorted
            shown = String(decoding: sorted.first ?? [], as: UTF8.self)
        }
    }

    package private(set) var entries: [Key: Entry] = [:]
    /// Directories in which a file created by the session may join the catalog: the literal
    /// parents of the catalog's patterns and the directories the last scan matched patterns in.
    package private(set) var directories: Set<[UInt8]> = []
    /// Their lengths: most created files are elsewhere, and this says so without a copy.
    private var directoryLengths: Set<Int> = []
    /// The session created a file in one of `directories` since the last scan.
    package var rescanWanted = false
    /// Monotonic time of the last scan (ns); 0: never scanned.
    package var scannedAtNs: Int64 = 0
    /// What the last scan left out (limits reached, patterns not expanded), for the log.
    package var notes: [String] = []

    package init() {}

    package var isEmpty: Bool { entries.isEmpty }

    /// Takes a scan's result.
    package func replace(entries: [Key: Entry], directories: Set<[UInt8]>, nowNs: Int64) {
        self.entries = entries
        self.directories = directories
        directoryLengths = Set(directories.map(\.count))
        scannedAtNs = nowNs
        rescanWanted = false
    }

    /// The catalog path of the file with this identity when `path`, the path the open reached it
    /// under, is not one of its catalog paths; nil otherwise (not a catalog file, or opened by a
    /// catalog path).
    @inline(__always)
    package func knownAs(dev: UInt32, ino: UInt64, path: UnsafeRawBufferPointer) -> String? {
        guard !entries.isEmpty, ino != 0, let e = entries[Key(dev: dev, ino: ino)] else { return nil }
        for p in e.paths where p.count == path.count && p.elementsEqual(path) { return nil }
        return e.shown
    }

    /// A successful open with O_CREAT made (or truncated) the file at `path`: when it is in a
    /// directory the catalog watches, the catalog is scanned again soon (the file may be a new
    /// credential, or the temporary file an editor renames over one).
    @inline(__always)
    package func noteCreated(_ path: UnsafeRawBufferPointer) {
        guard !rescanWanted, !directories.isEmpty, let slash = path.lastIndex(of: UInt8(ascii: "/")) else { return }
        let length = max(slash, 1)
        guard directoryLengths.contains(length) else { return }
        let parent = slash == 0 ? [UInt8(ascii: "/")] : Array(path[..<slash])
        if directories.contains(parent) { rescanWanted = true }
    }
}
