// The verifier: a stored artifact re-read end to end (sha256, size, the kind's own walk, the manifest).

import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation

struct Verifier: EngineService {
    let core: EngineCore

    /// Re-reads stored artifacts: the file's sha256 and size against the catalog, the gzip stream, and the
    /// format (an RDB is walked again by the verifier, its key count compared with the recorded one). Each
    /// result is recorded in the catalog: a failure that shows damage marks the artifact `corrupt` (never the
    /// newest good backup, never removed automatically), a pass makes a corrupt one `ok` again.
    /// - Parameter ids: artifact ids or unique prefixes; empty with `all` means every good or corrupt artifact.
    func verify(ids: [String], all: Bool, source: String? = nil) async throws -> [VerifyResult] {
        let catalog = try catalog()
        var artifacts: [ArtifactInfo]
        if all {
            artifacts = try (catalog.artifacts(status: .ok) + catalog.artifacts(status: .corrupt))
                .sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
        } else {
            artifacts = try ids.map { try core.find(artifact: $0, source: source, in: catalog) }
        }
        artifacts = artifacts.filter { $0.deletedAt == nil }
        var results: [VerifyResult] = []
        for (artifact, verified) in try await verifiedInOrder(artifacts) {
            var result = verified
            // Removed by a rotation while we were verifying: not a failure, and no longer a backup to check.
            if !result.ok, let now = try? catalog.artifact(matching: artifact.id), now.deletedAt != nil {
                logger.info("skipped: removed by rotation during verify", metadata: ["artifact": "\(artifact.id)"])
                continue
            }
            if artifact.status == .ok || artifact.status == .corrupt {
                do {
                    result.status = try catalog.recordVerification(id: artifact.id, ok: result.ok, damaged: result.damaged,
                                                                   detail: result.detail, at: environment.clock())
                    if result.status == .corrupt, artifact.status == .ok {
                        logger.error("backup marked corrupt: it is no longer counted as a good backup and is never removed automatically",
                                     metadata: ["artifact": "\(artifact.id)", "source": "\(artifact.source)", "detail": "\(result.detail)"])
                    }
                } catch {
                    logger.warning("the verify result could not be recorded", metadata: ["artifact": "\(artifact.id)", "error": "\(describe(error))"])
                }
            }
            results.append(result)
        }
        if !results.isEmpty { core.statusReport.writeMetricsTextfile() }
        return results
    }

    /// `verifyOne` of each artifact, handed back in the given order as each one's turn comes. Stream artifacts
    /// are verified up to one per core at once (each already on two threads: read ahead and walk), so that
    /// `verify --all` uses the machine; snapshot artifacts (which may reach S3 and the catalog) and a run that
    /// shows progress on a terminal go one at a time.
    private func verifiedInOrder(_ artifacts: [ArtifactInfo]) async throws -> [(ArtifactInfo, VerifyResult)] {
        let width = environment.progress == nil ? max(1, ProcessInfo.processInfo.activeProcessorCount) : 1
        let parallel = artifacts.map { (try? registry.adapter(for: $0.kind))?.layout != .snapshot && width > 1 }
        // verifyOne of stream artifacts touches only its own artifact's files and the engine's settings
        // (policy, repository, registry, logger; the engine is Sendable): safe to run side by side.
        let verifier = self
        var done: [Int: VerifyResult] = [:]
        var ordered: [(ArtifactInfo, VerifyResult)] = []
        await withTaskGroup(of: (Int, VerifyResult).self) { group in
            var next = 0
            var running = 0
            var aloneRunning = false
            while ordered.count < artifacts.count {
                // Start what may run now: parallel ones up to the width; one that must run alone when none runs.
                while next < artifacts.count, !aloneRunning, running < width, parallel[next] || running == 0 {
                    let index = next, artifact = artifacts[index]
                    group.addTask { (index, await verifier.verifyOne(artifact)) }
                    running += 1
                    next += 1
                    aloneRunning = !parallel[index]
                }
                if let (index, result) = await group.next() {
                    running -= 1
                    if !parallel[index] { aloneRunning = false }
                    done[index] = result
                }
                while let result = done.removeValue(forKey: ordered.count) {
                    ordered.append((artifacts[ordered.count], result))
                }
            }
        }
        return ordered
    }

    /// - Parameter copy: receives every decompressed byte as it is verified (a drill writes them to its scratch
    ///   file, so one pass both checks and restores).
    func verifyOne(_ artifact: ArtifactInfo, copy: ((UnsafeRawBufferPointer) throws -> Void)? = nil) async -> VerifyResult {
        guard artifact.status == .ok || artifact.status == .corrupt else {
            return VerifyResult(id: artifact.id, ok: false, detail: "artifact is \(artifact.status.rawValue), not a good backup: \(artifact.detail ?? "no detail")")
        }
        let path = repository.absolute(artifact.path)
        let adapter: any SourceAdapter
        do {
            adapter = try registry.adapter(for: artifact.kind)
        } catch {
            return VerifyResult(id: artifact.id, ok: false, detail: describe(error))
        }
        if let snapshot = adapter.asSnapshot {
            do {
                environment.progress?.begin("verify \(artifact.id)", itemUnit: "blobs")
                defer { environment.progress?.end() }
                let detail = try await snapshot.verifySnapshot(artifact, context: context)
                try checkManifest(artifact)
                return VerifyResult(id: artifact.id, ok: true, detail: detail + ", manifest ok")
            } catch let error as IntegrityFailure where error.showsDamage {
                return VerifyResult(id: artifact.id, damagedBecause: describe(error))
            } catch {
                return VerifyResult(id: artifact.id, ok: false, detail: describe(error))
            }
        }
        // A stored file of another size is damaged whatever it holds: said before any walk (a crafted file
        // could make the walk long, e.g. a sparse entry claiming 2^62 bytes).
        if let size = FileIO.fileSize(path), size != artifact.bytesStored {
            return VerifyResult(id: artifact.id, damagedBecause: "\(path): size is \(size) bytes, the catalog recorded \(artifact.bytesStored)")
        }
        do {
            let reader = try await core.artifactReader(artifact)
            // Progress on a terminal: the decompressed bytes against the recorded raw size.
            var counted = copy
            if let meter = environment.progress {
                meter.begin("verify \(artifact.id)", totalBytes: artifact.bytesRaw)
                counted = { bytes in
                    meter.add(bytes: Int64(bytes.count))
                    try copy?(bytes)
                }
            }
            defer { environment.progress?.end() }
            // Reading, hashing and inflating on one core, the kind's walk (and the drill's copy) on another.
            let source = GzipChunkSource(reader: reader, copy: counted, readAhead: true)
            defer { source.stopReadingAhead() }
            guard let stream = adapter.asStream else { throw BackupFailure("source kind \(artifact.kind.rawValue) stores no stream") }
            let detail = try stream.verifyContents(artifact, source, path: path)
            source.stopReadingAhead()
            let digest = reader.storedSHA256
            guard digest == artifact.sha256 else {
                throw IntegrityError(object: path, problem: "sha256 is \(digest), the catalog recorded \(artifact.sha256)")
            }
            guard reader.bytesStored == artifact.bytesStored else {
                throw IntegrityError(object: path, problem: "size is \(reader.bytesStored) bytes, the catalog recorded \(artifact.bytesStored)")
            }
            try checkManifest(artifact)
            return VerifyResult(id: artifact.id, ok: true, detail: detail + ", manifest ok")
        } catch let error as FileSystemError where error.code == ENOENT && error.operation == "rename into place" {
            // A copy fetched from off-site vanished before it was put in place (a concurrent run's crash recovery
            // removes `.partial` files): nothing is known of the backup, it is not called damaged.
            return VerifyResult(id: artifact.id, ok: false, detail: "could not verify: the copy fetched from off-site vanished before it was put in place (\(describe(error))); run verify again")
        } catch let error as FileSystemError where error.code == ENOENT {
            return VerifyResult(id: artifact.id, damagedBecause: "stored file \(path) is missing")
        } catch {
            // Say first whether the bytes changed since the backup: that is what an operator acts on.
            if let digest = try? sha256OfFile(path), digest != artifact.sha256 {
                return VerifyResult(id: artifact.id,
                                    damagedBecause: "sha256 of \(path) is \(digest), the catalog recorded \(artifact.sha256): the file changed after the backup (\(describe(error)))")
            }
            if let failure = error as? IntegrityFailure, failure.showsDamage { return VerifyResult(id: artifact.id, damagedBecause: describe(error)) }
            return VerifyResult(id: artifact.id, ok: false, detail: describe(error))
        }
    }

    /// The manifest beside the artifact (what `catalog rebuild` reads) must say what the catalog says.
    /// The counts a manifest repeats that must agree with the catalog's.
    static let countKeys = ["documents", "keys", "objects", "files", "points", "namespaces"]

    func checkManifest(_ artifact: ArtifactInfo) throws {
        let path = repository.manifestPath(forArtifact: artifact.path, id: artifact.id)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw IntegrityError(object: path, problem: "the manifest is missing: a catalog rebuild would lose this backup")
        }
        let manifest: Manifest
        do {
            manifest = try Manifest.decode(data)
        } catch {
            throw IntegrityError(object: path, problem: "the manifest cannot be read (\(error)): a catalog rebuild would lose this backup")
        }
        let m = manifest.artifact
        var differences: [String] = []
        if m.id != artifact.id { differences.append("id \(m.id)") }
        if m.sha256 != artifact.sha256 { differences.append("sha256 \(m.sha256)") }
        if m.bytesStored != artifact.bytesStored { differences.append("size \(m.bytesStored)") }
        if m.path != artifact.path { differences.append("path \(m.path)") }
        if m.source != artifact.source || m.kind != artifact.kind { differences.append("source \(m.source) (\(m.kind))") }
        // The fields a rebuild would adopt: a manifest edited consistently (a backdated time, a tag, counts)
        // must not pass as sound. Pins are not compared: they differ legitimately (an off-site manifest copied
        // before a pre-deploy pin; a pin is written to the manifest first, an unpin to the catalog first, so a
        // kill between the two only ever keeps a backup longer).
        if abs(m.createdAt.timeIntervalSince(artifact.createdAt)) > 0.002 { differences.append("created_at \(Timestamps.iso8601(m.createdAt))") }
        if m.tag != artifact.tag { differences.append("tag \(m.tag.rawValue)") }
        if m.release != artifact.release { differences.append("release \(m.release ?? "none")") }
        for key in Self.countKeys where m.stats[key] != artifact.stats[key] {
            differences.append("\(key) \(m.stats[key].map { "\($0)" } ?? "none")")
        }
        if let problem = RepositoryLayout.problem(id: m.id, source: m.source, path: m.path, createdAt: m.createdAt) {
            differences.append(problem)
        }
        if !differences.isEmpty {
            throw IntegrityError(object: path, problem: "the manifest disagrees with the catalog: " + differences.joined(separator: ", "))
        }
    }
}
