import BackupCore
import Foundation
import TestSupport
import Testing

struct ScheduleCommandTests {
    @Test func printsTheNextRunTimesWithOffsets() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1", extra: """
        schedules:
          - { name: nightly, cron: "30 2 * * *", timezone: Asia/Riyadh, run: backup }
          - { name: berlin, cron: "30 2 * * *", timezone: Europe/Berlin }
        """)
        let r = try runCLI(["schedule", "--policy", policy, "--json", "--count", "3", "--after", "2026-10-24T12:00:00Z"])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try array(r.stdout)
        #expect(rows.map { $0["name"] as? String } == ["nightly", "berlin"])
        #expect(rows[0]["next"] as? [String] == ["2026-10-25T02:30:00+03:00", "2026-10-26T02:30:00+03:00", "2026-10-27T02:30:00+03:00"])
        // The fall-back night fires once, at the first 02:30 (CEST), then at 02:30 CET.
        #expect(rows[1]["next"] as? [String] == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00"])
        let text = try runCLI(["schedule", "--policy", policy, "--count", "1"])
        #expect(text.stdout.contains("nightly: backup all sources at \"30 2 * * *\" (Asia/Riyadh)"))
    }

    /// The shipped cron file's schedules are valid cron lines.
    @Test func shippedCronFileParses() throws {
        let text = try String(contentsOfFile: packageRoot + "/cron/kaleem-backup.cron", encoding: .utf8)
        let lines = text.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.contains(" root ") }
        #expect(lines.count >= 2)
        for line in lines {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).prefix(5).joined(separator: " ")
            _ = try CronSchedule(fields)
            #expect(line.contains("flock -n"))
        }
    }
}
