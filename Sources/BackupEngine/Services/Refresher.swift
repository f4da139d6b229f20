// `kaleem-backup refresh --from-host prod` and the schedule entry `refresh: { from_host: prod, sources: [...] }`
// (#38 item 4): staging's live stores replaced by production's newest good backups, as a drill of them.
//
// refresh, per source named by the policy's refresh entry (the same name in both hosts' policies):
//   FromHost: prod's catalog copy fetched and checked; prod's newest good backup of the source chosen
//   the kind's adapter restores it into THIS host's own source (its live store, as `hook rollback` does):
//     verified first (sha256 recorded by prod, the kind's walk), then restored, the counts checked against the
//     backup's recorded stats (Redis: no more keys than recorded; MongoDB: every namespace's count)
//   recorded in this host's catalog: the restore (`from_host_restores`) and a drill of prod's backup with its
//     duration, the RTO (`from_host_drills`, purpose `refresh`): never in `drills`, so this host's own status,
//     metrics and alerts do not take it for a drill of its own backups
// then a receipt `<prefix>/<this host>/refreshes/<prod>/<id>.json` (this host may write only its own directory),
// which `fleet status` reads to show prod's last drill done by another host; then the webhook's drill events.
//
// Refused (exit 2, nothing touched): from this host itself; from a host no `refresh:` entry of the policy names
// (the entry is the policy's consent that this host's live data may be replaced); a source the entry does not
// name; on the command line without --yes.

import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation

/// What one refresh did, source by source (`refresh --json`, and the receipt's body).
public struct RefreshResult: Codable, Sendable, Equatable {
    public struct Source: Codable, Sendable, Equatable {
        public var source: String
        public var kind: String
        /// The other host's backup restored ("" when none could be chosen).
        public var artifact: String
        public var backup_created_at: String?
        /// The drill recorded for it in this host's catalog.
        public var drill_id: String
        /// `passed`, `failed` (a check did not match: the restore's verification), or `error` (it could not run).
        public var result: String
        public var duration_seconds: Double
        public var detail: String
    }

    /// `kaleem-backup/refresh-receipt/1`.
    public var schema: String
    public var id: String
    /// The host refreshed (this one).
    public var host: String
    /// The host whose backups were restored.
    public var from_host: String
    /// The schedule that ran it, or null from the command line.
    public var schedule: String?
    public var started_at: String
    public var finished_at: String
    /// `ok` when every source passed, else `failed`.
    public var result: String
    public var sources: [Source]
    /// Where the receipt went (`refreshes/<from_host>/<id>.json` under this host's directory), or null.
    public var receipt: String?
    /// Why the receipt could not be written, or null.
    public var receipt_error: String?

    public static let schemaName = "kaleem-backup/refresh-receipt/1"
}

struct Refresher: EngineService {
    let core: EngineCore

    /// The sources a refresh from `host` may replace: the policy's `refresh:` entries naming that host.
    func allowedSources(fromHost host: String) -> [String] {
        var out: [String] = []
        for entry in policy.schedules { for name in entry.refresh?.fromHost == host ? entry.refresh!.sources : [] where !out.contains(name) { out.append(name) } }
        return out
    }

    func refresh(fromHost host: String, sources names: [String], schedule: String? = nil, confirmed: Bool) async throws -> RefreshResult {
        if let problem = HostName.problem(host) {
            throw BackupFailure("--from-host \"\(host)\" \(problem)", exitStatus: .usage, hint: "kaleem-backup fleet status lists the hosts")
        }
        let me = try core.offsiteHost()
        if me == host {
            throw BackupFailure("refusing to refresh host \(me) from itself: --from-host \(host) is this host (its policy's host:)", exitStatus: .usage,
                                hint: "a refresh restores ANOTHER host's backups here (staging from production)")
        }
        let allowed = allowedSources(fromHost: host)
        guard !allowed.isEmpty else {
            throw BackupFailure("no schedule of \(policy.origin) refreshes this host from \(host): refusing to replace this host's live data", exitStatus: .usage,
                                hint: "add to schedules: { name: \(host)-refresh, cron: \"30 4 * * *\", refresh: { from_host: \(host), sources: [SOURCE, …] } } (the policy's consent), then run again")
        }
        var chosen = names
        if let schedule, names.isEmpty, let entry = policy.schedules.first(where: { $0.name == schedule }), let own = entry.refresh { chosen = own.sources }
        if chosen.isEmpty { chosen = allowed }
        for name in chosen where !allowed.contains(name) {
            throw BackupFailure("source \"\(name)\" is not refreshed from \(host) by any schedule of \(policy.origin)", exitStatus: .usage,
                                hint: "the sources its refresh: entries name: \(allowed.joined(separator: ", "))")
        }
        // The scrubs: of the entries that name this host (a source named by two entries takes the first's).
        var spec = RefreshSpec(fromHost: host, sources: allowed)
        for entry in policy.schedules {
            for (name, scrub) in entry.refresh?.fromHost == host ? entry.refresh!.scrub : [:] where spec.scrub[name] == nil { spec.scrub[name] = scrub }
        }
        if let schedule, let own = policy.schedules.first(where: { $0.name == schedule })?.refresh { spec.scrub.merge(own.scrub) { _, mine in mine } }
        let scrubs = spec.scrub
        guard confirmed else {
            throw BackupFailure("a refresh replaces ALL the live data of \(chosen.joined(separator: ", ")) on this host (\(me)) with \(host)'s newest good backups; refusing without --yes",
                                exitStatus: .usage, hint: "run the same command with --yes")
        }
        let sources = try core.selectSources(chosen)
        // The repository lock, as a backup's: a backup of a store while a refresh replaces it would copy a
        // half-replaced store (exit 11 from the CLI; the daemon waits and retries, as for its other jobs).
        try repository.prepare()
        let lock = try RunLock(path: repository.lockPath, purpose: "refresh")
        defer { lock.release() }
        var rng = SystemRandomNumberGenerator()
        let started = environment.clock()
        let id = "refresh-" + Identifier.make(at: started, using: &rng)
        logger.notice("refresh started", metadata: ["from_host": "\(host)", "sources": "\(chosen.joined(separator: ","))", "refresh": "\(id)"])
        var records: [DrillRecord] = []
        var rows: [RefreshResult.Source] = []
        do {
            (records, rows) = try await core.fromHost.with(host: host) { (foreign: EngineCore) async throws -> ([DrillRecord], [RefreshResult.Source]) in
                var records: [DrillRecord] = []
                var rows: [RefreshResult.Source] = []
                for source in sources {
                    let drillStarted = environment.clock()
                    let clock = DispatchTime.now()
                    var artifact: ArtifactInfo?
                    var result = DrillResult.passed
                    var detail: String
                    do {
                        let a = try foreign.selectArtifact(source: source.name, .latest)
                        artifact = a
                        guard a.kind == source.kind else {
                            throw BackupFailure("\(host)'s source \"\(source.name)\" is of kind \(a.kind.rawValue), this host's is \(source.kind.rawValue): not the same store",
                                                exitStatus: .usage, hint: "refresh only sources that are the same store on both hosts")
                        }
                        // The source's scrub, for the kind to run against its scratch target (Redis: the scratch server;
                        // MongoDB: the scratch databases) before the live store takes the data; a kind without one
                        // restores first, and the scrub runs right after (not atomic).
                        let hook = scrubs[source.name].map { ScrubHook(source: source.name, scrub: $0, fromHost: host, backup: a.id) }
                        let adapter = try registry.adapter(for: source.kind)
                        // A marker in this host's repository while the live store is replaced: a refresh killed
                        // midway (a Redis left replicating from a dead scratch server) is what `status` reports.
                        let marker = RestoreMarkers.begin(source: source.name, backup: "\(host)'s \(a.id)",
                                                          target: InterruptedRestore.refreshTarget(kind: source.kind, source: source.name, fromHost: host),
                                                          repository: repository, clock: environment.clock())
                        let lines: [String]
                        do {
                            lines = try await ScrubHook.$refreshing.withValue(true) {
                                try await ScrubHook.$current.withValue(hook) {
                                    try await adapter.rollback(a, source: source, restoreData: true, context: foreign.context)
                                }
                            }
                        } catch {
                            // A kind that stopped with the live store changed in part keeps the marker: once this process
                            // is gone, `status` reports the store as an interrupted (half-replaced) refresh.
                            if let marker, !(error is PartiallyApplied) { RestoreMarkers.end(marker) }
                            throw error
                        }
                        if let marker { RestoreMarkers.end(marker) }
                        RestoreMarkers.clearInterrupted(source: source.name, repository: repository, refreshes: true)
                        detail = lines.joined(separator: "; ")
                        if let hook {
                            if !hook.ran {
                                try await EngineExecutor.run { try hook.run(host: nil, port: nil) }
                                detail += "; scrubbed after the restore (\(hook.scrub.command[0]))"
                            } else {
                                detail += "; scrubbed before the live store took it (\(hook.scrub.command[0]))"
                            }
                        }
                    } catch {
                        // A backup that does not check out (sha256, the kind's walk) is a failed drill; anything else (no
                        // backup, a server down, a count the target disagrees with) a refresh that could not complete.
                        result = (error as? UserFacingError)?.exitStatus == .integrity ? .failed : .error
                        detail = describe(error)
                    }
                    let seconds = max(Double(DispatchTime.now().uptimeNanoseconds - clock.uptimeNanoseconds) / 1e9, 0.001)
                    let record = DrillRecord(id: "drill-" + Identifier.make(at: drillStarted, using: &rng), artifactID: artifact?.id ?? "",
                                             source: source.name, startedAt: drillStarted, durationSeconds: seconds, result: result,
                                             detail: "refresh from \(host): " + String(detail.prefix(1024)), host: environment.host)
                    do {
                        try catalog().insertFromHostDrill(record, fromHost: host, purpose: "refresh")
                    } catch {
                        logger.error("the refresh could not be recorded in the catalog", metadata: ["source": "\(source.name)", "error": "\(describe(error))"])
                    }
                    logger.info("refresh", metadata: ["source": "\(source.name)", "from_host": "\(host)", "artifact": "\(record.artifactID)",
                                                      "result": "\(result.rawValue)", "seconds": "\(String(format: "%.2f", seconds))"])
                    records.append(record)
                    rows.append(RefreshResult.Source(source: source.name, kind: source.kind.rawValue, artifact: record.artifactID,
                                                     backup_created_at: artifact.map { Timestamps.iso8601($0.createdAt) }, drill_id: record.id,
                                                     result: result.rawValue, duration_seconds: (seconds * 1000).rounded() / 1000,
                                                     detail: String(detail.prefix(1024))))
                }
                return (records, rows)
            }
        } catch {
            // The other host's copy could not be read (missing, refused as corrupt, the bucket down): nothing was
            // restored. Still a drill of each source that could not run (a corrupt copy: failed), recorded, in the
            // receipt and notified, so that a scheduled refresh that stopped working is seen.
            let result: DrillResult = (error as? UserFacingError)?.exitStatus == .integrity ? .failed : .error
            let detail = "refresh from \(host): " + String(describe(error).prefix(1024))
            for source in sources where !rows.contains(where: { $0.source == source.name }) {
                let at = environment.clock()
                let record = DrillRecord(id: "drill-" + Identifier.make(at: at, using: &rng), artifactID: "", source: source.name, startedAt: at,
                                         durationSeconds: 0.001, result: result, detail: detail, host: environment.host)
                do {
                    try catalog().insertFromHostDrill(record, fromHost: host, purpose: "refresh")
                } catch {
                    logger.error("the refresh could not be recorded in the catalog", metadata: ["source": "\(source.name)", "error": "\(describe(error))"])
                }
                records.append(record)
                rows.append(RefreshResult.Source(source: source.name, kind: source.kind.rawValue, artifact: "", backup_created_at: nil, drill_id: record.id,
                                                 result: result.rawValue, duration_seconds: 0.001, detail: String(describe(error).prefix(1024))))
            }
            logger.error("refresh failed", metadata: ["from_host": "\(host)", "error": "\(describe(error))"])
        }
        var outcome = RefreshResult(schema: RefreshResult.schemaName, id: id, host: me, from_host: host, schedule: schedule,
                                    started_at: Timestamps.iso8601(started), finished_at: Timestamps.iso8601(environment.clock()),
                                    result: rows.allSatisfy { $0.result == DrillResult.passed.rawValue } ? "ok" : "failed",
                                    sources: rows, receipt: nil, receipt_error: nil)
        // The catalog's copy (local and off-site) now holds the refresh's rows, as after a backup: a host rebuilt
        // from its copy keeps them, and the copy's age does not read as "stopped copying" on a refresh-only host.
        await core.offsite.copyCatalog()
        do {
            outcome.receipt = try await writeReceipt(outcome)
        } catch {
            outcome.receipt_error = describe(error)
            logger.error("the refresh's receipt could not be written off-site", metadata: ["error": "\(describe(error))"])
        }
        await core.notifier.notify(drills: records)
        return outcome
    }

    /// `<prefix>/<this host>/refreshes/<from_host>/<id>.json`, through this host's own off-site repository (the
    /// only place it may write).
    private func writeReceipt(_ result: RefreshResult) async throws -> String? {
        guard let store = try core.offsiteRepository() else { return nil }
        defer { store.close() }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var body = result
        body.receipt = nil
        body.receipt_error = nil
        let data = try encoder.encode(body)
        let dir = try EngineCore.privateTemporaryDirectory(prefix: "refresh")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/receipt.json"
        try FileIO.writeAtomically(data, to: file)
        let relative = RefreshReceipts.directory + "/" + result.from_host + "/" + result.id + ".json"
        try await store.put(file, as: relative, sha256: sha256Hex(data))
        await pruneReceipts(in: store, fromHost: result.from_host, keeping: relative)
        return relative
    }

    /// Keeps the newest `RefreshReceipts.kept` receipts of refreshes from `fromHost` (by the bucket's LastModified,
    /// then name, as `fleet status` picks the newest) and always the one just written: a nightly refresh must not
    /// grow the directory `fleet status` lists for ever. The catalog keeps every refresh's rows; a receipt only
    /// tells the other host. Only names of the receipt's form are removed; a failure is logged and changes nothing
    /// else (the receipt is written).
    private func pruneReceipts(in store: any Repository, fromHost: String, keeping written: String) async {
        do {
            let directory = RefreshReceipts.directory + "/" + fromHost + "/"
            let files = try await store.list(under: directory).filter { file in
                let name = file.relative.dropFirst(directory.count)
                return file.relative.hasPrefix(directory) && !name.contains("/") && name.hasPrefix("refresh-") && name.hasSuffix(".json") && file.relative != written
            }
            let sorted = files.sorted(by: RefreshReceipts.newer)
            let surplus = sorted.dropFirst(max(0, RefreshReceipts.kept - 1)).map(\.relative)
            guard !surplus.isEmpty else { return }
            try await store.delete(Array(surplus))
            logger.info("older refresh receipts removed", metadata: ["from_host": "\(fromHost)", "removed": "\(surplus.count)", "kept": "\(RefreshReceipts.kept)"])
        } catch {
            logger.warning("older refresh receipts could not be removed (the new one is written)", metadata: ["from_host": "\(fromHost)", "error": "\(describe(error))"])
        }
    }
}

/// The receipts of refreshes, read back by `fleet status` from every host's directory as untrusted input.
enum RefreshReceipts {
    /// `<host>/refreshes/` (a reserved name: no source can be called so).
    static let directory = "refreshes"
    /// A receipt is a few KB (one entry per source, details cut to 1 KiB); anything larger is refused unread.
    static let maximumBytes: Int64 = 64 * 1024
    /// Receipts kept per refreshed host (a month of nightly refreshes); older ones are removed by the refresh
    /// that writes a new one.
    static let kept = 30
    /// The longest refresh of one source a receipt may state (a week): more is not a duration of ours.
    static let maximumSeconds: Double = 7 * 86_400

    /// Whether receipt `a` is newer than `b`, as every reader of receipts orders them: by the bucket's clock
    /// (LastModified), then by name (a receipt named from a writer's clock that once ran ahead must not hide every
    /// later one).
    static func newer(_ a: RepositoryFile, than b: RepositoryFile) -> Bool {
        (a.lastModified ?? "", a.relative) > (b.lastModified ?? "", b.relative)
    }

    /// The receipt `file` (at `<writer>/refreshes/<fromHost>/<name>` under `root`), fetched into `path` as untrusted
    /// input and removed from there: its listed size at most `maximumBytes` before the GET and again after, then
    /// `decode`d. Throws why it is not believed.
    static func fetch(_ file: RepositoryFile, from root: any Repository, to path: String, writer: String, fromHost: String) async throws -> RefreshResult {
        guard file.size <= maximumBytes else { throw BackupFailure("\(file.size) bytes, more than a receipt's \(maximumBytes): not read") }
        defer { unlink(path) }
        try await root.get(file.relative, to: path, sha256: nil)
        guard let size = FileIO.fileSize(path), size <= maximumBytes, let data = FileManager.default.contents(atPath: path) else {
            throw BackupFailure("it grew past \(maximumBytes) bytes while it was fetched: not read")
        }
        let (receipt, problem) = decode(data, writer: writer, fromHost: fromHost, name: String(file.relative.split(separator: "/").last ?? ""))
        guard let receipt else { throw BackupFailure(problem ?? "not a refresh receipt") }
        return receipt
    }

    /// Decodes and checks one receipt found at `<writer>/refreshes/<fromHost>/<name>`: nil and why when it is
    /// not one of ours or does not describe what its place says.
    static func decode(_ data: Data, writer: String, fromHost: String, name: String) -> (RefreshResult?, String?) {
        guard Int64(data.count) <= maximumBytes else { return (nil, "larger than \(maximumBytes) bytes") }
        guard let r = try? JSONDecoder().decode(RefreshResult.self, from: data) else { return (nil, "not a refresh receipt (JSON of the wrong shape)") }
        guard r.schema == RefreshResult.schemaName else { return (nil, "schema \(String(reflecting: String(r.schema.prefix(64)))), not \(RefreshResult.schemaName)") }
        guard r.host == writer, r.from_host == fromHost, name == r.id + ".json" else {
            return (nil, "it does not describe its place (host, from_host and id must be the directory's)")
        }
        guard r.id.hasPrefix("refresh-"), r.id.count <= 64, Timestamps.parseISO8601(r.started_at) != nil, Timestamps.parseISO8601(r.finished_at) != nil,
              ["ok", "failed"].contains(r.result), r.sources.count <= 1000 else {
            return (nil, "a field is not of the receipt's form (id, times, result)")
        }
        for s in r.sources {
            guard RepositoryLayout.isValidSourceName(s.source), ["passed", "failed", "archive-only", "error"].contains(s.result),
                  s.duration_seconds.isFinite, s.duration_seconds >= 0, s.duration_seconds <= maximumSeconds, s.artifact.count <= 64 else {
                return (nil, "a source entry is not of the receipt's form")
            }
        }
        return (r, nil)
    }
}
