// Deploy hooks: the pinned pre-deploy restore point, the post-deploy record, and rollback.

import BackupCatalog
import BackupCore
import Foundation

/// What the deploy script's rollback asked for.
public struct RollbackResult: Sendable {
    public var release: String
    public var set: RunInfo?
    /// Restores done (`--restore-data`), or the exact commands to run (without it).
    public var lines: [String]
}

struct DeployHooks: EngineService {
    let core: EngineCore

    /// `hook pre-deploy`: one backup set of the named sources (else the policy's `deploy.pre_deploy_sources`, else
    /// all), tagged pre-deploy with the release and pinned. Says so when the release already had a set (a new one
    /// is taken anyway).
    ///
    /// A restore point that fails stops the deploy: that attempt is a failed deploy, recorded (under `deployID`,
    /// else the failed run's id) and notified, so `DeploymentFailed` fires for it too (#35).
    func preDeploy(release: String, sources named: [String], deployID: String? = nil, environmentName: String = "production",
                   service: String = "api") async throws -> (result: BackupResult, previous: [RunInfo]) {
        let sources = named.isEmpty ? (policy.preDeploySources ?? []) : named
        let previous = try catalog().preDeployRuns(release: release)
        if let last = previous.first {
            logger.notice("release already has a pre-deploy set; taking a new one", metadata: ["release": "\(release)", "previous_set": "\(last.id)"])
        }
        await core.notifier.notifyDeploy(.deployStarted, release: release, status: "started", deployID: deployID)
        let started = environment.clock()
        func recordFailure(attempt: String) {
            do {
                try catalog().insertDeployment(deploymentEvent(release: release, event: .failed, duration: environment.clock().timeIntervalSince(started),
                                                               reason: "pre-deploy-backup-failed", environmentName: environmentName,
                                                               service: service, deployID: attempt))
            } catch {
                logger.warning("cannot record the failed deploy", metadata: ["release": "\(release)", "error": "\(describe(error))"])
            }
            core.statusReport.writeMetricsTextfile()
        }
        var result: BackupResult
        do {
            result = try await core.runner.backup(sources: sources, tag: .preDeploy, release: release)
        } catch {
            recordFailure(attempt: deployID ?? "pre-deploy-" + Timestamps.iso8601(started))
            await core.notifier.notifyDeploy(.deployFailed, release: release, status: "failed", reason: "pre-deploy-backup-failed", error: describe(error),
                                             deployID: deployID)
            throw error
        }
        if result.exitStatus != .ok {
            recordFailure(attempt: deployID ?? result.run.id)
            let failed = result.artifacts.filter { $0.status != .ok }.map { "\($0.source): \($0.detail ?? "failed")" }
            await core.notifier.notifyDeploy(.deployFailed, release: release, status: "failed", reason: "pre-deploy-backup-failed",
                                             error: failed.joined(separator: "; "), deployID: deployID)
        }
        for i in result.artifacts.indices where result.artifacts[i].status == .ok {
            try core.rotator.setPinned(&result.artifacts[i], pinned: true, reason: "release \(release)")
        }
        // The run's catalog copy was made before these pins: copy again, so a rebuild from it keeps them.
        await core.offsite.copyCatalog()
        core.statusReport.writeMetricsTextfile()
        return (result, previous)
    }

    /// `hook post-deploy`: records the deployment attempt; on success the release is confirmed, and the pre-deploy
    /// sets of releases older than the last `retention.pre_deploy` confirmed ones are unpinned (rotation may then
    /// remove them). Returns the ids unpinned.
    ///
    /// Each attempt is one event (#35): `deployID` names it (the deploy script's id), else the newest pre-deploy
    /// set of the release (each attempt takes one). A retry or a redeploy of the same tag is a new attempt and is
    /// counted; the same attempt reported twice is counted once. A failed attempt may have no restore point (a
    /// failed `docker pull` stops before it) when `deployID` names it; a success never may (confirming it would
    /// push a real release out of the kept ones and unpin its restore point).
    @discardableResult
    func postDeploy(release: String, success: Bool, rollbackFailed: Bool = false, durationSeconds: Double?, environmentName: String,
                    service: String, deployID: String? = nil, reason: String? = nil, detail: String? = nil) async throws -> [String] {
        let catalog = try catalog()
        let restorePoint = try catalog.preDeployRuns(release: release).first
        guard let attempt = deployID ?? restorePoint?.id, restorePoint != nil || !success else {
            // A typo, or a deploy that skipped its restore point.
            throw BackupFailure("release \(release) has no pre-deploy restore point; nothing recorded, nothing unpinned"
                                + (success ? "" : " (a deploy that failed before its restore point is recorded with --deploy-id)"),
                                exitStatus: .usage, hint: try DeployHooks.releasesHint(catalog))
        }
        let event: DeploymentOutcome = success ? .success : .failed
        // The same attempt twice: recorded (and counted) once.
        if try catalog.deployments().contains(where: { $0.deployID == attempt && $0.event == event }) {
            logger.notice("post-deploy already recorded for this deploy", metadata: ["release": "\(release)", "deploy_id": "\(attempt)"])
            // A rollback that failed after the failure was recorded still wakes someone.
            if rollbackFailed { await notifyRollbackFailed(release, deployID: attempt, detail: detail) }
            return []
        }
        try catalog.insertDeployment(deploymentEvent(release: release, event: event, duration: durationSeconds, reason: reason,
                                                     environmentName: environmentName, service: service, deployID: attempt))
        if rollbackFailed {
            await notifyRollbackFailed(release, deployID: attempt, detail: detail)
        } else {
            await core.notifier.notifyDeploy(success ? .deploySucceeded : .deployFailed, release: release, status: success ? "ok" : "failed",
                                             reason: reason, deployID: attempt, detail: detail)
        }
        var unpinned: [String] = []
        if success {
            let confirmed = try catalog.deployments().filter { $0.event == .success }.reversed().map(\.release)
            var keep: [String] = []
            for r in confirmed where !keep.contains(r) { keep.append(r) }
            keep = Array(keep.prefix(max(policy.retention.preDeploy, 1)))
            for a in try catalog.artifacts() where a.pinned && a.tag == .preDeploy && a.pinReason == "release \(a.release ?? "")" {
                guard let r = a.release, confirmed.contains(r), !keep.contains(r) else { continue }
                var unpinning = a
                try core.rotator.setPinned(&unpinning, pinned: false, reason: nil)
                unpinned.append(a.id)
            }
        }
        core.statusReport.writeMetricsTextfile()
        return unpinned
    }

    /// `hook rollback`: records it; with `restoreData` restores the release's pre-deploy set into the live sources
    /// (each kind its own way: MongoDB with --drop, Redis online, …), verifying each backup first; without it,
    /// prints the commands. Kinds that are not restored by default (buckets, Qdrant, files) only when their source
    /// or their kind is named in `include` (`--include minio`, `--include s3`; `--include-buckets` is `--include s3`).
    func rollback(release: String, reason: String, restoreData: Bool, include: [String] = [],
                  dryRun: Bool = false, environmentName: String, service: String, deployID: String? = nil,
                  detail: String? = nil) async throws -> RollbackResult {
        let catalog = try catalog()
        // Each name is a source of the policy or a kind the registry knows.
        let kinds = Set(SourceKinds.names)
        let sourceNames = include.filter { !kinds.contains($0) || policy.source(named: $0) != nil }
        do {
            _ = try core.selectSources(sourceNames)
        } catch {
            throw BackupFailure("--include \(sourceNames.first { policy.source(named: $0) == nil } ?? ""): neither a source of \(policy.origin) nor a kind",
                                exitStatus: .usage,
                                hint: "name a source (\(policy.sources.map(\.name).joined(separator: ", "))) or a kind (\(SourceKinds.names.joined(separator: ", ")))")
        }
        let set = try catalog.preDeployRuns(release: release).first
        if set == nil && (restoreData || dryRun) {
            // Nothing can be restored: say which releases can be, record nothing, count no rollback.
            throw BackupFailure("release \(release) has no pre-deploy restore point: nothing to restore, no rollback recorded",
                                exitStatus: .usage, hint: try DeployHooks.releasesHint(catalog))
        }
        if !dryRun {
            try catalog.insertDeployment(deploymentEvent(release: release, event: .rollback, duration: nil, reason: reason,
                                                         environmentName: environmentName, service: service, deployID: deployID))
            core.statusReport.writeMetricsTextfile()
        }
        guard let set else {
            await core.notifier.notifyDeploy(.rollback, release: release, status: "ok", reason: reason, dataRestored: false,
                                             deployID: deployID, detail: detail)
            return RollbackResult(release: release, set: nil, lines: ["release \(release) has no pre-deploy set: there is no data to restore"])
        }
        let artifacts = try catalog.artifacts(runID: set.id).filter { $0.status == .ok && $0.deletedAt == nil }
        var lines: [String] = []
        for a in artifacts {
            guard let source = policy.source(named: a.source) else { continue }
            let adapter = try registry.adapter(for: source.kind)
            let chosen = adapter.restoresOnRollbackByDefault || include.contains(source.name) || include.contains(source.kind.rawValue)
            if dryRun {
                lines.append(chosen ? "would restore \(a.source) from \(a.id) (taken \(Timestamps.iso8601(a.createdAt)))"
                                    : "would leave \(a.source) as it is (name it with --include \(a.source) to restore it from \(a.id))")
                continue
            }
            do {
                await lines += try adapter.rollback(a, source: source, restoreData: restoreData && chosen, context: context)
            } catch {
                await core.notifier.notifyDeploy(.rollback, release: release, status: "failed", reason: reason, dataRestored: false,
                                                 error: "restoring \(a.source) from \(a.id): \(describe(error))", deployID: deployID, detail: detail)
                throw error
            }
        }
        if !dryRun {
            await core.notifier.notifyDeploy(.rollback, release: release, status: "ok", reason: reason, dataRestored: restoreData,
                                             deployID: deployID, detail: detail)
        }
        return RollbackResult(release: release, set: set, lines: lines)
    }

    private func notifyRollbackFailed(_ release: String, deployID: String?, detail: String?) async {
        await core.notifier.notifyDeploy(.rollbackFailed, release: release, status: "failed", reason: "previous-image-unhealthy",
                                         error: "the rollback did not bring the service back: it is down", critical: true,
                                         deployID: deployID, detail: detail)
    }

    /// "the releases with a restore point are: …", newest first.
    static func releasesHint(_ catalog: Catalog) throws -> String {
        var releases: [String] = []
        for a in try catalog.artifacts() where a.tag == .preDeploy {
            if let r = a.release, !releases.contains(r) { releases.append(r) }
        }
        return releases.isEmpty ? "no release has a pre-deploy restore point yet (hook pre-deploy --release R takes one)"
            : "the releases with a restore point are: " + releases.prefix(10).joined(separator: ", ")
    }

    private func deploymentEvent(release: String, event: DeploymentOutcome, duration: Double?, reason: String?, environmentName: String,
                                 service: String, deployID: String?) -> DeploymentEvent {
        var rng = SystemRandomNumberGenerator()
        let now = environment.clock()
        return DeploymentEvent(id: "deploy-" + Identifier.make(at: now, using: &rng), release: release, environment: environmentName,
                               service: service, event: event, durationSeconds: duration, reason: reason, recordedAt: now,
                               host: environment.host, deployID: deployID)
    }
}
