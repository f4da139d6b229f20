import Foundation

/// What a schedule runs.
public enum ScheduledJob: String, Sendable, Codable, CaseIterable {
    case backup
    case drill
    case rotate
    /// Restores another host's newest good backups into this host's live stores (`refresh:`, #38).
    case refresh
}

/// `refresh: { from_host: prod, sources: [mongo, redis] }`: this host's live stores replaced by another host's
/// newest good backups of the sources of the same names (a staging refreshed from production), as a drill.
public struct RefreshSpec: Sendable, Equatable {
    /// The host whose backups are restored (its directory of the shared off-site bucket).
    public var fromHost: String
    /// The sources refreshed: names of this host's policy, the same names in the other host's catalog.
    public var sources: [String]
    /// Per source: the command run on the restored data before it replaces this host's live data.
    public var scrub: [String: ScrubCommand] = [:]

    public init(fromHost: String, sources: [String], scrub: [String: ScrubCommand] = [:]) {
        self.fromHost = fromHost
        self.sources = sources
        self.scrub = scrub
    }
}

/// `refresh.scrub.<source>: { command: [/usr/local/bin/mask, "{port}"], timeout: 10m }`: run without a shell, with
/// only PATH and LANG in its environment; the placeholders of `placeholders` in its arguments are replaced.
public struct ScrubCommand: Sendable, Equatable {
    /// argv: the first an absolute path.
    public var command: [String]
    public var timeoutSeconds: Double

    public static let defaultTimeoutSeconds: Double = 600
    /// What an argument may name: the scratch target (`{host}`, `{port}`), and what is refreshed.
    public static let placeholders = ["{host}", "{port}", "{source}", "{from_host}", "{backup}"]

    public init(command: [String], timeoutSeconds: Double = ScrubCommand.defaultTimeoutSeconds) {
        self.command = command
        self.timeoutSeconds = timeoutSeconds
    }
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
    /// What a `run: refresh` entry refreshes (nil for the other jobs).
    public var refresh: RefreshSpec?
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
