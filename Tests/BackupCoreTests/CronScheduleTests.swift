import BackupCore
import Foundation
import Testing

struct CronScheduleTests {
    static func z(_ s: String) -> Date { Timestamps.parseISO8601(s)! }

    /// (expression, zone, after, expected next fire times)
    @Test(arguments: [
        ("30 2 * * *", "Asia/Riyadh", "2026-11-28T23:00:00Z", ["2026-11-28T23:30:00Z", "2026-11-29T23:30:00Z"]),
        ("0 4 * * 0", "UTC", "2026-11-29T12:00:00Z", ["2026-12-06T04:00:00Z", "2026-12-13T04:00:00Z"]),
        ("*/15 9-17 * * MON-FRI", "UTC", "2026-11-27T17:50:00Z", ["2026-11-30T09:00:00Z", "2026-11-30T09:15:00Z"]),
        ("0 0 1,15 * 1", "UTC", "2026-11-28T00:00:00Z", ["2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z"]),
        ("@hourly", "UTC", "2026-11-29T10:59:59Z", ["2026-11-29T11:00:00Z", "2026-11-29T12:00:00Z"]),
        ("@daily", "Europe/Berlin", "2026-11-29T12:00:00Z", ["2026-11-29T23:00:00Z"]),
        ("@weekly", "UTC", "2026-11-29T00:00:00Z", ["2026-12-06T00:00:00Z"]),
        ("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", ["2028-02-29T00:00:00Z"]),
        ("15 3 * JAN,jul *", "UTC", "2026-06-30T00:00:00Z", ["2026-07-01T03:15:00Z"]),
        ("0 12 * * 7", "UTC", "2026-11-28T00:00:00Z", ["2026-11-29T12:00:00Z"]),
        ("5/20 * * * *", "UTC", "2026-11-29T10:00:00Z", ["2026-11-29T10:05:00Z", "2026-11-29T10:25:00Z", "2026-11-29T10:45:00Z", "2026-11-29T11:05:00Z"]),
        // Spring forward in Berlin (2026-03-29 02:00 CET -> 03:00 CEST): 02:30 does not exist, fires once at 03:00.
        ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]),
        ("*/30 * * * *", "Europe/Berlin", "2026-03-29T00:45:00Z", ["2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"]),
        // Fall back in Berlin (2026-10-25 03:00 CEST -> 02:00 CET): 02:30 happens twice, fires at the first.
        ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]),
        // New York: spring 2026-03-08 02:00 EST -> 03:00 EDT; fall 2026-11-01 02:00 EDT -> 01:00 EST.
        ("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]),
        ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]),
    ])
    func nextFireTimes(expression: String, zone: String, after: String, expected: [String]) throws {
        let schedule = try CronSchedule(expression)
        let times = schedule.upcoming(after: Self.z(after), in: TimeZone(identifier: zone)!, count: expected.count)
        #expect(times == expected.map(Self.z), "\(times.map(Timestamps.iso8601))")
    }

    @Test func impossibleDateNeverFires() throws {
        #expect(try CronSchedule("0 0 30 2 *").next(after: Self.z("2026-01-01T00:00:00Z"), in: TimeZone(identifier: "UTC")!) == nil)
    }

    @Test(arguments: [
        ("60 * * * *", "minute 60 is out of range"),
        ("* * *", "expected 5 fields"),
        ("@often", "unknown macro"),
        ("5-1 * * * *", "runs backwards"),
        ("*/0 * * * *", "step"),
        ("* * * FOO *", "not a number"),
        ("* * 0 * *", "out of range"),
        ("1,,2 * * * *", "empty item"),
    ])
    func rejects(expression: String, problem: String) {
        do {
            _ = try CronSchedule(expression)
            Issue.record("accepted \(expression)")
        } catch {
            #expect(error.problem.contains(problem), "\(error.problem)")
        }
    }
}
