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
    /// The catalog copy the rebuild started from (`catalog-copy/catalog.sqlite`, or the off-site
    /// `catalog/catalog.sqlite`), nil when none was usable.
    public var fromCopy: String?
    /// Why a copy that was there was not used.
    public var copyRejected: [String] = []
    /// Artifacts only the manifests knew (taken after the copy was made).
    public var addedFromManifests: Int = 0
    /// Unreadable manifests whose backups the copy holds: nothing is lost, but verify will report them.
    public var coveredByCopy: [String] = []
    /// Manifests read but not adopted: they do not describe the file beside them in the repository's layout
    /// (a path outside its source, an id or time that is not its own, a reserved source name).
    public var refused: [String] = []
}

struct CatalogRebuilder: EngineService {
    let core: EngineCore

    /// rebuild:
    ///   lock the repository
    ///   --from-offsite: download every manifest of the off-site copy into the local repository
    ///   move an existing catalog aside (`<catalog>.pre-rebuild-<time>`), never delete it
    ///   start from the newest sound catalog copy (local `catalog-copy/`, or off-site with --from-offsite): it
    ///   holds what manifests do not (verify, drill, restore and deploy history, off-site state)
    ///   for each `<source>/<day>/<id>.manifest.json` the copy does not know: its run and its artifact (ok),
    ///   pre-deploy sets pinned again (a rebuilt catalog must not let rotation remove a restore point)
    func rebuildCatalog(fromOffsite: Bool) async throws -> CatalogRebuildResult {
        try repository.prepare()
        let lock = try RunLock(path: repository.lockPath, purpose: "catalog rebuild")
        defer { lock.release() }
        var copyRejected: [String] = []
        var fetched = 0
        var remoteFiles = Set<String>()
        var candidates: [(origin: String, path: String)] = []
        var temporaries: [String] = []
        defer { for t in temporaries { for suffix in ["", "-wal", "-shm"] { unlink(t + suffix) } } }
        var rng = SystemRandomNumberGenerator()
        let stamp = Identifier.make(at: environment.clock(), using: &rng)
        let localCopy = repository.absolute("catalog-copy/catalog.sqlite")
        if access(localCopy, R_OK) == 0 {
            // Worked on in a scratch copy: the repository's copy stays as it is.
            let scratch = core.catalogPath + ".copy-" + stamp
            temporaries.append(scratch)
            do {
                try FileManager.default.copyItem(atPath: localCopy, toPath: scratch)
                candidates.append((localCopy, scratch))
            } catch {
                copyRejected.append("\(localCopy): cannot be read (\(describe(error)))")
            }
        }
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
            if remoteFiles.contains(Self.offsiteCopy) {
                let scratch = core.catalogPath + ".offsite-copy-" + stamp
                temporaries.append(scratch)
                do {
                    try await remote.get(Self.offsiteCopy, to: scratch, sha256: nil)
                    candidates.append((remote.location + Self.offsiteCopy, scratch))
                } catch {
                    copyRejected.append("\(remote.location + Self.offsiteCopy): cannot be fetched (\(describe(error)))")
                }
            }
        }
        var manifests: [Manifest] = []
        var skipped: [String] = []
        var refused: [String] = []
        let fm = FileManager.default
        for source in (try? fm.contentsOfDirectory(atPath: repository.root)) ?? [] {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: repository.absolute(source), isDirectory: &isDir), isDir.boolValue,
                  !RepositoryLayout.reservedNames.contains(source) else { continue }
            for day in (try? fm.contentsOfDirectory(atPath: repository.absolute(source))) ?? [] where day != "blobs" {
                for name in (try? fm.contentsOfDirectory(atPath: repository.absolute("\(source)/\(day)"))) ?? []
                where name.hasSuffix(".manifest.json") {
                    let relative = "\(source)/\(day)/\(name)"
                    do {
                        // A manifest is a few KiB; one of more than 16 MiB is not ours (and is not read whole).
                        if let size = FileIO.fileSize(repository.absolute(relative)), size > Self.manifestLimit {
                            refused.append("\(relative): \(size) bytes, more than a manifest's \(Self.manifestLimit)")
                            continue
                        }
                        guard let data = fm.contents(atPath: repository.absolute(relative)) else { throw FileSystemError("read", path: relative) }
                        let manifest = try Manifest.decode(data)
                        // What a manifest says is untrusted (it may come from the off-site bucket): adopted only
                        // when it describes the file beside it, in our layout.
                        if let problem = Self.refusal(manifest, at: relative) {
                            refused.append("\(relative): \(problem)")
                            continue
                        }
                        manifests.append(manifest)
                    } catch {
                        skipped.append("\(relative): \(describe(error))")
                    }
                }
            }
        }
        // The newest sound copy: it opens (and migrates), SQLite finds nothing wrong with it.
        var base: (origin: String, path: String)?
        var newest: Date?
        for candidate in candidates {
            if let problem = Catalog.schemaRefusal(path: candidate.path) {
                copyRejected.append("\(candidate.origin): \(problem)")
                continue
            }
            do {
                let copy = try Catalog(path: candidate.path)
                if let problem = try copy.copyRefusal() {
                    copyRejected.append("\(candidate.origin): \(problem)")
                    if !problem.hasPrefix("damaged") { try? copy.close() }
                    continue
                }
                let started = try copy.newestRunStart()
                if base == nil || (started ?? .distantPast) > (newest ?? .distantPast) {
                    base = candidate
                    newest = started
                }
            } catch {
                copyRejected.append("\(candidate.origin): cannot be opened (\(describe(error)))")
            }
        }
        for rejected in copyRejected { logger.warning("catalog copy not used", metadata: ["copy": "\(rejected)"]) }
        // The new catalog is built under a temporary name and put in place only when complete: a rebuild killed
        // at any point leaves the catalog that was there (or none, which every command then reports), never a
        // valid catalog that lacks backups.
        Self.removeUnfinished(besides: core.catalogPath)
        let building = core.catalogPath + Self.buildingSuffix + stamp
        temporaries.append(building)
        if let base {
            guard rename(base.path, building) == 0 else { throw FileSystemError("take the catalog copy to", path: building) }
        }
        let catalog = try Catalog(path: building)
        let known = try catalog.artifactIDs()
        var runs: [String: RunInfo] = [:]
        for m in manifests where !known.contains(m.artifact.id) {
            var run = m.run
            if run.status == .running { run.status = .ok }
            if run.finishedAt == nil { run.finishedAt = run.startedAt }
            runs[run.id] = run
        }
        for run in runs.values.sorted(by: { $0.startedAt < $1.startedAt }) where try catalog.run(id: run.id) == nil {
            try catalog.insertRun(run)
        }
        var added = 0
        for m in manifests.sorted(by: { $0.artifact.createdAt < $1.artifact.createdAt }) where !known.contains(m.artifact.id) {
            var a = m.artifact
            guard a.status == .ok else { continue }
            if a.tag == .preDeploy, let release = a.release ?? runs[a.runID]?.release {
                a.pinned = true
                a.pinReason = "release \(release)"
            }
            try catalog.insertArtifact(a)
            added += 1
        }
        // A pin the manifest holds and the copy does not (made after the copy): kept. A pin is never lost to a
        // rebuild; a stale one only keeps a backup longer.
        let rows = Dictionary(try catalog.artifacts(includeDeleted: true).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for m in manifests where known.contains(m.artifact.id) && m.artifact.pinned {
            if let row = rows[m.artifact.id], !row.pinned, row.deletedAt == nil {
                try catalog.setPinned(id: row.id, pinned: true, reason: m.artifact.pinReason)
            }
        }
        // Found off-site: recorded so (the copy may predate the upload).
        if fromOffsite {
            for a in try catalog.artifacts() where remoteFiles.contains(a.path) && a.offsite != .ok {
                try catalog.setOffsite(id: a.id, state: .ok, detail: "found off-site by catalog rebuild", at: environment.clock())
            }
        }
        // An unreadable manifest loses nothing when the copy holds its backup.
        var covered: [String] = []
        let holding = try catalog.artifactIDs()
        let orphaned = skipped.filter { entry in
            let name = (String(entry.prefix { $0 != ":" }) as NSString).lastPathComponent
            let id = name.hasSuffix(".manifest.json") ? String(name.dropLast(".manifest.json".count)) : name
            if base != nil && holding.contains(id) { covered.append(entry); return false }
            return true
        }
        let total = try catalog.artifacts().filter { $0.status == .ok || $0.status == .corrupt }.count
        let runCount = try catalog.runCount()
        try catalog.close()
        try FileIO.syncFile(building)
        // Complete: the catalog that is there (if any) is kept aside, never deleted, and the new one put in place.
        var previous: String?
        if access(core.catalogPath, F_OK) == 0 {
            let aside = core.catalogPath + ".pre-rebuild-" + stamp
            guard rename(core.catalogPath, aside) == 0 else { throw FileSystemError("move the old catalog aside to", path: aside) }
            for suffix in ["-wal", "-shm", "-journal"] { _ = rename(core.catalogPath + suffix, aside + suffix) }
            previous = aside
        }
        guard rename(building, core.catalogPath) == 0 else { throw FileSystemError("put the rebuilt catalog in place at", path: core.catalogPath) }
        try FileIO.syncDirectory((core.catalogPath as NSString).deletingLastPathComponent)
        logger.info("catalog rebuilt", metadata: ["runs": "\(runCount)", "artifacts": "\(total)", "fetched": "\(fetched)",
                                                "from_copy": "\(base?.origin ?? "none")", "from_manifests": "\(added)"])
        for r in refused { logger.warning("manifest refused", metadata: ["manifest": "\(r)"]) }
        var result = CatalogRebuildResult(catalogPath: core.catalogPath, previousCatalog: previous, runs: runCount, artifacts: total,
                                          fetched: fetched, skipped: orphaned, fromCopy: base?.origin, copyRejected: copyRejected,
                                          addedFromManifests: added, coveredByCopy: covered)
        result.refused = refused
        return result
    }

    /// Why a manifest found at `relative` (`<source>/<day>/<id>.manifest.json`) is not adopted, or nil.
    static func refusal(_ m: Manifest, at relative: String) -> String? { m.refusal(at: relative) }

    static let buildingSuffix = ".rebuilding-"
    static let manifestLimit: Int64 = 16 << 20

    /// Removes what a killed rebuild left beside the catalog (`<catalog>.rebuilding-<stamp>` and its journal).
    static func removeUnfinished(besides catalogPath: String) {
        let dir = (catalogPath as NSString).deletingLastPathComponent
        let prefix = (catalogPath as NSString).lastPathComponent + buildingSuffix
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix(prefix) {
            unlink(dir + "/" + name)
        }
    }

    /// Where the off-site copy of the catalog lives (written by `OffsiteReplicator.copyCatalog`).
    static let offsiteCopy = "catalog/catalog.sqlite"
}
