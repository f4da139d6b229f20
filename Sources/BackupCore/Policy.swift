/// A validated policy: where backups go and what to back up. Built by `PolicyParser` from a YAML file.
public struct Policy: Sendable, Equatable {
    /// The file it was read from (for messages), or `<embedded local.yml>`.
    public var origin: String
    public var repository: RepositoryPolicy
    /// Sources in the order the file lists them.
    public var sources: [SourcePolicy]
    public var compression: CompressionPolicy
    public var retention: RetentionPolicy
    public var schedules: [ScheduleEntry]
    /// Where to write Prometheus metrics after every command (node_exporter's textfile collector), or nil.
    public var metricsTextfile: String?
    /// Where to send outcome events, or nil.
    public var notify: NotifyPolicy?
    /// Where the daemon serves /metrics and /healthz.
    public var daemonListen = DaemonListen()
    /// Basic auth for the daemon's status page (`daemon.status_auth`); nil: the page is open to whoever can
    /// reach the listen address (127.0.0.1 by default).
    public var statusAuth: StatusAuth?
    /// Scratch targets for restore drills.
    public var drill = DrillPolicy()
    /// Tools for restores (`restore:`).
    public var restore = RestorePolicy()
    /// Encryption at rest (age); nil: artifacts are stored unencrypted.
    public var encryption: EncryptionPolicy?
    /// The stack's Compose project (`compose:`), already applied to every Compose command of the policy; nil:
    /// Compose finds it itself (working directory, `COMPOSE_FILE`).
    public var compose: ComposeProject?
    /// The sources `hook pre-deploy` backs up when none are named (`deploy.pre_deploy_sources`); nil: all of them.
    public var preDeploySources: [String]?

    public init(origin: String, repository: RepositoryPolicy, sources: [SourcePolicy],
                compression: CompressionPolicy = CompressionPolicy(), retention: RetentionPolicy = RetentionPolicy(),
                schedules: [ScheduleEntry] = []) {
        self.origin = origin
        self.repository = repository
        self.sources = sources
        self.compression = compression
        self.retention = retention
        self.schedules = schedules
    }

    public func source(named name: String) -> SourcePolicy? {
        sources.first { $0.name == name }
    }
}

public struct RepositoryPolicy: Sendable, Equatable {
    /// Root directory of the local repository (relative paths are relative to the working directory).
    public var path: String
    /// The catalog's SQLite file; nil means `<path>/catalog.sqlite`.
    public var catalog: String?
    /// The off-site copy (an S3 / MinIO bucket, same layout), or nil.
    public var offsite: OffsitePolicy?

    public init(path: String, catalog: String? = nil) {
        self.path = path
        self.catalog = catalog
    }
}

public struct CompressionPolicy: Sendable, Equatable {
    /// zlib level, 1 (fastest) to 9 (smallest).
    public var level: Int
    /// Compression threads; nil means one per core.
    public var workers: Int?
    /// Store (not deflate) blocks that could not shrink by a tenth: dense vectors, media, compressed files.
    public var storeIncompressible: Bool

    public init(level: Int = Defaults.compressionLevel, workers: Int? = nil, storeIncompressible: Bool = true) {
        self.level = level
        self.workers = workers
        self.storeIncompressible = storeIncompressible
    }
}

/// One entry of `sources:`: its name, its kind and the settings its kind's adapter parsed.
public struct SourcePolicy: Sendable, Equatable {
    public var name: String
    public var kind: SourceKind
    public var settings: any SourceSettings
    /// The longest one backup of this source may take, whatever its kind (`deadline:`; default 6 h). A source
    /// that keeps sending slowly (each silence shorter than its `timeout`) is stopped here.
    public var deadlineSeconds: Double = Defaults.sourceDeadlineSeconds
    /// `deadline:` was written in the policy; otherwise the engine fits it to the previous backup's duration
    /// (`fittedDeadline`).
    public var deadlineExplicit = false
    /// `min_rate:` in bytes a second (0: off) over `min_rate_window:`; see `Defaults.sourceMinimumRate`.
    public var minimumRate: Int64 = Defaults.sourceMinimumRate
    public var rateWindowSeconds: Double = Defaults.sourceRateWindowSeconds

    /// Keys every source entry may have, whatever its kind; each adapter allows these beside its own.
    public static let commonKeys: Set<String> = ["kind", "deadline", "min_rate", "min_rate_window"]

    /// A fresh `min_rate:` window for one transfer of this source (nil when the check is off).
    public func rateWindow() -> RateWindow? {
        guard minimumRate > 0 else { return nil }
        let name = self.name, rate = minimumRate
        return RateWindow(bytesPerSecond: rate, window: rateWindowSeconds) { bytes, seconds in
            TooSlow(source: name, bytes: bytes, windowSeconds: seconds, minimumRate: rate)
        }
    }

    /// The deadline of the next backup: the policy's `deadline:` when written; else `fittedDeadlineFactor` ×
    /// the previous good backup's duration, within 30 min … 6 h; else (no backup yet) 6 h.
    public func fittedDeadline(previousDuration: Double?) -> Double {
        guard !deadlineExplicit, let previous = previousDuration, previous.isFinite, previous >= 0 else { return deadlineSeconds }
        return min(Defaults.sourceDeadlineSeconds, max(Defaults.fittedDeadlineFloorSeconds, previous * Defaults.fittedDeadlineFactor))
    }

    public init(name: String, kind: SourceKind, settings: any SourceSettings) {
        self.name = name
        self.kind = kind
        self.settings = settings
    }

    /// Where the source is, with secrets hidden, for messages and `policy check`.
    public var location: String { settings.location }

    public static func == (a: SourcePolicy, b: SourcePolicy) -> Bool {
        a.name == b.name && a.kind == b.kind && a.deadlineSeconds == b.deadlineSeconds && a.settings.isEqual(to: b.settings)
    }
}

/// The settings of one kind of source, as its adapter parsed them from the policy.
public protocol SourceSettings: Sendable {
    /// Where the source is, with secrets hidden, for messages and `policy check`.
    var location: String { get }
    /// The `*_file` secrets the source reads (key, path), which `policy check` makes sure are readable.
    var secretFiles: [(key: String, path: String)] { get }
    func isEqual(to other: any SourceSettings) -> Bool
}

extension SecretReference {
    /// The path of a `*_file` secret, or nil for an inline one.
    public var filePath: String? {
        if case .file(let path) = self { return path }
        return nil
    }
}

extension SourceSettings {
    public var secretFiles: [(key: String, path: String)] { [] }
}

extension SourceSettings where Self: Equatable {
    public func isEqual(to other: any SourceSettings) -> Bool {
        (other as? Self) == self
    }
}

/// Reads the `sources.<name>` mapping of one kind (the key `kind` included). Each adapter is one.
public protocol SourceSettingsParser: Sendable {
    var kind: SourceKind { get }
    func parseSettings(_ node: PolicyNode) throws(PolicyError) -> any SourceSettings
}

/// The kinds a policy may use, each with its parser (the engine's registry provides them).
public struct SourceKindTable: Sendable {
    public let parsers: [SourceKind: any SourceSettingsParser]

    public init(_ parsers: [any SourceSettingsParser]) {
        self.parsers = Dictionary(parsers.map { ($0.kind, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// `redis, mongodb, s3`, for messages.
    public var names: String { parsers.keys.map(\.rawValue).sorted().joined(separator: ", ") }
}

/// S3 bucket naming: 3–63 of lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit.
public enum BucketName {
    public static func isValid(_ name: String) -> Bool {
        let ok = name.utf8.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 46 || $0 == 45 }
        return ok && (3...63).contains(name.utf8.count) && name.first != "-" && name.first != "." && name.last != "-" && name.last != "."
    }
}

/// `repository.offsite`: where the off-site copy of the repository goes.
public struct OffsitePolicy: Sendable, Equatable {
    public var endpoint: String
    public var bucket: String
    /// `""` or ending with `/`.
    public var prefix = ""
    public var region = "us-east-1"
    public var accessKey: String
    public var secretKey: SecretReference
    public var timeoutSeconds: Double = 120

    public init(endpoint: String, bucket: String, accessKey: String, secretKey: SecretReference) {
        self.endpoint = endpoint
        self.bucket = bucket
        self.accessKey = accessKey
        self.secretKey = secretKey
    }

    /// `endpoint/bucket/prefix`, for messages.
    public var location: String { "\(endpoint)/\(bucket)/\(prefix)" }
}

/// `daemon: { listen: "127.0.0.1:9464" }`
public struct DaemonListen: Sendable, Equatable {
    public var host = "127.0.0.1"
    public var port = 9464

    public init(host: String = "127.0.0.1", port: Int = 9464) {
        self.host = host
        self.port = port
    }

    /// `host:port`; nil when it is not one.
    public static func parse(_ text: String) -> DaemonListen? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        let host = String(text[..<colon])
        return host.isEmpty ? nil : DaemonListen(host: host, port: port)
    }
}

/// `daemon: { status_auth: { user: ops, password_file: /etc/kaleem-backup/status-password } }`: HTTP basic auth
/// for `GET /` (not /healthz nor /metrics). The password is read from the file when the daemon starts (its first
/// line); it never appears in argv, the environment or a log.
public struct StatusAuth: Sendable, Equatable {
    public var user: String
    public var passwordFile: String

    public init(user: String, passwordFile: String) {
        self.user = user
        self.passwordFile = passwordFile
    }
}

/// `restore:` in the policy: tools restores use.
public struct RestorePolicy: Sendable, Equatable {
    /// `redis-server` binaries an online Redis restore may start its scratch server with: one whose RDB the
    /// target can load (a Redis 6.2 target needs a 6.2 scratch server); `redis-server` on PATH is always a candidate.
    public var redisServers: [String] = []

    public init(redisServers: [String] = []) { self.redisServers = redisServers }
}

/// `drill:` in the policy: scratch targets for restore drills.
public struct DrillPolicy: Sendable, Equatable {
    /// A MongoDB to restore drills into (databases `kb_drill_<id>_<db>`, dropped afterwards); none: archive-only.
    public var mongoURI: SecretReference?
    /// The shell used to drop the scratch databases (its script, connection string included, goes through stdin).
    public var mongosh: [String] = ["mongosh"]
    /// Without `mongo_uri`: the image of a throwaway MongoDB container (`docker run --rm`, published on a free
    /// 127.0.0.1 port, removed after) a drill restores into. `auto`: `mongo:<major.minor>` of the server the
    /// backup was taken from; `off`: archive-only drills.
    public var mongoImage: String = "auto"
    /// Where MinIO drills create their scratch bucket `kb-drill-<id>`; nil: the source's own endpoint.
    public var s3Endpoint: String?
    /// `redis-server` binaries a Redis drill may load a backup with (paths or names); the one of the backup's
    /// own version is preferred, then the newest that can load it; `redis-server` on PATH is always a candidate.
    public var redisServers: [String] = []

    public init(mongoURI: SecretReference? = nil, mongosh: [String] = ["mongosh"]) {
        self.mongoURI = mongoURI
        self.mongosh = mongosh
    }
}

/// `encryption:` in the policy: artifacts are encrypted (age format) to the recipients before they are
/// written; restore, verify and drill decrypt with the identity file.
public struct EncryptionPolicy: Sendable, Equatable {
    /// `age1…` public keys.
    public var recipients: [String]
    /// A file of `AGE-SECRET-KEY-1…` lines (age-keygen's output); needed to read encrypted artifacts.
    public var identityFile: String?

    public init(recipients: [String], identityFile: String? = nil) {
        self.recipients = recipients
        self.identityFile = identityFile
    }
}
