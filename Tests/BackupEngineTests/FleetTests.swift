import ArtifactStore
import BackupCatalog
import BackupCore
@testable import BackupEngine
import Foundation
import Logging
import NIOCore
import OffsiteStore
import RedisBackup
import S3Client
import TestSupport
import Testing

/// Hosts that share one off-site bucket (#38): each under `<prefix>/<host>/`, never touching another's keys
/// (backups and off-site garbage collections at the same time), the old layout migrated, and `fleet status`
/// reading every host's catalog copy as untrusted input. Real redis-servers and a real S3 (moto).
@Suite(.blockingThreads) struct FleetTests {
    struct Host {
        var name: String
        var dir: TemporaryDirectory
        var policy: String
        var redis: RedisTestServer
        var uploads: String
    }

    /// A host: its own Redis and its own source bucket (`uploads-<host>`), the shared bucket `fleet` under the
    /// prefix `kaleem`, rotation keeping one backup (so every run removes the previous one and collects its blobs
    /// off-site).
    func makeHost(_ name: String, s3: S3TestServer, client: S3Client, prefix: String = "kaleem", extra: String = "") async throws -> Host {
        let redis = try RedisTestServer(settings: ["enable-debug-command yes"]) // DEBUG DIGEST compares restores
        let c = try redis.connect()
        try SampleData.fill(c, databases: [0], keysPerType: 4)
        c.close()
        let uploads = "uploads-\(name)"
        try await client.createBucket(uploads)
        try await putAll(client, [uploads: ["a.txt": Array("a of \(name)".utf8), "b/c.txt": Array("c of \(name)".utf8)]])
        let dir = TemporaryDirectory()
        FileManager.default.createFile(atPath: dir.file("secret"), contents: Data(s3.secretKey.utf8), attributes: [.posixPermissions: 0o600])
        let text = """
        host: \(name)
        repository:
          path: \(dir.file("repo"))
          offsite: { endpoint: "\(s3.endpoint)", bucket: fleet, prefix: \(prefix), access_key: \(s3.accessKey), secret_key_file: \(dir.file("secret")) }
        sources:
          redis: { kind: redis, url: "\(redis.url)" }
          minio: { kind: s3, endpoint: "\(s3.endpoint)", buckets: [\(uploads)], access_key: \(s3.accessKey), secret_key_file: \(dir.file("secret")) }
        retention: { daily: 1, keep_last: 1 }
        \(extra)
        """
        FileManager.default.createFile(atPath: dir.file("policy.yml"), contents: Data(text.utf8))
        return Host(name: name, dir: dir, policy: dir.file("policy.yml"), redis: redis, uploads: uploads)
    }

    func keys(_ client: S3Client, under prefix: String = "") async throws -> [String: String] {
        Dictionary(uniqueKeysWithValues: try await client.listObjects(bucket: "fleet", prefix: prefix).map { ($0.key, $0.etag) })
    }

    /// Changes the host's data so that the next backup differs (and its rotation frees blobs of the old one).
    func change(_ host: Host, round: Int, client: S3Client) async throws {
        let c = try host.redis.connect()
        _ = try c.command("SET", "round", "\(round)")
        c.close()
        try await putAll(client, [host.uploads: ["a.txt": Array("a of \(host.name), round \(round)".utf8)]])
    }

    @Test func twoHostsShareABucketAndNeverTouchEachOthersKeys() async throws {
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        try await client.createBucket("fleet")
        let a = try await makeHost("prod", s3: s3, client: client)
        let b = try await makeHost("staging", s3: s3, client: client)

        // Three rounds, both hosts' backups started at once: from the second on, each run's rotation removes the
        // previous backups here and off-site, and collects the bucket snapshot's unused blobs off-site.
        for round in 0..<3 {
            if round > 0 {
                try await change(a, round: round, client: client)
                try await change(b, round: round, client: client)
            }
            let (_, waitA) = try startProcess(try kaleemBinary(), ["backup", "--policy", a.policy, "--json"], environment: cliEnvironment())
            let (_, waitB) = try startProcess(try kaleemBinary(), ["backup", "--policy", b.policy, "--json"], environment: cliEnvironment())
            let ra = waitA(), rb = waitB()
            #expect(ra.status == 0, "prod round \(round): \(ra.stderr)")
            #expect(rb.status == 0, "staging round \(round): \(rb.stderr)")
            for r in [ra, rb] {
                let artifacts = try #require(try object(r.stdout)["artifacts"] as? [[String: Any]])
                #expect(artifacts.count == 2 && artifacts.allSatisfy { $0["offsite"] as? String == "ok" }, "\(r.stdout)")
            }
        }
        // Every key is under one host's directory; each host's live backups are all there, and nothing else of it.
        let all = try await keys(client)
        #expect(all.keys.allSatisfy { $0.hasPrefix("kaleem/prod/") || $0.hasPrefix("kaleem/staging/") }, "\(all.keys.sorted())")
        for host in [a, b] {
            let listed = try array(try runCLI(["list", "--policy", host.policy, "--json"]).stdout)
            let live = listed.filter { $0["status"] as? String == "ok" }
            #expect(live.count == 2, "rotation kept one backup per source: \(listed.count)")
            for artifact in live { #expect(all["kaleem/\(host.name)/" + (artifact["path"] as! String)] != nil) }
            #expect(all["kaleem/\(host.name)/catalog/catalog.sqlite"] != nil)
            // Only one backup per source is left under the host's directory: the rotation removed the others there.
            let manifests = all.keys.filter { $0.hasPrefix("kaleem/\(host.name)/") && $0.hasSuffix(".manifest.json") }
            #expect(manifests.count == 2, "\(manifests)")
            let verify = try runCLI(["verify", "--offsite", "--all", "--policy", host.policy, "--json"])
            #expect(verify.status == 0, "\(host.name): \(verify.stdout) \(verify.stderr)")
        }

        // One host alone, with a rotation and an off-site garbage collection: the other's keys, every byte the same.
        let stagingBefore = try await keys(client, under: "kaleem/staging/")
        let prodBefore = try await keys(client, under: "kaleem/prod/")
        try await change(a, round: 9, client: client)
        let alone = try runCLI(["backup", "--policy", a.policy, "--json"])
        #expect(alone.status == 0, "\(alone.stderr)")
        let rotation = try #require(try object(alone.stdout)["rotation"] as? [String: Any])
        let removed = try #require(rotation["remove"] as? [[String: Any]])
        #expect(removed.count == 2 && removed.allSatisfy { $0["removed"] as? Bool == true }, "the run rotated: \(alone.stdout)")
        #expect(try await keys(client, under: "kaleem/staging/") == stagingBefore)
        let prodAfter = try await keys(client, under: "kaleem/prod/")
        #expect(!Set(prodBefore.keys).subtracting(prodAfter.keys).isEmpty, "prod's own old files were removed off-site")

        // The view of both hosts, from either: read only (nothing in the bucket changes).
        let status = try runCLI(["fleet", "status", "--policy", b.policy, "--json"])
        #expect(status.status == 0, "\(status.stdout) \(status.stderr)")
        let hosts = try array(status.stdout)
        #expect(hosts.map { $0["host"] as? String } == ["prod", "staging"])
        #expect(hosts.map { $0["this_host"] as? Bool } == [false, true])
        for h in hosts {
            let sources = try #require(h["sources"] as? [[String: Any]])
            #expect(sources.map { $0["source"] as? String } == ["minio", "redis"])
            #expect(sources.allSatisfy { $0["newest_good_at"] is String && $0["corrupt"] as? Int == 0 })
            #expect((h["copy_age_seconds"] as? Double).map { $0 < 3600 } == true)
            #expect((h["problems"] as? [Any])?.isEmpty == true)
        }
        let table = try runCLI(["fleet", "status", "--policy", a.policy])
        #expect(table.status == 0 && table.stdout.contains("prod (this host)") && table.stdout.contains("staging"), "\(table.stdout)")
        #expect(try await keys(client, under: "kaleem/staging/") == stagingBefore)
    }

    /// A copy written before hosts had directories (`<prefix>/catalog/…`, `<prefix>/<source>/…`) is reported by
    /// the next run and moved by `offsite migrate`: nothing is left in the old place, everything verifies in the
    /// new one, and the old backups are still restorable from it.
    @Test func anOldLayoutCopyIsDetectedAndMigrated() async throws {
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        try await client.createBucket("fleet")
        // The old layout of prefix `kaleem` is exactly what host `kaleem` writes under an empty prefix.
        let old = try await makeHost("kaleem", s3: s3, client: client, prefix: "\"\"")
        let first = try runCLI(["backup", "--policy", old.policy, "--json"])
        #expect(first.status == 0, "\(first.stderr)")
        let oldKeys = try await keys(client)
        #expect(oldKeys["kaleem/catalog/catalog.sqlite"] != nil && oldKeys.keys.contains { $0.hasPrefix("kaleem/redis/") })

        // The same repository, now as host prod under the prefix kaleem.
        let text = try String(contentsOfFile: old.policy, encoding: .utf8)
            .replacingOccurrences(of: "host: kaleem", with: "host: prod")
            .replacingOccurrences(of: "prefix: \"\"", with: "prefix: kaleem")
        try text.write(toFile: old.policy, atomically: true, encoding: .utf8)
        try await change(old, round: 1, client: client)
        let second = try runCLI(["backup", "--policy", old.policy])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stderr.contains("old layout") && second.stderr.contains("offsite migrate"), "\(second.stderr)")

        let refused = try runCLI(["offsite", "migrate", "--policy", old.policy])
        #expect(refused.status == 2 && refused.stderr.contains("--yes"), "\(refused.stderr)")
        let dry = try runCLI(["offsite", "migrate", "--dry-run", "--policy", old.policy, "--json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let planned = try #require(try object(dry.stdout)["files"] as? Int)
        let dryRemoved = try object(dry.stdout)["removed"] as? Int
        #expect(planned > 0 && dryRemoved == 0)
        let before = try await keys(client)
        #expect(before.keys.contains("kaleem/catalog/catalog.sqlite"), "a dry run moves nothing")

        let moved = try runCLI(["offsite", "migrate", "--yes", "--policy", old.policy, "--json"])
        #expect(moved.status == 0, "\(moved.stderr)")
        #expect(try object(moved.stdout)["removed"] as? Int == planned)
        // The first run's backups were rotated away by the second: their old files are removed, not carried over;
        // and the host's newer catalog copy is not replaced by the old one.
        #expect((try object(moved.stdout)["skipped"] as? Int ?? 0) >= 2, "\(moved.stdout)")
        let firstIDs = try #require(try object(first.stdout)["artifacts"] as? [[String: Any]]).map { $0["id"] as! String }
        let after = try await keys(client)
        #expect(after.keys.allSatisfy { $0.hasPrefix("kaleem/prod/") }, "\(after.keys.sorted())")
        #expect(!after.keys.contains { key in firstIDs.contains { key.contains($0) } }, "\(after.keys.sorted())")
        let verify = try runCLI(["verify", "--offsite", "--all", "--policy", old.policy, "--json"])
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        // Again: nothing to do. And the next run says nothing of the old layout.
        let again = try runCLI(["offsite", "migrate", "--yes", "--policy", old.policy, "--json"])
        #expect(try object(again.stdout)["files"] as? Int == 0)
        try await change(old, round: 2, client: client)
        let third = try runCLI(["backup", "--policy", old.policy])
        #expect(third.status == 0 && !third.stderr.contains("old layout"), "\(third.stderr)")
        #expect(try await keys(client).keys.allSatisfy { $0.hasPrefix("kaleem/prod/") })
    }

    @Test func hostNamesAreSafePathSegments() throws {
        let dir = TemporaryDirectory()
        for bad in ["../x", "a/b", "catalog", "packages", "2026-12-05", ".hidden", "-x", "", String(repeating: "h", count: 65)] {
            let path = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1", extra: "host: \"\(bad)\"")
            let r = try runCLI(["policy", "check", "--policy", path])
            #expect(r.status == 2 && r.stderr.contains("host"), "\(bad): \(r.stderr)")
        }
        #expect(HostName.isValid("prod") && HostName.isValid("staging-2") && HostName.isValid("web1.example.com"))
    }

    /// A foreign catalog copy is untrusted: garbage (even with a matching sha256), bytes changed after upload, and
    /// a host that stopped copying are each reported for their host, with the exit status; the others still shown.
    @Test func fleetStatusReportsCorruptAndStaleCopies() async throws {
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        try await client.createBucket("fleet")
        let a = try await makeHost("prod", s3: s3, client: client)
        let b = try await makeHost("staging", s3: s3, client: client)
        for h in [a, b] { #expect(try runCLI(["backup", "--policy", h.policy]).status == 0) }
        #expect(try runCLI(["fleet", "status", "--policy", a.policy]).status == 0)

        // Garbage uploaded as staging's copy by someone with write access (its sha256 recorded to match).
        let garbage = b.dir.file("garbage")
        try Data(repeating: 0x5a, count: 70_000).write(to: URL(fileURLWithPath: garbage))
        let root = S3Repository(client: try s3.client(), bucket: "fleet", prefix: "kaleem/")
        defer { root.close() }
        try await root.put(garbage, as: "staging/catalog/catalog.sqlite", sha256: try sha256OfFile(garbage))
        var r = try runCLI(["fleet", "status", "--policy", a.policy, "--json"])
        #expect(r.status == 4, "\(r.stdout) \(r.stderr)")
        var hosts = try array(r.stdout)
        #expect(hosts.count == 2)
        #expect(hosts[0]["host"] as? String == "prod" && (hosts[0]["sources"] as? [Any])?.count == 2)
        #expect(hosts[1]["copy_corrupt"] as? Bool == true && (hosts[1]["copy_error"] as? String ?? "").contains("staging/catalog/catalog.sqlite"))
        #expect(r.stderr.contains("FLEET: staging: catalog copy unreadable"))

        // Bytes changed behind the upload (the recorded sha256 is the good copy's).
        let good = b.dir.file("repo/catalog-copy/catalog.sqlite")
        try await root.put(good, as: "staging/catalog/catalog.sqlite", sha256: try sha256OfFile(good))
        #expect(try runCLI(["fleet", "status", "--policy", a.policy]).status == 0)
        var bytes = try await getBytes(client, "fleet", "kaleem/staging/catalog/catalog.sqlite")
        bytes[bytes.count / 2] ^= 0xff
        let head = try #require(try await client.headObject(bucket: "fleet", key: "kaleem/staging/catalog/catalog.sqlite"))
        _ = try await client.putObject(bucket: "fleet", key: "kaleem/staging/catalog/catalog.sqlite", bytes: ByteBuffer(bytes: bytes),
                                       metadata: head.metadata)
        r = try runCLI(["fleet", "status", "--policy", a.policy, "--json"])
        #expect(r.status == 4, "\(r.stdout) \(r.stderr)")
        hosts = try array(r.stdout)
        #expect((hosts[1]["copy_error"] as? String ?? "").contains("sha256"), "\(hosts[1])")

        // A copy holding a view (it could answer another row at each read) or a trigger, its sha256 right: refused
        // before it is opened as a catalog. A copy without a recorded sha256 was not uploaded by us: refused.
        let viewed = b.dir.file("viewed.sqlite")
        try? FileManager.default.removeItem(atPath: viewed)
        try FileManager.default.copyItem(atPath: good, toPath: viewed)
        let sqlite = try runProcess("/usr/bin/python3", ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('CREATE VIEW sneaky AS SELECT 1'); c.commit()", viewed])
        #expect(sqlite.status == 0, "\(sqlite.stderr)")
        try await root.put(viewed, as: "staging/catalog/catalog.sqlite", sha256: try sha256OfFile(viewed))
        r = try runCLI(["fleet", "status", "--policy", a.policy, "--json"])
        let viewError = try array(r.stdout)[1]["copy_error"] as? String ?? ""
        #expect(r.status == 4 && viewError.contains("view sneaky"), "\(r.stdout)")
        _ = try await client.putObject(bucket: "fleet", key: "kaleem/staging/catalog/catalog.sqlite",
                                       bytes: ByteBuffer(bytes: try Array(Data(contentsOf: URL(fileURLWithPath: good)))), metadata: [:])
        r = try runCLI(["fleet", "status", "--policy", a.policy, "--json"])
        let shaError = try array(r.stdout)[1]["copy_error"] as? String ?? ""
        #expect(r.status == 4 && shaError.contains("no recorded sha256"), "\(r.stdout)")

        // A host that stopped copying: seen two days later, both copies are stale (exit 1), each said so.
        try await root.put(good, as: "staging/catalog/catalog.sqlite", sha256: try sha256OfFile(good))
        let later = Date().addingTimeInterval(2 * 86_400)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let policy = try PolicyLoader.load(path: a.policy, environment: [:])
        let report = try await EngineExecutor.run {
            try await BackupEngine(policy: policy, environment: EngineEnvironment(variables: [:], clock: { later }, host: "vm", logger: logger))
                .fleetStatus(limits: FleetLimits())
        }
        #expect(report.count == 2)
        for h in report {
            #expect(h.copyError == nil)
            #expect(h.problems.contains { $0.contains("\(h.host): catalog copy is") && $0.contains("stopped copying") }, "\(h.problems)")
            #expect(h.problems.contains { $0.contains("newest good backup is") })
        }
    }

    /// Staging restores production's Redis by `--from-host prod`: prod's copy is read (never written), the backup
    /// verified, the restore refused without --yes into staging's non-empty server, then done; a drill of prod's
    /// backup runs from staging; staging's own catalog and prod's directory are as they were.
    @Test func stagingRestoresProductionsRedisFromItsOffsiteCopy() async throws {
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        try await client.createBucket("fleet")
        let prod = try await makeHost("prod", s3: s3, client: client)
        let staging = try await makeHost("staging", s3: s3, client: client)
        let p = try prod.redis.connect()
        defer { p.close() }
        _ = try p.command("SET", "only-in-prod", "customer data")
        let original = try RedisRestoreTests.digest(p)
        #expect(try runCLI(["backup", "--policy", prod.policy, "--source", "redis"]).status == 0)
        #expect(try runCLI(["backup", "--policy", staging.policy]).status == 0)
        let prodKeys = try await keys(client, under: "kaleem/prod/")
        let stagingList = try runCLI(["list", "--policy", staging.policy, "--json"]).stdout

        let s = try staging.redis.connect()
        defer { s.close() }
        let stagingBefore = try RedisRestoreTests.digest(s)
        #expect(stagingBefore != original)
        let refused = try runCLI(["restore", "redis", "--latest", "--from-host", "prod", "--to-url", staging.redis.url, "--policy", staging.policy])
        #expect(refused.status == 2 && refused.stderr.contains("--yes"), "\(refused.stdout) \(refused.stderr)")
        #expect(try RedisRestoreTests.digest(s) == stagingBefore)

        let restored = try runCLI(["restore", "redis", "--latest", "--from-host", "prod", "--to-url", staging.redis.url, "--yes",
                                   "--policy", staging.policy, "--json"])
        #expect(restored.status == 0, "\(restored.stdout) \(restored.stderr)")
        #expect(try RedisRestoreTests.digest(s) == original)
        guard case .bulk(let value?) = try s.command("GET", "only-in-prod") else { Issue.record("not restored"); return }
        #expect(String(decoding: value, as: UTF8.self) == "customer data")

        let drill = try runCLI(["drill", "--from-host", "prod", "--source", "redis", "--policy", staging.policy, "--json"])
        #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
        #expect(try array(drill.stdout).first?["result"] as? String == "passed", "\(drill.stdout)")

        // Read only: prod's directory is byte for byte what it was; staging's catalog did not adopt prod's backup.
        #expect(try await keys(client, under: "kaleem/prod/") == prodKeys)
        #expect(try runCLI(["list", "--policy", staging.policy, "--json"]).stdout == stagingList)
        // The restore and the drill are in staging's catalog, naming prod and prod's backup, apart from its own.
        let prodBackup = try array(try runCLI(["list", "--policy", prod.policy, "--source", "redis", "--json"]).stdout).first?["id"] as? String
        do {
            let catalog = try Catalog(path: staging.dir.file("repo/catalog.sqlite"))
            defer { try? catalog.close() }
            let drills = try catalog.fromHostDrills(fromHost: "prod")
            #expect(drills.count == 1 && drills.first?.purpose == "drill" && drills.first?.drill.artifactID == prodBackup && drills.first?.drill.result == .passed)
            let restores = try catalog.fromHostRestores(fromHost: "prod")
            #expect(restores.map(\.restore.outcome) == ["ok"] && restores.first?.restore.artifactID == prodBackup)
            #expect(try catalog.drills().isEmpty && catalog.restores(source: "redis").isEmpty)
        }

        // A host that is not there, a name that is not a host name, and this host itself: clear refusals.
        let missing = try runCLI(["restore", "redis", "--latest", "--from-host", "qa", "--to-url", staging.redis.url, "--yes", "--policy", staging.policy])
        #expect(missing.status == 1 && missing.stderr.contains("qa/catalog/catalog.sqlite"), "\(missing.stderr)")
        let bad = try runCLI(["drill", "--from-host", "../prod", "--policy", staging.policy])
        #expect(bad.status == 2, "\(bad.stderr)")
        let me = try runCLI(["drill", "--from-host", "staging", "--policy", staging.policy])
        #expect(me.status == 2 && me.stderr.contains("this host"), "\(me.stderr)")
    }

    /// `daemon: { fleet: true }`: /metrics has every host's status with a `host` label, text promtool accepts,
    /// and a corrupt copy is `readable 0` for its host only.
    @Test func theDaemonExportsEveryHostWithAHostLabel() async throws {
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        try await client.createBucket("fleet")
        let port = try FreePort.pick()
        let a = try await makeHost("prod", s3: s3, client: client, extra: """
        schedules:
          - { name: nightly, cron: "30 2 1 1 *", run: backup, tag: nightly }
        daemon: { listen: "127.0.0.1:\(port)", fleet: true }
        """)
        let b = try await makeHost("staging", s3: s3, client: client)
        for h in [a, b] { #expect(try runCLI(["backup", "--policy", h.policy]).status == 0) }
        // staging's copy damaged: staging is reported unreadable, prod as it is.
        let bad = b.dir.file("bad")
        try Data(repeating: 1, count: 4096).write(to: URL(fileURLWithPath: bad))
        let root = S3Repository(client: try s3.client(), bucket: "fleet", prefix: "kaleem/")
        defer { root.close() }
        try await root.put(bad, as: "staging/catalog/catalog.sqlite", sha256: try sha256OfFile(bad))

        let (process, wait) = try startProcess(try kaleemBinary(), ["daemon", "--policy", a.policy], environment: cliEnvironment())
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        var scraped: (Int, String)?
        // The loop reads the bucket when the daemon starts; until that read ends /metrics has no fleet series.
        for _ in 0..<300 {
            scraped = httpGet("http://127.0.0.1:\(port)/metrics", timeout: 30)
            if scraped?.0 == 200, scraped?.1.contains("kaleem_backup_fleet_up") == true { break }
            usleep(100_000)
        }
        let text = try #require(scraped?.1)
        #expect(text.contains("kaleem_backup_fleet_up 1"), "\(text)")
        #expect(text.contains("kaleem_backup_fleet_catalog_copy_readable{host=\"prod\"} 1"))
        #expect(text.contains("kaleem_backup_fleet_catalog_copy_readable{host=\"staging\"} 0"))
        #expect(text.contains("kaleem_backup_fleet_catalog_copy_timestamp_seconds{host=\"prod\"}"))
        #expect(text.contains("kaleem_backup_fleet_last_success_timestamp_seconds{host=\"prod\",source=\"redis\"}"))
        #expect(text.contains("kaleem_backup_fleet_corrupt_artifacts{host=\"prod\",source=\"minio\"} 0"))
        #expect(!text.contains("source=\"redis\",host=\"staging\"") && !text.contains("{host=\"staging\",source="))
        let file = a.dir.file("metrics.txt")
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let check = try runProcess("/bin/sh", ["-c", "promtool check metrics < \"$0\"", file])
        #expect(check.status == 0, "\(check.stdout) \(check.stderr)")
        // The status page's fleet panel: every host, staging's copy unreadable, prod's sources with their ages.
        let page = try #require(httpGet("http://127.0.0.1:\(port)/", timeout: 30))
        #expect(page.0 == 200 && page.1.contains("<h2>Fleet</h2>"), "\(page.1)")
        #expect(page.1.contains("data-host=\"prod\"") && page.1.contains("data-host=\"staging\""))
        #expect(page.1.contains("data-readable=\"false\" class=\"bad\">unreadable"))
        #expect(page.1.contains("<dd data-source=\"redis\"><span data-field=\"age\" data-late=\"false\""))
        #expect(!page.1.lowercased().contains("<script"))
        kill(process.processIdentifier, SIGTERM)
        #expect(wait().status == 0)
    }

    /// The fleet panel escapes what comes from the bucket (an error quoting a peer, a receipt's detail) and marks a
    /// stale copy and a failed refresh.
    @Test func theFleetPanelEscapesWhatTheBucketSays() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        var prod = FleetHostStatus(host: "prod", isSelf: false, copyTime: now.addingTimeInterval(-30 * 3600), copyAgeSeconds: 30 * 3600, copyBytes: 10)
        prod.sources = [FleetSourceStatus(source: "redis", newestGood: now.addingTimeInterval(-3600), rpoSeconds: 3600, lastRunOK: true,
                                          lastDrill: now.addingTimeInterval(-7200), lastDrillPassed: true, rtoSeconds: 2.5, corrupt: 0)]
        let refresh = RefreshResult(schema: RefreshResult.schemaName, id: "refresh-20261205T000000Z-000000", host: "staging", from_host: "prod",
                                    schedule: nil, started_at: "2026-12-05T00:00:00.000Z", finished_at: "2026-12-05T00:00:02.000Z", result: "failed",
                                    sources: [.init(source: "redis", kind: "redis", artifact: "x", backup_created_at: nil, drill_id: "d", result: "error",
                                                    duration_seconds: 2, detail: "<script>alert(1)</script>")],
                                    receipt: nil, receipt_error: nil)
        prod.refreshedBy = [FleetRefreshSeen(by: "staging", receipt: "staging/refreshes/prod/x.json", refresh: refresh, error: nil)]
        var staging = FleetHostStatus(host: "staging", isSelf: true, copyTime: nil, copyAgeSeconds: nil, copyBytes: nil)
        staging.copyError = "refused: <img src=x onerror=alert(1)> & \"quoted\""
        let html = StatusPage.fleetPanel(StatusPage.Fleet(hosts: [prod, staging], problem: nil, readAt: now), now: now)
        #expect(!html.contains("<script") && !html.contains("<img"))
        #expect(html.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot;"), "\(html)")
        #expect(html.contains("data-stale=\"true\" class=\"bad\">30.0 h old — STALE"))
        #expect(html.contains("data-by=\"staging\" class=\"bad\">refreshed into staging: error"))
        #expect(html.contains("drill passed") && html.contains("RTO 2.5 s"))
        let unreadable = StatusPage.fleetPanel(StatusPage.Fleet(hosts: [], problem: "<b>denied</b>", readAt: nil), now: now)
        #expect(unreadable.contains("&lt;b&gt;denied&lt;/b&gt;") && !unreadable.contains("<b>"))
    }

    /// Staging refreshed from production (#38 item 4): refused without --yes, from itself and without the policy's
    /// refresh: entry; then by the CLI and by the daemon's schedule: production's data in staging's live
    /// redis-server, the restore and a drill of production's backup recorded in staging's catalog (not as staging's
    /// own), a receipt under staging's own directory that `fleet status` shows for production, and a corrupt and an
    /// oversized receipt refused.
    @Test func stagingIsRefreshedFromProductionByTheCommandAndTheSchedule() async throws {
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        try await client.createBucket("fleet")
        let port = try FreePort.pick()
        // The scrub: masks a customer's value in the scratch server (its password on stdin, never in argv or env).
        let hooks = TemporaryDirectory()
        let script = hooks.file("mask.sh")
        try """
        read -r password
        REDISCLI_AUTH="$password" exec redis-cli -h "$1" -p "$2" SET only-in-prod masked
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let prod = try await makeHost("prod", s3: s3, client: client)
        let staging = try await makeHost("staging", s3: s3, client: client, extra: """
        schedules:
          - { name: staging-refresh, cron: "30 4 1 1 *", refresh: { from_host: prod, sources: [redis], scrub: { redis: { command: [/bin/sh, "\(script)", "{host}", "{port}"] } } } }
        daemon: { listen: "127.0.0.1:\(port)" }
        """)
        let p = try prod.redis.connect()
        defer { p.close() }
        _ = try p.command("SET", "only-in-prod", "customer data")
        let original = try RedisRestoreTests.digest(p)
        let prodKeyCount = try p.command("DBSIZE")
        #expect(try runCLI(["backup", "--policy", prod.policy, "--source", "redis"]).status == 0)
        #expect(try runCLI(["backup", "--policy", staging.policy]).status == 0)
        func value(_ c: RESPConnection, _ key: String) throws -> String? {
            guard case .bulk(let v?) = try c.command("GET", key) else { return nil }
            return String(decoding: v, as: UTF8.self)
        }
        let prodBackup = try #require(try array(try runCLI(["list", "--policy", prod.policy, "--source", "redis", "--json"]).stdout).first?["id"] as? String)
        let prodKeys = try await keys(client, under: "kaleem/prod/")

        let checked = try runCLI(["policy", "check", "--policy", staging.policy])
        #expect(checked.stdout.contains("schedule staging-refresh: refresh redis from host prod"), "\(checked.stdout) \(checked.stderr)")

        let s = try staging.redis.connect()
        defer { s.close() }
        let stagingBefore = try RedisRestoreTests.digest(s)
        #expect(stagingBefore != original)
        let noYes = try runCLI(["refresh", "--from-host", "prod", "--policy", staging.policy])
        #expect(noYes.status == 2 && noYes.stderr.contains("--yes"), "\(noYes.stderr)")
        let itself = try runCLI(["refresh", "--from-host", "staging", "--yes", "--policy", staging.policy])
        #expect(itself.status == 2 && itself.stderr.contains("itself"), "\(itself.stderr)")
        let noEntry = try runCLI(["refresh", "--from-host", "staging", "--yes", "--policy", prod.policy])
        #expect(noEntry.status == 2 && noEntry.stderr.contains("no schedule"), "\(noEntry.stderr)")
        let notNamed = try runCLI(["refresh", "--from-host", "prod", "--source", "minio", "--yes", "--policy", staging.policy])
        #expect(notNamed.status == 2, "\(notNamed.stderr)")
        // A refresh takes the repository lock, as a backup does: not while another command holds it (exit 11),
        // and the live store is left alone.
        let held = try RunLock(path: LocalRepository(root: staging.dir.file("repo")).lockPath, purpose: "test")
        let locked = try runCLI(["refresh", "--from-host", "prod", "--yes", "--policy", staging.policy])
        held.release()
        #expect(locked.status == 11, "\(locked.stdout) \(locked.stderr)")
        #expect(try RedisRestoreTests.digest(s) == stagingBefore)
        #expect(try RedisRestoreTests.digest(s) == stagingBefore)

        // By the command: production's data in staging's live server, scrubbed before the live server took it,
        // counts checked by the restore.
        let done = try runCLI(["refresh", "--from-host", "prod", "--yes", "--policy", staging.policy, "--json"])
        #expect(done.status == 0, "\(done.stdout) \(done.stderr)")
        #expect(try RedisRestoreTests.digest(s) != original)
        #expect(try value(s, "only-in-prod") == "masked")
        #expect(try s.command("DBSIZE") == prodKeyCount)
        #expect(try value(p, "only-in-prod") == "customer data")
        let result = try object(done.stdout)
        #expect(result["result"] as? String == "ok" && result["from_host"] as? String == "prod" && result["host"] as? String == "staging")
        let row = try #require((result["sources"] as? [[String: Any]])?.first)
        #expect(row["source"] as? String == "redis" && row["result"] as? String == "passed" && row["artifact"] as? String == prodBackup, "\(row)")
        let receipt = try #require(result["receipt"] as? String)
        #expect(receipt.hasPrefix("refreshes/prod/refresh-") && receipt.hasSuffix(".json"))
        #expect(try await keys(client, under: "kaleem/staging/").keys.contains("kaleem/staging/" + receipt))
        #expect(try await keys(client, under: "kaleem/prod/") == prodKeys) // nothing written to production's directory

        // In staging's catalog as a drill and a restore of production's backup, never as staging's own.
        let catalogPath = staging.dir.file("repo/catalog.sqlite")
        do {
            let catalog = try Catalog(path: catalogPath)
            defer { try? catalog.close() }
            let drills = try catalog.fromHostDrills(fromHost: "prod")
            #expect(drills.count == 1 && drills.first?.purpose == "refresh" && drills.first?.drill.artifactID == prodBackup
                    && drills.first?.drill.result == .passed && (drills.first?.drill.durationSeconds ?? 0) > 0)
            #expect(try catalog.drills().isEmpty)
            let restores = try catalog.fromHostRestores(fromHost: "prod")
            #expect(restores.count == 1 && restores.first?.restore.artifactID == prodBackup && restores.first?.restore.outcome == "ok")
        }
        let status = try array(try runCLI(["status", "--policy", staging.policy, "--json"]).stdout)
        #expect(status.first { $0["source"] as? String == "redis" }?["last_drill"] is NSNull, "\(status)")

        // fleet status shows production's last refresh, done by staging, from staging's receipt.
        let fleet = try runCLI(["fleet", "status", "--policy", prod.policy, "--json"])
        let prodRow = try #require(try array(fleet.stdout).first { $0["host"] as? String == "prod" })
        let seen = try #require((prodRow["refreshed_by"] as? [[String: Any]])?.first, "\(fleet.stdout)")
        #expect(seen["by"] as? String == "staging" && seen["result"] as? String == "ok")
        // And in production's own catalog: its next run collects staging's receipt; `status` shows it as another
        // host's word, never as production's drill.
        #expect(try runCLI(["backup", "--policy", prod.policy, "--source", "minio"]).status == 0)
        let prodStatus = try #require(try array(try runCLI(["status", "--policy", prod.policy, "--json"]).stdout).first { $0["source"] as? String == "redis" })
        let elsewhere = try #require(prodStatus["refreshed_elsewhere"] as? [String: Any], "\(prodStatus)")
        #expect(elsewhere["by_host"] as? String == "staging" && elsewhere["artifact"] as? String == prodBackup && elsewhere["result"] as? String == "passed")
        #expect(prodStatus["last_drill"] is NSNull)
        #expect(try runCLI(["status", "--policy", prod.policy]).stdout.contains("REFRESHED ELSEWHERE: redis backup \(prodBackup) restored into staging's live store"))

        // A receipt that is not one, and one too large, are refused (a problem of staging's, exit 1).
        let bad = staging.dir.file("bad.json")
        try Data(#"{"schema":"kaleem-backup/refresh-receipt/1","host":"prod"}"#.utf8).write(to: URL(fileURLWithPath: bad))
        let root = S3Repository(client: try s3.client(), bucket: "fleet", prefix: "kaleem/")
        defer { root.close() }
        try await root.put(bad, as: "staging/refreshes/prod/refresh-99990101T000000Z-000000.json", sha256: try sha256OfFile(bad))
        let refused = try runCLI(["fleet", "status", "--policy", prod.policy])
        #expect(refused.status == 1 && refused.stderr.contains("refresh receipt") && refused.stderr.contains("refused"), "\(refused.stderr)")
        try Data(repeating: 0x20, count: 70_000).write(to: URL(fileURLWithPath: bad))
        try await root.put(bad, as: "staging/refreshes/prod/refresh-99990101T000001Z-000000.json", sha256: try sha256OfFile(bad))
        let large = try runCLI(["fleet", "status", "--policy", prod.policy])
        #expect(large.status == 1 && large.stderr.contains("70000 bytes"), "\(large.stderr)")

        // A scrub that fails: the refresh fails (exit 1), and staging keeps the data it had.
        let failing = staging.dir.file("failing.yml")
        try String(contentsOfFile: staging.policy, encoding: .utf8)
            .replacingOccurrences(of: "[/bin/sh, \"\(script)\", \"{host}\", \"{port}\"]", with: "[/bin/sh, -c, \"echo no such table >&2; exit 3\"]")
            .write(toFile: failing, atomically: true, encoding: .utf8)
        _ = try s.command("SET", "staging-only", "kept")
        let kept = try RedisRestoreTests.digest(s)
        let scrubFailed = try runCLI(["refresh", "--from-host", "prod", "--yes", "--policy", failing, "--json"])
        #expect(scrubFailed.status == 1, "\(scrubFailed.stdout) \(scrubFailed.stderr)")
        let failedRow = try #require((try object(scrubFailed.stdout)["sources"] as? [[String: Any]])?.first)
        #expect(failedRow["result"] as? String == "error" && (failedRow["detail"] as? String ?? "").contains("exited 3: no such table"), "\(failedRow)")
        #expect(try RedisRestoreTests.digest(s) == kept)

        // By the schedule: production changes and backs up again; staging's daemon refreshes it.
        _ = try p.command("SET", "round", "2")
        #expect(try runCLI(["backup", "--policy", prod.policy, "--source", "redis"]).status == 0)
        let (process, wait) = try startProcess(try kaleemBinary(), ["daemon", "--policy", staging.policy, "--test-interval", "1"], environment: cliEnvironment())
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(120)
        var scheduled = 0
        while Date() < deadline && process.isRunning && scheduled < 3 {
            scheduled = (try? Catalog(path: catalogPath).fromHostDrills(fromHost: "prod").count) ?? 0
            usleep(200_000)
        }
        kill(process.processIdentifier, SIGTERM)
        let daemon = wait()
        #expect(scheduled >= 3, "\(daemon.stderr)")
        #expect(try value(s, "round") == "2" && value(s, "only-in-prod") == "masked" && value(s, "staging-only") == nil)
        #expect(try Catalog(path: catalogPath).fromHostDrills(fromHost: "prod").first?.drill.result == .passed)
    }

    /// MongoDB refreshed through the stand-in tools (#38), the stand-in server's data in a state directory:
    /// production's archive restored into staging's scratch database `kbrefresh_test`, counted, scrubbed there (the
    /// hook given the scratch database, no secret in its argv or environment), then swapped into the live `test`
    /// collection by collection (renameCollection with dropTarget), the live collections the backup does not hold
    /// dropped, other databases left alone, no scratch database left; a failing scrub leaves the live data exactly
    /// as it was and no scratch database; a scratch database a killed refresh left is dropped and said so; a
    /// refresh without a scrub swaps all the same.
    @Test func stagingsMongoIsRefreshedThroughScratchDatabasesAndSwapped() async throws {
        let fleet = try await FleetBucket()
        defer { fleet.client.shutdown() }
        let dir = fleet.dir
        try FileManager.default.createDirectory(atPath: dir.file("tmp"), withIntermediateDirectories: true)
        let state = dir.file("state")
        let scrubbed = dir.file("scrubbed")
        let script = dir.file("mask.sh")
        // Writes what it was given (its arguments, whether stdin held anything, its environment's names), and
        // "masks" the scratch copy: 5 of test.foo's 25 documents deleted in the database it was handed ($5).
        try """
        printf '%s|' "$@" > "\(scrubbed)"; cat | wc -c >> "\(scrubbed)"; env | cut -d= -f1 | sort | tr '\\n' ' ' >> "\(scrubbed)"
        [ -f "\(state)/$5/foo" ] && echo 20 > "\(state)/$5/foo"
        exit 0

        """.write(toFile: script, atomically: true, encoding: .utf8)
        func policy(_ host: String, scrub: String = "[/bin/sh, \"\(script)\", \"{source}\", \"{from_host}\", \"{backup}\", \"{host}\", \"{database}\", \"{databases}\"]") -> String {
            let path = dir.file("\(host)-\(scrub.count).yml")
            let scrubbing = scrub.isEmpty ? "" : ", scrub: { mongo: { command: \(scrub) } }"
            FileManager.default.createFile(atPath: path, contents: Data("""
            host: \(host)
            repository:
              path: \(dir.file(host + "-repo"))
              \(fleet.offsite)
            sources:
              mongo: { kind: mongodb, uri: "mongodb://backup:\(MongoEndToEndTests.password)@db.internal:27017/?authSource=admin" }
            \(host == "prod" ? "" : "schedules: [{ name: refresh, cron: \"30 4 1 1 *\", refresh: { from_host: prod, sources: [mongo]\(scrubbing) } }]")
            """.utf8))
            return path
        }
        let env = ["PATH": MongoEndToEndTests.standIns + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                   "STANDIN_LOG": dir.file("standin.jsonl"), "STANDIN_STATE": state, "TMPDIR": dir.file("tmp"),
                   "KALEEM_POLICY_SECRET": "must-not-reach-the-scrub"]
        /// The stand-in server's data: `db/collection` → its count.
        func data() throws -> [String: String] {
            var out: [String: String] = [:]
            for db in try FileManager.default.contentsOfDirectory(atPath: state) {
                for c in try FileManager.default.contentsOfDirectory(atPath: state + "/" + db) {
                    out[db + "/" + c] = try String(contentsOfFile: state + "/" + db + "/" + c, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                }
            }
            return out
        }
        func put(_ values: [String: String]) throws {
            for (path, n) in values {
                try FileManager.default.createDirectory(atPath: state + "/" + path.split(separator: "/")[0], withIntermediateDirectories: true)
                try (n + "\n").write(toFile: state + "/" + path, atomically: true, encoding: .utf8)
            }
        }
        let prod = policy("prod"), staging = policy("staging")
        let backedUp = try runCLI(["backup", "--policy", prod], environment: env)
        #expect(backedUp.status == 0, "\(backedUp.stdout) \(backedUp.stderr)")
        let backup = try #require(try array(try runCLI(["list", "--policy", prod, "--json"], environment: env).stdout).first?["id"] as? String)
        // Staging's server before: an older test.foo, a collection production does not have, another database.
        try? FileManager.default.removeItem(atPath: state)
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try put(["test/foo": "3", "test/extra": "4", "other/keep": "1"])

        let done = try runCLI(["refresh", "--from-host", "prod", "--yes", "--policy", staging, "--json"], environment: env)
        #expect(done.status == 0, "\(done.stdout) \(done.stderr)")
        let row = try #require((try object(done.stdout)["sources"] as? [[String: Any]])?.first)
        #expect(row["result"] as? String == "passed" && row["artifact"] as? String == backup, "\(row)")
        let detail = row["detail"] as? String ?? ""
        #expect(detail.contains("scrubbed before the live store took it") && detail.contains("swapped 1 collections into test")
                && detail.contains("dropped 1 live collections the backup does not hold (test.extra)") && !detail.contains("earlier refresh"), "\(row)")
        // The live database is the backup's (admin.* never restored), scrubbed; the other database untouched; no scratch.
        let afterSwap = try data()
        #expect(afterSwap == ["test/foo": "20", "other/keep": "1"], "\(afterSwap)")
        let log = try String(contentsOfFile: dir.file("standin.jsonl"), encoding: .utf8).split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let fed = try #require(log.last { $0["tool"] as? String == "mongorestore" })
        #expect((fed["argv"] as? [String]).map { Set($0).isSuperset(of: ["--nsInclude=test.*", "--nsFrom=test.*", "--nsTo=kbrefresh_test.*", "--drop"]) } == true, "\(fed)")
        #expect((fed["restored"] as? [String: Int]) == ["kbrefresh_test.foo": 25], "\(fed)")
        let seen = try String(contentsOfFile: scrubbed, encoding: .utf8)
        #expect(seen.hasPrefix("mongo|prod|\(backup)||kbrefresh_test|kbrefresh_test|0"), "\(seen)")
        #expect(seen.contains("LANG PATH") && !seen.contains("KALEEM_POLICY_SECRET") && !seen.contains("STANDIN_LOG"), "\(seen)")
        #expect(!seen.contains(MongoEndToEndTests.password))
        for entry in log { #expect(!"\(entry)".contains(MongoEndToEndTests.password), "\(entry)") }

        // A scrub that fails: the refresh fails, the live data is exactly as it was, and no scratch database is left.
        try put(["test/extra": "4"])
        let before = try data()
        let failing = policy("staging", scrub: "[/bin/false]")
        let failed = try runCLI(["refresh", "--from-host", "prod", "--yes", "--policy", failing, "--json"], environment: env)
        #expect(failed.status == 1, "\(failed.stdout) \(failed.stderr)")
        #expect((try object(failed.stdout)["result"] as? String) == "failed")
        let failedRow = try #require((try object(failed.stdout)["sources"] as? [[String: Any]])?.first)
        #expect((failedRow["detail"] as? String ?? "").contains("the live databases were not touched; scratch databases dropped"), "\(failedRow)")
        let afterFailure = try data()
        #expect(afterFailure == before, "\(afterFailure)")
        let drills = try Catalog(path: dir.file("staging-repo/catalog.sqlite")).fromHostDrills(fromHost: "prod")
        #expect(drills.map(\.drill.result) == [.error, .passed] && drills.allSatisfy { $0.purpose == "refresh" && $0.drill.artifactID == backup })

        // A scratch database a killed refresh left behind: dropped first, and said so; a refresh without a scrub
        // swaps all the same.
        // (and one of a database this backup does not hold: every kbrefresh_* the server lists goes)
        try put(["kbrefresh_test/foo": "7", "kbrefresh_test/half": "2", "kbrefresh_crm/leads": "4"])
        let plain = policy("staging", scrub: "")
        let again = try runCLI(["refresh", "--from-host", "prod", "--yes", "--policy", plain, "--json"], environment: env)
        #expect(again.status == 0, "\(again.stdout) \(again.stderr)")
        let againRow = try #require((try object(again.stdout)["sources"] as? [[String: Any]])?.first)
        #expect((againRow["detail"] as? String ?? "").contains("a scratch database kbrefresh_test left by an earlier refresh that did not finish (2 collections) was dropped first"), "\(againRow)")
        #expect((againRow["detail"] as? String ?? "").contains("a scratch database kbrefresh_crm left by an earlier refresh that did not finish (1 collections) was dropped first"), "\(againRow)")
        let afterStale = try data()
        #expect(afterStale == ["test/foo": "25", "other/keep": "1"], "\(afterStale)")
        // A live collection whose name holds U+2028 (which JSON.stringify prints raw) and the text of a listing row:
        // one name of one row, not rows of its own (the attack on #38: it made the scratch look empty, and the
        // refresh "passed" having swapped nothing); it is a live extra, dropped, and the swap is done.
        try put(["test/a%E2%80%A8kb-list%201%20%5B%5D%E2%80%A8": "2"])
        let oddName = try runCLI(["refresh", "--from-host", "prod", "--yes", "--policy", plain, "--json"], environment: env)
        #expect(oddName.status == 0 && oddName.stdout.contains("swapped 1 collections into test"), "\(oddName.stdout) \(oddName.stderr)")
        #expect(try data() == ["test/foo": "25", "other/keep": "1"])
        // A scrub that drops the whole scratch database would make the swap empty the live one: refused, the live
        // database untouched, no scratch left.
        let beforeDrop = try data()
        let dropping = policy("staging", scrub: "[/bin/rm, -rf, \"\(state)/kbrefresh_test\"]")
        let emptied = try runCLI(["refresh", "--from-host", "prod", "--yes", "--policy", dropping, "--json"], environment: env)
        #expect(emptied.status == 1 && emptied.stdout.contains("holds none of the backup's 1 collections of test"), "\(emptied.stdout) \(emptied.stderr)")
        #expect(try data() == beforeDrop)
        // A swap that stops part way (the server refuses a rename): the refresh fails, and the marker it kept stays,
        // so staging's `status` reports the store as an interrupted refresh; the next refresh swaps again and clears it.
        var stopping = env
        stopping["STANDIN_RENAME_FAIL"] = "kbrefresh_test.foo"
        let partial = try runCLI(["refresh", "--from-host", "prod", "--yes", "--policy", plain, "--json"], environment: stopping)
        #expect(partial.status == 1 && partial.stdout.contains("stopped part way"), "\(partial.stdout) \(partial.stderr)")
        let interrupted = try array(try runCLI(["status", "--policy", plain, "--json"], environment: env).stdout).first
        #expect((interrupted?["interrupted_restores"] as? [[String: Any]])?.first?["target"] as? String == "the live mongodb store of mongo (refresh from prod)", "\(String(describing: interrupted))")
        #expect(try runCLI(["status", "--policy", plain], environment: env).stdout.contains("INTERRUPTED REFRESH: mongo"))
        // A restore of the source (a dry run here) does not clear a refresh's marker: its scratch is the next
        // refresh's to drop.
        #expect(try runCLI(["backup", "--policy", plain], environment: env).status == 0)
        let dry = try runCLI(["restore", "mongo", "--latest", "--dry-run", "--policy", plain], environment: env)
        #expect(dry.status == 0, "\(dry.stdout) \(dry.stderr)")
        #expect(try runCLI(["status", "--policy", plain], environment: env).stdout.contains("INTERRUPTED REFRESH: mongo"))
        #expect(try runCLI(["refresh", "--from-host", "prod", "--yes", "--policy", plain, "--json"], environment: env).status == 0)
        #expect((try array(try runCLI(["status", "--policy", plain, "--json"], environment: env).stdout).first?["interrupted_restores"] as? [Any])?.isEmpty == true)
        // A live view named as the backup's collection (renameCollection refuses a view as its target): dropped
        // before the renames, so the swap does not stop part way.
        try put(["test/foo": "view"])
        let overView = try runCLI(["refresh", "--from-host", "prod", "--yes", "--policy", plain, "--json"], environment: env)
        #expect(overView.status == 0, "\(overView.stdout) \(overView.stderr)")
        let afterView = try data()
        #expect(afterView == ["test/foo": "25", "other/keep": "1"], "\(afterView)")

        // A scrub that outlives its timeout is stopped, and fails the refresh.
        let slow = policy("staging", scrub: "[/bin/sleep, \"30\"], timeout: 1s")
        let stopped = try runCLI(["refresh", "--from-host", "prod", "--yes", "--policy", slow, "--json"], environment: env)
        #expect(stopped.status == 1 && stopped.stdout.contains("did not finish within 1 s"), "\(stopped.stdout) \(stopped.stderr)")

        // A scrub that exits 0 but leaves a background child holding its output (the attack on #38): the refresh
        // ends with the command (within its 60 s timeout, not after the child's 120 s), and the child is killed
        // with its group; a chatty one keeps only the tail of what it printed.
        let pidFile = dir.file("bg.pid")
        let lingering = policy("staging", scrub: "[/bin/sh, -c, \"sleep 120 & echo $! > \(pidFile); head -c 5000000 /dev/zero | tr '\\\\0' x; exit 0\"], timeout: 60s")
        let quick = try runCLI(["refresh", "--from-host", "prod", "--yes", "--policy", lingering, "--json"], environment: env)
        #expect(quick.status == 0, "\(quick.stdout) \(quick.stderr)")
        let bg = try #require(pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        var gone = false
        // Gone, or a zombie nobody reaps (PID 1 of a container may not): either way it no longer runs.
        func notRunning(_ pid: pid_t) -> Bool {
            kill(pid, 0) != 0 || ((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: ")").last?.split(separator: " ").first == "Z")
        }
        for _ in 0..<100 where !gone { gone = notRunning(bg); if !gone { usleep(50_000) } }
        #expect(gone, "the scrub's background child \(bg) outlived the refresh")

        // The refresh told to stop (SIGTERM, as `kill` or systemd does; Ctrl-C is SIGINT) while its scrub runs: the
        // scrub's group goes with it (it is in a group of its own, which a terminal's signals do not reach). The
        // command is started with no signal blocked, as a shell starts it (Foundation's Process passes on the test
        // thread's blocked signals).
        let scrubPid = dir.file("scrub.pid")
        let waiting = policy("staging", scrub: "[/bin/sh, -c, \"echo $$$$ > \(scrubPid); exec sleep 30\"], timeout: 60s") // `$$` is the policy's escape of `$`
        let (refreshing, finished) = try startProcess("python3", ["-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])",
                                                                  try kaleemBinary(), "refresh", "--from-host", "prod", "--yes", "--policy", waiting], environment: cliEnvironment(env))
        var scrubbing: pid_t?
        for _ in 0..<600 where scrubbing == nil {
            scrubbing = (try? String(contentsOfFile: scrubPid, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if scrubbing == nil { usleep(50_000) }
        }
        kill(refreshing.processIdentifier, SIGTERM)
        let ended = finished()
        let scrubber = try #require(scrubbing, "the scrub never started: \(ended.stdout) \(ended.stderr)")
        #expect(ended.status != 0, "\(ended.stdout) \(ended.stderr)")
        var scrubGone = false
        for _ in 0..<100 where !scrubGone { scrubGone = notRunning(scrubber); if !scrubGone { usleep(50_000) } }
        #expect(scrubGone, "the scrub \(scrubber) outlived its refresh's SIGTERM")

        // A host whose catalog copy is not there: nothing restored, an error drill recorded, in the receipt.
        let qa = dir.file("qa.yml")
        try String(contentsOfFile: staging, encoding: .utf8).replacingOccurrences(of: "from_host: prod", with: "from_host: qa")
            .write(toFile: qa, atomically: true, encoding: .utf8)
        let missing = try runCLI(["refresh", "--from-host", "qa", "--yes", "--policy", qa, "--json"], environment: env)
        #expect(missing.status == 1, "\(missing.stdout) \(missing.stderr)")
        let missingRow = try #require((try object(missing.stdout)["sources"] as? [[String: Any]])?.first)
        #expect(missingRow["result"] as? String == "error" && (missingRow["detail"] as? String ?? "").contains("qa/catalog/catalog.sqlite"), "\(missingRow)")
        #expect((try object(missing.stdout)["receipt"] as? String)?.hasPrefix("refreshes/qa/") == true)
        #expect(try Catalog(path: dir.file("staging-repo/catalog.sqlite")).fromHostDrills(fromHost: "qa").map(\.drill.result) == [.error])
    }
    /// What a MongoDB refresh refuses before it writes anything (#38): names the scratch prefix would push past
    /// MongoDB's limits, time-series collections and views (renameCollection refuses them), `{database}` for a
    /// backup of several databases, a backup of system databases only; admin, config and local never refreshed.
    @Test func aMongoRefreshRefusesWhatItCannotSwap() throws {
        func artifact(_ namespaces: [String: Int], extra: [String: JSONValue] = [:]) -> ArtifactInfo {
            var stats: [String: JSONValue] = ["per_namespace": .object(namespaces.mapValues { .int($0) }), "oplog": .int(0)]
            stats.merge(extra) { _, e in e }
            return ArtifactInfo(id: "mongo-1", runID: "run-1", source: "mongo", kind: SourceKind("mongodb"), path: "mongo/d/x.archive.gz", bytesRaw: 1,
                                bytesStored: 1, sha256: String(repeating: "a", count: 64), status: .ok, createdAt: Date(timeIntervalSince1970: 0),
                                stats: stats, tag: .nightly)
        }
        func refusal(_ a: ArtifactInfo, scrub: [String]? = nil) -> String {
            do {
                _ = try MongoAdapter.refreshDatabases(a, scrub: scrub)
                return ""
            } catch {
                return "\(error)"
            }
        }
        let dbs = try MongoAdapter.refreshDatabases(artifact(["app.users": 3, "app.orders": 2, "admin.system.users": 1, "config.x": 1, "oplog": 4]), scrub: ["/x", "{database}"])
        #expect(dbs.map(\.live) == ["app"] && dbs.map(\.scratch) == ["kbrefresh_app"])
        let long = String(repeating: "d", count: 54)
        #expect(refusal(artifact(["\(long).c": 1])).contains("63-byte limit"))
        #expect(refusal(artifact([String(repeating: "d", count: 53) + ".c": 1])) == "")
        #expect(refusal(artifact(["app." + String(repeating: "c", count: 250): 1])).contains("255-byte limit"))
        #expect(refusal(artifact(["app.m": 1], extra: ["timeseries": .object(["app.m": .string("app.system.buckets.m")])])).contains("time-series"))
        #expect(refusal(artifact(["app.v": 0, "app.c": 1], extra: ["views": .array([.string("app.v")])])).contains("renameCollection refuses views"))
        #expect(refusal(artifact(["a.c": 1, "b.c": 1]), scrub: ["/x", "{database}"]).contains("the scrub names {database}, but backup mongo-1 holds 2 databases"))
        #expect(refusal(artifact(["a.c": 1, "b.c": 1]), scrub: ["/x", "{databases}"]) == "")
        #expect(refusal(artifact(["admin.system.users": 1])).contains("no application database"))
        // A database named with the scratch prefix (it would be taken for a killed refresh's leftover, or renamed
        // over), and one with `*` (a wildcard to mongorestore's --nsInclude: `a*.*` takes admin.* too): refused.
        #expect(refusal(artifact(["test.foo": 5, "kbrefresh_test.bar": 7])).contains("the prefix of a refresh's scratch databases"))
        #expect(refusal(artifact(["a*.c": 2, "app.x": 3])).contains("read as a wildcard"))
        // The prefix compared without case (MongoDB refuses names differing only in case), and a comma (it would
        // split the scrub's {databases}) refused.
        #expect(refusal(artifact(["Kbrefresh_app.c": 1, "app.c": 1])).contains("the prefix of a refresh's scratch databases"))
        #expect(refusal(artifact(["x,app.users": 2])).contains("{databases} (comma-separated) ambiguous"))
    }

    /// The stand-in server refuses as mongod does what the swap must never meet: a rename onto an existing
    /// collection without dropTarget (code 48), a rename not run against admin, an unknown command; what ran
    /// before the failing statement stays done.
    @Test func theMongoStandInRefusesRenamesAsTheServerDoes() throws {
        let dir = TemporaryDirectory()
        let state = dir.file("state")
        for (path, n) in ["app/c": "3", "kbrefresh_app/c": "5"] {
            try FileManager.default.createDirectory(atPath: state + "/" + path.split(separator: "/")[0], withIntermediateDirectories: true)
            try (n + "\n").write(toFile: state + "/" + path, atomically: true, encoding: .utf8)
        }
        func run(_ body: String) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: MongoEndToEndTests.standIns + "/mongosh")
            p.arguments = ["--nodb", "--quiet"]
            p.environment = ["STANDIN_STATE": state, "PATH": "/usr/bin:/bin"]
            let input = Pipe(), output = Pipe()
            p.standardInput = input
            p.standardOutput = output
            try p.run()
            input.fileHandleForWriting.write(Data("try { const kb = connect(\"mongodb://127.0.0.9:1/\"); \(body) print(\"OK\"); } catch (kb_e) { print(\"FAIL: \" + kb_e); }\n".utf8))
            try input.fileHandleForWriting.close()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let rename = #"{"renameCollection": "kbrefresh_app.c", "to": "app.c"}"#
        #expect(try run("kb.adminCommand(\(rename));") == "FAIL: MongoServerError: target namespace exists")
        #expect(try run(#"kb.getSiblingDB("app").runCommand({"renameCollection": "kbrefresh_app.c", "to": "app.x"});"#)
                == "FAIL: MongoServerError: renameCollection may only be run against the admin database.")
        #expect(try run(#"kb.adminCommand({"fsync": 1});"#) == "FAIL: MongoServerError: no such command: 'fsync'")
        #expect(try run(#"db.c.find();"#).hasPrefix("FAIL: SyntaxError"))
        #expect(try String(contentsOfFile: state + "/app/c", encoding: .utf8) == "3\n")
        // Statements run in order: the rename with dropTarget is done when the next one fails.
        let renamed = try run(#"kb.adminCommand({"renameCollection": "kbrefresh_app.c", "to": "app.c", "dropTarget": true}); kb.getSiblingDB("app").runCommand({"drop": "gone"});"#)
        #expect(renamed == "FAIL: MongoServerError: ns not found")
        #expect(try String(contentsOfFile: state + "/app/c", encoding: .utf8) == "5\n" && !FileManager.default.fileExists(atPath: state + "/kbrefresh_app"))
        let listed = try run(#"print("kb-list 0 " + JSON.stringify(kb.getSiblingDB("app").getCollectionInfos({}).map((kb_c) => [kb_c.name, kb_c.type])));"#)
        #expect(listed == "kb-list 0 [[\"c\",\"collection\"]]\nOK", "\(listed)") // as JSON.stringify prints: no spaces
    }
}
