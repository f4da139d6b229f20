import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Print the next run times of every schedule of the policy, to check a cron line before trusting it."
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "How many run times per schedule.")
    var count = 5

    @Option(help: "Count from this moment instead of now: \(TimeExpression.help).")
    var after: String?

    func validate() throws {
        if count < 1 || count > 1000 { throw ValidationError("--count must be from 1 to 1000") }
        if let after, TimeExpression.parse(after, now: Date(), timeZone: .current) == nil {
            throw ValidationError("--after \(after) is not a time: give \(TimeExpression.help)")
        }
    }

    func run() async throws {
        let policy = try options.loadPolicy()
        let zone = TimeZone(identifier: policy.retention.timeZone) ?? .current
        let start = after.flatMap { TimeExpression.parse($0, now: Date(), timeZone: zone) } ?? Date()
        let rows = policy.schedules.map { s in
            ScheduleJSON(name: s.name, cron: s.cron.expression, timezone: s.timeZone, run: s.run.rawValue,
                         sources: s.refresh?.sources ?? s.sources, from_host: s.refresh?.fromHost, next: s.upcoming(after: start, count: count).map { Timestamps.iso8601($0, in: s.zone) })
        }
        if options.json {
            try Output.json(rows)
            return
        }
        if rows.isEmpty { print("the policy \(policy.origin) has no schedules") }
        for r in rows {
            print("\(r.name): \(r.run) \(r.sources.isEmpty ? "all sources" : r.sources.joined(separator: ", "))\(r.from_host.map { " from host \($0)" } ?? "") at \"\(r.cron)\" (\(r.timezone))")
            for t in r.next { print("  \(t)") }
            if r.next.isEmpty { print("  never (no such date)") }
        }
    }
}

/// `[{"name", "next": [ISO 8601 with offset, ...]}]` plus the schedule's own fields.
struct ScheduleJSON: Encodable {
    var name: String
    var cron: String
    var timezone: String
    var run: String
    var sources: [String]
    /// A refresh's other host (absent for the other jobs).
    var from_host: String?
    var next: [String]
}
