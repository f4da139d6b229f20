import BackupCore
import Foundation
import GRDB

/// One row of `runs`.
struct RunRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "runs"
    var id: String
    var tag: String
    var release: String?
    var startedAt: Date
    var finishedAt: Date?
    var status: String
    var host: String

    enum CodingKeys: String, CodingKey {
        case id, tag, release, status, host
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }

    init(_ run: RunInfo) {
        id = run.id
        tag = run.tag.rawValue
        release = run.release
        startedAt = run.startedAt
        finishedAt = run.finishedAt
        status = run.status.rawValue
        host = run.host
    }

    var model: RunInfo {
        RunInfo(id: id, tag: RunTag(rawValue: tag) ?? .manual, release: release, startedAt: startedAt,
                finishedAt: finishedAt, status: RunStatus(rawValue: status) ?? .failed, host: host)
    }
}

/// One row of `artifacts`; `tag` and `release` are read from the run (they are not columns of this table).
struct ArtifactRecord: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "artifacts"
    static let selectWithRun = """
        SELECT a.*, r.tag AS tag, r.release AS release, o.status AS offsite_status, o.detail AS offsite_detail,
               v.verified_at AS verified_at, v.ok AS verify_ok, v.detail AS verify_detail
        FROM artifacts a JOIN runs r ON r.id = a.run_id LEFT JOIN offsite o ON o.artifact_id = a.id
        LEFT JOIN verifications v ON v.artifact_id = a.id
        """

    var id: String
    var runID: String
    var source: String
    var kind: String
    var path: String
    var bytesRaw: Int64
    var bytesStored: Int64
    var sha256: String
    var compression: String
    var status: String
    var createdAt: Date
    var pinned: Bool
    var pinReason: String?
    var deletedAt: Date?
    var stats: String
    var detail: String?
    var tag: String?
    var release: String?
    var offsiteStatus: String?
    var offsiteDetail: String?
    var verifiedAt: Date?
    var verifyOK: Bool?
    var verifyDetail: String?

    enum CodingKeys: String, CodingKey {
        case id, source, kind, path, sha256, compression, status, pinned, stats, detail, tag, release
        case offsiteStatus = "offsite_status"
        case offsiteDetail = "offsite_detail"
        case verifiedAt = "verified_at"
        case verifyOK = "verify_ok"
        case verifyDetail = "verify_detail"
        case runID = "run_id"
        case bytesRaw = "bytes_raw"
        case bytesStored = "bytes_stored"
        case createdAt = "created_at"
        case pinReason = "pin_reason"
        case deletedAt = "deleted_at"
    }

    init(_ a: ArtifactInfo) {
        id = a.id
        runID = a.runID
        source = a.source
        kind = a.kind.rawValue
        path = a.path
        bytesRaw = a.bytesRaw
        bytesStored = a.bytesStored
        sha256 = a.sha256
        compression = a.compression.rawValue
        status = a.status.rawValue
        createdAt = a.createdAt
        pinned = a.pinned
        pinReason = a.pinReason
        deletedAt = a.deletedAt
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        stats = (try? encoder.encode(a.stats)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
        detail = a.detail
        tag = a.tag.rawValue
        release = a.release
        offsiteStatus = a.offsite?.rawValue
        offsiteDetail = a.offsiteDetail
    }

    /// `tag` and `release` belong to `runs`; never write them here. The columns are the artifact's field names
    /// (`ArtifactInfo.CodingKeys`: the manifest's and `--json`'s).
    func encode(to container: inout PersistenceContainer) throws {
        typealias K = ArtifactInfo.CodingKeys
        container[K.id.stringValue] = id
        container[K.runID.stringValue] = runID
        container[K.source.stringValue] = source
        container[K.kind.stringValue] = kind
        container[K.path.stringValue] = path
        container[K.bytesRaw.stringValue] = bytesRaw
        container[K.bytesStored.stringValue] = bytesStored
        container[K.sha256.stringValue] = sha256
        container[K.compression.stringValue] = compression
        container[K.status.stringValue] = status
        container[K.createdAt.stringValue] = createdAt
        container[K.pinned.stringValue] = pinned
        container[K.pinReason.stringValue] = pinReason
        container[K.deletedAt.stringValue] = deletedAt
        container[K.stats.stringValue] = stats
        container[K.detail.stringValue] = detail
    }

    var model: ArtifactInfo {
        let decoded = (try? JSONDecoder().decode([String: JSONValue].self, from: Data(stats.utf8))) ?? [:]
        var a = ArtifactInfo(id: id, runID: runID, source: source, kind: SourceKind(kind), path: path,
                            bytesRaw: bytesRaw, bytesStored: bytesStored, sha256: sha256, compression: ArtifactCompression(compression),
                            status: ArtifactStatus(rawValue: status) ?? .failed, createdAt: createdAt, pinned: pinned,
                            pinReason: pinReason, deletedAt: deletedAt, stats: decoded, detail: detail,
                            tag: tag.flatMap(RunTag.init(rawValue:)) ?? .manual, release: release)
        // Only `setOffsite` writes this column ("ok" / "failed"); anything else reads as failed, which the next
        // run retries, and says what it found.
        a.offsite = offsiteStatus.map { OffsiteState(rawValue: $0) ?? .failed }
        a.offsiteDetail = offsiteStatus.flatMap { OffsiteState(rawValue: $0) == nil ? "unknown off-site state \(String(reflecting: $0)) in the catalog" : nil } ?? offsiteDetail
        if let verifiedAt, let verifyOK { a.lastVerify = VerifyRecord(at: verifiedAt, ok: verifyOK, detail: verifyDetail ?? "") }
        return a
    }
}

/// The artifacts of one source as rotation reads them, newest first; `paths[i]` is `candidates[i]`'s file
/// (empty when the paths were not asked for).
public struct RetentionRows: Sendable {
    public var candidates: [RetentionCandidate] = []
    public var paths: [String] = []

    public init() {}
}

/// One row of `restores` (or of `from_host_restores`, with the other host beside it).
public struct RestoreRow: Sendable, Equatable {
    public var id: String
    public var artifactID: String
    public var source: String
    public var startedAt: Date
    public var durationSeconds: Double
    public var mode: String
    public var target: String
    public var outcome: String
    public var user: String
    public var host: String
    public var detail: String

    public init(id: String, artifactID: String, source: String, startedAt: Date, durationSeconds: Double, mode: String, target: String,
                outcome: String, user: String, host: String, detail: String) {
        self.id = id
        self.artifactID = artifactID
        self.source = source
        self.startedAt = startedAt
        self.durationSeconds = durationSeconds
        self.mode = mode
        self.target = target
        self.outcome = outcome
        self.user = user
        self.host = host
        self.detail = detail
    }
}
