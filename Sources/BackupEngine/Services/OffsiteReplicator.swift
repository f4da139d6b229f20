// The off-site replicator: artifacts, their files and the catalog copied to the off-site repository; verify --offsite; removals after rotation.
// The off-site copy: the repository's files in an S3 / MinIO bucket, same layout under `prefix`. After each
// run: every good artifact not yet copied (artifact file, manifest; a bucket snapshot's blobs), each
// uploaded with its sha256 as metadata and checked (size and sha256) after upload; then the catalog itself.
// A failed copy leaves the local backup good (`ok, offsite failed`) and is retried by the next run.

import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import OffsiteStore
import S3Client

struct OffsiteReplicator: EngineService {
    let core: EngineCore

    /// The files of an artifact, relative to the repository, with their sha256 (nil: computed on upload), one at
    /// a time: whatever files its kind says belong to it (all of them, or with `base` those that one does not
    /// hold), then the artifact and its manifest, last, so a copy cut short never leaves an artifact off-site
    /// without the files it needs.
    func forEachOffsiteFile(_ artifact: ArtifactInfo, since base: ArtifactInfo? = nil,
                            _ body: (_ relative: String, _ sha256: String?) async throws -> Void) async throws {
        try await registry.adapter(for: artifact.kind).forEachExtraFile(of: artifact, since: base, context: context, body)
        try await body(artifact.path, artifact.sha256)
        try await body(repository.relativeManifestPath(forArtifact: artifact.path, id: artifact.id), nil)
    }

    /// Copies every good artifact that has no good off-site copy yet; returns the failures (id → why).
    func syncOffsite(catalog: Catalog) async -> [String: String] {
        guard policy.repository.offsite != nil else { return [:] }
        var failures: [String: String] = [:]
        let pending: [ArtifactInfo]
        let remote: any Repository
        do {
            pending = try catalog.artifactsNeedingOffsite()
            guard !pending.isEmpty else { return [:] }
            guard let r = try core.offsiteRepository() else { return [:] }
            remote = r
        } catch {
            logger.error("off-site copy not started", metadata: ["error": "\(describe(error))"])
            return [:]
        }
        defer { remote.close() }
        let meter = environment.progress
        meter?.begin("off-site copy to \(remote.location)", itemUnit: "files")
        defer { meter?.end() }
        // Shared files (blobs) already there are not sent again. An artifact whose source has an earlier one copied
        // whole is copied incrementally: its kind hands on only what that one does not hold, each checked with one
        // request (an unchanged night: nothing). Without such a base, the remote shared directory is listed once
        // per source (1 request per 1,000 files) and every file the artifact needs is looked up there.
        var remoteShared: [String: Set<String>] = [:]
        for artifact in pending {
            do {
                let shared = try registry.adapter(for: artifact.kind).sharedDirectory(source: artifact.source)
                var base = shared == nil ? nil : try catalog.lastOffsiteCopy(source: artifact.source, before: artifact.createdAt)
                // A base whose snapshot file is not there (the bucket emptied, the prefix changed) is no base.
                if let b = base, try await remote.stat(b.path) == nil {
                    logger.warning("the last off-site copy is not there any more; copying in full", metadata: ["artifact": "\(artifact.id)", "base": "\(b.id)"])
                    base = nil
                }
                if let shared, base == nil, remoteShared[artifact.source] == nil {
                    remoteShared[artifact.source] = Set((try await remote.list(under: shared)).map(\.relative))
                }
                var copied = 0
                try await forEachOffsiteFile(artifact, since: base) { relative, known in
                    let isShared = shared.map { relative.hasPrefix($0) } ?? false
                    if isShared {
                        if let listed = remoteShared[artifact.source] {
                            if listed.contains(relative) { return }
                        } else if try await remote.stat(relative) != nil {
                            return
                        }
                    }
                    meter?.add(totalItems: 1)
                    let path = repository.absolute(relative)
                    let sha = try known ?? sha256OfFile(path)
                    (try await remote.put(path, as: relative, sha256: sha))
                    meter?.add(bytes: FileIO.fileSize(path) ?? 0, items: 1)
                    copied += 1
                    if isShared { remoteShared[artifact.source]?.insert(relative) }
                }
                let files = copied
                try catalog.setOffsite(id: artifact.id, state: .ok, detail: "\(files) files at \(remote.location)" + (base.map { " (incremental to \($0.id))" } ?? ""),
                                       at: environment.clock())
                logger.info("off-site copy ok", metadata: ["artifact": "\(artifact.id)", "files": "\(files)", "base": "\(base?.id ?? "-")"])
            } catch {
                let detail = describe(error)
                failures[artifact.id] = detail
                try? catalog.setOffsite(id: artifact.id, state: .failed, detail: detail, at: environment.clock())
                logger.error("off-site copy failed", metadata: ["artifact": "\(artifact.id)", "error": "\(detail)"])
            }
        }
        return failures
    }

    /// The catalog, copied consistently (SQLite's online backup API) into `<repo>/catalog-copy/catalog.sqlite`
    /// and, when configured, off-site as `catalog/catalog.sqlite`. A failure is logged, never fatal.
    func copyCatalog() async {
        do {
            let dir = repository.absolute("catalog-copy")
            try FileIO.makeDirectories(dir)
            // SQLite writes the copy into the partial file; the writer makes it durable and renames it.
            let copy = try AtomicFileWriter(path: dir + "/catalog.sqlite")
            do {
                try catalog().backup(to: copy.partialPath)
                try copy.commit()
            } catch {
                copy.abort()
                throw error
            }
            if let remote = try core.offsiteRepository() {
                defer { remote.close() }
                let path = dir + "/catalog.sqlite"
                let sha = try sha256OfFile(path)
                (try await remote.put(path, as: CatalogRebuilder.offsiteCopy, sha256: sha))
                // One HEAD: a copy made before hosts had their own directory (#38) is no longer read or rotated.
                if await core.offsiteMigrator.legacyCopyPresent() == true, let offsite = policy.repository.offsite {
                    logger.warning("an off-site copy in the old layout (without a host directory) is still in the bucket; this host now writes under its own directory, and rotation no longer removes the old files",
                                   metadata: ["old": "\(offsite.location)", "new": "\(remote.location)", "try": "kaleem-backup offsite migrate --policy \(policy.origin) --yes"])
                }
            }
        } catch {
            logger.warning("catalog copy failed", metadata: ["error": "\(describe(error))"])
        }
    }

    /// The installable packages kept in `<repo>/packages/` (`scripts/package-deb.sh --into-repository REPO`),
    /// copied off-site as `packages/<name>` when the copy there is missing or of another size, so a new host can
    /// install from the off-site bucket (runbooks/full-disaster-recovery.md, step 1). Never removed by rotation.
    /// A failure is logged, never fatal.
    func copyPackages() async {
        let dir = repository.absolute("packages")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".deb") && !$0.hasPrefix(".") }.sorted()
        guard !names.isEmpty else { return }
        do {
            guard let remote = try core.offsiteRepository() else { return }
            defer { remote.close() }
            var there: [String: Int64] = [:]
            for file in try await remote.list(under: "packages/") { there[file.relative] = file.size }
            for name in names {
                let path = dir + "/" + name
                let relative = "packages/" + name
                if let size = there[relative], size == FileIO.fileSize(path) { continue }
                (try await remote.put(path, as: relative, sha256: try sha256OfFile(path)))
                logger.info("package copied off-site", metadata: ["file": "\(relative)", "to": "\(remote.location)"])
            }
        } catch {
            logger.warning("package copy failed", metadata: ["error": "\(describe(error))"])
        }
    }

    /// `verify --offsite`: each artifact's remote files re-read and re-hashed (blobs: size and sha256 metadata).
    func verifyOffsite(ids: [String], all: Bool) async throws -> [VerifyResult] {
        guard let remote = try core.offsiteRepository() else {
            throw BackupFailure("the policy has no repository.offsite to verify", exitStatus: .usage)
        }
        defer { remote.close() }
        let catalog = try catalog()
        let artifacts: [ArtifactInfo] = all
            ? try catalog.artifacts(status: .ok).reversed()
            : try ids.map { try core.find(artifact: $0, source: nil, in: catalog) }
        var results: [VerifyResult] = []
        for artifact in artifacts where artifact.deletedAt == nil && artifact.status == .ok {
            results.append(await verifyOffsite(artifact, remote: remote))
        }
        return results
    }

    private func verifyOffsite(_ artifact: ArtifactInfo, remote: any Repository) async -> VerifyResult {
            do {
                var checked = 0
                let shared = try registry.adapter(for: artifact.kind).sharedDirectory(source: artifact.source)
                try await forEachOffsiteFile(artifact) { relative, known in
                    if let shared, relative.hasPrefix(shared) {
                        // Shared files (blobs): size and recorded sha256 (HEAD) when the local file is here to compare; else re-read.
                        let local = repository.absolute(relative)
                        if let size = FileIO.fileSize(local) {
                            let sha = try known ?? sha256OfFile(local)
                            (try await remote.check(relative, size: size, sha256: sha))
                        } else {
                            let recorded = (try await remote.stat(relative))?.recordedSHA256
                            let actual = (try await remote.digest(relative))
                            if actual != (known ?? recorded) { throw IntegrityError(object: remote.location + relative, problem: "sha256 is \(actual)") }
                        }
                    } else {
                        let actual = (try await remote.digest(relative))
                        let expected = try known ?? sha256OfFile(repository.absolute(relative))
                        if actual != expected {
                            throw IntegrityError(object: remote.location + relative, problem: "sha256 is \(actual), expected \(expected)")
                        }
                    }
                    checked += 1
                }
                return VerifyResult(id: artifact.id, ok: true, detail: "off-site copy ok: \(checked) files at \(remote.location)")
            } catch {
                return VerifyResult(id: artifact.id, ok: false, detail: "off-site: \(describe(error))")
            }
    }

    /// After rotation removed artifacts: their remote files go too (shared files: those no remaining artifact uses).
    func removeOffsite(_ removed: [(id: String, path: String)], source: String, catalog: Catalog) async {
        guard !removed.isEmpty, let remote = try? core.offsiteRepository() else { return }
        defer { remote.close() }
        var keys: [String] = []
        var removedShared = 0
        for r in removed {
            keys.append(r.path)
            keys.append(repository.relativeManifestPath(forArtifact: r.path, id: r.id))
        }
        do {
            // The removed artifacts' own files first: nothing off-site is left naming blobs that are gone.
            let all = keys
            (try await remote.delete(all))
            if let kind = policy.source(named: source)?.kind {
                let adapter = try registry.adapter(for: kind)
                if adapter.sharedDirectory(source: source) != nil {
                    removedShared = try await adapter.removeUnusedRemoteFiles(source: source, remote: remote, context: context)
                }
            }
            logger.info("off-site copies removed", metadata: ["source": "\(source)", "objects": "\(all.count + removedShared)"])
        } catch {
            logger.warning("off-site copies not removed", metadata: ["source": "\(source)", "error": "\(describe(error))"])
        }
    }
}
