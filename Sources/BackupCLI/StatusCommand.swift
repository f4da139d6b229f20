import ArgumentParser
import BackupCore
import BackupEngine
import Foundation

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Per source: the newest good backup and its age (the current RPO), the last drill and its duration (RTO)."
    )

    @OptionGroup var options: GlobalOptions

    @Flag(help: "For probes (Nagios, Healthchecks): exit 1 when a source is past --max-rpo, its last run failed, its last drill failed or is older than --max-drill-age, or a restore was interrupted; 4 when a backup is corrupt; 0 otherwise. Each problem is one line on stderr.")
    var check = false

    @Option(help: "With --check: the longest acceptable age of a source's newest good backup (e.g. 26h, the BackupTooOld alert's).")
    var maxRpo = "26h"

    @Option(help: "With --check: the longest acceptable age of a source's last drill (e.g. 8d, the DrillOverdue alert's).")
    var maxDrillAge = "8d"

    func validate() throws {
        for (name, value) in [("--max-rpo", maxRpo), ("--max-drill-age", maxDrillAge)] where Self.seconds(value) == nil {
            throw ValidationError("\(name) \(value) is not a duration: give e.g. 90m, 26h or 8d")
        }
    }

    /// `30s`, `90m`, `26h`, `8d`, or seconds.
    static func seconds(_ text: String) -> Double? {
        let units: [(String, Double)] = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            guard let v = Double(text.dropLast()), v > 0, v.isFinite else { return nil }
            return v * factor
        }
        return Double(text).flatMap { $0 > 0 && $0.isFinite ? $0 : nil }
    }

    /// What --check finds wrong, one line each, and the exit status.
    static func problems(_ rows: [SourceStatus], maxRPO: Double, maxDrillAge: Double, now: Date) -> (lines: [String], status: ExitStatus) {
        var lines: [String] = []
        for r in rows {
            for problem in SourceProblem.find(r, maxRPO: maxRPO, drills: .lastMustPassWithin(seconds: maxDrillAge), interruptedRestores: true, now: now) {
                switch problem {
                case .stale(let rpo, let limit): lines.append("\(r.source): newest good backup is \(age(rpo)) old, more than \(age(limit))")
                case .noGoodBackup: lines.append("\(r.source): no good backup")
                case .lastRunFailed: lines.append("\(r.source): its last backup failed")
                case .drillFailed(let couldNotRun): lines.append("\(r.source): its last drill \(couldNotRun ? "could not run" : "failed")")
                case .drillOverdue(let drillAge, let limit): lines.append("\(r.source): last drill \(age(drillAge)) ago, more than \(age(limit))")
                case .neverDrilled: lines.append("\(r.source): never drilled")
                case .corrupt(let n): lines.append("\(r.source): \(n) corrupt backup(s)")
                case .interruptedRestore(let k): lines.append("\(r.source): a restore into \(k.target) started \(k.started_at) was interrupted")
                }
            }
        }
        let status: ExitStatus = rows.contains { $0.corrupt > 0 } ? .integrity : (lines.isEmpty ? .ok : .failed)
        return (lines, status)
    }

    func run() async throws {
        let rows = try options.makeEngine().status()
        show(rows)
        guard check else { return }
        let (lines, status) = Self.problems(rows, maxRPO: Self.seconds(maxRpo)!, maxDrillAge: Self.seconds(maxDrillAge)!, now: Date())
        for line in lines { options.say(.error, "CHECK: ", line) }
        if status != .ok { throw CommandExit(status: status) }
    }

    func show(_ rows: [SourceStatus]) {
        if options.json {
            try? Output.json(rows.map(StatusJSON.init))
            return
        }
        var table = [["SOURCE", "NEWEST GOOD", "AGE (RPO)", "LAST RUN", "LAST DRILL", "DRILL TIME (RTO)", "LAST VERIFY", "CORRUPT"]]
        for r in rows {
            table.append([r.source, r.newestGood?.id ?? "none",
                          r.rpoSeconds.map(Self.age) ?? "-",
                          r.lastRunOK.map { $0 ? "ok" : "FAILED" } ?? "-",
                          r.lastDrill.map { "\($0.result.rawValue) \(Timestamps.iso8601($0.startedAt).prefix(10))" } ?? "never",
                          r.lastDrill.map { $0.result == .archiveOnly ? "archive verified (no RTO)" : String(format: "%.1f s", $0.durationSeconds) } ?? "-",
                          r.lastVerify.map { "\(r.lastVerifyOK == true ? "ok" : "FAILED") \(Timestamps.iso8601($0).prefix(10))" } ?? "never",
                          r.corrupt == 0 ? "-" : "\(r.corrupt) CORRUPT"])
        }
        Output.table(table, wrap: [4, 5, 6])
        for r in rows {
            if let e = r.refreshedElsewhere {
                print("REFRESHED ELSEWHERE: \(r.source) backup \(e.artifactID.isEmpty ? "(none: the refresh could not run)" : e.artifactID) restored into \(e.byHost)'s live store at \(Timestamps.iso8601(e.refreshedAt)): \(e.result.rawValue) in \(String(format: "%.1f s", e.durationSeconds)) (its receipt; not a drill of this host)")
            }
            for k in r.interruptedRestores where k.isRefresh {
                print("INTERRUPTED REFRESH: \(k.source) from \(k.backup) into \(k.target), started \(k.started_at) (pid \(k.pid)) never finished: the live store may be half replaced, and a MongoDB source's scratch databases (kbrefresh_*) may still hold the other host's UNSCRUBBED data (this host's own backups copy them until they are gone); run the refresh again (it drops them first, then restores, scrubs and swaps)")
            }
            for k in r.interruptedRestores where !k.isRefresh {
                print("INTERRUPTED RESTORE: \(k.source) backup \(k.backup) into \(k.target), started \(k.started_at) (pid \(k.pid)) never finished: the target may be half-restored; run the restore again (it removes the temporary .kb-restore-* files it finds); a Redis server left as a replica of the dead scratch server (INFO replication: role:slave, master_link_status:down) takes redis-cli REPLICAOF NO ONE first")
            }
        }
    }

    static func age(_ seconds: Double) -> String {
        if seconds < 3600 { return "\(Int(seconds / 60)) min" }
        if seconds < 172_800 { return String(format: "%.1f h", seconds / 3600) }
        return String(format: "%.1f days", seconds / 86400)
    }
}

struct StatusJSON: Encodable {
    /// `rto_seconds`: only a drill that restored into a server measures an RTO (null for an archive-only drill).
    struct Drill: Encodable { var id: String; var artifact: String; var result: String; var duration_seconds: Double; var started_at: String
                              var rto_seconds: Double? }
    var source: String
    var kind: String
    @JSONNullable var newest_good: String?
    @JSONNullable var newest_good_at: String?
    @JSONNullable var rpo_seconds: Double?
    @JSONNullable var last_run_ok: Bool?
    @JSONNullable var last_drill: Drill?
    @JSONNullable var last_verify_at: String?
    @JSONNullable var last_verify_ok: Bool?
    var corrupt: Int
    /// Restores of the source killed before their end (`[]` when none).
    var interrupted_restores: [InterruptedRestore]
    /// The newest refresh of the source's backups by another host (its receipt), or null.
    struct Refresh: Encodable { var by_host: String; var artifact: String; var refreshed_at: String; var result: String; var duration_seconds: Double; var receipt: String }
    @JSONNullable var refreshed_elsewhere: Refresh?

    init(_ s: SourceStatus) {
        source = s.source
        kind = s.kind.rawValue
        newest_good = s.newestGood?.id
        newest_good_at = s.newestGood.map { Timestamps.iso8601($0.createdAt) }
        rpo_seconds = s.rpoSeconds.map { ($0 * 10).rounded() / 10 }
        last_run_ok = s.lastRunOK
        last_drill = s.lastDrill.map { Drill(id: $0.id, artifact: $0.artifactID, result: $0.result.rawValue,
                                             duration_seconds: $0.durationSeconds, started_at: Timestamps.iso8601($0.startedAt),
                                             rto_seconds: $0.result == .archiveOnly ? nil : $0.durationSeconds) }
        last_verify_at = s.lastVerify.map(Timestamps.iso8601)
        last_verify_ok = s.lastVerifyOK
        corrupt = s.corrupt
        interrupted_restores = s.interruptedRestores
        refreshed_elsewhere = s.refreshedElsewhere.map { Refresh(by_host: $0.byHost, artifact: $0.artifactID, refreshed_at: Timestamps.iso8601($0.refreshedAt),
                                                                  result: $0.result.rawValue, duration_seconds: $0.durationSeconds, receipt: $0.receipt) }
    }

    enum CodingKeys: String, CodingKey {
        case source, kind, newest_good, newest_good_at, rpo_seconds, last_run_ok, last_drill, last_verify_at, last_verify_ok, corrupt, interrupted_restores, refreshed_elsewhere
    }
}
