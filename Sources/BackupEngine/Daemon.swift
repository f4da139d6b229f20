import ArtifactStore
import BackupCatalog
import BackupCore
import Crypto
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Synchronization

/// How the daemon is started.
public struct DaemonOptions: Sendable {
    /// Seconds a connection to /, /metrics or /healthz may stay without a byte before it is closed.
    public static let idleTimeoutSeconds: Int64 = 30

    public var listen: DaemonListen
    /// Test only: every schedule fires every this many seconds.
    public var testInterval: Double?
    /// How often the scheduler loop wakes up at most.
    public var tick: Double = 0.5

    public init(listen: DaemonListen, testInterval: Double? = nil) {
        self.listen = listen
        self.testInterval = testInterval
    }
}

/// The daemon: the scheduler loop and the HTTP endpoints (`/metrics`, `/healthz`) as services of one
/// swift-service-lifecycle group, stopped gracefully by SIGTERM or SIGINT.
///
/// daemon:
///   scheduler = Scheduler(schedules, last runs from <repo>/daemon-state.json, now)   // catch-up once
///   loop until SIGTERM: actions = scheduler.tick(now)
///     .run → the job (backup | rotate) on a thread of its own; when it ends: scheduler.finished, save state
///     .skip → logged
///   on SIGTERM: stop scheduling, wait for the running job to finish (its artifacts end ok or failed, never
///   half-marked), then stop the HTTP server
public enum Daemon {
    public static func run(policy: Policy, environment: EngineEnvironment, options: DaemonOptions) async throws {
        var entries = policy.schedules
        if let interval = options.testInterval { for i in entries.indices { entries[i].testInterval = interval } }
        let state = DaemonState(policy: policy, entries: entries, environment: environment)
        let logger = environment.logger

        let auth = try StatusPageAuth.load(policy.statusAuth, logger: logger)
        let router = Router()
        // The status page: HTML for a person (the figures of `status`), behind basic auth when the policy asks.
        router.get("/") { request, _ -> Response in
            var headers: HTTPFields = [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                                       .contentSecurityPolicy: "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                                       .xContentTypeOptions: "nosniff"]
            if let auth, !auth.accepts(request.headers[.authorization]) {
                headers[.wwwAuthenticate] = "Basic realm=\"kaleem-backup\", charset=\"UTF-8\""
                headers[.contentType] = "text/plain; charset=utf-8"
                return Response(status: .unauthorized, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "authentication required\n")))
            }
            // `daemon: { fleet: true }`: every host's panel, from the read /metrics shares (the loop reads the bucket at
            // most every 5 minutes, #38).
            var fleet: (hosts: [FleetHostStatus], problem: String?, at: Date?)?
            if policy.daemonFleet { let c = await state.fleet.cached(); fleet = (c.hosts, c.problem, c.at) }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: state.statusPage(now: environment.clock(), fleet: fleet))))
        }
        router.get("healthz") { _, _ -> Response in
            let (healthy, body) = state.health(now: environment.clock(), tick: options.tick)
            return Response(status: healthy ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.get("metrics") { _, _ -> Response in
            var text = state.metrics()
            if policy.daemonFleet { text += await state.fleet.cached().text } // #38, read by the loop
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        // A connection idle for 30 s is closed: half-sent requests held open by a local user (1,100 of them) had
        // exhausted the descriptors, failing the scheduled jobs' lock file and /healthz (the second attack, #36).
        let app = Application(router: router,
                              server: .http1(configuration: .init(idleTimeout: .seconds(DaemonOptions.idleTimeoutSeconds))),
                              configuration: .init(address: .hostname(options.listen.host, port: options.listen.port),
                                                   serverName: "kaleem-backup"),
                              logger: logger)
        let scheduler = SchedulerService(state: state, tick: options.tick, clock: environment.clock, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: app), .init(service: scheduler, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        logger.notice("daemon started", metadata: ["listen": "\(options.listen.host):\(options.listen.port)",
                                                   "schedules": "\(entries.map(\.name))"])
        try await group.run()
        logger.notice("daemon stopped")
    }
}

/// Everything the loop and the endpoints share: immutable settings, and the mutable part behind one mutex.
final class DaemonState: Sendable {
    let policy: Policy
    let environment: EngineEnvironment
    /// What changes while the daemon runs.
    private struct Shared {
        var scheduler: Scheduler
        var lastRuns: [String: Date]
        var lastTick: Date?
        /// Jobs finished since the start (part of the catalog view's key).
        var finishedJobs = 0
        var view: CatalogView?
        /// Set when the loop stops: a job waiting for the lock gives up instead of holding the shutdown.
        var stopping = false
    }
    private let shared: Mutex<Shared>
    private let statePath: String
    let catalogPath: String
    let repository: LocalRepository
    /// The daemon's own live metrics (jobs run, last tick), recorded through swift-metrics into a Prometheus
    /// registry; `/metrics` serves them after the catalog's.
    let live = PrometheusCollectorRegistry()
    /// Every host's status from the off-site bucket (`daemon: { fleet: true }`, #38).
    let fleet = FleetMetricsCache()
    var metricsFactory: PrometheusMetricsFactory { PrometheusMetricsFactory(registry: live) }

    init(policy: Policy, entries: [ScheduleEntry], environment: EngineEnvironment) {
        self.policy = policy
        self.environment = environment
        let engine = BackupEngine(policy: policy, environment: environment)
        statePath = engine.repository.root + "/daemon-state.json"
        catalogPath = engine.catalogPath
        repository = engine.repository
        let lastRuns = Self.load(statePath)
        shared = Mutex(Shared(scheduler: Scheduler(entries: entries, lastRuns: lastRuns, now: environment.clock()), lastRuns: lastRuns))
        refreshCatalogView(now: environment.clock())
    }

    /// What the catalog said when it last changed: the status page's figures, /healthz's problems and the catalog
    /// series of /metrics. Read by the scheduler loop (each tick, when the catalog's files changed or a minute
    /// passed) and when a job ends, never by a request handler: a scrape or a page view opens no SQLite, creates
    /// nothing and sweeps nothing (#37 item 5). The catalog is opened read only and never created.
    struct CatalogView: Sendable {
        var key: String
        var at: Date
        var snapshot: StatusSnapshot
        /// The catalog's series for /metrics; nil with `metrics.textfile` (node_exporter serves them) or when the
        /// catalog cannot be read.
        var metrics: String?
    }

    /// The catalog's files (size and time) and the jobs finished: a different key means a re-read.
    private func catalogKey() -> String {
        var key = [catalogPath, catalogPath + "-wal", catalogPath + "-journal", RestoreMarkers.directory(repository)].map { path -> String in
            var info = stat()
            guard stat(path, &info) == 0 else { return "-" }
            return "\(info.st_size).\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        }.joined(separator: "/")
        key += "/\(shared.withLock { $0.finishedJobs })"
        return key
    }

    /// Re-reads the catalog when its files changed since the last read, or a minute passed (`force`: always).
    func refreshCatalogView(now: Date, force: Bool = false) {
        let key = catalogKey()
        if !force, let current = shared.withLock({ $0.view }), current.key == key, now >= current.at, now.timeIntervalSince(current.at) < 60 { return }
        let snapshot = StatusPage.snapshot(policy: policy, repository: repository, catalogPath: catalogPath, now: now)
        var metrics: String?
        if policy.metricsTextfile == nil, snapshot.problem == nil, let catalog = try? Catalog(readingOnly: catalogPath) {
            if let summaries = try? catalog.sourceSummaries() {
                metrics = MetricsExport.render(summaries, deployments: (try? catalog.deployments()) ?? [])
            }
            try? catalog.close()
        }
        shared.withLock { $0.view = CatalogView(key: key, at: now, snapshot: snapshot, metrics: metrics) }
    }

    func tick(now: Date) -> [SchedulerAction] {
        Metrics.Gauge(label: "kaleem_backup_daemon_last_tick_timestamp_seconds", factory: metricsFactory).record(now.timeIntervalSince1970)
        return shared.withLock {
            $0.lastTick = now
            return $0.scheduler.tick(now: now)
        }
    }

    /// Counts a wait of a scheduled job for the repository lock.
    func countLockWait(_ schedule: String) {
        Metrics.Counter(label: "kaleem_backup_daemon_lock_waits_total", dimensions: [("schedule", schedule)], factory: metricsFactory).increment()
    }

    /// Counts a finished scheduled job by outcome (`ok`, `failed`, `skipped`, `lost`).
    func countJob(_ schedule: String, outcome: String) {
        Metrics.Counter(label: "kaleem_backup_daemon_jobs_total", dimensions: [("schedule", schedule), ("outcome", outcome)],
                factory: metricsFactory).increment()
    }

    func finished(_ name: String, at date: Date) {
        let runs = shared.withLock {
            $0.scheduler.finished(schedule: name)
            $0.finishedJobs += 1
            $0.lastRuns[name] = date
            return $0.lastRuns
        }
        Self.save(runs, to: statePath)
        refreshCatalogView(now: environment.clock(), force: true)
    }

    func entry(_ name: String) -> ScheduleEntry? { shared.withLock { $0.scheduler.entry(named: name) } }

    /// When the schedule fires next (after the run in progress).
    func nextFire(_ name: String) -> Date? { shared.withLock { $0.scheduler.nextFire[name] } }

    /// Set when the loop stops: a job waiting for the lock gives up instead of holding the shutdown.
    var stopping: Bool {
        get { shared.withLock { $0.stopping } }
        set { shared.withLock { $0.stopping = newValue } }
    }

    /// 200 while the loop ticks (within 10 ticks, at least 5 s); the body lists the next run times.
    /// What is wrong with the backups themselves (a field of /healthz, never its HTTP status: a supervisor must
    /// not restart a healthy daemon because a source's server is down): a source whose newest good backup is older
    /// than 26 h (the BackupTooOld alert's limit) or missing, whose last run failed, or that has corrupt backups.
    func backupProblems(now: Date) -> [String] {
        guard let snapshot = shared.withLock({ $0.view?.snapshot }) else { return ["the daemon is starting"] }
        if let problem = snapshot.problem {
            // Read only: a probe never creates the catalog (the first job does).
            return [problem.hasPrefix("no backup yet") ? "no backup yet (no catalog)" : "the catalog cannot be read"]
        }
        var problems: [String] = []
        for r in snapshot.sources {
            // The age against this probe's clock, not the snapshot's.
            problems += StatusPage.healthProblems(r, rpoSeconds: r.newestGood.map { now.timeIntervalSince($0.createdAt) }, now: now) { "\(Int($0 / 3600)) h" }
        }
        return problems
    }

    func health(now: Date, tick: Double) -> (Bool, String) {
        let problems = backupProblems(now: now)
        return shared.withLock { state in
            let (scheduler, lastRuns, lastTick) = (state.scheduler, state.lastRuns, state.lastTick)
            let alive = lastTick.map { now.timeIntervalSince($0) < max(5, tick * 10) } ?? false
            let health = DaemonHealth(
                status: !alive ? "stalled" : problems.isEmpty ? "ok" : "degraded", problems: problems,
                running: scheduler.running, queued: scheduler.queue,
                schedules: scheduler.entries.map { e in
                    DaemonHealth.Schedule(name: e.name, run: e.run.rawValue,
                                          next: scheduler.nextFire[e.name].map { Timestamps.iso8601($0, in: e.zone) },
                                          last_run: lastRuns[e.name].map { Timestamps.iso8601($0, in: e.zone) })
                },
                last_tick: lastTick.map(Timestamps.iso8601))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let data = (try? encoder.encode(health)) ?? Data("{}".utf8)
            return (alive, String(decoding: data, as: UTF8.self))
        }
    }

    /// The status page, from the catalog view the loop keeps (`refreshCatalogView`); the ages are computed
    /// against `now` at every request.
    func statusPage(now: Date, fleet: (hosts: [FleetHostStatus], problem: String?, at: Date?)? = nil) -> String {
        var snapshot = shared.withLock { $0.view?.snapshot } ?? StatusSnapshot(problem: "the daemon is starting")
        for i in snapshot.sources.indices {
            snapshot.sources[i].rpoSeconds = snapshot.sources[i].newestGood.map { now.timeIntervalSince($0.createdAt) }
        }
        let (schedules, running) = shared.withLock { state in
            let (scheduler, lastRuns) = (state.scheduler, state.lastRuns)
            return (scheduler.entries.map { e in
                StatusPageSchedule(name: e.name, run: e.run.rawValue, sources: e.refresh?.sources ?? e.sources, next: scheduler.nextFire[e.name],
                                   lastRun: lastRuns[e.name], zone: e.zone)
            }, scheduler.running)
        }
        return StatusPage.render(snapshot, schedules: schedules, running: running, host: environment.host, now: now,
                                 fleet: fleet.map { StatusPage.Fleet(hosts: $0.hosts, problem: $0.problem, readAt: $0.at) })
    }

    /// What `/metrics` serves. The backup series (catalog) come from one place only, so that scraping both
    /// node_exporter and the daemon does not double them (#36): with `metrics.textfile` in the policy they are
    /// the textfile's (which every job rewrites) and `/metrics` serves only the daemon's own series
    /// (`kaleem_backup_daemon_*`); without a textfile, `/metrics` serves the catalog's too, read fresh for
    /// each change of the catalog by the scheduler loop (`refreshCatalogView`), not by the scrape.
    func metrics() -> String {
        let daemon = Self.withHelp(live.emitToString())
        if policy.metricsTextfile != nil { return daemon }
        return (shared.withLock { $0.view?.metrics } ?? "") + daemon
    }

    /// HELP lines for the metrics recorded through swift-metrics (its API has no help text; promtool wants one).
    static let help = [
        "kaleem_backup_daemon_jobs_total": "Scheduled jobs the daemon ran, by schedule and outcome (ok, failed, skipped, lost)",
        "kaleem_backup_daemon_lock_waits_total": "Times a scheduled job found the repository locked and waited to retry",
        "kaleem_backup_daemon_last_tick_timestamp_seconds": "Unix time of the scheduler loop's last tick",
    ]

    static func withHelp(_ text: String) -> String {
        var out: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), let name = line.split(separator: " ").dropFirst(2).first, let help = help[String(name)] {
                out.append(Substring("# HELP \(name) \(help)"))
            }
            out.append(line)
        }
        return out.joined(separator: "\n")
    }

    /// The state file: `{"last_runs": {"<schedule>": "<ISO 8601>"}}`.
    struct State: Codable { var last_runs: [String: String] }

    private static func load(_ path: String) -> [String: Date] {
        guard let data = FileManager.default.contents(atPath: path),
              let state = try? JSONDecoder().decode(State.self, from: data) else { return [:] }
        return state.last_runs.compactMapValues(Timestamps.parseISO8601)
    }

    private static func save(_ runs: [String: Date], to path: String) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        if let data = try? encoder.encode(State(last_runs: runs.mapValues(Timestamps.iso8601))) {
            try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
        }
    }
}

/// Basic auth of the status page: the password is read once from `password_file` when the daemon starts; a
/// request's credentials are compared in constant time (SHA-256 digests of `user:password`, compared whole).
struct StatusPageAuth: Sendable {
    let expected: [UInt8]

    static func load(_ auth: StatusAuth?, logger: Logger) throws -> StatusPageAuth? {
        guard let auth else { return nil }
        let path = auth.passwordFile
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size < 4096,
              let data = FileManager.default.contents(atPath: path) else {
            throw BackupFailure("daemon.status_auth.password_file \(path) cannot be read (missing, not a regular file, or larger than 4 KiB)",
                                exitStatus: .usage, hint: "write the password on the first line of the file (chmod 600), or remove daemon.status_auth to serve the page without auth on 127.0.0.1")
        }
        let password = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        guard !password.isEmpty else {
            throw BackupFailure("daemon.status_auth.password_file \(path) is empty: the status page would accept an empty password",
                                exitStatus: .usage, hint: "write the password on the first line of the file (chmod 600)")
        }
        if info.st_mode & 0o077 != 0 {
            logger.warning("the status page's password file is readable by others", metadata: [
                "path": "\(path)", "mode": "\(String(info.st_mode & 0o777, radix: 8))", "fix": "chmod 600 \(path)"])
        }
        return StatusPageAuth(expected: Array(SHA256.hash(data: Data((auth.user + ":" + password).utf8))))
    }

    /// `Authorization: Basic base64(user:password)`.
    func accepts(_ header: String?) -> Bool {
        guard let header, header.count < 4096 else { return false }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
              let decoded = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)) else { return false }
        let given = Array(SHA256.hash(data: decoded))
        var difference: UInt8 = 0
        for (a, b) in zip(given, expected) { difference |= a ^ b }
        return difference == 0 && given.count == expected.count
    }
}

/// The body of `GET /healthz`: every key always present (`running`, `last_tick` null when there is none);
/// a schedule's `next` and `last_run` only when known.
struct DaemonHealth: Encodable {
    struct Schedule: Encodable {
        var name: String
        var run: String
        var next: String?
        var last_run: String?
    }
    /// `ok`, `degraded` (the daemon runs, the backups have `problems`: HTTP 200), `stalled` (the scheduler loop
    /// stopped ticking: HTTP 503).
    var status: String
    var problems: [String]
    @JSONNullable var running: String?
    var queued: [String]
    var schedules: [Schedule]
    @JSONNullable var last_tick: String?

    enum CodingKeys: String, CodingKey { case status, problems, running, queued, schedules, last_tick }
}

/// The scheduler loop as a service. Jobs run on threads of their own (the engine blocks); the loop keeps
/// ticking meanwhile, so an occurrence that comes due during its own job is reported as skipped.
struct SchedulerService: Service {
    let state: DaemonState
    let tick: Double
    let clock: @Sendable () -> Date
    let logger: Logger

    func run() async throws {
        var jobs: [Task<Void, Never>] = []
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let now = clock()
            state.refreshCatalogView(now: now)
            if state.policy.daemonFleet {
                let (fleet, policy, environment) = (state.fleet, state.policy, state.environment)
                Task(executorPreference: EngineExecutor.shared) { await fleet.refreshIfStale(policy: policy, environment: environment) }
            }
            for action in state.tick(now: now) {
                switch action {
                case .run(let name):
                    jobs.append(Task(executorPreference: EngineExecutor.shared) { await runJob(name) })
                case .skip(let name, let reason):
                    logger.warning("scheduled run skipped", metadata: ["schedule": "\(name)", "reason": "\(reason)"])
                    state.countJob(name, outcome: "skipped")
                case .sleep:
                    break
                }
            }
            try? await Task.sleep(nanoseconds: UInt64(tick * 1e9))
        }
        logger.notice("stopping: waiting for the running job to finish")
        state.stopping = true
        for job in jobs { await job.value }
    }

    private func runJob(_ name: String) async {
        guard let entry = state.entry(name) else { return }
        let policy = state.policy
        let environment = state.environment
        let logger = self.logger
        logger.info("scheduled run started", metadata: ["schedule": "\(name)", "run": "\(entry.run.rawValue)"])
        let engine = BackupEngine(policy: policy, environment: environment)
        var outcome = "ok"
        // A run that meets the repository lock (a CLI command, a deploy's pre-deploy hook) waits for it, with
        // backoff, until its next occurrence would come: a lock held at 02:30 must not cost a day of RPO.
        var delay: Double?
        attempts: while true {
        do {
            switch entry.run {
            case .backup:
                let result = try await engine.backup(sources: entry.sources, tag: entry.tag ?? .nightly)
                if result.run.status != .ok { outcome = "failed" }
                logger.info("scheduled backup finished", metadata: ["schedule": "\(name)", "status": "\(result.run.status.rawValue)"])
            case .rotate:
                _ = try await engine.rotate(sources: entry.sources, dryRun: false)
            case .drill:
                let drills = try await engine.drill(sources: entry.sources, selector: .latest)
                if drills.contains(where: { $0.result == .failed || $0.result == .error }) { outcome = "failed" }
                logger.info("scheduled drill finished", metadata: ["schedule": "\(name)", "results": "\(drills.map(\.result.rawValue))"])
            case .refresh:
                guard let spec = entry.refresh else { break }
                let refreshed = try await engine.refresh(fromHost: spec.fromHost, sources: spec.sources, schedule: name, confirmed: true)
                if refreshed.result != "ok" { outcome = "failed" }
                logger.info("scheduled refresh finished", metadata: ["schedule": "\(name)", "from_host": "\(spec.fromHost)",
                                                                     "results": "\(refreshed.sources.map(\.result))"])
            }
            break attempts
        } catch let locked as LockedError {
            let now = clock()
            let next = state.nextFire(name)
            let wait = delay ?? max(1, min(30, (next.map { $0.timeIntervalSince(now) } ?? 120) / 8))
            if state.stopping || (next.map { now.addingTimeInterval(wait) >= $0 } ?? false) {
                outcome = "lost"
                let reason = "the repository stayed locked until the next occurrence: \(locked.description)"
                logger.error("scheduled run lost", metadata: ["schedule": "\(name)", "reason": "\(reason)"])
                await engine.notifyLostRun(schedule: name, reason: reason)
                break attempts
            }
            logger.warning("scheduled run waits for the repository lock", metadata: ["schedule": "\(name)", "holder": "\(locked.holder)",
                                                                                  "retry_in_seconds": "\(Int(wait))"])
            state.countLockWait(name)
            var slept = 0.0
            while slept < wait && !state.stopping {
                try? await Task.sleep(nanoseconds: 250_000_000)
                slept += 0.25
            }
            delay = min(wait * 2, 300)
        } catch {
            outcome = "failed"
            logger.error("scheduled run failed", metadata: ["schedule": "\(name)", "error": "\(engine.describe(error))"])
            break attempts
        }
        }
        // The catalog view first (finished re-reads it), then the count: a scrape that sees the job counted sees
        // what the job recorded.
        state.finished(name, at: clock())
        state.countJob(name, outcome: outcome)
    }
}
