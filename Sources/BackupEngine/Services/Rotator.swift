// The rotator: the retention plan applied (never the last good, never a pinned one), crash-safe removals, pins.

import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation

/// What rotation decided (and did) for one source.
public struct RotationResult: Sendable {
    public var source: String
    public var plan: RetentionPlan
    public var dryRun: Bool
    /// Ids whose files were removed and rows marked deleted (empty in a dry run).
    public var removed: [String]
    /// Set when removing stopped early (a file could not be deleted): the rest stays for the next run.
    public var error: String?
}

struct Rotator: EngineService {
    let core: EngineCore

    /// Plans (and unless `dryRun`, carries out) retention for the named sources (all when empty).
    ///
    /// rotate, per source:
    ///   plan = RetentionPlanner(artifacts not deleted, policy, now); never the artifacts the calling run just took
    ///   1. intent: the rows are marked deleted and listed in `removals`, in one transaction
    ///   2. their files (artifact, manifest) are deleted, each directory fsynced
    ///   3. the `removals` rows go
    ///   a crash anywhere leaves either nothing done or rows that no longer count as backups, with their removal
    ///   pending: every locked command finishes pending removals first (CrashRecovery.recover)
    ///   then the kind's garbage collection (unreferenced blobs), on every rotation
    func rotate(sources names: [String] = [], dryRun: Bool, now: Date? = nil,
                       allowEmptyPolicy: Bool = false) async throws -> [RotationResult] {
        try checkRetentionPolicy(allowEmpty: allowEmptyPolicy)
        let selected = try core.selectSources(names)
        var lock: RunLock?
        if !dryRun {
            try repository.prepare()
            lock = try RunLock(path: repository.lockPath, purpose: "rotate")
        }
        defer { lock?.release() }
        let catalog = try catalog()
        if !dryRun { try await core.recovery.recover(catalog) }
        let results = try await rotate(selected.map(\.name), catalog: catalog, now: now ?? environment.clock(), dryRun: dryRun,
                                       checkClock: now == nil)
        if !dryRun { core.statusReport.writeMetricsTextfile() }
        return results
    }

    func checkRetentionPolicy(allowEmpty: Bool) throws {
        if policy.retention.isEmpty && !allowEmpty {
            throw BackupFailure("the retention policy of \(policy.origin) keeps nothing (daily, weekly, monthly, keep_last and pre_deploy are all 0)",
                                exitStatus: .usage,
                                hint: "set retention.daily or retention.keep_last, or pass --allow-empty-policy to keep only the newest good and pinned backups")
        }
    }

    /// Rotation of the named sources; the caller holds the run lock unless `dryRun`.
    /// - Parameter protect: artifacts never removed here whatever the plan says (the run's own new backups: a
    ///   clock set back must not make a run delete what it just took).
    func rotate(_ sources: [String], catalog: Catalog, now: Date, dryRun: Bool, protect: Set<String> = [],
                checkClock: Bool = true) async throws -> [RotationResult] {
        let candidates = try catalog.retentionCandidates(sources: sources, withPaths: !dryRun)
        var results: [RotationResult] = []
        for source in sources {
            results.append(try await rotateOne(source, rows: candidates[source] ?? RetentionRows(), catalog: catalog, now: now, dryRun: dryRun,
                                               protect: protect, checkClock: checkClock))
        }
        return results
    }

    private func rotateOne(_ source: String, rows: RetentionRows, catalog: Catalog,
                           now: Date, dryRun: Bool, protect: Set<String>, checkClock: Bool) async throws -> RotationResult {
        var plan = RetentionPlanner.plan(rows.candidates, policy: policy.retention, now: now, checkClock: checkClock)
        let protectedHere = protect.isEmpty ? [] : plan.remove.filter { protect.contains($0) }
        if !protectedHere.isEmpty {
            plan.remove.removeAll { protect.contains($0) }
            for id in protectedHere { plan.keep.append(RetentionPlan.Kept(id: id, reasons: ["taken by this run"])) }
            logger.warning("rotation would have removed the backup this run just took: the clock may have been set back; kept",
                           metadata: ["source": "\(source)", "artifacts": "\(protectedHere)"])
        }
        var result = RotationResult(source: source, plan: plan, dryRun: dryRun, removed: [])
        guard !dryRun else { return result }
        let adapter = policy.source(named: source).flatMap { try? registry.adapter(for: $0.kind) }
        guard !plan.remove.isEmpty else {
            // Nothing removed, nothing to collect: a night that removes no snapshot never reads every manifest,
            // unless a collection was interrupted (its marker is still there): that one is finished now.
            if let adapter, access(gcMarker(source), F_OK) == 0 { await collectGarbage(source, adapter: adapter) }
            return result
        }
        let paths = Dictionary(zip(rows.candidates.lazy.map(\.id), rows.paths), uniquingKeysWith: { a, _ in a })
        let ids = plan.remove.filter { paths[$0] != nil }
        try catalog.beginRemoval(ids: ids, at: now)
        var removed: [String] = []
        for id in ids {
            do {
                try core.recovery.removeFiles(of: id, path: paths[id]!)
                removed.append(id)
            } catch {
                result.error = describe(error) + " (the removal stays pending: the next run finishes it)"
                logger.error("rotation stopped", metadata: ["source": "\(source)", "error": "\(result.error!)"])
                break
            }
        }
        try catalog.finishRemoval(ids: removed)
        if let adapter { await collectGarbage(source, adapter: adapter) }
        if !removed.isEmpty {
            await core.offsite.removeOffsite(removed.compactMap { id in paths[id].map { (id, $0) } }, source: source, catalog: catalog)
        }
        result.removed = removed
        logger.info("rotation", metadata: ["source": "\(source)", "kept": "\(plan.keep.count)", "removed": "\(removed.count)",
                                           "held_back": "\(plan.heldBack ?? "no")"])
        return result
    }

    /// `<repo>/.gc-pending-<source>`: there while a garbage collection of the source runs, so that one a kill
    /// interrupted is finished by the next rotation even when it removes nothing.
    func gcMarker(_ source: String) -> String { repository.absolute(".gc-pending-\(source)") }

    func collectGarbage(_ source: String, adapter: any SourceAdapter) async {
        // Only kinds that keep shared blobs collect anything; the others need no marker.
        guard adapter.layout == .snapshot else { return }
        let marker = gcMarker(source)
        let fd = open(marker, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd >= 0 { fsync(fd); close(fd) }
        await adapter.collectGarbage(source: source, context: context)
        unlink(marker)
    }

    /// Pins a good artifact: rotation never removes it. Takes the repository lock (exit 11 while a backup or a
    /// rotation runs: a pin given during a rotation must not be lost), and writes the pin into the artifact's
    /// manifest too, so that `catalog rebuild` keeps it.
    func pin(id: String, reason: String) throws -> ArtifactInfo {
        try repository.prepare()
        let lock = try RunLock(path: repository.lockPath, purpose: "pin")
        defer { lock.release() }
        var a = try core.statusReport.show(id: id)
        guard a.status == .ok, a.deletedAt == nil else {
            throw BackupFailure("artifact \(a.id) is \(a.deletedAt != nil ? "deleted" : a.status.rawValue); only good backups can be pinned",
                                exitStatus: .usage, hint: "pick a good one with: kaleem-backup list --source \(a.source)")
        }
        try setPinned(&a, pinned: true, reason: reason)
        return a
    }

    func unpin(id: String) throws -> ArtifactInfo {
        try repository.prepare()
        let lock = try RunLock(path: repository.lockPath, purpose: "unpin")
        defer { lock.release() }
        var a = try core.statusReport.show(id: id)
        try setPinned(&a, pinned: false, reason: nil)
        return a
    }

    /// The one way to pin or unpin: the catalog row and the manifest (what `catalog rebuild` reads).
    /// A pin goes to the manifest first, an unpin to the catalog first: a kill between the two writes leaves the
    /// backup pinned somewhere a rebuild reads, never unpinned everywhere.
    func setPinned(_ a: inout ArtifactInfo, pinned: Bool, reason: String?) throws {
        if !pinned { try catalog().setPinned(id: a.id, pinned: false, reason: nil) }
        a.pinned = pinned
        a.pinReason = pinned ? reason : nil
        if a.deletedAt == nil, a.status == .ok { try writePin(a) }
        if pinned { try catalog().setPinned(id: a.id, pinned: true, reason: reason) }
    }

    private func writePin(_ a: ArtifactInfo) throws {
        let path = repository.manifestPath(forArtifact: a.path, id: a.id)
        var manifest: Manifest
        if let data = FileManager.default.contents(atPath: path), let m = try? Manifest.decode(data) {
            manifest = m
        } else if let run = try catalog().run(id: a.runID) {
            manifest = Manifest(artifact: a, run: run)
        } else {
            return
        }
        manifest.artifact.pinned = a.pinned
        manifest.artifact.pinReason = a.pinReason
        try repository.writeManifest(manifest)
    }
}
