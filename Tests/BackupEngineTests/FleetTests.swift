import ArtifactStore
import BackupCore
import BackupEngine
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
struct FleetTests {
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
        for _ in 0..<300 {
            scraped = httpGet("http://127.0.0.1:\(port)/metrics", timeout: 30)
            if scraped?.0 == 200 { break }
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
        kill(process.processIdentifier, SIGTERM)
        #expect(wait().status == 0)
    }
}
