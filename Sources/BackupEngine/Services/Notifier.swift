// The notifier: the outcomes of a run or a drill as webhook events.

import AsyncHTTPClient
import BackupCore
import Foundation
import Logging
import NIOCore

struct Notifier: EngineService {
    let core: EngineCore

    /// The events a backup run produces for the webhook (failures, and successes when asked for).
    func notificationEvents(for result: BackupResult) -> [NotificationEvent] {
        guard let notify = policy.notify else { return [] }
        let offsite: [NotificationEvent] = notify.wants(.failure) ? result.offsiteFailures.sorted { $0.key < $1.key }.map { id, detail in
            let a = result.artifacts.first { $0.id == id }
            return NotificationEvent(event: .offsite, status: "failed", source: a?.source ?? "", kind: a?.kind.rawValue ?? "",
                                     run_id: result.run.id, artifact_id: id, host: environment.host,
                                     time: Timestamps.iso8601(environment.clock()), error: detail, bytes_stored: nil)
        } : []
        return offsite + result.artifacts.compactMap { a in
            let failed = a.status != .ok
            guard failed ? notify.wants(.failure) : notify.wants(.success) else { return nil }
            return NotificationEvent(event: .backup, status: failed ? "failed" : "ok", source: a.source, kind: a.kind.rawValue,
                                     run_id: result.run.id, artifact_id: a.id, host: environment.host,
                                     time: Timestamps.iso8601(a.createdAt), error: failed ? a.detail : nil,
                                     bytes_stored: a.bytesStored)
        }
    }

    func notify(drills: [DrillRecord]) async {
        guard let notify = policy.notify, notify.wants(.drill), !drills.isEmpty else { return }
        let events = drills.map { d in
            NotificationEvent(event: .drill, status: d.result.rawValue, source: d.source,
                              kind: policy.source(named: d.source)?.kind.rawValue ?? "", run_id: d.id, artifact_id: d.artifactID,
                              host: d.host, time: Timestamps.iso8601(d.startedAt),
                              error: d.result == .passed || d.result == .archiveOnly ? nil : d.detail, bytes_stored: nil)
        }
        await WebhookNotifier(policy: notify, logger: logger, backoff: core.notifyBackoff).send(events)
    }

    /// A step of the deploy flow, when `notify.on` has `deploy`. Secrets are scrubbed from `error` by the caller's
    /// `describe`, as for backups.
    func notifyDeploy(_ subject: NotificationSubject, release: String, status: String, reason: String? = nil, dataRestored: Bool? = nil,
                      error: String? = nil, critical: Bool = false, deployID: String? = nil, detail: String? = nil) async {
        guard let notify = policy.notify, notify.wants(.deploy) else { return }
        var event = NotificationEvent(event: subject, status: status, source: "", kind: "", run_id: "", artifact_id: "", host: environment.host,
                                      time: Timestamps.iso8601(environment.clock()), error: error, bytes_stored: nil)
        event.release = release
        event.reason = reason
        event.data_restored = dataRestored
        event.deploy_id = deployID
        event.detail = detail
        event.severity = critical ? "critical" : (subject == .deployFailed || subject == .rollback ? "warning" : "info")
        await WebhookNotifier(policy: notify, logger: logger, backoff: core.notifyBackoff).send([event])
    }

    /// A scheduled run that never started (the lock was held until its next occurrence): a failure event.
    func notifyLostRun(schedule: String, reason: String) async {
        guard let notify = policy.notify, notify.wants(.failure) else { return }
        var event = NotificationEvent(event: .scheduledRunLost, status: "failed", source: "", kind: "", run_id: "", artifact_id: "",
                                      host: environment.host, time: Timestamps.iso8601(environment.clock()), error: reason, bytes_stored: nil)
        event.reason = "schedule \(schedule)"
        event.severity = "warning"
        await WebhookNotifier(policy: notify, logger: logger, backoff: core.notifyBackoff).send([event])
    }

    func notify(_ result: BackupResult) async {
        guard let notify = policy.notify else { return }
        let events = notificationEvents(for: result)
        guard !events.isEmpty else { return }
        await WebhookNotifier(policy: notify, logger: logger, backoff: core.notifyBackoff).send(events)
    }
}
