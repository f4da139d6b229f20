// `forget`: one backup removed on purpose (a corrupt one with no off-site copy, a backup of data that must not be
// kept), local and off-site, with the rotation's crash safety: the rows are marked deleted and the removal
// recorded before any file is touched; a kill is finished by the next locked command.
import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation

/// What `forget` did (or would do) with one backup.
public struct ForgetItem: Sendable {
    public var id: String
    public var source: String
    public var status: ArtifactStatus
    /// Why it was not removed; nil when it was (or would be, in a dry run).
    public var refused: String?
    public var removed = false
}

struct Forgetter: EngineService {
    let core: EngineCore

    /// Refuses (unless `force`, which needs a `reason`) a pinned backup, the newest good backup of a source and a
    /// pre-deploy restore point of the newest release; removes the rest. The reason is kept in the row's detail.
    func forget(ids: [String], dryRun: Bool, force: Bool, reason: String?) async throws -> [ForgetItem] {
        if force && (reason ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            throw BackupFailure("--force needs --reason: why a protected backup is removed is recorded", exitStatus: .usage)
        }
        try repository.prepare()
        let lock = try RunLock(path: repository.lockPath, purpose: "forget")
        defer { lock.release() }
        let catalog = try catalog()
        try await core.recovery.finishPendingRemovals(catalog)
        var items: [ForgetItem] = []
        var chosen: [ArtifactInfo] = []
        for id in ids {
            let a = try core.find(artifact: id, source: nil, in: catalog)
            guard a.deletedAt == nil else {
                items.append(ForgetItem(id: a.id, source: a.source, status: a.status, refused: "already removed"))
                continue
            }
            let good = try catalog.artifacts(source: a.source, status: .ok)
            var protection: String?
            if a.pinned {
                protection = "it is pinned (\(a.pinReason ?? "no reason given")); unpin it first, or --force"
            } else if a.status == .ok, good.first?.id == a.id {
                protection = "it is the newest good backup of \(a.source)"
            } else if a.status == .ok, a.tag == .preDeploy, let release = a.release,
                      good.first(where: { $0.tag == .preDeploy })?.release == release {
                protection = "it is a restore point of the newest release \(release)"
            }
            if let protection, !force {
                items.append(ForgetItem(id: a.id, source: a.source, status: a.status, refused: protection + " (--force --reason WHY to remove it anyway)"))
                continue
            }
            items.append(ForgetItem(id: a.id, source: a.source, status: a.status, refused: nil))
            chosen.append(a)
        }
        guard !dryRun, !chosen.isEmpty else { return items }
        let now = environment.clock()
        for var a in chosen {
            a.detail = "forgotten \(Timestamps.iso8601(now))" + (reason.map { ": \($0)" } ?? "") + (a.detail.map { " (was: \($0))" } ?? "")
            try catalog.updateArtifact(a)
        }
        let valid = chosen.filter { RepositoryLayout.problem(id: $0.id, source: $0.source, path: $0.path, createdAt: nil) == nil || $0.path.isEmpty }
        try catalog.beginRemoval(ids: chosen.map(\.id), at: now)
        var removed: [String] = []
        for a in valid {
            do {
                if !a.path.isEmpty { try core.recovery.removeFiles(of: a.id, path: a.path) }
                removed.append(a.id)
            } catch {
                logger.error("forget stopped", metadata: ["artifact": "\(a.id)", "error": "\(describe(error))"])
                break
            }
        }
        try catalog.finishRemoval(ids: removed)
        for source in Set(chosen.map(\.source)) {
            let gone = chosen.filter { $0.source == source && removed.contains($0.id) && !$0.path.isEmpty }
            if let kind = policy.source(named: source)?.kind, let adapter = try? registry.adapter(for: kind) {
                await core.rotator.collectGarbage(source, adapter: adapter)
            }
            if !gone.isEmpty { await core.offsite.removeOffsite(gone.map { ($0.id, $0.path) }, source: source, catalog: catalog) }
        }
        for i in items.indices where removed.contains(items[i].id) { items[i].removed = true }
        await core.offsite.copyCatalog()
        core.statusReport.writeMetricsTextfile()
        return items
    }
}
