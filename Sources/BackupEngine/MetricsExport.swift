import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import Prometheus

/// Prometheus metrics of kaleem-backup, built from the catalog (so values of sources a command did not touch
/// are never lost) and written for node_exporter's textfile collector (atomically: temp file + rename; no
/// client timestamps, which would make the collector skip the file).
///
/// Per source (label `source`): `kaleem_backup_last_success_timestamp_seconds`,
/// `kaleem_backup_last_run_timestamp_seconds`, `kaleem_backup_last_run_success`,
/// `kaleem_backup_last_duration_seconds`, `kaleem_backup_last_size_bytes`, `kaleem_backup_runs_total{status}`,
/// `kaleem_backup_rotation_removed_total`, `kaleem_backup_drill_last_success_timestamp_seconds` (0: never drilled),
/// `kaleem_backup_drill_last_duration_seconds`, `kaleem_backup_drill_last_run_success`,
/// `kaleem_backup_offsite_last_success_timestamp_seconds` (the newest good backup copied off-site),
/// `kaleem_backup_pre_deploy_last_timestamp_seconds` (the newest pre-deploy restore point). Timestamps are Unix seconds: alert on `time() - x`.
public enum MetricsExport {
    public static let prefix = "kaleem_backup_"

    /// Buckets of `deployment_duration_seconds` (a deploy takes minutes).
    public static let deploymentBuckets: [Double] = [10, 30, 60, 120, 300, 600, 1200, 1800, 3600]

    /// The deployment labels (environment, service) whose series exist from the first export: those of
    /// `KALEEM_ENVIRONMENT` / `KALEEM_SERVICE` as the deploy hooks default them (production, api).
    public static func defaultDeploymentLabels(_ env: [String: String] = ProcessInfo.processInfo.environment) -> (environment: String, service: String) {
        (env["KALEEM_ENVIRONMENT"].flatMap { $0.isEmpty ? nil : $0 } ?? "production", env["KALEEM_SERVICE"].flatMap { $0.isEmpty ? nil : $0 } ?? "api")
    }

    public static func render(_ summaries: [SourceSummary], deployments: [DeploymentEvent] = [],
                              deploymentLabels: (environment: String, service: String) = defaultDeploymentLabels()) -> String {
        let registry = PrometheusCollectorRegistry()
        // The stack's deployment metrics, from the deploy hooks' records. `deployment_success_total` and
        // `deployment_duration_seconds{status="success"|"failed"}` exist at 0 from the first export (for the
        // default labels and every pair a deployment was recorded with), so `increase(..._count{status="failed"}
        // [10m]) > 0` fires on the first failure ever: a series born at 1 has no increase (#35).
        var labelSets = [(deploymentLabels.environment, deploymentLabels.service)]
        for d in deployments where !labelSets.contains(where: { $0 == (d.environment, d.service) }) {
            labelSets.append((d.environment, d.service))
        }
        for (environment, service) in labelSets {
            _ = registry.makeCounter(descriptor: MetricNameDescriptor(metricName: "deployment_success", unitName: "total", helpText: "Successful deployments"),
                                     labels: [("environment", environment), ("service", service)])
            for status in [DeploymentOutcome.success, .failed] {
                _ = registry.makeValueHistogram(
                    descriptor: MetricNameDescriptor(metricName: "deployment_duration", unitName: "seconds", helpText: "How long deployments took"),
                    labels: [("environment", environment), ("service", service), ("status", status.rawValue)],
                    buckets: deploymentBuckets)
            }
        }
        for d in deployments {
            switch d.event {
            case .success, .failed:
                // Every attempt is counted, with its duration when known (0 else: an attempt without a duration
                // would not be counted at all, and DeploymentFailed would miss it).
                registry.makeValueHistogram(
                    descriptor: MetricNameDescriptor(metricName: "deployment_duration", unitName: "seconds", helpText: "How long deployments took"),
                    labels: [("environment", d.environment), ("service", d.service), ("status", d.event.rawValue)],
                    buckets: deploymentBuckets).record(d.durationSeconds ?? 0)
                if d.event == .success {
                    registry.makeCounter(descriptor: MetricNameDescriptor(metricName: "deployment_success", unitName: "total", helpText: "Successful deployments"),
                                         labels: [("environment", d.environment), ("service", d.service)]).increment()
                }
            case .rollback:
                registry.makeCounter(descriptor: MetricNameDescriptor(metricName: "rollback", unitName: "total", helpText: "Rollbacks, by reason"),
                                     labels: [("environment", d.environment), ("service", d.service), ("reason", d.reason ?? "unknown")]).increment()
            default:
                break
            }
        }
        /// `kaleem_backup_<name>_<unit>`
        func descriptor(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "kaleem_backup", metricName: name, unitName: unit, helpText: help)
        }
        func gauge(_ name: String, _ unit: String, _ help: String, _ source: String) -> Gauge {
            registry.makeGauge(descriptor: descriptor(name, unit, help), labels: [("source", source)])
        }
        for s in summaries {
            if let t = s.lastSuccess {
                gauge("last_success_timestamp", "seconds", "Unix time of the newest good backup", s.source).set(t.timeIntervalSince1970)
            }
            if let t = s.lastRun {
                gauge("last_run_timestamp", "seconds", "Unix time of the newest finished backup, good or not", s.source).set(t.timeIntervalSince1970)
            }
            if let ok = s.lastRunOK {
                gauge("last_run", "success", "1 when the newest finished backup is good, else 0", s.source).set(ok ? 1.0 : 0.0)
            }
            if let d = s.lastSuccessDuration {
                gauge("last_duration", "seconds", "How long the newest good backup took", s.source).set(d)
            }
            // A stream's stored (compressed) size; a content-addressed snapshot's logical size (what it stored
            // varies with how much changed, not with how much there is).
            let snapshot = s.lastSuccessKind.map { SourceKinds.storesSnapshots(SourceKind(rawValue: $0)) } ?? false
            if let b = snapshot ? s.lastSuccessRawBytes : s.lastSuccessBytes {
                gauge("last_size", "bytes", "Size of the newest good backup: stored (compressed) for a stream, logical for a bucket snapshot", s.source).set(Double(b))
            }
            // A backup later found corrupt was still taken: it counts as ok here (a counter never goes down).
            let taken = ["ok": (s.runsByStatus["ok"] ?? 0) + (s.runsByStatus["corrupt"] ?? 0), "failed": s.runsByStatus["failed"] ?? 0]
            for status in ["ok", "failed"] {
                registry.makeCounter(descriptor: descriptor("runs", "total", "Backups taken, by outcome"),
                                     labels: [("source", s.source), ("status", status)]).increment(by: Int64(taken[status] ?? 0))
            }
            registry.makeGauge(descriptor: descriptor("corrupt", "artifacts", "Backups a verify found damaged or missing (never counted as good, never removed automatically)"),
                               labels: [("source", s.source)]).set(Double(s.corrupt))
            // 0 when no backup of the source was ever verified: BackupVerifyTooOld then fires for it.
            gauge("last_verify_timestamp", "seconds", "Unix time of the newest verify of a backup of the source (0: never verified)", s.source)
                .set(s.lastVerify?.timeIntervalSince1970 ?? 0)
            if let ok = s.lastVerifyOK {
                gauge("last_verify", "success", "1 when the newest verify of a backup of the source passed, else 0", s.source).set(ok ? 1.0 : 0.0)
            }
            registry.makeCounter(descriptor: descriptor("rotation_removed", "total", "Backups removed by rotation"),
                                 labels: [("source", s.source)]).increment(by: Int64(s.removedByRotation))
            registry.makeGauge(descriptor: descriptor("offsite_failed", "artifacts", "Good backups whose off-site copy failed (retried by the next run)"),
                               labels: [("source", s.source)]).set(Double(s.offsiteFailed))
            // Only once a backup of the source was copied off-site (a policy without `offsite:` never has it).
            if let t = s.lastOffsiteSuccess {
                gauge("offsite_last_success_timestamp", "seconds", "Unix time of the newest good backup that has a good off-site copy (lag: last_success_timestamp minus this)", s.source)
                    .set(t.timeIntervalSince1970)
            }
            // Only once the deploy hook took a restore point of the source (and one is still kept).
            if let t = s.lastPreDeploy {
                gauge("pre_deploy_last_timestamp", "seconds", "Unix time of the newest good pre-deploy restore point (hook pre-deploy) still kept", s.source)
                    .set(t.timeIntervalSince1970)
            }
            // 0 when the source was never drilled (passed): BackupDrillTooOld then fires for it too.
            gauge("drill_last_success_timestamp", "seconds", "Unix time of the newest passed restore drill (0: never drilled)", s.source)
                .set(s.lastDrillSuccess?.timeIntervalSince1970 ?? 0)
            if let d = s.lastDrillDuration {
                gauge("drill_last_duration", "seconds", "How long the newest restore drill took (the measured RTO)", s.source).set(d)
            }
            if let ok = s.lastDrillPassed {
                gauge("drill_last_run", "success", "1 when the newest restore drill passed, else 0", s.source).set(ok ? 1.0 : 0.0)
            }
        }
        return registry.emitToString()
    }
}

