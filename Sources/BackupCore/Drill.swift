import Foundation

/// How a restore drill ended.
public enum DrillResult: String, Sendable, Codable {
    /// Restored into a scratch target and every check matched what the backup recorded.
    case passed
    /// A check did not match (or the artifact did not verify).
    case failed
    /// MongoDB without a scratch server: the archive was verified natively, nothing was restored.
    case archiveOnly = "archive-only"
    /// The drill could not run (no scratch server could be started, ...).
    case error
}

/// One drill, as the catalog keeps it: the measured time to restore (RTO) and what was compared.
public struct DrillRecord: Sendable, Equatable, Codable {
    public var id: String
    public var artifactID: String
    public var source: String
    public var startedAt: Date
    public var durationSeconds: Double
    public var result: DrillResult
    public var detail: String
    public var host: String

    public init(id: String, artifactID: String, source: String, startedAt: Date, durationSeconds: Double, result: DrillResult,
                detail: String, host: String) {
        self.id = id
        self.artifactID = artifactID
        self.source = source
        self.startedAt = startedAt
        self.durationSeconds = durationSeconds
        self.result = result
        self.detail = detail
        self.host = host
    }
}
