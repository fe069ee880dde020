/// The outcome of one fixture of one rule, as `agentwatch rules test` reports it.
package struct FixtureResult: Sendable, CustomStringConvertible {
    package let ruleID: String
    package let fixtureName: String
    package let file: String
    package let line: Int
    package let expected: Int
    package let got: Int
    package let passed: Bool
    /// Set on the results that report a missing fixture rather than a run.
    package let note: String?

    package var description: String {
        let verdict = passed ? "ok" : "FAIL"
        if let note { return "\(file):\(line): \(verdict) \(ruleID): \(note)" }
        return "\(file):\(line): \(verdict) \(ruleID) / \(fixtureName): expected \(expected) alert\(expected == 1 ? "" : "s"), got \(got)"
    }
}

extension RuleSet {
    /// Runs every rule's fixtures, each through a fresh Detector holding only that rule
    /// (disabled rules included). A rule also fails when it lacks a fixture that raises an
    /// alert or one that does not (a near miss).
    package func runFixtures() -> [FixtureResult] {
        var results: [FixtureResult] = []
        for rule in rules {
            let isolated = isolating(rule)
            for fixture in rule.fixtures {
                let detector = Detector(rules: isolated)
                var got = 0
                for (record, time) in zip(fixture.records, fixture.timesNs) {
                    let dict = record.any as? [String: Any] ?? [:]
                    detector.evaluate(CapturedRuleInput(dict, homes: [fixture.home], timeNs: time)) { _ in got += 1 }
                }
                results.append(FixtureResult(ruleID: rule.id, fixtureName: fixture.name, file: rule.source, line: fixture.line,
                                             expected: fixture.expectedAlerts, got: got, passed: got == fixture.expectedAlerts, note: nil))
            }
            if !rule.fixtures.contains(where: { $0.expectedAlerts >= 1 }) {
                results.append(FixtureResult(ruleID: rule.id, fixtureName: "", file: rule.source, line: rule.line, expected: 1, got: 0,
                                             passed: false, note: "no fixture raises an alert: add one with alerts: 1"))
            }
            if !rule.fixtures.contains(where: { $0.expectedAlerts == 0 }) {
                results.append(FixtureResult(ruleID: rule.id, fixtureName: "", file: rule.source, line: rule.line, expected: 0, got: 0,
                                             passed: false, note: "no near miss: add a fixture with alerts: 0"))
            }
        }
        return results
    }
}
