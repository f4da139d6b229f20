import BackupCore
import Foundation
import Testing

struct SchedulerTests {
    static func z(_ s: String) -> Date { Timestamps.parseISO8601(s)! }
    static func entry(_ name: String, _ cron: String, run: ScheduledJob = .backup) -> ScheduleEntry {
        ScheduleEntry(name: name, cron: try! CronSchedule(cron), timeZone: "UTC", run: run)
    }

    @Test func firesAtItsTimesAndSleepsInBetween() {
        var s = Scheduler(entries: [Self.entry("nightly", "30 2 * * *")], lastRuns: [:], now: Self.z("2026-11-29T00:00:00Z"))
        #expect(s.tick(now: Self.z("2026-11-29T00:00:00Z")) == [.sleep(until: Self.z("2026-11-29T02:30:00Z"))])
        #expect(s.tick(now: Self.z("2026-11-29T02:30:00Z")) == [.run(schedule: "nightly"), .sleep(until: Self.z("2026-11-30T02:30:00Z"))])
        s.finished(schedule: "nightly")
        #expect(s.tick(now: Self.z("2026-11-29T02:31:00Z")) == [.sleep(until: Self.z("2026-11-30T02:30:00Z"))])
    }

    /// The host was down for three nights: one catch-up run at start, not three.
    @Test func missedRunsCatchUpOnce() {
        var s = Scheduler(entries: [Self.entry("nightly", "30 2 * * *")],
                          lastRuns: ["nightly": Self.z("2026-11-25T02:30:05Z")], now: Self.z("2026-11-28T09:00:00Z"))
        #expect(s.tick(now: Self.z("2026-11-28T09:00:00Z")) == [.run(schedule: "nightly"), .sleep(until: Self.z("2026-11-29T02:30:00Z"))])
        s.finished(schedule: "nightly")
        #expect(s.tick(now: Self.z("2026-11-28T09:10:00Z")) == [.sleep(until: Self.z("2026-11-29T02:30:00Z"))])
    }

    @Test func noCatchUpWhenNothingWasMissed() {
        var s = Scheduler(entries: [Self.entry("nightly", "30 2 * * *")],
                          lastRuns: ["nightly": Self.z("2026-11-28T02:30:05Z")], now: Self.z("2026-11-28T09:00:00Z"))
        #expect(s.tick(now: Self.z("2026-11-28T09:00:00Z")) == [.sleep(until: Self.z("2026-11-29T02:30:00Z"))])
    }

    /// A job still running when its next occurrence comes: that occurrence is skipped, and said so.
    @Test func overlappingRunIsSkipped() {
        var s = Scheduler(entries: [Self.entry("often", "*/10 * * * *")], lastRuns: [:], now: Self.z("2026-11-29T10:05:00Z"))
        #expect(s.tick(now: Self.z("2026-11-29T10:10:00Z")).first == .run(schedule: "often"))
        #expect(s.tick(now: Self.z("2026-11-29T10:20:00Z")) == [.skip(schedule: "often", reason: "its previous run is still going"),
                                                               .sleep(until: Self.z("2026-11-29T10:30:00Z"))])
        s.finished(schedule: "often")
        #expect(s.tick(now: Self.z("2026-11-29T10:30:00Z")).first == .run(schedule: "often"))
    }

    /// Two schedules due at once: one job at a time, the second when the first is done.
    @Test func oneJobAtATime() {
        var s = Scheduler(entries: [Self.entry("backup", "0 3 * * *"), Self.entry("rotate", "0 3 * * *", run: .rotate)],
                          lastRuns: [:], now: Self.z("2026-11-29T00:00:00Z"))
        #expect(s.tick(now: Self.z("2026-11-29T03:00:00Z")).first == .run(schedule: "backup"))
        #expect(s.queue == ["rotate"])
        #expect(s.tick(now: Self.z("2026-11-29T03:05:00Z")).first == .sleep(until: Self.z("2026-11-30T03:00:00Z")))
        s.finished(schedule: "backup")
        #expect(s.tick(now: Self.z("2026-11-29T03:06:00Z")).first == .run(schedule: "rotate"))
        #expect(s.running == "rotate")
    }
}
