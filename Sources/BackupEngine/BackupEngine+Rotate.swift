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

extension BackupEngine {
    /// Plans (and unless `dryRun`, carries out) retention for the named sources (all when empty).
    ///
    /// rotate, per source:
    ///   plan = RetentionPlanner(artifacts not deleted, policy, now)
    ///   for each removed artifact: delete its file and manifest, THEN mark its row deleted
    ///   (a crash in between leaves a row whose files are gone; the next rotation removes it again)
    public func rotate(sources names: [String] = [], dryRun: Bool, now: Date? = nil,
                       allowEmptyPolicy: Bool = false) throws -> [RotationResult] {
        try checkRetentionPolicy(allowEmpty: allowEmptyPolicy)
        let selected = try selectSources(names)
        var lock: RunLock?
        if !dryRun {
            try repository.prepare()
            lock = try RunLock(path: repository.lockPath, purpose: "rotate")
        }
        defer { lock?.release() }
        let catalog = try catalog()
        if !dryRun { try recoverFromCrash(catalog) }
        let results = try rotate(selected.map(\.name), catalog: catalog, now: now ?? environment.clock(), dryRun: dryRun)
        if !dryRun { writeMetricsTextfile() }
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
    func rotate(_ sources: [String], catalog: Catalog, now: Date, dryRun: Bool) throws -> [RotationResult] {
        let candidates = try catalog.retentionCandidates(sources: sources, withPaths: !dryRun)
        return try sources.map { try rotateOne($0, rows: candidates[$0] ?? [], catalog: catalog, now: now, dryRun: dryRun) }
    }

    private func rotateOne(_ source: String, rows: [(candidate: RetentionCandidate, path: String)], catalog: Catalog,
                           now: Date, dryRun: Bool) throws -> RotationResult {
        let plan = RetentionPlanner.plan(rows.map(\.candidate), policy: policy.retention, now: now)
        var result = RotationResult(source: source, plan: plan, dryRun: dryRun, removed: [])
        guard !dryRun, !plan.remove.isEmpty else { return result }
        let paths = Dictionary(rows.map { ($0.candidate.id, $0.path) }, uniquingKeysWith: { a, _ in a })
        var removed: [String] = []
        for id in plan.remove {
            guard let path = paths[id] else { continue }
            do {
                for file in [repository.absolute(path), repository.manifestPath(forArtifact: path, id: id)] {
                    if unlink(file) != 0 && errno != ENOENT { throw FileSystemError("delete", path: file) }
                }
                removed.append(id)
            } catch {
                result.error = describe(error)
                logger.error("rotation stopped", metadata: ["source": "\(source)", "error": "\(result.error!)"])
                break
            }
        }
        if !removed.isEmpty {
            try FileIO.syncDirectory(repository.root)
            try catalog.markDeleted(ids: removed, at: now)
            if let kind = policy.source(named: source)?.kind, let adapter = try? registry.adapter(for: kind) {
                adapter.collectGarbage(source: source, context: context)
            }
            removeOffsite(removed.compactMap { id in paths[id].map { (id, $0) } }, source: source, catalog: catalog)
        }
        result.removed = removed
        logger.info("rotation", metadata: ["source": "\(source)", "kept": "\(plan.keep.count)", "removed": "\(removed.count)",
                                           "held_back": "\(plan.heldBack ?? "no")"])
        return result
    }

    /// Pins a good artifact: rotation never removes it.
    public func pin(id: String, reason: String) throws -> ArtifactInfo {
        let catalog = try catalog()
        var a = try show(id: id)
        guard a.status == .ok, a.deletedAt == nil else {
            throw BackupFailure("artifact \(a.id) is \(a.deletedAt != nil ? "deleted" : a.status.rawValue); only good backups can be pinned",
                                exitStatus: .usage, hint: "pick a good one with: kaleem-backup list --source \(a.source)")
        }
        try catalog.setPinned(id: a.id, pinned: true, reason: reason)
        a.pinned = true
        a.pinReason = reason
        return a
    }

    public func unpin(id: String) throws -> ArtifactInfo {
        let catalog = try catalog()
        var a = try show(id: id)
        try catalog.setPinned(id: a.id, pinned: false, reason: nil)
        a.pinned = false
        a.pinReason = nil
        return a
    }
}
