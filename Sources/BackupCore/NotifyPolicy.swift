/// Which outcomes are sent to the webhook.
public enum NotifyEvent: String, Sendable, CaseIterable {
    case failure
    case success
    case drill
    /// The deploy flow: deploy_started, deploy_succeeded, deploy_failed, rollback, rollback_failed.
    case deploy
}

/// `notify:` in the policy: a webhook (the stack's n8n) that receives a JSON event per source outcome.
public struct NotifyPolicy: Sendable, Equatable {
    public var webhook: String
    public var on: Set<String>
    /// Attempts per event (with backoff between them).
    public var attempts: Int
    public var timeoutSeconds: Double

    public init(webhook: String, on: Set<String> = [NotifyEvent.failure.rawValue], attempts: Int = 4, timeoutSeconds: Double = 10) {
        self.webhook = webhook
        self.on = on
        self.attempts = attempts
        self.timeoutSeconds = timeoutSeconds
    }

    public func wants(_ event: NotifyEvent) -> Bool { on.contains(event.rawValue) }
}
