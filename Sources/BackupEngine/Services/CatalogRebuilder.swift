// The catalog rebuilder: the catalog rebuilt from the manifests (and the off-site copy).
// catalog rebuild: a lost catalog recreated from the manifests beside every artifact (each one repeats what
// the catalog knew of its artifact and run), read from the local repository or, on a new host, from the
// off-site copy.

import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation

public struct CatalogRebuildResult: Sendable {
    public var catalogPath: String
    /// Where the catalog that was there before went, if there was one.
    public var previousCatalog: String?
    public var runs: Int
    public var artifacts: Int
    /// Manifests fetched from the off-site copy.
    public var fetched: Int
    public var skipped: [String]
}

struct CatalogRebuilder: EngineService {
    let core: EngineCore

    /// rebuild:
    ///   lock the repository
    ///   --from-offsite: download every manifest of the off-site copy into the local repository
    ///   move an existing catalog aside (`<catalog>.pre-rebuild-<time>`), never delete it
    ///   for each `<source>/<day>/<id>.manifest.json`: its run and its artifact (ok), pre-deploy sets pinned
    ///   again (a rebuilt catalog must not let rotation remove a restore point)
    func rebuildCatalog(fromOffsite: Bool) async throws -> CatalogRebuildResult {
        try repository.prepare()
        let lock = try RunLock(path: repository.lockPath, purpose: "catalog rebuild")
        defer { lock.release() }
        var fetched = 0
        var remoteFiles = Set<String>()
        if fromOffsite {
            guard let remote = try core.offsiteRepository() else {
                throw BackupFailure("--from-offsite needs repository.offsite in \(policy.origin)", exitStatus: .usage)
            }
            defer { remote.close() }
            // The listing holds only valid relative paths (a key with `..` or `//` is not a repository file).
            let keys = (try await remote.list(under: "")).map(\.relative)
            remoteFiles = Set(keys)
            let local = repository
            for key in keys where key.hasSuffix(".manifest.json") {
                if (try await local.fetchIfMissing(key, sha256: nil, from: remote)) { fetched += 1 }
            }
        }
        var manifests: [Manifest] = []
        var skipped: [String] = []
        let fm = FileManager.default
        for source in (try? fm.contentsOfDirectory(atPath: repository.root)) ?? [] {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: repository.absolute(source), isDirectory: &isDir), isDir.boolValue,
                  source != "catalog-copy" else { continue }
            for day in (try? fm.contentsOfDirectory(atPath: repository.absolute(source))) ?? [] where day != "blobs" {
                for name in (try? fm.contentsOfDirectory(atPath: repository.absolute("\(source)/\(day)"))) ?? []
                where name.hasSuffix(".manifest.json") {
                    let relative = "\(source)/\(day)/\(name)"
                    do {
                        guard let data = fm.contents(atPath: repository.absolute(relative)) else { throw FileSystemError("read", path: relative) }
                        manifests.append(try Manifest.decode(data))
                    } catch {
                        skipped.append("\(relative): \(describe(error))")
                    }
                }
            }
        }
        // The catalog that is there (if any) is kept aside, never deleted.
        var previous: String?
        if access(core.catalogPath, F_OK) == 0 {
            var rng = SystemRandomNumberGenerator()
            let aside = core.catalogPath + ".pre-rebuild-" + Identifier.make(at: environment.clock(), using: &rng)
            guard rename(core.catalogPath, aside) == 0 else { throw FileSystemError("move the old catalog aside to", path: aside) }
            for suffix in ["-wal", "-shm"] { _ = rename(core.catalogPath + suffix, aside + suffix) }
            previous = aside
        }
        let catalog = try Catalog(path: core.catalogPath)
        var runs: [String: RunInfo] = [:]
        for m in manifests {
            var run = m.run
            if run.status == .running { run.status = .ok }
            if run.finishedAt == nil { run.finishedAt = run.startedAt }
            runs[run.id] = run
        }
        for run in runs.values.sorted(by: { $0.startedAt < $1.startedAt }) { try catalog.insertRun(run) }
        var count = 0
        for m in manifests.sorted(by: { $0.artifact.createdAt < $1.artifact.createdAt }) {
            var a = m.artifact
            guard a.status == .ok else { continue }
            if a.tag == .preDeploy, let release = a.release ?? runs[a.runID]?.release {
                a.pinned = true
                a.pinReason = "release \(release)"
            }
            try catalog.insertArtifact(a)
            if fromOffsite && remoteFiles.contains(a.path) {
                try catalog.setOffsite(id: a.id, state: .ok, detail: "found off-site by catalog rebuild", at: environment.clock())
            }
            count += 1
        }
        logger.info("catalog rebuilt", metadata: ["runs": "\(runs.count)", "artifacts": "\(count)", "fetched": "\(fetched)"])
        return CatalogRebuildResult(catalogPath: core.catalogPath, previousCatalog: previous, runs: runs.count, artifacts: count,
                                    fetched: fetched, skipped: skipped)
    }
}
