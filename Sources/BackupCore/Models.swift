import Foundation

/// The `kind:` of a source (`redis`, `mongodb`, `s3`, …). An open set: each kind is defined by its adapter,
/// and the engine's source registry is the only place that lists them. A kind read from the catalog or a
/// manifest that this build does not know is an error naming it (the registry says so), never a default.
public struct SourceKind: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }

    public init(from decoder: Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    public var description: String { rawValue }
    public static func < (a: SourceKind, b: SourceKind) -> Bool { a.rawValue < b.rawValue }
}

/// How an artifact's file is stored. Written as its raw string in manifests, the catalog and JSON output
/// (`gzip`, `gzip+age`, `none`); a value this build does not know stays `.unknown` (a newer build wrote it) and
/// the reader refuses it by name instead of guessing.
public enum ArtifactCompression: Sendable, Hashable, Codable, CustomStringConvertible {
    /// One gzip stream.
    case gzip
    /// gzip, then encrypted in the age format.
    case gzipAge
    /// Files stored as they are (snapshot layouts: the manifest names content-addressed files).
    case none
    case unknown(String)

    public init(_ raw: String) {
        switch raw {
        case "gzip": self = .gzip
        case "gzip+age": self = .gzipAge
        case "none": self = .none
        default: self = .unknown(raw)
        }
    }

    public var rawValue: String {
        switch self {
        case .gzip: "gzip"
        case .gzipAge: "gzip+age"
        case .none: "none"
        case .unknown(let raw): raw
        }
    }

    public var description: String { rawValue }
    public init(from decoder: Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// The state of an artifact's off-site copy (none configured or not tried yet: nil).
public enum OffsiteState: String, Sendable, Codable {
    case ok
    /// See `ArtifactInfo.offsiteDetail`; the next run retries it.
    case failed
}

/// Why an artifact failed, as a type: the exit code of a run comes from it (integrity → 4).
public enum FailureKind: String, Sendable, Codable {
    /// The data read does not check out (a snapshot, an archive, a stored file): exit 4.
    case integrity
    /// Anything else: the source, the disk, the tools.
    case failed
}

/// An error that means "the data does not check out" (exit 4 when nothing else succeeded). Verifier errors
/// of every format conform; the engine classifies a failure by this type, never by its text.
public protocol IntegrityFailure: Error {
    /// Whether the failure shows the stored bytes damaged (true for nearly all), as opposed to a backup that
    /// cannot be checked here (no identity of this host decrypts it). Only damage marks a backup `corrupt`.
    var showsDamage: Bool { get }
}

extension IntegrityFailure {
    public var showsDamage: Bool { true }
}

/// Why a run was started.
/// Why a run happened: any label `[a-z0-9][a-z0-9._-]*` (at most 64 characters). Three have a meaning:
/// `nightly` (the schedule), `manual` (the default) and `pre-deploy` (a pinned restore point of a release).
public struct RunTag: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String

    public static let nightly = RunTag(uncheckedLabel: "nightly")
    public static let manual = RunTag(uncheckedLabel: "manual")
    public static let preDeploy = RunTag(uncheckedLabel: "pre-deploy")

    /// nil when `rawValue` is not a label.
    public init?(rawValue: String) {
        guard Self.isLabel(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    private init(uncheckedLabel: String) { rawValue = uncheckedLabel }

    public static func isLabel(_ s: String) -> Bool {
        let u = Array(s.utf8)
        func ok(_ c: UInt8, first: Bool) -> Bool {
            (97...122).contains(c) || (48...57).contains(c) || (!first && (c == 46 || c == 95 || c == 45))
        }
        return !u.isEmpty && u.count <= 64 && ok(u[0], first: true) && u.dropFirst().allSatisfy { ok($0, first: false) }
    }

    public static let rule = "a label of lowercase letters, digits, '.', '_' and '-', starting with a letter or digit (nightly, manual, pre-deploy have a meaning)"

    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let tag = RunTag(rawValue: raw) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(String(reflecting: raw)) is not a tag: \(Self.rule)"))
        }
        self = tag
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    public var description: String { rawValue }
}

/// The newest `verify` of one artifact, as the catalog keeps it.
public struct VerifyRecord: Sendable, Equatable {
    public var at: Date
    public var ok: Bool
    public var detail: String
    public init(at: Date, ok: Bool, detail: String) {
        self.at = at
        self.ok = ok
        self.detail = detail
    }
}

/// Life of a run: `running` until it ends; `partial` when some sources succeeded and others failed.
public enum RunStatus: String, Sendable, Codable {
    case running
    case ok
    case failed
    case partial
}

/// Life of an artifact. Only `ok` artifacts count as backups; `running` rows found at start-up belong to a
/// crashed run and are marked `failed`. `corrupt`: a good backup that a later `verify` found damaged or missing;
/// it is never chosen as the newest good backup and never removed automatically (someone should look at it),
/// and a `verify` that passes makes it `ok` again.
public enum ArtifactStatus: String, Sendable, Codable {
    case running
    case ok
    case failed
    case corrupt
}

/// A JSON value, for source statistics recorded beside an artifact (key counts, versions, ...).
public enum JSONValue: Sendable, Equatable, Codable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        // Each failed try costs a thrown DecodingError (most of the time a catalog read spent decoding the stats
        // of a files backup, 20,000 entries): the commonest kinds first. Bool before Int, Int before Double
        // (a Double would take 5 too).
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let o = try? c.decode([String: JSONValue].self) { self = .object(o) }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else { self = .array(try c.decode([JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let v): try c.encode(v)
        case .int(let v): try c.encode(v)
        case .double(let v): try c.encode(v)
        case .string(let v): try c.encode(v)
        case .array(let v): try c.encode(v)
        case .object(let v): try c.encode(v)
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var intValue: Int? {
        if case .int(let v) = self { return v }
        return nil
    }

    /// A number, whole or not.
    public var doubleValue: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .double(let v): return v
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let v): return String(v)
        case .int(let v): return String(v)
        case .double(let v): return String(v)
        case .string(let v): return v
        case .array(let v): return "[" + v.map(\.description).joined(separator: ", ") + "]"
        case .object(let o):
            let inner = o.keys.sorted().map { "\($0)=\(o[$0]!.description)" }.joined(separator: " ")
            return "{" + inner + "}"
        }
    }
}

/// One run of `backup` (or of a hook): a set of artifacts taken together.
public struct RunInfo: Sendable, Equatable, Codable {
    public var id: String
    public var tag: RunTag
    public var release: String?
    public var startedAt: Date
    public var finishedAt: Date?
    public var status: RunStatus
    public var host: String

    /// Field names of the manifest format (snake_case, stable).
    enum CodingKeys: String, CodingKey {
        case id, tag, release, status, host
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }

    /// The manifest's fields (times as `Timestamps.iso8601`); `--json` (`CodingUserInfoKey.writesNulls`) writes a
    /// nil field as null, the manifest leaves it out.
    public func encode(to encoder: Encoder) throws {
        let nulls = encoder.userInfo[.writesNulls] as? Bool == true
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(tag, forKey: .tag)
        try c.encodeOptional(release, forKey: .release, nulls: nulls)
        try c.encode(Timestamps.iso8601(startedAt), forKey: .startedAt)
        try c.encodeOptional(finishedAt.map(Timestamps.iso8601), forKey: .finishedAt, nulls: nulls)
        try c.encode(status, forKey: .status)
        try c.encode(host, forKey: .host)
    }

    public init(id: String, tag: RunTag, release: String?, startedAt: Date, finishedAt: Date? = nil,
                status: RunStatus, host: String) {
        self.id = id
        self.tag = tag
        self.release = release
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.status = status
        self.host = host
    }
}

/// One stored backup of one source, as the catalog and the manifest describe it.
public struct ArtifactInfo: Sendable, Equatable, Codable {
    public var id: String
    public var runID: String
    public var source: String
    public var kind: SourceKind
    /// Path of the stored file, relative to the repository root.
    public var path: String
    public var bytesRaw: Int64
    public var bytesStored: Int64
    /// Hex sha256 of the stored (compressed) file, what `sha256sum` prints.
    public var sha256: String
    public var compression: ArtifactCompression
    public var status: ArtifactStatus
    public var createdAt: Date
    public var pinned: Bool
    public var pinReason: String?
    public var deletedAt: Date?
    public var stats: [String: JSONValue]
    /// Why a failed artifact failed (redacted), or nil.
    public var detail: String?
    public var tag: RunTag
    public var release: String?
    /// The off-site copy: nil (none configured or not tried yet), `ok` or `failed` (see `offsiteDetail`).
    /// Kept in the catalog only, not in the manifest.
    public var offsite: OffsiteState? = nil
    public var offsiteDetail: String? = nil
    /// The newest `verify` of this artifact (nil: never verified since it was taken).
    public var lastVerify: VerifyRecord? = nil

    /// Field names of the manifest format and of `--json` (snake_case, stable): the one mapping of an artifact's
    /// fields, which the catalog's columns share (`ArtifactRecord`).
    public enum CodingKeys: String, CodingKey {
        case id, source, kind, path, sha256, compression, status, pinned, stats, detail, tag, release
        case runID = "run_id"
        case bytesRaw = "bytes_raw"
        case bytesStored = "bytes_stored"
        case createdAt = "created_at"
        case pinReason = "pin_reason"
        case deletedAt = "deleted_at"
    }

    /// The manifest's fields (times as `Timestamps.iso8601`); `--json` (`CodingUserInfoKey.writesNulls`) writes a
    /// nil field as null, the manifest leaves it out. The off-site state and the last verify are the catalog's
    /// only: `--json` adds them.
    public func encode(to encoder: Encoder) throws {
        let nulls = encoder.userInfo[.writesNulls] as? Bool == true
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(runID, forKey: .runID)
        try c.encode(source, forKey: .source)
        try c.encode(kind, forKey: .kind)
        try c.encode(path, forKey: .path)
        try c.encode(bytesRaw, forKey: .bytesRaw)
        try c.encode(bytesStored, forKey: .bytesStored)
        try c.encode(sha256, forKey: .sha256)
        try c.encode(compression, forKey: .compression)
        try c.encode(status, forKey: .status)
        try c.encode(Timestamps.iso8601(createdAt), forKey: .createdAt)
        try c.encode(pinned, forKey: .pinned)
        try c.encodeOptional(pinReason, forKey: .pinReason, nulls: nulls)
        try c.encodeOptional(deletedAt.map(Timestamps.iso8601), forKey: .deletedAt, nulls: nulls)
        try c.encode(stats, forKey: .stats)
        try c.encodeOptional(detail, forKey: .detail, nulls: nulls)
        try c.encode(tag, forKey: .tag)
        try c.encodeOptional(release, forKey: .release, nulls: nulls)
    }

    public init(id: String, runID: String, source: String, kind: SourceKind, path: String,
                bytesRaw: Int64 = 0, bytesStored: Int64 = 0, sha256: String = "", compression: ArtifactCompression = .gzip,
                status: ArtifactStatus, createdAt: Date, pinned: Bool = false, pinReason: String? = nil,
                deletedAt: Date? = nil, stats: [String: JSONValue] = [:], detail: String? = nil,
                tag: RunTag, release: String? = nil) {
        self.id = id
        self.runID = runID
        self.source = source
        self.kind = kind
        self.path = path
        self.bytesRaw = bytesRaw
        self.bytesStored = bytesStored
        self.sha256 = sha256
        self.compression = compression
        self.status = status
        self.createdAt = createdAt
        self.pinned = pinned
        self.pinReason = pinReason
        self.deletedAt = deletedAt
        self.stats = stats
        self.detail = detail
        self.tag = tag
        self.release = release
    }
}
