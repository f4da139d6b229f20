// BackupEngine: the orchestration. It wires a source connector (which reads a source and writes a stream)
// to the artifact pipeline (gzip, sha256, atomic file) and records everything in the catalog.
//
// backup, for each source:
//   lock the repository; clean what a crashed run left (.partial files, `running` rows and their files)
//   record the run (running) and the artifact (running, path chosen)
//   stream source → [verifier thread] and → gzip → sha256 → <file>.partial
//   verifier failed or source failed → remove the partial, artifact `failed` (with why)
//   else rename into place, write the manifest, artifact `ok` with its stats
//   run = ok | partial | failed
import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import Logging

/// What `backup` did: the run and one artifact per source.
public struct BackupResult: Sendable {
    public var run: RunInfo
    public var artifacts: [ArtifactInfo]
    /// Rotation run for each source that just succeeded (a rotation failure never fails the backup).
    public var rotations: [RotationResult] = []
    /// Why rotation did not run, when it did not (an empty retention policy, an error).
    public var rotationSkipped: String?
    /// Artifacts (of this run or earlier ones) whose off-site copy failed in this run: id → why.
    public var offsiteFailures: [String: String] = [:]
    /// Why the failed artifacts of this run failed, by type (the exit code comes from it).
    public var failures: [String: FailureKind] = [:]
    /// What to try for each failed artifact of this run (id → hint), for the `Try:` lines.
    public var hints: [String: String] = [:]

    public var exitStatus: ExitStatus {
        switch run.status {
        case .ok: return .ok
        case .partial: return .partial
        default:
            // A run that failed because a snapshot did not verify is an integrity failure.
            let integrity = artifacts.contains { failures[$0.id] == .integrity }
            return integrity && artifacts.allSatisfy({ $0.status != .ok }) ? .integrity : .failed
        }
    }
}

/// The outcome of verifying one artifact.
public struct VerifyResult: Sendable, Equatable, Codable {
    public var id: String
    public var ok: Bool
    public var detail: String
    /// The artifact's status after this verify (local `verify` only): `corrupt` when it showed damage.
    public var status: ArtifactStatus?
    /// The failure shows damage (bytes changed, the format does not walk, the file is gone), as opposed to a
    /// verify that could not run (a missing key, an unknown kind). Not part of the JSON.
    var damaged = false

    public init(id: String, ok: Bool, detail: String, status: ArtifactStatus? = nil) {
        self.id = id
        self.ok = ok
        self.detail = detail
        self.status = status
    }

    init(id: String, damagedBecause detail: String) {
        self.init(id: id, ok: false, detail: detail)
        damaged = true
    }

    enum CodingKeys: String, CodingKey { case id, ok, detail, status }
}

/// Everything the engine needs from the outside world, passed in so tests can drive it.
public struct EngineEnvironment: Sendable {
    public var variables: [String: String]
    public var clock: @Sendable () -> Date
    public var host: String
    public var logger: Logger
    /// Where long work reports how far it got (the CLI draws it on a terminal); nil: nobody is watching.
    public var progress: ProgressMeter?
    /// The kinds of source the engine knows: `SourceRegistry.current` (the standard registry, unless a test
    /// runs under another one).
    var registry: SourceRegistry = SourceRegistry.current

    public init(variables: [String: String] = ProcessInfo.processInfo.environment,
                clock: @escaping @Sendable () -> Date = { Date() },
                host: String = ProcessInfo.processInfo.hostName,
                logger: Logger = Logger(label: "kaleem-backup")) {
        self.variables = variables
        self.clock = clock
        self.host = host
        self.logger = logger
    }
}

/// The engine's public face: what the CLI, the daemon and tests call. Each call goes to one of the named
/// services (Services/), which share one run context (`EngineCore`: policy, environment, repository, catalog,
/// source registry). docs/ARCHITECTURE.md lists the services and what each asks of a source's adapter.
public final class BackupEngine {
    let core: EngineCore

    public init(policy: Policy, environment: EngineEnvironment = EngineEnvironment()) {
        core = EngineCore(policy: policy, environment: environment)
    }

    public var policy: Policy { core.policy }
    public var repository: LocalRepository { core.repository }
    public var catalogPath: String { core.catalogPath }
    /// The catalog, opened on first use (creating the repository when it is the catalog's home).
    public func catalog() throws -> Catalog { try core.catalog() }
    /// One sentence for an error, secrets scrubbed.
    public func describe(_ error: Error) -> String { core.describe(error) }

    // MARK: BackupRunner
    public func backup(sources names: [String] = [], tag: RunTag = .manual, release: String? = nil) async throws -> BackupResult {
        try await core.runner.backup(sources: names, tag: tag, release: release)
    }
    public func checkSources(_ names: [String] = []) throws -> [String] { try core.runner.checkSources(names) }

    // MARK: Verifier
    public func verify(ids: [String], all: Bool, source: String? = nil) async throws -> [VerifyResult] {
        try await core.verifier.verify(ids: ids, all: all, source: source)
    }

    // MARK: Forgetter
    /// Removes backups on purpose, local and off-site (see Forgetter.swift).
    public func forget(ids: [String], dryRun: Bool, force: Bool, reason: String?) async throws -> [ForgetItem] {
        try await core.forgetter.forget(ids: ids, dryRun: dryRun, force: force, reason: reason)
    }

    // MARK: Importer
    /// Adopts backups made by the operations document's own scripts (see Importer.swift).
    public func importBackups(_ paths: [String], source: String?, takenAt: Date?, dryRun: Bool) async throws -> [ImportItem] {
        try await core.importer.importPaths(paths, source: source, takenAt: takenAt, dryRun: dryRun)
    }

    // MARK: StatusReport
    /// Tells the webhook that a scheduled run was lost (the daemon could not start it before its next occurrence).
    public func notifyLostRun(schedule: String, reason: String) async { await core.notifier.notifyLostRun(schedule: schedule, reason: reason) }

    public func list(source: String?, limit: Int?) throws -> [ArtifactInfo] { try core.statusReport.list(source: source, limit: limit) }
    public func show(id: String, source: String? = nil) throws -> ArtifactInfo { try core.statusReport.show(id: id, source: source) }
    public func lastDrill(of artifactID: String) throws -> DrillRecord? { try core.statusReport.lastDrill(of: artifactID) }
    public func status(now: Date? = nil) throws -> [SourceStatus] { try core.statusReport.status(now: now) }
    @discardableResult
    public func writeMetricsTextfile() -> String? { core.statusReport.writeMetricsTextfile() }

    // MARK: Browser
    @discardableResult
    public func contents(of id: String, source: String? = nil, filter: ContentFilter, emit: (ContentEntry) throws -> Void) async throws -> ArtifactInfo {
        try await core.browser.contents(of: id, source: source, filter: filter, emit: emit)
    }
    public func diff(_ fromID: String, _ toID: String, filter: ContentFilter) async throws -> ContentDiff {
        try await core.browser.diff(fromID, toID, filter: filter)
    }
    public func find(_ pattern: String, source: String?, sampleSize: Int = 5) async throws -> [FoundIn] {
        try await core.browser.find(pattern, source: source, sampleSize: sampleSize)
    }

    // MARK: Restorer
    public func restore(_ request: RestoreRequest, kindArguments: [String] = [], plan: ([String]) -> Void) async throws -> RestoreOutcome {
        try await core.restorer.restore(request, kindArguments: kindArguments, plan: plan)
    }

    // MARK: DrillRunner
    public func drill(sources names: [String] = [], selector: DrillSelector = .latest) async throws -> [DrillRecord] {
        try await core.drills.drill(sources: names, selector: selector)
    }

    // MARK: FromHost (#38)
    /// `restore … --from-host NAME`: a backup of another host, read from its off-site copy (read only).
    public func restore(fromHost host: String, _ request: RestoreRequest, kindArguments: [String] = [],
                        plan: ([String]) -> Void) async throws -> RestoreOutcome {
        try await core.fromHost.with(host: host) { try await $0.restorer.restore(request, kindArguments: kindArguments, plan: plan) }
    }
    /// `drill --from-host NAME`.
    public func drill(fromHost host: String, sources names: [String] = [], selector: DrillSelector = .latest) async throws -> [DrillRecord] {
        try await core.fromHost.with(host: host) { try await $0.drills.drill(sources: names, selector: selector) }
    }

    /// `refresh --from-host NAME` and the `refresh:` schedule: this host's live stores replaced by that host's newest
    /// good backups of the sources its policy's refresh entries name, recorded as drills of them (#38).
    public func refresh(fromHost host: String, sources names: [String] = [], schedule: String? = nil, confirmed: Bool) async throws -> RefreshResult {
        try await core.refresher.refresh(fromHost: host, sources: names, schedule: schedule, confirmed: confirmed)
    }
    /// Restores and drills of other hosts' backups recorded in this host's catalog, newest first.
    public func fromHostDrills(fromHost host: String? = nil) throws -> [(fromHost: String, purpose: String, drill: DrillRecord)] {
        try core.catalog().fromHostDrills(fromHost: host)
    }

    // MARK: Rotator
    public func rotate(sources names: [String] = [], dryRun: Bool, now: Date? = nil, allowEmptyPolicy: Bool = false) async throws -> [RotationResult] {
        try await core.rotator.rotate(sources: names, dryRun: dryRun, now: now, allowEmptyPolicy: allowEmptyPolicy)
    }
    public func pin(id: String, reason: String) throws -> ArtifactInfo { try core.rotator.pin(id: id, reason: reason) }
    public func unpin(id: String) throws -> ArtifactInfo { try core.rotator.unpin(id: id) }

    // MARK: DeployHooks
    public func preDeploy(release: String, sources: [String], deployID: String? = nil, environmentName: String = "production",
                          service: String = "api") async throws -> (result: BackupResult, previous: [RunInfo]) {
        try await core.hooks.preDeploy(release: release, sources: sources, deployID: deployID, environmentName: environmentName, service: service)
    }
    @discardableResult
    public func postDeploy(release: String, success: Bool, rollbackFailed: Bool = false, durationSeconds: Double?, environmentName: String,
                           service: String, deployID: String? = nil, reason: String? = nil, detail: String? = nil) async throws -> [String] {
        try await core.hooks.postDeploy(release: release, success: success, rollbackFailed: rollbackFailed, durationSeconds: durationSeconds,
                                        environmentName: environmentName, service: service, deployID: deployID, reason: reason, detail: detail)
    }
    public func rollback(release: String, reason: String, restoreData: Bool, include: [String] = [], dryRun: Bool = false,
                         environmentName: String, service: String, deployID: String? = nil, detail: String? = nil) async throws -> RollbackResult {
        try await core.hooks.rollback(release: release, reason: reason, restoreData: restoreData, include: include,
                                      dryRun: dryRun, environmentName: environmentName, service: service, deployID: deployID, detail: detail)
    }

    // MARK: OffsiteReplicator
    public func verifyOffsite(ids: [String], all: Bool) async throws -> [VerifyResult] { try await core.offsite.verifyOffsite(ids: ids, all: all) }

    // MARK: Preflight
    /// `policy check`: every check at once (with `connect`, everything a backup would touch).
    public func preflight(connect: Bool) async -> [PreflightCheck] { await core.preflight.run(connect: connect) }

    // MARK: CatalogRebuilder
    /// `offsite migrate`: an off-site copy of the old layout moved under `<prefix><host>/` (#38).
    public func migrateOffsite(dryRun: Bool) async throws -> OffsiteMigrationResult { try await core.offsiteMigrator.migrate(dryRun: dryRun) }

    /// `fleet status`: every host's catalog copy in the off-site bucket, read only (#38).
    public func fleetStatus(limits: FleetLimits = FleetLimits()) async throws -> [FleetHostStatus] { try await core.fleet.status(limits: limits) }

    public func rebuildCatalog(fromOffsite: Bool) async throws -> CatalogRebuildResult {
        try await core.rebuilder.rebuildCatalog(fromOffsite: fromOffsite)
    }
}

/// Reads `*_file` secrets when they are needed; their contents are never stored or printed.
public struct SecretResolver: Sendable {
    public var source: String
    public var policyOrigin: String

    public func resolve(_ reference: SecretReference?, key: String) throws -> Secret? {
        switch reference {
        case nil: return nil
        case .inline(let s): return s
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw BackupFailure("cannot read \(key)_file \(path) of source \"\(source)\"", exitStatus: .usage,
                                    hint: "check that the file exists and is readable by this user (policy \(policyOrigin))")
            }
            var text = String(decoding: data, as: UTF8.self)
            while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
            return Secret(text)
        }
    }
}
