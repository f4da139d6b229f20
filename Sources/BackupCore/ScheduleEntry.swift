import Foundation

/// What a schedule runs.
public enum ScheduledJob: String, Sendable, Codable, CaseIterable {
    case backup
    case drill
    case rotate
}

/// One entry of the policy's `schedules:` list.
public struct ScheduleEntry: Sendable, Equatable {
    public var name: String
    public var cron: CronSchedule
    /// IANA zone the cron fields are read in.
    public var timeZone: String
    public var run: ScheduledJob
    /// Sources to run it for; empty means all.
    public var sources: [String]
    public var tag: RunTag?
    /// Test only: fire every this many seconds instead of by `cron` (the daemon's hidden `--test-interval`).
    public var testInterval: Double?

    public init(name: String, cron: CronSchedule, timeZone: String = "UTC", run: ScheduledJob = .backup,
                sources: [String] = [], tag: RunTag? = nil) {
        self.name = name
        self.cron = cron
        self.timeZone = timeZone
        self.run = run
        self.sources = sources
        self.tag = tag
    }

    public var zone: TimeZone { TimeZone(identifier: timeZone) ?? TimeZone(identifier: "UTC")! }

    public func upcoming(after instant: Date, count: Int) -> [Date] {
        if testInterval != nil {
            var out: [Date] = []
            var cursor = instant
            while out.count < count, let n = nextFire(after: cursor) { out.append(n); cursor = n }
            return out
        }
        return cron.upcoming(after: instant, in: zone, count: count)
    }

    /// The first fire time strictly after `instant`.
    public func nextFire(after instant: Date) -> Date? {
        if let testInterval { return instant.addingTimeInterval(testInterval) }
        return cron.next(after: instant, in: zone)
    }
}

extension Timestamps {
    /// ISO 8601 in a zone, with its offset: `2026-11-30T02:30:00+03:00`.
    public static func iso8601(_ date: Date, in zone: TimeZone) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        f.timeZone = zone
        return f.string(from: date)
    }
}
