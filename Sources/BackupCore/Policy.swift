import Foundation

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
    /// `daemon: { fleet: true }`: the daemon's /metrics also has every host's status from the off-site bucket,
    /// labelled `host` (#38), read at most every 5 minutes.
    public var daemonFleet = false
    /// Scratch targets for restore drills (`drill:`), as each kind parsed its keys.
    public var drill = KindBlockSettings()
    /// Tools for restores (`restore:`), as each kind parsed its keys.
    public var restore = KindBlockSettings()
    /// Encryption at rest (age); nil: artifacts are stored unencrypted.
    public var encryption: EncryptionPolicy?
    /// The stack's Compose project (`compose:`), already applied to every Compose command of the policy; nil:
    /// Compose finds it itself (working directory, `COMPOSE_FILE`).
    public var compose: ComposeProject?
    /// The sources `hook pre-deploy` backs up when none are named (`deploy.pre_deploy_sources`); nil: all of them.
    public var preDeploySources: [String]?
    /// This host's name in the shared off-site bucket (`host:`): its files go under `<prefix><host>/` (#38);
    /// nil: the machine's host name (`EngineEnvironment.host`), checked with `HostName` when first used.
    public var host: String?

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

    // The kind's keys of the policy's `drill:` and `restore:` blocks (#37 item 3); defaults below: none.
    /// The keys of `drill:` this kind reads.
    var drillKeys: Set<String> { get }
    /// The keys of `restore:` this kind reads.
    var restoreKeys: Set<String> { get }
    /// Reads the kind's keys of `block` (`map`: those of its keys the block has, maybe none); nil: nothing to keep.
    func parseBlock(_ block: PolicyBlock, _ map: [String: PolicyNode]) throws(PolicyError) -> (any PolicyBlockSettings)?
}

extension SourceSettingsParser {
    public var drillKeys: Set<String> { [] }
    public var restoreKeys: Set<String> { [] }
    public func parseBlock(_ block: PolicyBlock, _ map: [String: PolicyNode]) throws(PolicyError) -> (any PolicyBlockSettings)? { nil }

    /// The keys of `block` this kind reads.
    public func keys(of block: PolicyBlock) -> Set<String> { block == .drill ? drillKeys : restoreKeys }
}

/// The kinds a policy may use, each with its parser (the engine's registry provides them).
public struct SourceKindTable: Sendable {
    public let parsers: [SourceKind: any SourceSettingsParser]

    public init(_ parsers: [any SourceSettingsParser]) {
        self.parsers = Dictionary(parsers.map { ($0.kind, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// `redis, mongodb, s3`, for messages.
    public var names: String { parsers.keys.map(\.rawValue).sorted().joined(separator: ", ") }

    /// Every kind's keys of `drill:`.
    public var drillKeys: Set<String> { parsers.values.reduce(into: []) { $0.formUnion($1.drillKeys) } }
    /// Every kind's keys of `restore:`.
    public var restoreKeys: Set<String> { parsers.values.reduce(into: []) { $0.formUnion($1.restoreKeys) } }

    /// The block (`drill:` or `restore:`), its keys handed to the kinds that read them, in the kinds' order.
    public func parse(_ block: PolicyBlock, _ map: [String: PolicyNode]) throws(PolicyError) -> KindBlockSettings {
        var out = KindBlockSettings()
        for kind in parsers.keys.sorted() {
            let parser = parsers[kind]!
            let mine = map.filter { parser.keys(of: block).contains($0.key) }
            if let settings = try parser.parseBlock(block, mine) { out[kind] = settings }
        }
        return out
    }
}

/// S3 bucket naming: 3–63 of lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit.
public enum BucketName {
    public static func isValid(_ name: String) -> Bool {
        let ok = name.utf8.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 46 || $0 == 45 }
        return ok && (3...63).contains(name.utf8.count) && name.first != "-" && name.first != "." && name.last != "-" && name.last != "."
    }
}

/// A host's name as the off-site layout uses it (`<prefix><host>/`): one safe path segment that no other part of
/// the layout can be mistaken for (#38).
public enum HostName {
    /// 1–64 of ASCII letters, digits, `-`, `_`, `.`; starting with a letter or digit; not a reserved directory
    /// name of the repository (`catalog`, `packages`, …) and not a day (`2026-12-05`), which the old layout
    /// (without hosts) has at the same depth.
    public static func problem(_ name: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= 64 else { return "must be 1 to 64 characters" }
        guard name.utf8.allSatisfy({ (97...122).contains($0) || (65...90).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 95 || $0 == 46 }) else {
            return "may hold only ASCII letters, digits, '-', '_' and '.' (it becomes a path segment of the off-site bucket)"
        }
        guard let first = name.utf8.first, (97...122).contains(first) || (65...90).contains(first) || (48...57).contains(first) else {
            return "must start with a letter or a digit"
        }
        guard !RepositoryLayout.reservedNames.contains(name.lowercased()) else {
            return "is reserved: the repository uses a directory of that name (\(RepositoryLayout.reservedNames.sorted().joined(separator: ", ")))"
        }
        guard name.range(of: #"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"#, options: .regularExpression) == nil else { return "must not look like a day (YYYY-MM-DD)" }
        return nil
    }

    public static func isValid(_ name: String) -> Bool { problem(name) == nil }
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

    /// Where one host's copy lives in the bucket: `<prefix><host>/` (#38).
    public func hostPrefix(_ host: String) -> String { prefix + host + "/" }
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

/// `drill:` and `restore:` in the policy: blocks whose keys belong to the kinds (the scratch targets of their
/// drills, the tools of their restores). Each kind declares the keys it reads (`SourceSettingsParser.drillKeys`,
/// `restoreKeys`) and parses them (`parseBlock`); the policy keeps what each kind made, by kind.
public enum PolicyBlock: String, Sendable, CaseIterable {
    case drill, restore
}

/// What one kind read from a `drill:` or `restore:` block.
public protocol PolicyBlockSettings: Sendable {
    func isEqual(to other: any PolicyBlockSettings) -> Bool
    /// The settings with the policy's `compose:` project applied to their commands (default: unchanged).
    func applying(_ project: ComposeProject) -> Self
    /// Their commands by key (`mongosh`), which `policy check --connect` asks Compose about (default: none).
    var commands: [(key: String, command: [String])] { get }
}

extension PolicyBlockSettings {
    public func applying(_ project: ComposeProject) -> Self { self }
    public var commands: [(key: String, command: [String])] { [] }
}

extension PolicyBlockSettings where Self: Equatable {
    public func isEqual(to other: any PolicyBlockSettings) -> Bool { (other as? Self) == self }
}

/// One block (`drill:` or `restore:`) as the kinds parsed it: each kind's settings, by kind. A kind with nothing
/// there has none; its accessors (in its folder) give its defaults.
public struct KindBlockSettings: Sendable, Equatable {
    private var byKind: [SourceKind: any PolicyBlockSettings] = [:]

    public init() {}

    public subscript(kind: SourceKind) -> (any PolicyBlockSettings)? {
        get { byKind[kind] }
        set { byKind[kind] = newValue }
    }

    /// The kind's settings as its own type, or nil when the block had none for it.
    public func settings<T: PolicyBlockSettings>(_ kind: SourceKind, as type: T.Type) -> T? { byKind[kind] as? T }

    /// The kinds that have settings here.
    public var kinds: [SourceKind] { byKind.keys.sorted() }

    /// Every kind's settings with the `compose:` project applied.
    public func applying(_ project: ComposeProject) -> KindBlockSettings {
        var out = self
        for (kind, value) in byKind { out.byKind[kind] = value.applying(project) }
        return out
    }

    public static func == (a: KindBlockSettings, b: KindBlockSettings) -> Bool {
        a.byKind.count == b.byKind.count && a.byKind.allSatisfy { kind, value in b.byKind[kind].map { value.isEqual(to: $0) } ?? false }
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
