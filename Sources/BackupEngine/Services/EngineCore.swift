// The run context every service shares: the policy, the environment (clock, host, logger, variables), the local
// repository, the catalog (opened once), the source registry, and what several services need: finding an
// artifact, reading it (decrypting, fetching it from the off-site copy when missing here), secrets, scratch space.

import ArtifactStore
import AsyncHTTPClient
import BackupCatalog
import BackupCore
import Foundation
import Logging
import NIOCore
import OffsiteStore
import Prometheus
import S3Client
import Synchronization

/// Sendable: every stored property is an immutable value or guarded (the catalog, opened on first use, behind a
/// mutex), so services holding it are handed to concurrent tasks as they are (#37 item 5).
final class EngineCore: Sendable {
    public let policy: Policy
    public let repository: LocalRepository
    let environment: EngineEnvironment
    var logger: Logger { environment.logger }
    private let catalogStore = Mutex<Catalog?>(nil)
    /// Pause before webhook retry n; `KALEEM_BACKUP_NOTIFY_BACKOFF` (seconds) shortens it in tests.
    var notifyBackoff: @Sendable (Int) -> Double {
        if let fixed = environment.variables["KALEEM_BACKUP_NOTIFY_BACKOFF"].flatMap(Double.init) { return { _ in fixed } }
        return { attempt in min(30, pow(2, Double(attempt - 1))) }
    }
    /// The off-site copy is another host's (`--from-host`): every `offsiteRepository()` is read only.
    let readOnlyOffsite: Bool
    /// Where a restore keeps its marker while it writes (`RestoreMarkers`): this repository, or for an engine over
    /// another host's copy (`--from-host`, refresh) the home host's, whose `status` must report a killed restore.
    let markerRepository: LocalRepository
    /// The kinds of source this engine knows.
    var registry: SourceRegistry { environment.registry }
    /// What adapters may use of the engine.
    var context: SourceContext { SourceContext(engine: self) }

    public init(policy: Policy, environment: EngineEnvironment = EngineEnvironment(), readOnlyOffsite: Bool = false,
                markerRepository: LocalRepository? = nil) {
        self.policy = policy
        self.readOnlyOffsite = readOnlyOffsite
        self.environment = environment
        repository = LocalRepository(root: policy.repository.path)
        self.markerRepository = markerRepository ?? repository
    }

    public var catalogPath: String { policy.repository.catalog ?? repository.defaultCatalogPath }

    /// The catalog, opened on first use (creating the repository when it is the catalog's home).
    public func catalog() throws -> Catalog {
        // Under the mutex: two tasks asking first at once open it once.
        try catalogStore.withLock { store throws -> Catalog in
        if let store { return store }
        EngineCore.removeStaleTemporaryDirectories(registry: registry, logger: logger)
        if policy.repository.catalog == nil { try repository.prepare() }
        // An empty file is a catalog that was truncated, not a new one: opening it would start an empty catalog
        // and every backup would look gone.
        if FileIO.fileSize(catalogPath) == 0 {
            throw BackupFailure("the catalog \(catalogPath) is an empty file (0 bytes): it was truncated or never written", exitStatus: .usage,
                                hint: "move it aside, then run `kaleem-backup catalog rebuild` (from the manifests), or copy \(repository.absolute("catalog-copy/catalog.sqlite")) in its place")
        }
        // A missing catalog beside backups is a lost catalog, not a new repository: an empty new one would make
        // every backup look gone (and the next rotation would not know what it keeps).
        if access(catalogPath, F_OK) != 0 {
            let found = repository.countManifests()
            if found > 0 {
                throw BackupFailure("the catalog \(catalogPath) is missing, and \(found) backup(s) are in \(repository.root)", exitStatus: .usage,
                                    hint: "run `kaleem-backup catalog rebuild` (it reads the manifests), or copy \(repository.absolute("catalog-copy/catalog.sqlite")) back")
            }
        }
        let existed = access(catalogPath, F_OK) == 0
        let c: Catalog
        do {
            c = try Catalog(path: catalogPath)
        } catch {
            // A first catalog that could not be written (a full disk) must not be left as an empty file that
            // every later run refuses as truncated: the one this process created goes.
            if !existed, let size = FileIO.fileSize(catalogPath), size == 0 {
                unlink(catalogPath)
                unlink(catalogPath + "-journal")
            }
            throw error
        }
        store = c
        return c
        }
    }

    /// A new artifact or run id for `date` (the system's random generator: nothing mutable kept here).
    func newIdentifier(at date: Date) -> String {
        var rng = SystemRandomNumberGenerator()
        return Identifier.make(at: date, using: &rng)
    }

    static func mebibytes(_ n: Int64) -> String { String(format: "%.1f MiB", Double(n) / 1_048_576) }

    func secretResolver(for source: String) -> SecretResolver {
        SecretResolver(source: source, policyOrigin: policy.origin)
    }

    /// One sentence for a catalog row or a log line (user-facing errors are already free of secrets).
    /// One sentence for a catalog row, a notification or a log line: every secret this process knows is scrubbed
    /// from it (a peer's message may quote a password).
    /// One line, cut to a few KiB (PeerText): a peer's newline or a 2 MB error body reaches no row or log as is.
    func describe(_ error: Error) -> String {
        if let e = error as? UserFacingError { return PeerText.clean(KnownSecrets.scrub(e.description)) }
        return PeerText.clean(KnownSecrets.scrub("\(error)"))
    }
}

extension EngineCore {

    func selectSources(_ names: [String]) throws -> [SourcePolicy] {
        if names.isEmpty { return policy.sources }
        return try names.map { name in
            guard let s = policy.source(named: name) else {
                throw BackupFailure("no source named \"\(name)\" in \(policy.origin)", exitStatus: .usage,
                                    hint: "the sources are: \(policy.sources.map(\.name).joined(separator: ", "))")
            }
            return s
        }
    }

    static func unknownArtifact(_ id: String) -> BackupFailure {
        BackupFailure("no artifact with id \"\(id.count > 48 ? id.prefix(40) + "…" : Substring(id))\" in the catalog", exitStatus: .usage,
                      hint: "list the artifacts with: kaleem-backup list")
    }

    /// `latest` is a name everywhere an id is taken: the newest good (ok, not removed) backup, of `source` when
    /// given, of any source otherwise.
    func find(artifact id: String, source: String?, in catalog: Catalog) throws -> ArtifactInfo {
        if id == "latest" {
            guard let a = try catalog.artifacts(status: .ok).filter({ $0.deletedAt == nil && (source == nil || $0.source == source) })
                .max(by: { $0.createdAt < $1.createdAt }) else {
                throw BackupFailure("no good backup\(source.map { " of source \($0)" } ?? "") in the catalog", exitStatus: .usage,
                                    hint: "list what there is with: kaleem-backup list")
            }
            return a
        }
        guard let a = try catalog.artifact(matching: id) else { throw EngineCore.unknownArtifact(id) }
        if let source, a.source != source {
            throw BackupFailure("\(a.id) is a backup of \(a.source), not of \(source)", exitStatus: .usage)
        }
        return a
    }

    /// A fresh 0700 directory `<tmp>/<prefix>-<pid>-XXXXXX`: the pid lets a later run remove what a killed
    /// process left (decompressed backups are data: they must not stay in /tmp).
    /// The engine's own scratch directories (`kaleem-<prefix>-<pid>-XXXXXX`): the sweeper removes those of dead
    /// processes (a killed refresh leaves another host's catalog and backup in `kaleem-from-host-…`).
    static let privateTemporaryPrefixes = ["from-host", "fleet-status", "offsite-migrate", "preflight", "refresh", "receipts"]

    static func privateTemporaryDirectory(prefix: String) throws -> String {
        // `kaleem-drill`, `kaleem-restore` and the kinds' own prefixes come named; the engine's short ones get
        // `kaleem-` and must be in the list the sweeper reads.
        let name = prefix.hasPrefix("kaleem-") ? prefix : "kaleem-" + prefix
        precondition(prefix.hasPrefix("kaleem-") || privateTemporaryPrefixes.contains(prefix), "add \(prefix) to privateTemporaryPrefixes: the sweeper must know it")
        var template = Array((NSTemporaryDirectory() + "/\(name)-\(getpid())-XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw FileSystemError("create a temporary directory in", path: NSTemporaryDirectory())
        }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes temporary directories of ours whose process is gone (a drill or restore killed midway leaves a
    /// decompressed backup), and the ones the kinds name (`SourceAdapter.temporaryDirectoryPrefixes`).
    static func removeStaleTemporaryDirectories(registry: SourceRegistry, logger: Logger) {
        let tmp = NSTemporaryDirectory()
        let kinds = registry.kinds.flatMap { registry.adapters[$0]!.temporaryDirectoryPrefixes }
        let always = kinds.filter { !$0.carriesPID }.map(\.prefix)
        let withPID = ["kaleem-drill-", "kaleem-restore-"] + privateTemporaryPrefixes.map { "kaleem-\($0)-" } + kinds.filter(\.carriesPID).map(\.prefix)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? [] {
            var stale = false
            if always.contains(where: { name.hasPrefix($0) }) {
                stale = true
            } else if let prefix = withPID.first(where: { name.hasPrefix($0) }) {
                let parts = name.dropFirst(prefix.count).split(separator: "-")
                if parts.count == 2, let pid = pid_t(parts[0]), pid != getpid(), kill(pid, 0) != 0 && errno == ESRCH { stale = true }
            }
            guard stale else { continue }
            let path = (tmp as NSString).appendingPathComponent(name)
            var info = stat()
            guard lstat(path, &info) == 0, info.st_uid == getuid(), (info.st_mode & S_IFMT) == S_IFDIR else { continue }
            if (try? FileManager.default.removeItem(atPath: path)) != nil {
                logger.warning("removed a temporary directory a killed run left", metadata: ["path": "\(path)"])
            }
        }
    }
    /// This host's name in the shared off-site bucket: the policy's `host:`, else the machine's host name,
    /// which must then be a `HostName` too (#38).
    func offsiteHost() throws -> String {
        if let host = policy.host { return host }
        let name = environment.host
        if let problem = HostName.problem(name) {
            throw BackupFailure("this machine's host name \"\(name)\" \(problem), so it cannot name this host's off-site copy",
                                exitStatus: .usage, hint: "set host: NAME (e.g. host: prod) at the top of \(policy.origin)")
        }
        return name
    }

    /// This host's off-site copy, `<prefix><host>/` (close it when done), or nil when none is configured.
    /// `host` reads another host's copy (`--from-host`, `fleet status`): the same bucket and credentials.
    func offsiteRepository(host: String? = nil) throws -> (any Repository)? {
        guard let offsite = policy.repository.offsite else { return nil }
        let name = try host ?? offsiteHost()
        guard let store = try offsiteStore(prefix: offsite.hostPrefix(name), location: offsite.location + name + "/") else { return nil }
        return readOnlyOffsite ? ReadOnlyRepository(store) : store
    }

    /// The bucket's prefix itself, where every host's directory is (the old layout, without hosts, put its
    /// files there): for `offsite migrate` and `fleet status` only; nil when no off-site copy is configured.
    func offsiteBucketRoot() throws -> S3Repository? {
        guard let offsite = policy.repository.offsite else { return nil }
        return try offsiteStore(prefix: offsite.prefix, location: offsite.location)
    }

    private func offsiteStore(prefix: String, location: String) throws -> S3Repository? {
        guard let offsite = policy.repository.offsite else { return nil }
        guard let secret = try SecretResolver(source: "repository.offsite", policyOrigin: policy.origin)
            .resolve(offsite.secretKey, key: "secret_key") else { return nil }
        let client = try S3Client(endpoint: offsite.endpoint, region: offsite.region,
                                  credentials: S3Credentials(accessKey: offsite.accessKey, secretKey: secret),
                                  options: s3Options(timeout: offsite.timeoutSeconds))
        return S3Repository(client: client, bucket: offsite.bucket, prefix: prefix, location: location)
    }

    /// Client options; `KALEEM_BACKUP_S3_ATTEMPTS` and `KALEEM_BACKUP_S3_BACKOFF` (seconds) shorten the retries in tests.
    func s3Options(timeout: Double) -> S3ClientOptions {
        var options = S3ClientOptions()
        options.timeoutSeconds = timeout
        if let backoff = environment.variables["KALEEM_BACKUP_S3_BACKOFF"].flatMap(Double.init) { options.backoff = { _ in backoff } }
        if let attempts = environment.variables["KALEEM_BACKUP_S3_ATTEMPTS"].flatMap(Int.init) { options.attempts = max(1, attempts) }
        return options
    }

    /// A file of the repository that is missing here, fetched from the off-site copy (sha256 checked when known).
    /// Returns false when there is no off-site copy to fetch from.
    @discardableResult
    func fetchFromOffsite(_ relative: String, sha256: String?) async throws -> Bool {
        guard let remote = try offsiteRepository() else { return false }
        defer { remote.close() }
        logger.warning("file missing here; fetching the off-site copy", metadata: ["file": "\(relative)", "from": "\(remote.location)"])
        let local = repository
        // On a terminal: the file's size once it is here (the transfer itself is one request).
        let meter = environment.progress
        meter?.begin("fetch \(relative) from \(remote.location)", totalItems: 1, itemUnit: "files")
        defer { meter?.end() }
        let fetched = try await local.fetchIfMissing(relative, sha256: sha256, from: remote)
        meter?.add(bytes: FileIO.fileSize(local.absolute(relative)) ?? 0, items: 1)
        return fetched
    }

    /// "No good backup": exit 1, or exit 4 naming them when the source's only backups are corrupt (a verify
    /// found them damaged), which is what the person at the console must learn first.
    func noGoodBackup(source: String, _ what: String) throws -> BackupFailure {
        let corrupt = try catalog().artifacts(source: source, status: .corrupt)
        if !corrupt.isEmpty {
            return BackupFailure("source \"\(source)\" has no good backup \(what): \(corrupt.count) backup(s) failed verification and are marked corrupt (\(corrupt.prefix(3).map(\.id).joined(separator: ", "))\(corrupt.count > 3 ? ", …" : ""))",
                                 exitStatus: .integrity,
                                 hint: "kaleem-backup show ID says what failed; copy the file back from the off-site copy and verify it again, or take a new backup: kaleem-backup backup --source \(source)")
        }
        return BackupFailure("source \"\(source)\" has no good backup \(what)", exitStatus: .failed,
                             hint: "see what exists: kaleem-backup list --source \(source); take one: kaleem-backup backup --source \(source)")
    }

    func selectArtifact(source: String, _ backup: BackupSelector) throws -> ArtifactInfo {
        switch backup {
        case .id(let id):
            let a = try statusReport.show(id: id)
            guard a.source == source else {
                throw BackupFailure("backup \(a.id) belongs to source \"\(a.source)\", not \"\(source)\"", exitStatus: .usage)
            }
            guard a.deletedAt == nil else {
                throw BackupFailure("backup \(a.id) was removed by rotation on \(Timestamps.iso8601(a.deletedAt!))", exitStatus: .usage,
                                    hint: "pick another one: kaleem-backup list --source \(source)")
            }
            return a
        case .before(let date):
            guard let a = try catalog().artifacts(source: source, status: .ok).first(where: { $0.createdAt < date }) else {
                throw try noGoodBackup(source: source, "taken before \(Timestamps.iso8601(date))")
            }
            return a
        case .latest:
            guard let a = try catalog().artifacts(source: source, status: .ok, limit: 1).first else {
                throw try noGoodBackup(source: source, "to restore")
            }
            return a
        }
    }

    /// The recipients new artifacts are encrypted to (none: stored unencrypted).
    func encryptionRecipients() throws -> [AgeRecipient] {
        guard let encryption = policy.encryption else { return [] }
        return try encryption.recipients.map(AgeRecipient.init)
    }

    /// The identities that decrypt artifacts, read from `encryption.identity_file` when needed.
    func encryptionIdentities(for artifact: ArtifactInfo) throws -> [AgeIdentity] {
        try EngineCore.loadIdentities(file: policy.encryption?.identityFile, origin: policy.origin, what: "backup \(artifact.id)")
    }

    static func loadIdentities(file: String?, origin: String, what: String) throws -> [AgeIdentity] {
        guard let file else {
            throw BackupFailure("\(what) is encrypted and the policy sets no encryption.identity_file to decrypt it", exitStatus: .usage,
                                hint: "set encryption.identity_file in \(origin) to the age key file (AGE-SECRET-KEY-1…)")
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw BackupFailure("cannot read encryption.identity_file \(file)", exitStatus: .usage,
                                hint: "check that the file exists and is readable by this user")
        }
        return try AgeIdentity.parseFile(String(decoding: data, as: UTF8.self))
    }

    /// Opens a stored artifact for reading: hashed as stored, decrypted if it is encrypted, inflated.
    func artifactReader(_ artifact: ArtifactInfo) async throws -> GzipReader {
        let decryptor: AgeDecryptor?
        switch artifact.compression {
        case .gzip:
            decryptor = nil
        case .gzipAge:
            decryptor = AgeDecryptor(identities: try encryptionIdentities(for: artifact), object: repository.absolute(artifact.path))
        case .none, .unknown:
            throw IntegrityError(object: repository.absolute(artifact.path),
                                 problem: "it is stored with compression \(String(reflecting: artifact.compression.rawValue)), which is not a gzip stream this build reads"
                                    + (artifact.compression == .none ? " (a snapshot's manifest is read by its kind, not as a stream)" : " (written by a newer kaleem-backup?)"))
        }
        return try await GzipReader(path: try localArtifactPath(artifact), decryptor: decryptor)
    }

    /// Where the artifact's file is on this host; fetched from the off-site copy (sha256 checked) when it is
    /// missing here and one is configured.
    func localArtifactPath(_ artifact: ArtifactInfo) async throws -> String {
        let path = repository.absolute(artifact.path)
        if access(path, F_OK) != 0 && policy.repository.offsite != nil {
            try await fetchFromOffsite(artifact.path, sha256: artifact.sha256)
        }
        // Another host's backup (`--from-host`): its manifest too, which verification compares with the catalog.
        if readOnlyOffsite {
            let manifest = repository.relativeManifestPath(forArtifact: artifact.path, id: artifact.id)
            if access(repository.absolute(manifest), F_OK) != 0 { try await fetchFromOffsite(manifest, sha256: nil) }
        }
        return path
    }
}

/// One of the engine's named services. Each is a value holding the shared run context (`EngineCore`) and reaches
/// the other services through it (`verifier`, `rotator`, …), never through another's internals.
protocol EngineService {
    var core: EngineCore { get }
}

extension EngineService {
    var policy: Policy { core.policy }
    var repository: LocalRepository { core.repository }
    var environment: EngineEnvironment { core.environment }
    var logger: Logger { core.logger }
    var registry: SourceRegistry { core.registry }
    var context: SourceContext { core.context }
    func catalog() throws -> Catalog { try core.catalog() }
    func describe(_ error: Error) -> String { core.describe(error) }
}

extension EngineCore {
    var runner: BackupRunner { BackupRunner(core: self) }
    var verifier: Verifier { Verifier(core: self) }
    var statusReport: StatusReport { StatusReport(core: self) }
    var drills: DrillRunner { DrillRunner(core: self) }
    var restorer: Restorer { Restorer(core: self) }
    var rotator: Rotator { Rotator(core: self) }
    var recovery: CrashRecovery { CrashRecovery(core: self) }
    var offsite: OffsiteReplicator { OffsiteReplicator(core: self) }
    var rebuilder: CatalogRebuilder { CatalogRebuilder(core: self) }
    var hooks: DeployHooks { DeployHooks(core: self) }
    var browser: Browser { Browser(core: self) }
    var notifier: Notifier { Notifier(core: self) }
    var preflight: Preflight { Preflight(core: self) }
    var offsiteMigrator: OffsiteMigrator { OffsiteMigrator(core: self) }
    var fleet: FleetStatusReader { FleetStatusReader(core: self) }
    var fromHost: FromHost { FromHost(core: self) }
    var refresher: Refresher { Refresher(core: self) }
    var receipts: ReceiptCollector { ReceiptCollector(core: self) }
    var importer: Importer { Importer(core: self) }
    var forgetter: Forgetter { Forgetter(core: self) }
}
