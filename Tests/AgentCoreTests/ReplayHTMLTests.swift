@testable import AgentReplay
import Foundation
import Glibc
import Testing

/// The HTML report in a real browser: headless Chromium (Debian package `chromium`) loads a
/// replay of 10,000 records, runs its script, and the DOM it dumps shows the session's alerts
/// and its process tree; a screenshot is kept under .build/replay-artifacts/. Without Chromium
/// the test fails and says how to install it: CI installs it, and a skipped browser test would
/// pass unseen.
@Suite("replay html in chromium")
struct ReplayHTMLTests {
    static let artifacts: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path + "/.build/replay-artifacts"
    }()

    static func chromium() -> String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { access($0, X_OK) == 0 }
    }

    /// Runs Chromium headless on `url` with `args`; returns its standard output.
    static func run(_ chromium: String, _ args: [String], _ url: String) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: chromium)
        // Root needs --no-sandbox; a profile of its own keeps the run from touching anyone's.
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                       "--user-data-dir=\(artifacts)/profile", "--virtual-time-budget=5000"] + args + [url]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    /// How many `<ul class="tree">` enclose the first place in `html` where `needle` appears.
    static func treeDepth(of needle: String, in html: String) -> Int? {
        guard let at = html.range(of: needle)?.lowerBound else { return nil }
        let b = Array(html.utf8[..<at])
        func starts(_ s: String, _ i: Int) -> Bool { Array(s.utf8).enumerated().allSatisfy { i + $0.offset < b.count && b[i + $0.offset] == $0.element } }
        var stack: [Bool] = []
        var i = 0
        while i < b.count {
            if starts("</ul>", i) {
                _ = stack.popLast()
                i += 5
            } else if starts("<ul ", i) || starts("<ul>", i) {
                let end = b[i...].firstIndex(of: UInt8(ascii: ">")) ?? b.count
                stack.append(String(decoding: b[i..<end], as: UTF8.self).contains("class=\"tree\""))
                i = end
            } else {
                i += 1
            }
        }
        return stack.filter { $0 }.count
    }

    @Test("headless Chromium renders a 10,000-record replay: alerts, process tree, timeline; screenshot kept")
    func chromiumRendersTheReport() throws {
        guard let chromium = Self.chromium() else {
            Issue.record("chromium is not installed: this test renders the replay's HTML in it. Install the Debian package: apt-get install -y chromium")
            return
        }
        var c = ReplayTests.attack(rules: ReplayTests.rules)
        c.sessionStart("busy")
        c.exec("busy", 500, ppid: 1, exe: "/usr/bin/make", argv: ["make", "-j2"])
        for i in 0..<(10_000 - Int(c.seq) - 1) {
            c.open("busy", 500 + i % 5, ppid: 500, exe: "/usr/bin/cc", argv: ["cc", "-c", "f\(i % 50).c"], path: "/home/dev/src/f\(i % 50).c")
        }
        c.sessionEnd("busy")
        #expect(c.seq == 10_000)
        try FileManager.default.createDirectory(atPath: Self.artifacts, withIntermediateDirectories: true)
        let page = Self.artifacts + "/replay.html"
        let out = try ReplayOutput(path: page)
        var options = ReplayOptions()
        options.format = .html
        options.rules = ReplayTests.rules
        let summary = CaptureReplay(options: options, output: out) { _ in }.run(captures: [("capture.ndjson", c.bytes)])
        out.flush()
        #expect(summary.intact && summary.records == 10_000)
        chmod(page, 0o644)

        let dom = try Self.run(chromium, ["--dump-dom"], "file://" + page)
        #expect(dom.status == 0, "chromium --dump-dom failed: \(dom.err.suffix(2000))")
        let html = dom.out
        #expect(html.contains("<span id=\"shown\">10"), "the page's script ran and counted the timeline: \(html.prefix(300))")
        // The alerts: the three rules that fired live, each also replayed.
        for rule in ["cred-cloud-credentials", "net-large-upload", "net-credential-read-then-upload"] {
            let rows = html.components(separatedBy: "<tr class=\"alert sev-").dropFirst().filter { $0.prefix(while: { $0 != "\n" }).contains(">\(rule)</td>") }
            #expect(rows.count == 2, "\(rule): \(rows.count) alert rows")
            #expect(rows.contains { $0.contains("<td>live</td>") } && rows.contains { $0.contains("<td>replayed</td>") }, "\(rule)")
        }
        // The tree: bash at the root of session demo, cat, python and busybox its children.
        let name = "title=\"show its timeline\">"
        #expect(Self.treeDepth(of: name + "bash[100]<", in: html) == 1)
        for child in ["cat[101]<", "python3.11[102]<", "dash[103]<"].map({ name + $0 }) {
            #expect(Self.treeDepth(of: child, in: html) == 2, "\(child)")
        }
        #expect(html.contains("open /home/dev/.aws/credentials O_RDONLY = fd 3"))
        // Every record has its timeline row.
        #expect(html.components(separatedBy: "<tr class=\"ev ").count - 1 >= 10_000)

        let shot = Self.artifacts + "/replay.png"
        unlink(shot)
        let s = try Self.run(chromium, ["--screenshot=\(shot)", "--window-size=1400,2200"], "file://" + page)
        var st = stat()
        #expect(s.status == 0 && stat(shot, &st) == 0 && st.st_size > 20_000, "no screenshot: \(s.err.suffix(2000))")
        print("replay html test artifacts: \(page), \(shot)")
    }
}
