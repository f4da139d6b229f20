// The backup runner: one run of the selected sources through the pipeline, then the steps after a run.

import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import Logging

struct BackupRunner: EngineService {
    let core: EngineCore

    // MARK: backup

    /// Backs up the named sources (all when empty) as one run, with the run's `notify.ping` pings: start once
    /// the run holds the repository lock, then success or fail. A run that meets the lock sends none (the run
    /// holding it pings; the daemon retries): a ping never changes the outcome.
    func backup(sources names: [String] = [], tag: RunTag = .manual, release: String? = nil) async throws -> BackupResult {
        let pinger = Pinger(policy: policy.notify?.ping, logger: logger, host: environment.host)
        do {
            let result = try await runBackup(sources: names, tag: tag, release: release) { selected in
                await pinger.start(sources: selected, tag: tag)
            }
            await pinger.finished(result)
            return result
        } catch let locked as LockedError {
            throw locked
        } catch {
            await pinger.failed(reason: describe(error))
            throw error
        }
    }

    private func runBackup(sources names: [String], tag: RunTag, release: String?,
                           started: ([String]) async -> Void) async throws -> BackupResult {
        let selected = try core.selectSources(names)
        // Refused before anything runs: a source that would store a secret in clear, or the key in its backup.
        // (What a check cannot even look at — a missing path — is left to the backup, which records it as failed.)
        let refused = selected.flatMap { source in
            ((try? registry.adapter(for: source.kind).check(source, policy: policy)) ?? []).map { "source \(source.name): \($0)" }
        }
        if !refused.isEmpty {
            throw BackupFailure(refused.joined(separator: "; "), exitStatus: .usage,
                                hint: "fix the policy (encryption, exclude, allow_plaintext_secrets), then check it with: kaleem-backup policy check")
        }
        try repository.prepare()
        let lock = try RunLock(path: repository.lockPath, purpose: "backup")
        defer { lock.release() }
        await started(selected.map(\.name))
        let catalog = try catalog()
        try await core.recovery.recover(catalog)

        let started = environment.clock()
        var run = RunInfo(id: "run-" + core.newIdentifier(at: started), tag: tag, release: release,
                          startedAt: started, status: .running, host: environment.host)
        do {
            try catalog.insertRun(run)
        } catch {
            // Not even the run can be recorded (a full disk): still tell the people and the metrics, then fail.
            let detail = "the run could not be recorded in the catalog: \(describe(error))"
            run.status = .failed
            run.finishedAt = environment.clock()
            let failed = selected.map { source in
                ArtifactInfo(id: core.newIdentifier(at: started), runID: run.id, source: source.name, kind: source.kind,
                             path: "", status: .failed, createdAt: started, detail: detail, tag: tag, release: release)
            }
            core.statusReport.writeMetricsTextfile()
            await core.notifier.notify(BackupResult(run: run, artifacts: failed))
            throw error
        }
        logger.info("backup run started", metadata: ["run": "\(run.id)", "tag": "\(tag.rawValue)", "sources": "\(selected.map(\.name))"])

        var artifacts: [ArtifactInfo] = []
        var failures: [String: FailureKind] = [:]
        var hints: [String: String] = [:]
        for source in selected {
            let (artifact, failure, hint) = await backupOne(source, run: run, catalog: catalog)
            artifacts.append(artifact)
            if let failure { failures[artifact.id] = failure }
            if let hint { hints[artifact.id] = hint }
        }
        let good = artifacts.filter { $0.status == .ok }.count
        run.status = good == artifacts.count ? .ok : (good == 0 ? .failed : .partial)
        run.finishedAt = environment.clock()
        do {
            try catalog.finishRun(id: run.id, status: run.status, at: run.finishedAt!)
        } catch {
            // A full disk can refuse even this: the run is still reported (metrics, webhook) below, and the next
            // run's recovery marks the row interrupted.
            logger.error("the run could not be recorded as finished", metadata: ["run": "\(run.id)", "error": "\(describe(error))"])
        }
        logger.info("backup run finished", metadata: ["run": "\(run.id)", "status": "\(run.status.rawValue)"])
        var result = BackupResult(run: run, artifacts: artifacts)
        result.failures = failures
        result.hints = hints
        for step in Self.afterRun {
            logger.debug("after the run", metadata: ["step": "\(step.name)"])
            await step.run(core, catalog, &result)
        }
        return result
    }

    /// One step after a run. It may add to what the result reports; it can never change the run's outcome
    /// (each step catches its own errors and logs them).
    struct AfterRunStep: Sendable {
        let name: String
        let run: @Sendable (EngineCore, Catalog, inout BackupResult) async -> Void
    }

    /// The steps after every backup run, in order: rotation first (it frees space and decides what the off-site
    /// copy no longer needs), then the off-site copy of what is kept, then the catalog copy (which must include
    /// the off-site states), then metrics and notifications, which report all of the above.
    static let afterRun: [AfterRunStep] = [
        AfterRunStep(name: "rotation") { engine, catalog, result in
            // Only after a good new backup of the same source; never the run's own new backups.
            do {
                try engine.rotator.checkRetentionPolicy(allowEmpty: false)
                let succeeded = Set(result.artifacts.filter { $0.status == .ok }.map(\.source)).sorted()
                if !succeeded.isEmpty {
                    result.rotations = try await engine.rotator.rotate(succeeded, catalog: catalog, now: engine.environment.clock(), dryRun: false,
                                                         protect: Set(result.artifacts.map(\.id)))
                }
            } catch {
                result.rotationSkipped = engine.describe(error)
                engine.logger.warning("rotation skipped", metadata: ["reason": "\(result.rotationSkipped!)"])
            }
        },
        AfterRunStep(name: "off-site copy") { engine, catalog, result in
            // This run's good artifacts and any earlier copy that failed. A failure leaves the artifact
            // `ok, offsite failed`, retried next run.
            result.offsiteFailures = await engine.offsite.syncOffsite(catalog: catalog)
            for (id, detail) in result.offsiteFailures {
                if let i = result.artifacts.firstIndex(where: { $0.id == id }) {
                    result.artifacts[i].offsite = .failed
                    result.artifacts[i].offsiteDetail = detail
                }
            }
            for i in result.artifacts.indices where result.artifacts[i].status == .ok && result.artifacts[i].offsite == nil
                && engine.policy.repository.offsite != nil {
                result.artifacts[i].offsite = .ok
            }
        },
        // Receipts other hosts left of refreshes from this host's backups (#38), into the catalog before its copy.
        AfterRunStep(name: "refresh receipts") { engine, _, _ in await engine.receipts.collect() },
        AfterRunStep(name: "catalog copy") { engine, _, _ in await engine.offsite.copyCatalog() },
        AfterRunStep(name: "package copy") { engine, _, _ in await engine.offsite.copyPackages() },
        AfterRunStep(name: "metrics") { engine, _, _ in engine.statusReport.writeMetricsTextfile() },
        AfterRunStep(name: "notifications") { engine, _, result in await engine.notifier.notify(result) },
    ]

    /// What each source's kind finds wrong before anything runs (secrets that would be stored in clear, the
    /// age key inside a backup, a root that is missing): `policy check` prints it, `backup` refuses (exit 2).
    func checkSources(_ names: [String] = []) throws -> [String] {
        var problems: [String] = []
        for source in try core.selectSources(names) {
            do {
                problems += try registry.adapter(for: source.kind).check(source, policy: policy).map { "source \(source.name): \($0)" }
            } catch {
                problems.append("source \(source.name): \(describe(error))")
            }
        }
        return problems
    }

    /// One source of a run: the artifact (ok or failed) and, when it failed, why (by type) and what to try.
    /// Never throws: whatever fails is the artifact's failure (a full disk, an unknown kind, a catalog that
    /// cannot be written), so the run goes on to the other sources and to its metrics and notifications.
    private func backupOne(_ source: SourcePolicy, run: RunInfo, catalog: Catalog) async -> (ArtifactInfo, FailureKind?, String?) {
        let created = environment.clock()
        let id = core.newIdentifier(at: created)
        var artifact = ArtifactInfo(id: id, runID: run.id, source: source.name, kind: source.kind, path: "",
                                    status: .running, createdAt: created, tag: run.tag, release: run.release)
        var adapter: (any SourceAdapter)?
        // Without `deadline:`, the deadline is fitted to this source's previous good backup (every adapter reads
        // `deadlineSeconds` from the source it is handed).
        var source = source
        // The previous good backup, read once: its duration fits the deadline, its size estimates the progress total.
        let previous = (try? catalog.artifacts(source: source.name, status: .ok, limit: 1))?.first
        source.deadlineSeconds = source.fittedDeadline(previousDuration: previous?.stats["duration_seconds"]?.doubleValue)
        do {
            let kind = try registry.adapter(for: source.kind)
            adapter = kind
            try await store(source, adapter: kind, run: run, into: &artifact, previous: previous, catalog: catalog)
            return (artifact, nil, nil)
        } catch {
            artifact.status = .failed
            artifact.detail = describe(error)
            let failure: FailureKind = error is IntegrityFailure ? .integrity : .failed
            // Kept in the catalog row for history (the exit code uses the type above, not this text).
            if failure == .integrity { artifact.stats["failure"] = .string(FailureKind.integrity.rawValue) }
            if !artifact.path.isEmpty { unlink(repository.manifestPath(forArtifact: artifact.path, id: id)) }
            // What a failed snapshot stored (blobs no good snapshot references) goes first: on a full disk that is
            // what frees the space to record the failure (recorded after it, the row stayed `running` and the
            // next run relabelled it "interrupted", the cause lost).
            if let adapter, adapter.layout == .snapshot { await adapter.collectGarbage(source: source.name, context: context) }
            do {
                try catalog.updateArtifact(artifact)
            } catch let catalogError {
                // The row stays `running`; the next run's recovery marks it failed. The run still reports it.
                logger.error("the failure could not be recorded in the catalog", metadata: ["artifact": "\(id)", "error": "\(describe(catalogError))"])
            }
            logger.error("backup failed", metadata: ["source": "\(source.name)", "artifact": "\(id)", "error": "\(artifact.detail!)"])
            return (artifact, failure, Self.hint(for: error, source: source.name))
        }
    }

    /// What the person should try after a source failed: the error's own hint when it has one (a refused
    /// connection, a full disk, a deadline), else where to look next. Never a secret (hints are written by us).
    static func hint(for error: Error, source: String) -> String {
        if let user = error as? UserFacingError, let hint = user.hint { return KnownSecrets.scrub(hint) }
        return "check the source's connection and credentials with: kaleem-backup policy check --connect; run the backup of \(source) again with -v for the details"
    }

    /// Takes the backup into `artifact` (its row inserted first, then updated `ok` once the file and its
    /// manifest are durable); throws whatever went wrong, the partial file already removed.
    private func store(_ source: SourcePolicy, adapter: any SourceAdapter, run: RunInfo, into artifact: inout ArtifactInfo,
                       previous: ArtifactInfo?, catalog: Catalog) async throws {
        let id = artifact.id
        switch adapter.layout {
        case .stream(let ext): artifact.path = repository.relativeArtifactPath(source: source.name, id: id, createdAt: artifact.createdAt, extension: ext)
        case .snapshot: artifact.path = repository.relativeSnapshotPath(source: source.name, id: id, createdAt: artifact.createdAt)
        }
        let path = artifact.path
        if adapter.layout == .snapshot { artifact.compression = .none } // the adapter stores its files as they are
        try catalog.insertArtifact(artifact)
        try checkFreeSpace(for: source, adapter: adapter, catalog: catalog)
        let startTime = DispatchTime.now()
        try repository.prepareDirectory(forArtifact: path)
        var stats: [String: JSONValue]
        let stored: StoredFile
        let meter = environment.progress
        // The total is estimated from the previous good backup of the source (its raw size: what the writer counts).
        let estimate = adapter.layout == .snapshot ? nil : previous.map(\.bytesRaw).flatMap { $0 > 0 ? $0 : nil }
        meter?.begin("backup \(source.name)", totalBytes: estimate, estimated: estimate != nil)
        defer { meter?.end() }
        if let snapshot = adapter.asSnapshot {
            (stats, stored) = try await snapshot.backupSnapshot(source, artifact: artifact, context: context)
        } else {
            guard let stream = adapter.asStream else { throw BackupFailure("source kind \(source.kind.rawValue) is neither a stream nor a snapshot kind") }
            let recipients = try core.encryptionRecipients()
            if !recipients.isEmpty { artifact.compression = .gzipAge }
            let writer = try ArtifactWriter(path: repository.absolute(path), compression: policy.compression, recipients: recipients)
            writer.deadline = Date(timeIntervalSinceNow: source.deadlineSeconds)
            writer.deadlineError = DeadlineExceeded(source: source.name, seconds: source.deadlineSeconds)
            writer.minimumRate = source.rateWindow()
            if let meter { writer.onWrite = { meter.add(bytes: Int64($0)) } }
            do {
                stats = try await stream.backupStream(source, into: writer, context: context)
                stored = try writer.commit()
            } catch {
                // The partial file goes first: on a full disk that is what frees the space to record the failure.
                writer.abort()
                throw error
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - startTime.uptimeNanoseconds) / 1e9
        stats["duration_seconds"] = .double((seconds * 1000).rounded() / 1000)
        stats["deadline_seconds"] = .double(source.deadlineSeconds)
        artifact.bytesRaw = stored.bytesRaw
        artifact.bytesStored = stored.bytesStored
        artifact.sha256 = stored.sha256
        artifact.stats = stats
        artifact.status = .ok
        var finishedRun = run
        finishedRun.status = .running
        try repository.writeManifest(Manifest(artifact: artifact, run: finishedRun))
        try catalog.updateArtifact(artifact)
        logger.info("backup ok", metadata: [
            "source": "\(source.name)", "artifact": "\(id)", "bytes_raw": "\(stored.bytesRaw)",
            "bytes_stored": "\(stored.bytesStored)", "seconds": "\(String(format: "%.2f", seconds))",
        ])
    }

    /// Fails early, with a clear message, when the repository's file system has less free space than the
    /// source's previous backup took (plus a margin for the catalog): better than filling the disk halfway.
    func checkFreeSpace(for source: SourcePolicy, adapter: any SourceAdapter, catalog: Catalog) throws {
        guard let free = FileIO.freeSpace(repository.root),
              let previous = try catalog.artifacts(source: source.name, status: .ok, limit: 1).first else { return }
        // A snapshot adds only its new blobs; a stream is written whole.
        let needed = (adapter.layout == .snapshot ? 0 : previous.bytesStored) + Defaults.freeSpaceReserve
        if free < needed {
            throw BackupFailure("not enough free space in \(repository.root) for a backup of \(source.name): \(EngineCore.mebibytes(free)) free, the previous backup took \(EngineCore.mebibytes(previous.bytesStored)) (and \(EngineCore.mebibytes(Defaults.freeSpaceReserve)) are kept for the catalog)",
                                hint: "free space (kaleem-backup rotate removes what retention no longer keeps), or move the repository to a larger disk")
        }
    }
}
