import BackupCore
import Foundation
import Logging
import AsyncHTTPClient
import NIOCore

/// What a notification is about.
public enum NotificationSubject: String, Sendable, Codable {
    case backup, offsite, drill
}

/// One outcome sent to the webhook.
public struct NotificationEvent: Sendable, Codable, Equatable {
    public var event: NotificationSubject
    public var status: String         // "ok" | "failed"
    public var source: String
    public var kind: String
    public var run_id: String
    public var artifact_id: String
    public var host: String
    public var time: String
    /// The failure, secrets scrubbed; nil on success.
    public var error: String?
    public var bytes_stored: Int64?
}

/// POSTs events as JSON to the policy's webhook (the stack's n8n), with retries and backoff.
/// A notification problem is logged and never fails the backup it reports on.
struct WebhookNotifier {
    var policy: NotifyPolicy
    var logger: Logger
    /// Pause before retry n (1-based); injected so tests need not wait.
    var backoff: @Sendable (Int) -> Double = { attempt in min(30, pow(2, Double(attempt - 1))) }

    /// Sends each event; returns how many were delivered.
    @discardableResult
    func send(_ events: [NotificationEvent]) async -> Int {
        var delivered = 0
        for event in events where await deliver(event) { delivered += 1 }
        return delivered
    }

    private func deliver(_ event: NotificationEvent) async -> Bool {
        guard URL(string: policy.webhook) != nil else { return false }
        let body = (try? JSONEncoder().encode(event)) ?? Data()
        var lastProblem = ""
        for attempt in 1...policy.attempts {
            if attempt > 1 { try? await Task.sleep(nanoseconds: UInt64(backoff(attempt - 1) * 1e9)) }
            var request = HTTPClientRequest(url: policy.webhook)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "kaleem-backup")
            request.body = .bytes(ByteBuffer(bytes: body))
            let (status, problem) = await Self.post(request, timeout: policy.timeoutSeconds)
            if let status, (200..<300).contains(status) { return true }
            lastProblem = problem ?? "HTTP \(status ?? 0)"
            // A 4xx other than 408/429 will not get better by retrying.
            if let status, (400..<500).contains(status), status != 408, status != 429 { break }
        }
        logger.warning("webhook notification not delivered", metadata: [
            "webhook": "\(Redaction.url(policy.webhook))", "source": "\(event.source)", "problem": "\(lastProblem)",
        ])
        return false
    }

    /// One POST on the process's shared async-http-client (the one HTTP stack, as for S3 and Qdrant); the body
    /// of the answer is read and dropped, at most 64 KiB of it.
    private static func post(_ request: HTTPClientRequest, timeout: Double) async -> (Int?, String?) {
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return (Int(response.status.code), nil)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            return (nil, "no answer within \(Int(timeout)) s")
        } catch {
            // The URL may carry a token: the error is described without it.
            return (nil, Redaction.scrub("\(error)", secrets: []))
        }
    }
}

extension BackupEngine {
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
        await WebhookNotifier(policy: notify, logger: logger, backoff: notifyBackoff).send(events)
    }

    func notify(_ result: BackupResult) async {
        guard let notify = policy.notify else { return }
        let events = notificationEvents(for: result)
        guard !events.isEmpty else { return }
        await WebhookNotifier(policy: notify, logger: logger, backoff: notifyBackoff).send(events)
    }
}
