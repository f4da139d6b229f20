// The restorer: a backup chosen, handed to its kind's adapter with the kind's own options, the restore recorded.

import ArtifactStore
import BackupCore
import Foundation

/// Which backup to restore.
public enum BackupSelector: Sendable, Equatable {
    case id(String)
    case latest
    /// The newest good backup taken before this moment.
    case before(Date)
}

/// A restore that was running when its process died: what `status` reports.
public struct InterruptedRestore: Codable, Sendable, Equatable {
    public var source: String
    public var backup: String
    /// The restore's options, as a person would retype them (passwords left out).
    public var target: String
    public var started_at: String
    public var pid: Int32
    public var host: String

    /// A refresh's marker (its target made by `refreshTarget`), not a restore's.
    public var isRefresh: Bool { target.hasSuffix(")") && target.contains(Self.refreshMark) }

    /// The target a refresh's marker names: the live store of `source`, refreshed from `fromHost`.
    static func refreshTarget(kind: SourceKind, source: String, fromHost: String) -> String {
        "the live \(kind.rawValue) store of \(source)\(refreshMark)\(fromHost))"
    }

    private static let refreshMark = " (refresh from "
}

/// `<repository>/.restores/<pid>-<random>.json` (0600), one per restore in progress (a name no source can have).
enum RestoreMarkers {
    static func directory(_ repository: LocalRepository) -> String { repository.root + "/.restores" }

    static func begin(_ request: RestoreRequest, repository: LocalRepository, clock: Date) -> String? {
        let backup: String
        switch request.backup {
        case .id(let id): backup = id
        case .latest: backup = "latest"
        case .before(let date): backup = "before \(Timestamps.iso8601(date))"
        }
        return begin(source: request.source, backup: backup, target: request.options.described, repository: repository, clock: clock)
    }

    static func begin(source: String, backup: String, target: String, repository: LocalRepository, clock: Date) -> String? {
        let marker = InterruptedRestore(source: source, backup: backup, target: target,
                                        started_at: Timestamps.iso8601(clock), pid: getpid(), host: ProcessInfo.processInfo.hostName)
        let dir = directory(repository)
        guard (try? FileIO.makeDirectories(dir)) != nil, let data = try? JSONEncoder().encode(marker) else { return nil }
        let path = dir + "/\(getpid())-\(UInt32.random(in: 0...UInt32.max)).json"
        guard (try? FileIO.writeAtomically(data, to: path)) != nil else { return nil }
        return path
    }

    static func end(_ path: String) { unlink(path) }

    /// Markers whose process is gone (on this host): restores that were killed.
    static func interrupted(_ repository: LocalRepository) -> [(path: String, marker: InterruptedRestore)] {
        let dir = directory(repository)
        let host = ProcessInfo.processInfo.hostName
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().compactMap { name in
            let path = dir + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size < 64 * 1024,
                  let data = FileManager.default.contents(atPath: path),
                  let marker = try? JSONDecoder().decode(InterruptedRestore.self, from: data) else { return nil }
            let alive = marker.host == host && marker.pid > 0 && (kill(marker.pid, 0) == 0 || errno == EPERM)
            return alive ? nil : (path, marker)
        }
    }

    /// After a restore of `source` completed: the markers of its killed restores are done with (and of its killed
    /// refreshes, with `refreshes`: only a refresh that dropped every scratch they could have left clears those).
    static func clearInterrupted(source: String, repository: LocalRepository, refreshes: Bool) {
        for (path, marker) in interrupted(repository) where marker.source == source && (refreshes || !marker.isRefresh) { unlink(path) }
    }
}

struct Restorer: EngineService {
    let core: EngineCore

    /// restore SOURCE: the source's kind restores it with its own options (the CLI passes them through).
    func restore(_ request: RestoreRequest, kindArguments: [String] = [], plan: ([String]) -> Void) async throws -> RestoreOutcome {
        let source = try core.selectSources([request.source])[0]
        let adapter = try registry.adapter(for: source.kind)
        var request = request
        if !kindArguments.isEmpty {
            request.options = try RestoreOptions.parse(kindArguments, specs: adapter.restoreOptions, kind: source.kind, source: source.name)
        }
        return try await restore(adapter, source, request, show: plan)
    }

    /// The kind opened: its options read (usage errors before the backup is read), a marker kept while it runs.
    private func restore<A: SourceAdapter>(_ adapter: A, _ source: SourcePolicy, _ request: RestoreRequest,
                                           show: ([String]) -> Void) async throws -> RestoreOutcome {
        // A marker while the restore writes: a restore killed before its end leaves it, and `status` says which
        // target may be half-restored (the next restore of the source clears the markers of dead restores).
        let marker = request.dryRun || !request.confirmed ? nil : RestoreMarkers.begin(request, repository: core.markerRepository, clock: environment.clock())
        defer { if let marker { RestoreMarkers.end(marker) } }
        let typed = try adapter.typed(source)
        let target = try adapter.restoreTarget(typed, request.options)
        let outcome = try await perform(adapter, typed, into: target, request, show: show)
        // A restore that wrote (not a dry run, not refused) replaced what a killed restore left half done; a killed
        // refresh's marker stays (its scratch databases are the next refresh's to drop: the attack on #38).
        if marker != nil { RestoreMarkers.clearInterrupted(source: source.name, repository: core.markerRepository, refreshes: false) }
        return outcome
    }

    /// The restore lifecycle, the same for every kind: the backup verified (one that does not verify is
    /// refused, exit 4), the kind's plan printed, refused where the kind says so, `--dry-run` recorded as such,
    /// `--yes` asked where the target holds data, the kind's apply step run, the restore recorded (ok,
    /// unverified, failed or dry-run), the outcome returned. Also what `hook rollback --restore-data` runs
    /// (through `SourceContext.restore`).
    func perform<A: SourceAdapter>(_ adapter: A, _ source: TypedSource<A.Settings>, into target: A.RestoreTarget, _ request: RestoreRequest,
                                   show: ([String]) -> Void) async throws -> RestoreOutcome {
        let artifact = try core.selectArtifact(source: source.name, request.backup)
        let check = await core.verifier.verifyOne(artifact)
        guard check.ok else {
            throw IntegrityError(object: "backup \(artifact.id) of \(source.name)", problem: "refusing to restore: \(check.detail)")
        }
        let plan = try await adapter.planRestore(artifact, into: target, source: source, request: request, context: context)
        defer { plan.close() }
        show(plan.lines)
        if let refused = plan.refused { throw refused }
        if !request.dryRun, !request.confirmed, let refusal = plan.needsConfirmation { throw refusal }
        let started = environment.clock()
        let clock = DispatchTime.now()
        let result: RestoreResult
        var seconds = 0.0
        if request.dryRun, let planOnly = plan.dryRun {
            result = planOnly
        } else {
            do {
                result = try await plan.apply(request.dryRun)
            } catch {
                let described = describe(error)
                try? recordRestore(artifact, mode: plan.mode, target: plan.target, outcome: RestoreStatus.failed.rawValue, started: started,
                                   seconds: SourceContext.seconds(since: clock), detail: plan.failureDetail?(described) ?? described)
                throw error
            }
            seconds = SourceContext.seconds(since: clock)
        }
        let status = request.dryRun ? RestoreStatus.dryRun : result.status
        try recordRestore(artifact, mode: plan.mode, target: plan.target, outcome: status.rawValue, started: started, seconds: seconds,
                          detail: result.detail)
        return RestoreOutcome(source: source.name, artifact: artifact.id, status: status, durationSeconds: (seconds * 1000).rounded() / 1000,
                              details: result.details, lines: result.lines)
    }

    private func recordRestore(_ artifact: ArtifactInfo, mode: String, target: String, outcome: String, started: Date, seconds: Double,
                               detail: String) throws {
        var rng = SystemRandomNumberGenerator()
        let user = ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? String(getuid())
        try catalog().insertRestore(id: "restore-" + Identifier.make(at: started, using: &rng), artifactID: artifact.id,
                                    source: artifact.source, startedAt: started, durationSeconds: seconds, mode: mode,
                                    target: target, outcome: outcome, user: user, host: environment.host, detail: detail)
    }
}
