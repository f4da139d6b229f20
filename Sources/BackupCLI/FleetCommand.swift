import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Every host that shares the off-site bucket, in one view (#38).",
        subcommands: [FleetStatusCommand.self]
    )
}

struct FleetStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Per host and source: the newest good backup and its age, the last drill and its RTO, corrupt backups, and the age of the host's catalog copy.",
        discussion: """
        Reads every host's catalog copy (<prefix>/<host>/catalog/catalog.sqlite) from repository.offsite, read \
        only: a copy larger than 512 MiB, whose sha256 is not the one recorded at upload, or that is not a sound \
        catalog is reported for its host, and the other hosts are still shown. A host whose copy is older than \
        --max-copy-age has stopped copying. Exit 0 when nothing is wrong; 1 when a host's copy is stale or \
        unreadable, a source is past --max-rpo or has no good backup, a last run or drill failed; 4 when a copy or \
        a backup is corrupt. Each problem is one line on stderr (FLEET: …), as status --check prints them.
        """
    )

    @OptionGroup var options: GlobalOptions

    @Option(help: "The longest acceptable age of a host's catalog copy (e.g. 26h).")
    var maxCopyAge = "26h"

    @Option(help: "The longest acceptable age of a source's newest good backup (e.g. 26h).")
    var maxRpo = "26h"

    func validate() throws {
        for (name, value) in [("--max-copy-age", maxCopyAge), ("--max-rpo", maxRpo)] where StatusCommand.seconds(value) == nil {
            throw ValidationError("\(name) \(value) is not a duration: give e.g. 90m, 26h or 8d")
        }
    }

    func run() async throws {
        let limits = FleetLimits(maxCopyAge: StatusCommand.seconds(maxCopyAge)!, maxRPO: StatusCommand.seconds(maxRpo)!)
        let hosts = try await options.makeEngine().fleetStatus(limits: limits)
        if options.json {
            try Output.json(hosts.map(FleetHostJSON.init))
        } else if hosts.isEmpty {
            print("no host has a catalog copy in the off-site bucket yet (each host copies it after every backup run)")
        } else {
            var table = [["HOST", "SOURCE", "NEWEST GOOD", "AGE (RPO)", "LAST RUN", "LAST DRILL", "DRILL TIME (RTO)", "CORRUPT", "CATALOG COPY AGE"]]
            for h in hosts {
                var copy = "-"
                if h.copyError != nil {
                    copy = "UNREADABLE"
                } else if let age = h.copyAgeSeconds {
                    copy = StatusCommand.age(age) + (age > limits.maxCopyAge ? " STALE" : "")
                }
                let name = h.host + (h.isSelf ? " (this host)" : "")
                if h.sources.isEmpty { table.append([name, "-", "-", "-", "-", "-", "-", "-", copy]) }
                for s in h.sources {
                    let newest: String = s.newestGood.map { String(Timestamps.iso8601($0).prefix(16)) } ?? "none"
                    let rpo: String = s.rpoSeconds.map(StatusCommand.age) ?? "-"
                    let run: String = s.lastRunOK.map { $0 ? "ok" : "FAILED" } ?? "-"
                    let verdict: String = s.lastDrillPassed == false ? "FAILED" : "ok"
                    let drill: String = s.lastDrill.map { verdict + " " + String(Timestamps.iso8601($0).prefix(10)) } ?? "never"
                    let rto: String = s.rtoSeconds.map { String(format: "%.1f s", $0) } ?? "-"
                    let corrupt: String = s.corrupt == 0 ? "-" : "\(s.corrupt) CORRUPT"
                    table.append([name, s.source, newest, rpo, run, drill, rto, corrupt, copy])
                }
            }
            Output.table(table)
            for h in hosts {
                for r in h.refreshedBy {
                    guard let refresh = r.refresh else { continue }
                    let each = refresh.sources.map { "\($0.source) \($0.result) in \(String(format: "%.1f", $0.duration_seconds)) s" }.joined(separator: ", ")
                    print("\(h.host): refreshed into \(r.by) at \(String(refresh.finished_at.prefix(16))) (\(refresh.result)): \(each)")
                }
            }
        }
        let problems = hosts.flatMap(\.problems)
        for line in problems { StandardStream.error("FLEET: \(line)\n") }
        if hosts.contains(where: { $0.copyCorrupt || $0.sources.contains { $0.corrupt > 0 } }) { throw CommandExit(status: .integrity) }
        if !problems.isEmpty { throw CommandExit(status: .failed) }
    }
}

struct FleetHostJSON: Encodable {
    struct Source: Encodable {
        var source: String
        var newest_good_at: String?
        var rpo_seconds: Double?
        var last_run_ok: Bool?
        var last_drill_at: String?
        var last_drill_passed: Bool?
        var rto_seconds: Double?
        var corrupt: Int
    }
    var host: String
    var this_host: Bool
    var copy_time: String?
    var copy_age_seconds: Double?
    var copy_bytes: Int64?
    var copy_error: String?
    var copy_corrupt: Bool
    /// The newest refresh of this host's backups by each other host, from their receipts (#38).
    struct Refresh: Encodable {
        var by: String
        var receipt: String
        var finished_at: String?
        var result: String?
        var sources: [RefreshResult.Source]
    }
    var sources: [Source]
    var refreshed_by: [Refresh]
    var problems: [String]

    init(_ h: FleetHostStatus) {
        host = h.host
        this_host = h.isSelf
        copy_time = h.copyTime.map(Timestamps.iso8601)
        copy_age_seconds = h.copyAgeSeconds
        copy_bytes = h.copyBytes
        copy_error = h.copyError
        copy_corrupt = h.copyCorrupt
        problems = h.problems
        refreshed_by = h.refreshedBy.compactMap { r in
            r.refresh.map { Refresh(by: r.by, receipt: r.receipt, finished_at: $0.finished_at, result: $0.result, sources: $0.sources) }
        }
        sources = h.sources.map {
            Source(source: $0.source, newest_good_at: $0.newestGood.map(Timestamps.iso8601), rpo_seconds: $0.rpoSeconds,
                   last_run_ok: $0.lastRunOK, last_drill_at: $0.lastDrill.map(Timestamps.iso8601), last_drill_passed: $0.lastDrillPassed,
                   rto_seconds: $0.rtoSeconds, corrupt: $0.corrupt)
        }
    }
}
