// Crash recovery: what a killed process left is finished or undone before a locked command does anything else:
// removals a rotation or `forget` began (their rows already say deleted), artifacts still `running`, `.partial`
// files. Every locked command (backup, rotate, import, forget) calls `recover` first. It calls no other service,
// only the adapters' garbage collection, so the backup runner, the rotator, the importer and the forgetter depend
// on it and it on none of them (the service graph has no cycle: docs/ARCHITECTURE.md).

import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation

struct CrashRecovery: EngineService {
    let core: EngineCore

    /// Marks artifacts left `running` by a dead process as failed, removes their files and every `.partial`.
    /// Called with the run lock held, so nothing found here belongs to a live run.
    func recover(_ catalog: Catalog) async throws {
        try await finishPendingRemovals(catalog)
        let partials = repository.removePartialFiles()
        let stale = try catalog.markInterrupted(at: environment.clock())
        for artifact in stale where RepositoryLayout.problem(id: artifact.id, source: artifact.source, path: artifact.path, createdAt: nil) == nil {
            unlink(repository.absolute(artifact.path))
            unlink(repository.manifestPath(forArtifact: artifact.path, id: artifact.id))
        }
        if !partials.isEmpty || !stale.isEmpty {
            logger.warning("cleaned up after an interrupted run",
                           metadata: ["partial_files": "\(partials.count)", "interrupted_artifacts": "\(stale.map(\.id))"])
        }
    }

    /// Deletes an artifact's file and manifest (gone already is fine) and fsyncs the directory they were in.
    func removeFiles(of id: String, path: String) throws {
        // A path read back from the catalog (which a rebuild may have taken from a copy) names a file to delete
        // only when it is of our layout: `../../etc/x` or another source's file is never unlinked.
        if let problem = RepositoryLayout.problem(id: id, source: String(path.prefix { $0 != "/" }), path: path, createdAt: nil) {
            logger.warning("not deleting a file outside the repository's layout", metadata: ["artifact": "\(id)", "path": "\(path)", "problem": "\(problem)"])
            return
        }
        let file = repository.absolute(path)
        for f in [file, repository.manifestPath(forArtifact: path, id: id)] {
            if unlink(f) != 0 && errno != ENOENT { throw FileSystemError("delete", path: f) }
        }
        let directory = (file as NSString).deletingLastPathComponent
        if access(directory, F_OK) == 0 { try FileIO.syncDirectory(directory) }
    }

    /// Finishes removals a crashed process began (their rows already say deleted). Called with the lock held.
    func finishPendingRemovals(_ catalog: Catalog) async throws {
        let pending = try catalog.pendingRemovals()
        guard !pending.isEmpty else { return }
        var done: [String] = []
        for p in pending {
            do {
                try removeFiles(of: p.id, path: p.path)
                done.append(p.id)
            } catch {
                logger.error("an interrupted removal could not be finished", metadata: ["artifact": "\(p.id)", "error": "\(describe(error))"])
            }
        }
        try catalog.finishRemoval(ids: done)
        for source in Set(pending.map(\.source)) {
            if let kind = policy.source(named: source)?.kind, let adapter = try? registry.adapter(for: kind) {
                await adapter.collectGarbage(source: source, context: context)
            }
        }
        logger.warning("finished removals an interrupted rotation began", metadata: ["artifacts": "\(done)"])
    }
}
