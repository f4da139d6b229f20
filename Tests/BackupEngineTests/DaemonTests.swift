import BackupCatalog
import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

@Suite(.blockingThreads) struct DaemonTests {
    /// The daemon end to end: a schedule (every second, through the test-only interval) backs up a real Redis;
    /// /healthz and /metrics answer over HTTP; the metrics parse with promtool; SIGTERM stops it cleanly.
    @Test func schedulesServesAndStopsGracefully() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        try SampleData.fill(c, databases: [0], keysPerType: 3)
        c.close()
        let dir = TemporaryDirectory()
        let port = try FreePort.pick()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: """
        schedules:
          - { name: nightly, cron: "30 2 * * *", timezone: Asia/Riyadh, run: backup, tag: nightly }
        daemon: { listen: "127.0.0.1:\(port)" }
        """)
        let (process, wait) = try startProcess(try kaleemBinary(), ["daemon", "--policy", policy, "--test-interval", "1"],
                                               environment: cliEnvironment())
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        // /healthz answers 200 with the schedule and its next run.
        var health: (Int, String)?
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            health = httpGet("http://127.0.0.1:\(port)/healthz")
            if health?.0 == 200 { break }
            usleep(100_000)
        }
        #expect(health?.0 == 200, "\(health.map { "\($0)" } ?? "no answer")")
        let healthJSON = try #require(try JSONSerialization.jsonObject(with: Data((health?.1 ?? "{}").utf8)) as? [String: Any])
        // Before its first backup the daemon runs (200) but says the backups are not fine yet.
        #expect(["ok", "degraded"].contains(healthJSON["status"] as? String ?? ""), "\(healthJSON)")
        #expect((healthJSON["schedules"] as? [[String: Any]])?.first?["name"] as? String == "nightly")
        // Every top-level key is always there (null when empty), as the README documents.
        #expect(Set(healthJSON.keys) == ["status", "problems", "running", "queued", "schedules", "last_tick"])
        #expect((healthJSON["schedules"] as? [[String: Any]])?.first?["next"] is String)

        // A scheduled backup lands in the catalog (which the daemon creates with its first job).
        var good: [ArtifactInfo] = []
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: dir.file("repo/catalog.sqlite")),
               let found = try? Catalog(path: dir.file("repo/catalog.sqlite")).artifacts(status: .ok), !found.isEmpty {
                good = found
                break
            }
            usleep(200_000)
        }
        let catalog = try Catalog(path: dir.file("repo/catalog.sqlite"))
        #expect(!good.isEmpty)
        #expect(good.first?.tag == .nightly)

        // /metrics: Prometheus text that promtool accepts. The job is counted after its run ends (the catalog row
        // comes first): wait for the count itself, not only for the row.
        var scraped = httpGet("http://127.0.0.1:\(port)/metrics")
        while Date() < deadline, scraped?.1.contains("kaleem_backup_daemon_jobs_total{schedule=\"nightly\",outcome=\"ok\"}") != true {
            usleep(100_000)
            scraped = httpGet("http://127.0.0.1:\(port)/metrics")
        }
        let metrics = try #require(scraped)
        #expect(metrics.0 == 200)
        #expect(metrics.1.contains("kaleem_backup_last_success_timestamp_seconds{source=\"redis\"}"))
        #expect(metrics.1.contains("kaleem_backup_daemon_jobs_total{schedule=\"nightly\",outcome=\"ok\"}"))
        #expect(metrics.1.contains("kaleem_backup_daemon_last_tick_timestamp_seconds"))
        // After a good backup and an ok run, /healthz says ok with no problem.
        let after = try #require(httpGet("http://127.0.0.1:\(port)/healthz"))
        let afterJSON = try #require(try JSONSerialization.jsonObject(with: Data(after.1.utf8)) as? [String: Any])
        #expect(after.0 == 200 && afterJSON["status"] as? String == "ok" && (afterJSON["problems"] as? [Any])?.isEmpty == true, "\(after.1)")
        let file = dir.file("scraped.prom")
        try metrics.1.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try runProcess("/bin/sh", ["-c", "promtool check metrics < \"$0\"", file]).status == 0)

        // SIGTERM: it stops by itself, exit 0, nothing left half-done.
        kill(process.processIdentifier, SIGTERM)
        let stopDeadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < stopDeadline { usleep(100_000) }
        #expect(!process.isRunning, "the daemon did not stop on SIGTERM")
        let result = wait()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("daemon stopped"))
        #expect(try catalog.artifacts().allSatisfy { $0.status != .running })
        #expect(!filesUnder(dir.file("repo")).contains { $0.hasSuffix(".partial") })
        // The last run is remembered for catch-up after a restart.
        #expect(FileManager.default.fileExists(atPath: dir.file("repo/daemon-state.json")))
    }
}

@Suite(.blockingThreads) struct DaemonShutdownTests {
    /// SIGTERM while a scheduled backup is being written: the daemon lets the job finish (the artifact ends
    /// `ok`, nothing is left half-marked) and then exits 0. Logged with `--log-format json`: every stderr line is
    /// one JSON object.
    @Test func sigtermMidJobFinishesTheJob() throws {
        let redis = try RedisTestServer(settings: ["enable-debug-command yes"])
        let c = try redis.connect()
        guard case .simple("OK") = try c.command("DEBUG", "POPULATE", "600000", "key", "64") else { Issue.record("populate"); return }
        c.close()
        let dir = TemporaryDirectory()
        let port = try FreePort.pick()
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: """
        schedules:
          - { name: nightly, cron: "30 2 * * *", run: backup }
        daemon: { listen: "127.0.0.1:\(port)" }
        """)
        let (process, wait) = try startProcess(try kaleemBinary(), ["daemon", "--policy", policy, "--test-interval", "1", "--log-format", "json"],
                                               environment: cliEnvironment())
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(60)
        var midJob = false
        while Date() < deadline && process.isRunning {
            if let partial = filesUnder(dir.file("repo")).first(where: { $0.hasSuffix(".rdb.gz.partial") }),
               (FileManager.default.fileExists(atPath: dir.file("repo/" + partial))) {
                midJob = true
                kill(process.processIdentifier, SIGTERM)
                break
            }
            usleep(2_000)
        }
        #expect(midJob, "no backup was in progress to interrupt")
        while process.isRunning && Date() < deadline { usleep(50_000) }
        let result = wait()
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stderr.split(separator: "\n").map(String.init)
        let events = lines.compactMap { try? object($0) }
        #expect(!lines.isEmpty && events.count == lines.count, "not JSON lines: \(result.stderr)")
        #expect(events.allSatisfy { $0["time"] is String && $0["level"] is String && $0["label"] as? String == "kaleem-backup" })
        #expect(events.contains { ($0["message"] as? String)?.contains("waiting for the running job to finish") == true }, "\(result.stderr)")
        let catalog = try Catalog(path: dir.file("repo/catalog.sqlite"))
        let artifacts = try catalog.artifacts()
        #expect(!artifacts.isEmpty)
        #expect(artifacts.allSatisfy { $0.status == .ok }, "\(artifacts.map { ($0.status, $0.detail ?? "") })")
        #expect(!filesUnder(dir.file("repo")).contains { $0.hasSuffix(".partial") })
    }
}

@Suite(.blockingThreads) struct DaemonLockTests {
    /// A scheduled run that meets the repository lock (a CLI command holding it) waits and retries with backoff
    /// until the lock is free, within its interval: the run is not lost. The waits are counted in /metrics.
    /// A policy with one schedule and the daemon's port, and the repository's lock held by the test.
    static func lockedRepository(_ dir: TemporaryDirectory, redis: RedisTestServer, port: Int, extra: String = "") -> (policy: String, lock: Int32) {
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: """
        schedules:
          - { name: nightly, cron: "30 2 * * *", run: backup, tag: nightly }
        daemon: { listen: "127.0.0.1:\(port)" }
        \(extra)
        """)
        #expect(mkdir(dir.file("repo"), 0o700) == 0)
        let fd = open(dir.file("repo/.lock"), O_RDWR | O_CREAT, 0o600)
        #expect(fd >= 0 && flock(fd, LOCK_EX) == 0)
        return (policy, fd)
    }

    @Test func aScheduledRunWaitsForTheLock() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let port = try FreePort.pick()
        let (policy, fd) = Self.lockedRepository(dir, redis: redis, port: port)
        let held = Date()
        let (process, wait) = try startProcess(try kaleemBinary(), ["daemon", "--policy", policy, "--test-interval", "15"],
                                               environment: cliEnvironment())
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        // The first occurrence comes at ~15 s and finds the lock held; the lock is released as soon as the daemon
        // has counted a wait (polled, not timed: a loaded machine starts the daemon late). The retry must then
        // succeed before the next occurrence, 15 s on: the margin a loaded machine needs (8 s was once too little
        // when every core was busy).
        var scraped: (Int, String)?
        while Date().timeIntervalSince(held) < 90 {
            scraped = httpGet("http://127.0.0.1:\(port)/metrics")
            if scraped?.1.contains("kaleem_backup_daemon_lock_waits_total{schedule=\"nightly\"}") == true { break }
            usleep(200_000)
        }
        #expect(scraped?.1.contains("kaleem_backup_daemon_lock_waits_total{schedule=\"nightly\"}") == true, "\(scraped?.1 ?? "no answer")")
        flock(fd, LOCK_UN)
        close(fd)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, scraped?.1.contains("kaleem_backup_daemon_jobs_total{schedule=\"nightly\",outcome=\"ok\"}") != true {
            usleep(200_000)
            scraped = httpGet("http://127.0.0.1:\(port)/metrics")
        }
        #expect(scraped?.1.contains("kaleem_backup_daemon_jobs_total{schedule=\"nightly\",outcome=\"ok\"}") == true)
        #expect(scraped?.1.contains("outcome=\"lost\"") == false)
        kill(process.processIdentifier, SIGTERM)
        let result = wait()
        #expect(result.status == 0)
        #expect(result.stderr.contains("waits for the repository lock"), "\(result.stderr)")
    }
    /// Held past the next occurrence: the run is lost, counted (`outcome="lost"`) and sent to the webhook.
    @Test func aRunLockedOutUntilItsNextOccurrenceIsLostAndSaid() throws {
        let redis = try RedisTestServer()
        let hook = try HTTPRecorder()
        defer { hook.stop() }
        let dir = TemporaryDirectory()
        let port = try FreePort.pick()
        let (policy, fd) = Self.lockedRepository(dir, redis: redis, port: port, extra: "notify: { webhook: \"\(hook.url)\", on: [failure] }")
        defer { flock(fd, LOCK_UN); close(fd) }
        let (process, wait) = try startProcess(try kaleemBinary(), ["daemon", "--policy", policy, "--test-interval", "3"],
                                               environment: cliEnvironment())
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(30)
        var scraped = httpGet("http://127.0.0.1:\(port)/metrics")
        while Date() < deadline, scraped?.1.contains("kaleem_backup_daemon_jobs_total{schedule=\"nightly\",outcome=\"lost\"}") != true {
            usleep(200_000)
            scraped = httpGet("http://127.0.0.1:\(port)/metrics")
        }
        #expect(scraped?.1.contains("outcome=\"lost\"") == true, "\(scraped?.1 ?? "no answer")")
        while Date() < deadline, !hook.requests.contains(where: { String(decoding: $0.body, as: UTF8.self).contains("scheduled_run_lost") }) {
            usleep(200_000)
        }
        #expect(hook.requests.contains { String(decoding: $0.body, as: UTF8.self).contains("scheduled_run_lost") })
        kill(process.processIdentifier, SIGTERM)
        _ = wait()
    }
}
