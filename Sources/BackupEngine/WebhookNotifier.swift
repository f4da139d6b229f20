import BackupCore
import Foundation
import Logging
import AsyncHTTPClient
import NIOCore

/// What a notification is about.
public enum NotificationSubject: String, Sendable, Codable {
    case backup, offsite, drill
    case deployStarted = "deploy_started", deploySucceeded = "deploy_succeeded", deployFailed = "deploy_failed"
    case rollback, rollbackFailed = "rollback_failed"
    /// A scheduled run the daemon could not start before its next occurrence (the repository stayed locked).
    case scheduledRunLost = "scheduled_run_lost"
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
    /// Deploy events: the release, why (a rollback's reason), whether data was restored, and `critical` when
    /// the person on call must be woken (a rollback that did not bring the service back).
    public var release: String? = nil
    public var reason: String? = nil
    public var data_restored: Bool? = nil
    public var severity: String? = nil
    /// The deploy attempt (the deploy script's id), and what the deploy script says happened (nginx's
    /// configuration put back, the API kept or rolled back, the data and alerts checked): absent when not given.
    public var deploy_id: String? = nil
    public var detail: String? = nil
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
        guard let webhook = policy.webhook, URL(string: webhook) != nil else { return false }
        let body = (try? JSONEncoder().encode(event)) ?? Data()
        var lastProblem = ""
        for attempt in 1...policy.attempts {
            if attempt > 1 { try? await Task.sleep(nanoseconds: UInt64(backoff(attempt - 1) * 1e9)) }
            var request = HTTPClientRequest(url: webhook)
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
            "webhook": "\(Redaction.webhook(webhook))", "source": "\(event.source)", "problem": "\(lastProblem)",
        ])
        return false
    }

    /// The process's client for webhooks (async-http-client, the one HTTP stack, as for S3 and Qdrant). A
    /// refused connection fails at once (the pool would otherwise retry it silently until the deadline: a dead
    /// webhook must not hold a backup for attempts × timeout); our attempts and backoff are the retries.
    /// Redirects are not followed: a webhook or ping endpoint that answers 3xx would have the body (a failure's
    /// errors, the host's name) POSTed again to wherever it points; a 3xx is an answer other than 2xx, logged.
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow,
                                                     timeout: .init(connect: .seconds(10)), decompression: .disabled)
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// One POST; the body of the answer is read and dropped, at most 64 KiB of it.
    private static func post(_ request: HTTPClientRequest, timeout: Double) async -> (Int?, String?) {
        do {
            let response = try await http.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return (Int(response.status.code), nil)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            return (nil, "no answer within \(Int(timeout)) s")
        } catch {
            // The URL may carry a token: the error is described without it.
            return (nil, Redaction.scrub("\(error)", secrets: [Secret(request.url)]))
        }
    }
}

