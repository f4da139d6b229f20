import BackupCore
import Foundation
import Testing

/// A named history and policy whose plan is checked against a golden JSON file, reviewed by eye.
/// Regenerate after an intended change: `scripts/update-golden.sh` (then read the diff).
struct RetentionScenario: CustomTestStringConvertible, Sendable {
    var name: String
    var policy: RetentionPolicy
    var now: Date
    var artifacts: [RetentionCandidate]
    var testDescription: String { name }
}

func utc(_ text: String) -> Date { Timestamps.parseISO8601(text)! }

/// Builds histories: one artifact per call, ids that sort by time.
struct HistoryBuilder {
    var artifacts: [RetentionCandidate] = []
    mutating func add(_ time: String, _ status: ArtifactStatus = .ok, tag: RunTag = .nightly, release: String? = nil,
                      pinned: Bool = false, reason: String? = nil) {
        let date = utc(time)
        artifacts.append(RetentionCandidate(id: Timestamps.compact(date) + "-\(artifacts.count)", createdAt: date, status: status,
                                            tag: tag, release: release, pinned: pinned, pinReason: reason))
    }
    mutating func nightly(from day: String, days: Int, at time: String = "02:30:00", status: (Int) -> ArtifactStatus = { _ in .ok }) {
        let start = utc(day + "T" + time + "Z")
        for i in 0..<days {
            let d = start.addingTimeInterval(Double(i) * 86400)
            artifacts.append(RetentionCandidate(id: Timestamps.compact(d) + "-n", createdAt: d, status: status(i)))
        }
    }
}

enum RetentionScenarios {
    static var all: [RetentionScenario] {
        var out: [RetentionScenario] = []

        var h = HistoryBuilder()
        h.nightly(from: "2026-10-31", days: 30)
        out.append(.init(name: "30-nightly-defaults", policy: RetentionPolicy(), now: utc("2026-11-29T03:00:00Z"), artifacts: h.artifacts))

        h = HistoryBuilder()
        for day in ["2026-11-01", "2026-11-02", "2026-11-06", "2026-11-07", "2026-11-15", "2026-11-16", "2026-11-17", "2026-11-27"] {
            h.add(day + "T02:30:00Z")
        }
        out.append(.init(name: "gaps-of-several-days", policy: RetentionPolicy(), now: utc("2026-11-29T03:00:00Z"), artifacts: h.artifacts))

        h = HistoryBuilder()
        for d in 20...28 { for hour in ["02:30", "10:00", "18:45"] { h.add("2026-11-\(d)T\(hour):00Z", tag: hour == "02:30" ? .nightly : .manual) } }
        out.append(.init(name: "several-a-day", policy: RetentionPolicy(daily: 7, keepLast: 2), now: utc("2026-11-28T20:00:00Z"), artifacts: h.artifacts))

        h = HistoryBuilder()
        h.nightly(from: "2026-11-10", days: 19, status: { $0 % 4 == 3 ? .failed : .ok })
        out.append(.init(name: "failed-runs-mixed-in", policy: RetentionPolicy(), now: utc("2026-11-28T12:00:00Z"), artifacts: h.artifacts))

        h = HistoryBuilder()
        h.nightly(from: "2026-11-01", days: 20, status: { $0 >= 13 ? .failed : .ok })
        out.append(.init(name: "a-week-of-only-failures", policy: RetentionPolicy(), now: utc("2026-11-20T12:00:00Z"), artifacts: h.artifacts))

        h = HistoryBuilder()
        h.nightly(from: "2026-11-01", days: 28)
        for (day, release) in [("03", "kaleem-api:1.4.0"), ("09", "kaleem-api:1.4.1"), ("09", "kaleem-api:1.4.1"), ("16", "kaleem-api:1.4.2"), ("24", "kaleem-api:1.5.0")] {
            h.add("2026-11-\(day)T14:00:\(h.artifacts.count % 60)Z", tag: .preDeploy, release: release,
                  pinned: release == "kaleem-api:1.5.0", reason: release == "kaleem-api:1.5.0" ? "release \(release)" : nil)
        }
        h.add("2026-11-05T09:00:00Z", tag: .manual, pinned: true, reason: "before the November migration")
        out.append(.init(name: "pinned-and-pre-deploy-releases", policy: RetentionPolicy(daily: 7, keepLast: 3, preDeploy: 2),
                         now: utc("2026-11-28T12:00:00Z"), artifacts: h.artifacts))

        // Europe/Berlin: CEST ends 2026-10-25 03:00 → 02:00; backups just after local midnight count for the local day.
        h = HistoryBuilder()
        for t in ["2026-10-22T22:30:00Z", "2026-10-23T22:30:00Z", "2026-10-24T22:30:00Z", "2026-10-24T23:30:00Z",
                  "2026-10-25T23:30:00Z", "2026-10-26T23:30:00Z", "2026-10-27T22:59:00Z", "2026-10-27T23:01:00Z"] { h.add(t) }
        out.append(.init(name: "dst-autumn-berlin", policy: RetentionPolicy(daily: 3, keepLast: 1, timeZone: "Europe/Berlin"),
                         now: utc("2026-10-28T06:00:00Z"), artifacts: h.artifacts))

        // Spring forward 2026-03-29 02:00 → 03:00 in Berlin.
        h = HistoryBuilder()
        for t in ["2026-03-26T23:30:00Z", "2026-03-27T23:30:00Z", "2026-03-28T23:30:00Z", "2026-03-29T00:30:00Z",
                  "2026-03-29T22:30:00Z", "2026-03-30T21:59:00Z", "2026-03-30T22:01:00Z"] { h.add(t) }
        out.append(.init(name: "dst-spring-berlin", policy: RetentionPolicy(daily: 3, keepLast: 1, timeZone: "Europe/Berlin"),
                         now: utc("2026-03-31T06:00:00Z"), artifacts: h.artifacts))

        h = HistoryBuilder()
        h.nightly(from: "2026-11-25", days: 4)
        out.append(.init(name: "keep-last-larger-than-history", policy: RetentionPolicy(daily: 1, keepLast: 10), now: utc("2026-11-29T03:00:00Z"), artifacts: h.artifacts))

        h = HistoryBuilder()
        h.nightly(from: "2026-05-01", days: 212)
        out.append(.init(name: "grandfather-father-son", policy: RetentionPolicy(daily: 7, weekly: 4, monthly: 6, keepLast: 3),
                         now: utc("2026-11-29T03:00:00Z"), artifacts: h.artifacts))

        h = HistoryBuilder()
        h.nightly(from: "2026-11-01", days: 5)
        h.add("2026-11-28T02:30:00Z", .running)
        h.add("2026-11-27T02:30:00Z", .failed)
        out.append(.init(name: "old-history-newest-in-progress", policy: RetentionPolicy(), now: utc("2026-11-28T03:00:00Z"), artifacts: h.artifacts))

        out.append(.init(name: "empty-history", policy: RetentionPolicy(), now: utc("2026-11-28T03:00:00Z"), artifacts: []))
        return out
    }
}

/// Checks the invariants every plan must satisfy; returns the broken ones.
func retentionInvariantViolations(_ artifacts: [RetentionCandidate], _ plan: RetentionPlan) -> [String] {
    var problems: [String] = []
    let kept = Set(plan.keep.map(\.id)), removed = Set(plan.remove)
    if kept.count + removed.count != artifacts.count || !kept.isDisjoint(with: removed) || kept.union(removed) != Set(artifacts.map(\.id)) {
        problems.append("keep + remove != input")
    }
    if plan.keep.contains(where: { $0.reasons.isEmpty }) { problems.append("a kept artifact without a reason") }
    let sorted = artifacts.sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
    if let newestGood = sorted.first(where: { $0.status == .ok }), removed.contains(newestGood.id) { problems.append("newest good removed") }
    if artifacts.contains(where: { $0.pinned && removed.contains($0.id) }) { problems.append("pinned removed") }
    if artifacts.contains(where: { $0.status == .running && removed.contains($0.id) }) { problems.append("in-progress removed") }
    if let newest = sorted.first, newest.status == .failed {
        if artifacts.contains(where: { $0.status == .ok && removed.contains($0.id) }) { problems.append("good removed while the newest failed") }
        if plan.heldBack == nil { problems.append("held_back not reported") }
    }
    return problems
}

struct RetentionPlannerTests {
    static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/retention")

    static func render(_ s: RetentionScenario, _ plan: RetentionPlan) -> String {
        let created = Dictionary(uniqueKeysWithValues: s.artifacts.map { ($0.id, Timestamps.iso8601($0.createdAt)) })
        var lines = ["{"]
        lines.append("  \"scenario\": \"\(s.name)\",")
        lines.append("  \"now\": \"\(Timestamps.iso8601(s.now))\",")
        let p = s.policy
        lines.append("  \"policy\": {\"daily\": \(p.daily), \"weekly\": \(p.weekly), \"monthly\": \(p.monthly), \"keep_last\": \(p.keepLast), \"pre_deploy\": \(p.preDeploy), \"failed_grace_hours\": \(p.failedGraceHours), \"timezone\": \"\(p.timeZone)\"},")
        lines.append("  \"held_back\": " + (plan.heldBack.map { "\"\($0)\"" } ?? "null") + ",")
        lines.append("  \"keep\": [")
        lines.append(plan.keep.map { k in
            "    {\"id\": \"\(k.id)\", \"created\": \"\(created[k.id]!)\", \"reasons\": [\(k.reasons.map { "\"\($0)\"" }.joined(separator: ", "))]}"
        }.joined(separator: ",\n"))
        lines.append("  ],")
        lines.append("  \"remove\": [")
        lines.append(plan.remove.map { "    {\"id\": \"\($0)\", \"created\": \"\(created[$0]!)\"}" }.joined(separator: ",\n"))
        lines.append("  ]")
        lines.append("}")
        return lines.filter { !$0.isEmpty }.joined(separator: "\n") + "\n"
    }

    @Test(arguments: RetentionScenarios.all)
    func matchesGolden(_ scenario: RetentionScenario) throws {
        let plan = RetentionPlanner.plan(scenario.artifacts, policy: scenario.policy, now: scenario.now)
        #expect(retentionInvariantViolations(scenario.artifacts, plan).isEmpty)
        let text = Self.render(scenario, plan)
        let file = Self.goldenDirectory.appendingPathComponent(scenario.name + ".json")
        if ProcessInfo.processInfo.environment["KALEEM_UPDATE_GOLDEN"] == "1" {
            try text.write(to: file, atomically: true, encoding: .utf8)
            return
        }
        let golden = try String(contentsOf: file, encoding: .utf8)
        #expect(text == golden, "plan differs from \(file.path); if intended, run scripts/update-golden.sh and review the diff")
        // The golden file is valid JSON.
        _ = try JSONSerialization.jsonObject(with: Data(golden.utf8))
    }

    /// Invariants over 10,000 random histories (fixed seed, so a failure reproduces).
    @Test func invariantsHoldOnRandomHistories() {
        var rng = SeededGenerator(seed: 20261129)
        let zones = ["UTC", "Asia/Riyadh", "Europe/Berlin", "America/New_York"]
        let now = utc("2026-11-29T03:00:00Z")
        for round in 0..<10_000 {
            let count = Int.random(in: 0...40, using: &rng)
            var artifacts: [RetentionCandidate] = []
            for i in 0..<count {
                let age = Double.random(in: 0...(120 * 86400), using: &rng)
                let roll = Int.random(in: 0..<100, using: &rng)
                let status: ArtifactStatus = roll < 70 ? .ok : (roll < 97 ? .failed : .running)
                let preDeploy = Int.random(in: 0..<6, using: &rng) == 0
                artifacts.append(RetentionCandidate(
                    id: "a\(round)-\(i)", createdAt: now.addingTimeInterval(-age), status: status,
                    tag: preDeploy ? .preDeploy : .nightly, release: preDeploy ? "r\(Int.random(in: 0..<5, using: &rng))" : nil,
                    pinned: Int.random(in: 0..<15, using: &rng) == 0))
            }
            let policy = RetentionPolicy(
                daily: Int.random(in: 0...10, using: &rng), weekly: Int.random(in: 0...5, using: &rng),
                monthly: Int.random(in: 0...4, using: &rng), keepLast: Int.random(in: 0...5, using: &rng),
                preDeploy: Int.random(in: 0...3, using: &rng), failedGraceHours: Int.random(in: 0...96, using: &rng),
                timeZone: zones[Int.random(in: 0..<zones.count, using: &rng)])
            let plan = RetentionPlanner.plan(artifacts, policy: policy, now: now)
            let problems = retentionInvariantViolations(artifacts, plan)
            if !problems.isEmpty {
                Issue.record("round \(round): \(problems)")
                return
            }
        }
    }

    @Test func defaultsWhenThePolicySaysNothing() {
        let p = RetentionPolicy()
        #expect(p.daily == 7 && p.keepLast == 3 && p.failedGraceHours == 48)
        #expect(!p.isEmpty)
        #expect(RetentionPolicy(daily: 0, keepLast: 0).isEmpty)
    }

    @Test func reasonsHaveTheDocumentedForms() {
        var h = HistoryBuilder()
        h.add("2026-11-28T02:30:00Z", tag: .preDeploy, release: "kaleem-api:1.4.2", pinned: true, reason: "release kaleem-api:1.4.2")
        h.add("2026-11-27T02:30:00Z")
        let plan = RetentionPlanner.plan(h.artifacts, policy: RetentionPolicy(daily: 7, weekly: 1, monthly: 1, keepLast: 3, preDeploy: 1),
                                         now: utc("2026-11-28T12:00:00Z"))
        let reasons = plan.keep[0].reasons
        #expect(reasons == ["newest good", "pinned: release kaleem-api:1.4.2", "last 3", "daily 2026-11-28", "weekly 2026-W48",
                            "monthly 2026-11", "pre-deploy kaleem-api:1.4.2"])
    }
}
