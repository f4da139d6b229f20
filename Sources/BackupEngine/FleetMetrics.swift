// Fleet metrics (#38): what `fleet status` reads, as Prometheus text with a `host` label, served by the daemon's
// /metrics when the policy says `daemon: { fleet: true }`. Timestamps are Unix seconds, as every other metric
// of ours (ages are `time() - metric` in the rules: FleetHostCopyStale).

import BackupCore
import Foundation
import Logging

public enum FleetMetrics {
    /// The text for `hosts`; `listed` false: the bucket could not be read (`kaleem_backup_fleet_up 0`, nothing else).
    public static func render(_ hosts: [FleetHostStatus], listed: Bool) -> String {
        var out = ""
        func family(_ name: String, _ help: String, _ samples: [(labels: String, value: Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
            for s in samples { out += "\(name){\(s.labels)} \(format(s.value))\n" }
        }
        out += "# HELP kaleem_backup_fleet_up 1 when the off-site bucket's host directories could be listed.\n# TYPE kaleem_backup_fleet_up gauge\n"
        out += "kaleem_backup_fleet_up \(listed ? 1 : 0)\n"
        guard listed else { return out }
        func host(_ h: FleetHostStatus) -> String { "host=\"\(escape(h.host))\"" }
        func source(_ h: FleetHostStatus, _ s: FleetSourceStatus) -> String { host(h) + ",source=\"\(escape(s.source))\"" }
        family("kaleem_backup_fleet_catalog_copy_timestamp_seconds", "When the host last copied its catalog off-site (the object's Last-Modified).",
               hosts.compactMap { h in h.copyTime.map { (host(h), $0.timeIntervalSince1970) } })
        family("kaleem_backup_fleet_catalog_copy_readable", "1 when the host's catalog copy passed every check (size, sha256, integrity, layout).",
               hosts.map { (host($0), $0.copyError == nil ? 1 : 0) })
        let sources = hosts.flatMap { h in h.sources.map { (h, $0) } }
        family("kaleem_backup_fleet_last_success_timestamp_seconds", "The host's newest good backup of the source (0: none).",
               sources.map { (source($0.0, $0.1), $0.1.newestGood?.timeIntervalSince1970 ?? 0) })
        family("kaleem_backup_fleet_last_run_success", "1 when the host's last run of the source succeeded.",
               sources.compactMap { h, s in s.lastRunOK.map { (source(h, s), $0 ? 1 : 0) } })
        family("kaleem_backup_fleet_last_drill_success", "1 when the host's last drill of the source passed.",
               sources.compactMap { h, s in s.lastDrillPassed.map { (source(h, s), $0 ? 1 : 0) } })
        family("kaleem_backup_fleet_last_drill_duration_seconds", "How long the host's last drill of the source took (the RTO measured).",
               sources.compactMap { h, s in s.rtoSeconds.map { (source(h, s), $0) } })
        family("kaleem_backup_fleet_corrupt_artifacts", "Backups of the source the host's verify found damaged.",
               sources.map { (source($0.0, $0.1), Double($0.1.corrupt)) })
        return out
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }
}

/// The daemon's fleet text and panel, read again at most every `maxAge` seconds (each read fetches every host's
/// catalog copy: docs/fleet.md, "What breaks first"), one read at a time, by the scheduler loop
/// (`refreshIfStale`); the request handlers only take what the last read left (`cached`), so a scrape never waits
/// on the bucket or opens a host's catalog copy (#37 item 5).
actor FleetMetricsCache {
    private var text: String?
    /// The hosts of the same read (the status page's fleet panel), and why the bucket could not be read.
    private var hosts: [FleetHostStatus] = []
    private var problem: String?
    private var readAt: Date?
    private var reading = false
    let maxAge: Double

    init(maxAge: Double = 300) { self.maxAge = maxAge }

    /// What the last read found: the /metrics text (empty before the first read ends: no series rather than a
    /// false "bucket down"), the hosts, why there are none, and when it was read.
    func cached() -> (text: String, hosts: [FleetHostStatus], problem: String?, at: Date?) {
        (text ?? "", hosts, readAt == nil ? "the off-site bucket has not been read yet (the daemon reads it when it starts, then every \(Int(maxAge)) s)" : problem, readAt)
    }

    /// Reads the bucket again when the last read is older than `maxAge` (or the clock went back), unless a read
    /// is under way.
    func refreshIfStale(policy: Policy, environment: EngineEnvironment) async {
        let now = environment.clock()
        if reading { return }
        if text != nil, let readAt, now.timeIntervalSince(readAt) < maxAge, now >= readAt { return }
        reading = true
        defer { reading = false }
        await refresh(policy: policy, environment: environment)
    }

    private func refresh(policy: Policy, environment: EngineEnvironment) async {
        let now = environment.clock()
        do {
            let found = try await EngineExecutor.run {
                try await BackupEngine(policy: policy, environment: environment).fleetStatus()
            }
            hosts = found
            problem = nil
            text = FleetMetrics.render(found, listed: true)
        } catch {
            environment.logger.warning("fleet metrics: the off-site bucket could not be read", metadata: ["error": "\(error)"])
            hosts = []
            problem = KnownSecrets.scrub("\(error)")
            text = FleetMetrics.render([], listed: false)
        }
        readAt = now
    }
}
