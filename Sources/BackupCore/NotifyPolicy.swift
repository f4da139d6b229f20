/// Which outcomes are sent to the webhook.
public enum NotifyEvent: String, Sendable, CaseIterable {
    case failure
    case success
    case drill
    /// The deploy flow: deploy_started, deploy_succeeded, deploy_failed, rollback, rollback_failed.
    case deploy
}

/// `notify:` in the policy: a webhook (the stack's n8n) that receives a JSON event per source outcome, and/or
/// push-monitoring pings (`ping:`). At least one of the two is present.
public struct NotifyPolicy: Sendable, Equatable {
    /// nil when only `ping:` is given.
    public var webhook: String?
    /// Healthchecks.io / Uptime Kuma style pings around every backup run; nil when none.
    public var ping: PingPolicy?
    public var on: Set<String>
    /// Attempts per event (with backoff between them).
    public var attempts: Int
    public var timeoutSeconds: Double

    public init(webhook: String?, on: Set<String> = [NotifyEvent.failure.rawValue], attempts: Int = 4, timeoutSeconds: Double = 10,
                ping: PingPolicy? = nil) {
        self.webhook = webhook
        self.ping = ping
        self.on = on
        self.attempts = attempts
        self.timeoutSeconds = timeoutSeconds
    }

    public func wants(_ event: NotifyEvent) -> Bool { on.contains(event.rawValue) }
}

/// `notify.ping:` push monitoring (Healthchecks.io, Uptime Kuma, Cronitor...): a GET/POST to `start` when a backup
/// run begins, to `success` when every source of the run succeeded, to `fail` (with a short plain-text body
/// saying what failed) otherwise. Each URL is optional. `url: U` is Healthchecks' form: start `U/start`,
/// success `U`, fail `U/fail` (an explicit `start`/`success`/`fail` overrides its part).
public struct PingPolicy: Sendable, Equatable {
    public var start: String?
    public var success: String?
    public var fail: String?
    /// Per ping; a ping that does not answer in time is logged and forgotten.
    public var timeoutSeconds: Double

    public init(start: String? = nil, success: String? = nil, fail: String? = nil, timeoutSeconds: Double = 10) {
        self.start = start
        self.success = success
        self.fail = fail
        self.timeoutSeconds = timeoutSeconds
    }

    /// Healthchecks' URL scheme for one check URL (`…/start`, `…`, `…/fail`), a trailing `/` dropped.
    public init(healthchecks url: String, timeoutSeconds: Double = 10) {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        self.init(start: base + "/start", success: base, fail: base + "/fail", timeoutSeconds: timeoutSeconds)
    }
}
