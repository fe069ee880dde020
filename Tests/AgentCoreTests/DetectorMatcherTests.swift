@testable import AgentDetector
import Testing

@Suite("Detector glob and CIDR matchers")
struct DetectorMatcherTests {
    func glob(_ pattern: String, _ value: String, ci: Bool = false) throws -> Bool {
        let g = try Glob(Array(pattern.utf8), caseInsensitive: ci)
        var v = value
        return v.withUTF8 { g.matches($0) }
    }

    @Test func starStopsAtSlashDoubleStarDoesNot() throws {
        #expect(try glob("/etc/*", "/etc/passwd"))
        #expect(try !glob("/etc/*", "/etc/ssl/certs"))
        #expect(try glob("/etc/**", "/etc/ssl/certs"))
        #expect(try glob("**/.env", "/srv/app/.env"))
        #expect(try !glob("*/.env", "/srv/app/.env"))
        #expect(try glob("/home/*/.ssh/id_*", "/home/dev/.ssh/id_rsa"))
        #expect(try !glob("/home/*/.ssh/id_*", "/home/dev/x/.ssh/id_rsa"))
        #expect(try glob("/a/**/b/*.txt", "/a/x/y/b/c.txt"))
        #expect(try glob("/a/**/b/*.txt", "/a/b/b/c.txt"))
        #expect(try !glob("/a/**/b/*.txt", "/a/x/b/c/d.txt"))
        // Backtracking across a `**` after a later `*` failed.
        #expect(try glob("**/a*/b", "/x/a1/y/a2/b"))
        #expect(try glob("*", ""))
        #expect(try !glob("?", ""))
    }

    @Test func questionMarkIsOneCharacterNotSlash() throws {
        #expect(try glob("/tmp/?", "/tmp/a"))
        #expect(try !glob("/tmp/?", "/tmp/ab"))
        #expect(try !glob("/a?b", "/a/b"))
        // One character, not one byte.
        #expect(try glob("/x/?.txt", "/x/é.txt"))
        #expect(try glob("/x/*?", "/x/日本"))
    }

    @Test func characterClasses() throws {
        #expect(try glob("/dev/tty[0-9]", "/dev/tty7"))
        #expect(try !glob("/dev/tty[0-9]", "/dev/ttyS"))
        #expect(try glob("/x/[abc].c", "/x/b.c"))
        #expect(try !glob("/x/[!abc].c", "/x/b.c"))
        #expect(try glob("/x/[!abc].c", "/x/d.c"))
        #expect(try glob("/x/[^abc].c", "/x/d.c"))
        #expect(try glob("/x/[]]", "/x/]"))
        #expect(try !glob("/x[/]y", "/x/y"))
        #expect(try glob("/x/[A-Z]", "/x/q", ci: true))
        #expect(try glob("/x/[é]", "/x/é"))
        #expect(throws: Glob.SyntaxError.self) { try Glob(Array("/x/[ab".utf8), caseInsensitive: false) }
        #expect(throws: Glob.SyntaxError.self) { try Glob(Array("/x/[z-a]".utf8), caseInsensitive: false) }
    }

    @Test func escapesAndCaseFolding() throws {
        #expect(try glob(#"/x/\*"#, "/x/*"))
        #expect(try !glob(#"/x/\*"#, "/x/a"))
        #expect(try glob("/ETC/*.Conf", "/etc/A.CONF", ci: true))
        #expect(try !glob("/ETC/*.Conf", "/etc/A.CONF"))
    }

    @Test func requiredLiteralPrefilterAgreesWithTheAutomaton() throws {
        #expect(try glob("**/.env.*", "/srv/app/.env.local"))
        #expect(try !glob("**/.env.*", "/srv/app/.env"))
        #expect(try !glob("**/.env.*", "/srv/.env.d/x"))
        #expect(try glob("**/.ENV.*", "/srv/app/.env.LOCAL", ci: true))
        #expect(try !glob("**/.ENV.*", "/srv/app/.env.LOCAL"))
        #expect(try glob("/a/*/b*c/**", "/a/x/bzzc/d/e"))
        #expect(try !glob("/a/*/b*c/**", "/a/x/y/bzzc/d"))
    }

    /// A slow, obviously right glob matcher over characters to check the fast one against.
    func reference(_ p: [Character], _ v: [Character]) -> Bool {
        if p.isEmpty { return v.isEmpty }
        if p.count >= 2, p[0] == "*", p[1] == "*" {
            let rest = Array(p.drop { $0 == "*" })
            return (0...v.count).contains { reference(rest, Array(v[$0...])) }
        }
        switch p[0] {
        case "*":
            var i = 0
            while true {
                if reference(Array(p.dropFirst()), Array(v[i...])) { return true }
                if i == v.count || v[i] == "/" { return false }
                i += 1
            }
        case "?":
            return !v.isEmpty && v[0] != "/" && reference(Array(p.dropFirst()), Array(v.dropFirst()))
        default:
            return !v.isEmpty && v[0] == p[0] && reference(Array(p.dropFirst()), Array(v.dropFirst()))
        }
    }

    @Test func globAgreesWithAReferenceOnRandomInputs() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(n))
        }
        let patternAtoms = ["a", "b", "/", "*", "**", "?", "é"]
        let valueAtoms: [Character] = ["a", "b", "/", "é"]
        var disagreements: [String] = []
        for _ in 0..<3000 {
            let pattern = (0..<(1 + next(6))).map { _ in patternAtoms[next(patternAtoms.count)] }.joined()
            let value = String((0..<next(8)).map { _ in valueAtoms[next(valueAtoms.count)] })
            let expected = reference(Array(pattern), Array(value))
            if try glob(pattern, value) != expected { disagreements.append("\(pattern) ~ \(value): expected \(expected)") }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
    }

    @Test func garbageAddressesAndBytesDoNotCrash() throws {
        var state: UInt64 = 42
        let g = try Glob(Array("**/x[a-z]?*.y".utf8), caseInsensitive: true)
        for _ in 0..<5000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int(state % 40) {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                bytes.append(UInt8(truncatingIfNeeded: state >> 56))
            }
            state = state &* 6_364_136_223_846_793_005 &+ 1
            _ = bytes.withUnsafeBufferPointer { g.matches($0) }
            _ = bytes.withUnsafeBufferPointer { IPAddress.parse($0) }
        }
        #expect(IPAddress.parse("1.2.3.4.5") == nil)
        #expect(IPAddress.parse(":::") == nil)
        #expect(IPAddress.parse("::") != nil)
    }

    @Test func hostileInputStaysLinear() throws {
        // Exponential for a backtracking matcher; the NFA walks the value once.
        let value = "/" + String(repeating: "a", count: 4000)
        let g = try Glob(Array("/*a*a*a*a*a*a*a*a*b".utf8), caseInsensitive: false)
        var v = value
        let clock = ContinuousClock()
        var hit = true
        let took = clock.measure { hit = v.withUTF8 { g.matches($0) } }
        #expect(!hit)
        #expect(took < .seconds(2))
    }

    @Test func cidrParsing() {
        #expect(CIDRBlock("10.0.0.0/8") != nil)
        #expect(CIDRBlock("10.0.0.0/33") == nil)
        #expect(CIDRBlock("fd00::/8") != nil)
        #expect(CIDRBlock("fd00::/129") == nil)
        #expect(CIDRBlock("300.1.1.1") == nil)
        #expect(CIDRBlock("1.2.3") == nil)
        #expect(CIDRBlock("1::2::3") == nil)
        #expect(CIDRBlock("example.com") == nil)
        #expect(IPAddress.parse("::ffff:1.2.3.4")?.address == IPAddress.parse("1.2.3.4")?.address)
        #expect(IPAddress.parse("2001:db8::1")?.address == IPAddress(hi: 0x2001_0db8_0000_0000, lo: 1))
        #expect(IPAddress.parse("fe80::1%eth0")?.address == IPAddress(hi: 0xfe80_0000_0000_0000, lo: 1))
        #expect(IPAddress.parse("1:2:3:4:5:6:7:8")?.address == IPAddress(hi: 0x0001_0002_0003_0004, lo: 0x0005_0006_0007_0008))
        #expect(IPAddress.parse("1:2:3:4:5:6:7:8:9") == nil)
        #expect(IPAddress.parse("1:2:3") == nil)
        let block = CIDRBlock("2001:db8::/32")!
        #expect(block.contains(IPAddress.parse("2001:db8:ffff::1")!.address))
        #expect(!block.contains(IPAddress.parse("2001:db9::1")!.address))
        let zero = CIDRBlock("0.0.0.0/0")!
        #expect(zero.contains(IPAddress.parse("8.8.8.8")!.address))
        #expect(!zero.contains(IPAddress.parse("2001:db8::1")!.address))
    }
}
