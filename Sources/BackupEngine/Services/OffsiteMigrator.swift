// The off-site migrator: an off-site copy made before hosts had their own directory (#38), moved under
// `<prefix><host>/`.
//
// Before #38 one host wrote `<prefix>catalog/catalog.sqlite`, `<prefix><source>/<day>/…`,
// `<prefix><source>/blobs/…`, `<prefix>packages/…`. Since, every host writes under `<prefix><host>/`, so two
// hosts can share a bucket. A copy in the old layout is found after every run (one HEAD of the old catalog
// copy: a warning) and by `policy check --connect` (a failed check); `kaleem-backup offsite migrate` moves it.

import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import OffsiteStore

public struct OffsiteMigrationResult: Sendable, Encodable {
    public var host: String
    public var from: String
    public var to: String
    /// Files of the old layout found (this policy's sources, the catalog copy, packages).
    public var files: Int
    /// Copied to the host's directory (the others were there already, same size and sha256).
    public var copied: Int
    /// Removed from the old layout (0 with --dry-run).
    public var removed: Int
    /// Not carried over: files of backups the catalog records as removed (rotated, forgotten), and the old
    /// catalog copy when the host already wrote a newer one in its directory.
    public var skipped: Int = 0
    public var dryRun: Bool
    enum CodingKeys: String, CodingKey { case host, from, to, files, copied, removed, skipped, dryRun = "dry_run" }
}

struct OffsiteMigrator: EngineService {
    let core: EngineCore

    /// The old layout's catalog copy: its presence is what says an old copy is there.
    static let legacyMarker = CatalogRebuilder.offsiteCopy

    /// Whether `relative` (under the bucket's prefix) is a file the old layout wrote for one of `sources`: the
    /// catalog copy, a package, or `<source>/blobs/…` / `<source>/<YYYY-MM-DD>/…`. A host's directory never
    /// matches: a host is not named `catalog` or `packages` nor like a day, and its second segment is a source
    /// (never `blobs` or a day; `HostName`).
    static func isLegacy(_ relative: String, sources: Set<String>) -> Bool {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2 else { return false }
        if relative == legacyMarker { return true }
        if parts[0] == "packages" { return parts.count == 2 }
        guard sources.contains(parts[0]), parts.count >= 3 else { return false }
        return parts[1] == "blobs" || parts[1].range(of: #"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"#, options: .regularExpression) != nil
    }

    /// True when the bucket holds an off-site copy in the old layout (its catalog copy); nil when unknown.
    func legacyCopyPresent() async -> Bool? {
        guard let root = try? core.offsiteBucketRoot() else { return nil }
        defer { root.close() }
        do { return try await root.stat(Self.legacyMarker) != nil } catch { return nil }
    }

    /// Copies every file of the old layout that belongs to this policy to `<prefix><host>/` (skipping those
    /// already there with the same size and sha256), and only when all are there removes the old ones. Runs under
    /// the repository's lock (no backup adds or rotates meanwhile); interrupted, it is run again: what was copied
    /// is skipped, nothing was removed.
    func migrate(dryRun: Bool) async throws -> OffsiteMigrationResult {
        guard let root = try core.offsiteBucketRoot(), let remote = try core.offsiteRepository() else {
            throw BackupFailure("the policy has no repository.offsite to migrate (or its secret key is empty)", exitStatus: .usage)
        }
        defer { root.close(); remote.close() }
        try repository.prepare()
        let lock = try RunLock(path: repository.lockPath, purpose: "offsite migrate")
        defer { lock.release() }
        let host = try core.offsiteHost()
        let sources = Set(policy.sources.map(\.name))
        var legacy: [RepositoryFile] = []
        for top in ["catalog/", "packages/"] + sources.sorted().map({ $0 + "/" }) {
            try await root.list(under: top) { page in
                legacy.append(contentsOf: page.filter { Self.isLegacy($0.relative, sources: sources) })
            }
        }
        var result = OffsiteMigrationResult(host: host, from: root.location, to: remote.location, files: legacy.count,
                                            copied: 0, removed: 0, dryRun: dryRun)
        guard !legacy.isEmpty, !dryRun else { return result }
        let scratch = try EngineCore.privateTemporaryDirectory(prefix: "offsite-migrate")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        // The catalog copy last: while it is in the old place, a later run still says the migration is unfinished.
        let ordered = legacy.filter { $0.relative != Self.legacyMarker } + legacy.filter { $0.relative == Self.legacyMarker }
        // Backups rotated or forgotten since the old copy was made: their files are not carried over (rotation,
        // which removes them off-site, now looks only in the host's directory).
        let removedIDs = Set(try catalog().artifacts(includeDeleted: true).filter { $0.deletedAt != nil }.map(\.id))
        for file in ordered {
            let name = (file.relative as NSString).lastPathComponent
            let id = String(name.prefix { $0 != "." })
            if !file.relative.contains("/blobs/"), RepositoryLayout.isValidID(id), removedIDs.contains(id) {
                result.skipped += 1
                continue
            }
            if file.relative == Self.legacyMarker, try await remote.stat(file.relative) != nil {
                result.skipped += 1
                continue
            }
            let recorded = try await root.stat(file.relative)
            guard let recorded else { continue } // gone meanwhile
            if let there = try await remote.stat(file.relative), there.size == recorded.size,
               there.recordedSHA256 != nil, there.recordedSHA256 == recorded.recordedSHA256 { continue }
            let local = scratch + "/file"
            try await root.get(file.relative, to: local, sha256: recorded.recordedSHA256)
            let sha = try sha256OfFile(local)
            try await remote.put(local, as: file.relative, sha256: sha)
            unlink(local)
            result.copied += 1
        }
        try await root.delete(ordered.map(\.relative))
        result.removed = ordered.count
        logger.info("off-site copy migrated", metadata: ["host": "\(host)", "files": "\(ordered.count)", "copied": "\(result.copied)", "to": "\(remote.location)"])
        return result
    }
}
