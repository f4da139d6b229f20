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

extension BackupEngine {
    /// `hook pre-deploy`: one backup set of all (or the named) sources, tagged pre-deploy with the release and
    /// pinned. Says so when the release already had a set (a new one is taken anyway).
    public func preDeploy(release: String, sources: [String]) throws -> (result: BackupResult, previous: [RunInfo]) {
        let previous = try catalog().preDeployRuns(release: release)
        if let last = previous.first {
            logger.notice("release already has a pre-deploy set; taking a new one", metadata: ["release": "\(release)", "previous_set": "\(last.id)"])
        }
        var result = try backup(sources: sources, tag: .preDeploy, release: release)
        for i in result.artifacts.indices where result.artifacts[i].status == .ok {
            try setPinned(&result.artifacts[i], pinned: true, reason: "release \(release)")
        }
        writeMetricsTextfile()
        return (result, previous)
    }

    /// `hook post-deploy`: records the deployment; on success the release is confirmed, and the pre-deploy sets
    /// of releases older than the last `retention.pre_deploy` confirmed ones are unpinned (rotation may then
    /// remove them). Returns the ids unpinned.
    @discardableResult
    public func postDeploy(release: String, success: Bool, durationSeconds: Double?, environmentName: String, service: String) throws -> [String] {
        let catalog = try catalog()
        try catalog.insertDeployment(deploymentEvent(release: release, event: success ? "success" : "failed",
                                                     duration: durationSeconds, reason: nil, environmentName: environmentName, service: service))
        var unpinned: [String] = []
        if success {
            let confirmed = try catalog.deployments().filter { $0.event == "success" }.reversed().map(\.release)
            var keep: [String] = []
            for r in confirmed where !keep.contains(r) { keep.append(r) }
            keep = Array(keep.prefix(max(policy.retention.preDeploy, 1)))
            for a in try catalog.artifacts() where a.pinned && a.tag == .preDeploy && a.pinReason == "release \(a.release ?? "")" {
                guard let r = a.release, confirmed.contains(r), !keep.contains(r) else { continue }
                var unpinning = a
                try setPinned(&unpinning, pinned: false, reason: nil)
                unpinned.append(a.id)
            }
        }
        writeMetricsTextfile()
        return unpinned
    }

    /// `hook rollback`: records it; with `restoreData` restores the release's pre-deploy set into the live sources
    /// (each kind its own way: MongoDB with --drop, Redis online, …), verifying each backup first; without it,
    /// prints the commands. Kinds that are not restored by default (buckets) only with `includeBuckets` or when
    /// named in `include`.
    public func rollback(release: String, reason: String, restoreData: Bool, includeBuckets: Bool, include: [String] = [],
                         environmentName: String, service: String) throws -> RollbackResult {
        let catalog = try catalog()
        _ = try selectSources(include)
        try catalog.insertDeployment(deploymentEvent(release: release, event: "rollback", duration: nil, reason: reason,
                                                     environmentName: environmentName, service: service))
        writeMetricsTextfile()
        guard let set = try catalog.preDeployRuns(release: release).first else {
            return RollbackResult(release: release, set: nil, lines: ["release \(release) has no pre-deploy set: there is no data to restore"])
        }
        let artifacts = try catalog.artifacts(runID: set.id).filter { $0.status == .ok && $0.deletedAt == nil }
        var lines: [String] = []
        for a in artifacts {
            guard let source = policy.source(named: a.source) else { continue }
            let adapter = try registry.adapter(for: source.kind)
            let chosen = adapter.restoresOnRollbackByDefault || includeBuckets || include.contains(source.name)
            lines += try adapter.rollback(a, source: source, restoreData: restoreData && chosen, context: context)
        }
        return RollbackResult(release: release, set: set, lines: lines)
    }

    private func deploymentEvent(release: String, event: String, duration: Double?, reason: String?, environmentName: String,
                                 service: String) -> DeploymentEvent {
        var rng = SystemRandomNumberGenerator()
        let now = environment.clock()
        return DeploymentEvent(id: "deploy-" + Identifier.make(at: now, using: &rng), release: release, environment: environmentName,
                               service: service, event: event, durationSeconds: duration, reason: reason, recordedAt: now,
                               host: environment.host)
    }
}
