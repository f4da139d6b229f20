import BackupCatalog
import BackupCore
@testable import BackupEngine
import Foundation
import S3Client
import TestSupport
import Testing

/// A nightly refresh writes one receipt a night under `<prefix>/<host>/refreshes/<other>/`, the directory
/// `fleet status` lists for every host: the refresh that writes one keeps only the newest
/// `RefreshReceipts.kept` (30) of that directory, removes only names of a receipt's form, and touches no
/// other host's receipts. Real S3 (moto); the refresh is one from a host with no catalog copy (it records an
/// error drill and still writes its receipt), so no store is touched. The refresh copies the catalog off-site
/// with its rows, as a backup does.
@Suite(.blockingThreads) struct FleetReceiptTests {
    @Test func aRefreshKeepsTheNewestThirtyReceiptsOfItsDirectory() async throws {
        let fleet = try await FleetBucket()
        defer { fleet.client.shutdown() }
        let (client, dir) = (fleet.client, fleet.dir)
        let policy = dir.file("staging.yml")
        try """
        host: staging
        repository:
          path: \(dir.file("repo"))
          \(fleet.offsite)
        sources:
          redis: { kind: redis, url: "redis://127.0.0.1:1" }
        schedules: [{ name: refresh, cron: "30 4 1 1 *", refresh: { from_host: qa, sources: [redis] } }]
        """.write(toFile: policy, atomically: true, encoding: .utf8)
        // 31 older receipts (seeded before the refresh),
        // a file that is not a receipt, and a receipt of refreshes from another host.
        var seeded: [String: [UInt8]] = [:]
        for i in 0...30 { seeded[String(format: "kaleem/staging/refreshes/qa/refresh-00000000T0000%02dZ-seed.json", i)] = Array("{}".utf8) }
        seeded["kaleem/staging/refreshes/qa/notes.txt"] = Array("kept".utf8)
        seeded["kaleem/staging/refreshes/prod/refresh-00000000T000000Z-seed.json"] = Array("{}".utf8)
        // One after the other, oldest first: within a second LastModified ties and the name decides, across a
        // second the later put is the newer either way.
        for key in seeded.keys.sorted() { try await putAll(client, ["fleet": [key: seeded[key]!]]) }

        let done = try runCLI(["refresh", "--from-host", "qa", "--yes", "--policy", policy, "--json"])
        #expect(done.status == 1, "\(done.stdout) \(done.stderr)") // qa has no catalog copy: an error drill
        let receipt = try #require(try object(done.stdout)["receipt"] as? String, "\(done.stdout)")

        let left = Set(try await client.listObjects(bucket: "fleet", prefix: "kaleem/staging/refreshes/").map(\.key))
        let receipts = left.filter { $0.hasPrefix("kaleem/staging/refreshes/qa/refresh-") }
        #expect(receipts.count == 30, "\(receipts.sorted())")
        #expect(receipts.contains("kaleem/staging/" + receipt))
        // The two oldest seeded ones went; the newer 29 stayed.
        #expect(!receipts.contains("kaleem/staging/refreshes/qa/refresh-00000000T000000Z-seed.json"))
        #expect(!receipts.contains("kaleem/staging/refreshes/qa/refresh-00000000T000001Z-seed.json"))
        #expect(receipts.contains("kaleem/staging/refreshes/qa/refresh-00000000T000002Z-seed.json"))
        #expect(left.contains("kaleem/staging/refreshes/qa/notes.txt"))
        #expect(left.contains("kaleem/staging/refreshes/prod/refresh-00000000T000000Z-seed.json"))
        // The catalog, with the refresh's rows, copied off-site as after a backup.
        #expect(try await client.listObjects(bucket: "fleet", prefix: "kaleem/staging/catalog/").map(\.key) == ["kaleem/staging/catalog/catalog.sqlite"])
    }
}

/// Production's side (#38): after each of its runs it reads the receipts other hosts left of refreshes from its
/// backups, as untrusted input, and records those that hold up in its own catalog (`refreshes_by_other_hosts`):
/// `status` shows the newest per source as another host's word, never as a drill of its own.
@Suite(.blockingThreads) struct ReceiptCollectorTests {
    /// Placeholders are replaced in one pass, left to right: a value is never read again for placeholders (a
    /// database named `{backup}x` stays that name), whatever the order of the dictionary (the attack on #38).
    @Test func scrubPlaceholdersAreReplacedInOnePass() {
        let values = ["{database}": "kbrefresh_{backup}x", "{backup}": "20261206T000000Z-abcdef", "{source}": "mongo"]
        for _ in 0..<20 {
            #expect(ScrubHook.substitute("{database}/{source}/{nope}/{", values) == "kbrefresh_{backup}x/mongo/{nope}/{")
        }
        #expect(ScrubHook.substitute("{{source}}", values) == "{mongo}")
    }

    @Test func aHostRecordsTheReceiptsOfRefreshesFromItsBackupsAndRefusesTheRest() async throws {
        let fleet = try await FleetBucket()
        defer { fleet.client.shutdown() }
        let (client, dir) = (fleet.client, fleet.dir)
        try FileManager.default.createDirectory(atPath: dir.file("etc"), withIntermediateDirectories: true)
        try "x=1\n".write(toFile: dir.file("etc/app.conf"), atomically: true, encoding: .utf8)
        let policy = dir.file("prod.yml")
        try """
        host: prod
        repository:
          path: \(dir.file("repo"))
          \(fleet.offsite)
        sources:
          conf: { kind: files, root: \(dir.file("etc")), paths: [app.conf] }
        """.write(toFile: policy, atomically: true, encoding: .utf8)
        let first = try runCLI(["backup", "--policy", policy])
        #expect(first.status == 0, "\(first.stdout) \(first.stderr)")
        let backup = try #require(try array(try runCLI(["list", "--policy", policy, "--json"]).stdout).first?["id"] as? String)

        func receipt(id: String, host: String = "staging", artifact: String, result: String = "passed", startedAt: String = "2026-12-05T04:30:00Z") throws -> [UInt8] {
            let r = RefreshResult(schema: RefreshResult.schemaName, id: id, host: host, from_host: "prod", schedule: nil,
                                  started_at: startedAt, finished_at: "2026-12-05T04:30:09Z", result: result == "passed" ? "ok" : "failed",
                                  sources: [.init(source: "conf", kind: "files", artifact: artifact, backup_created_at: nil, drill_id: "drill-\(id)",
                                                  result: result, duration_seconds: 9.25, detail: "restored")],
                                  receipt: nil, receipt_error: nil)
            return Array(try JSONEncoder().encode(r))
        }
        let dirKey = "kaleem/staging/refreshes/prod/"
        try await putAll(client, ["fleet": [
            dirKey + "refresh-20261205T043000Z-aaaaaa.json": try receipt(id: "refresh-20261205T043000Z-aaaaaa", artifact: backup),
            // Of the right shape, naming a backup production never had: not believed.
            dirKey + "refresh-20261205T043100Z-bbbbbb.json": try receipt(id: "refresh-20261205T043100Z-bbbbbb", artifact: "20200101T000000Z-000000"),
            // Its body says another host wrote it: not the receipt of its place.
            dirKey + "refresh-20261205T043200Z-cccccc.json": try receipt(id: "refresh-20261205T043200Z-cccccc", host: "qa", artifact: backup),
            // Too large to be a receipt: not fetched.
            dirKey + "refresh-20261205T043300Z-dddddd.json": Array(repeating: 0x20, count: 70_000),
            // A prefix of production's backup ids (ambiguous: two backups start so): refused alone, the others read.
            dirKey + "refresh-20261205T042900Z-ffffff.json": try receipt(id: "refresh-20261205T042900Z-ffffff", artifact: String(backup.prefix(4))),
            // Dated far ahead of production's clock: it would stay "the newest" for ever.
            dirKey + "refresh-99991231T235959Z-gggggg.json": try receipt(id: "refresh-99991231T235959Z-gggggg", artifact: backup, startedAt: "9999-12-31T23:59:59Z"),
            // Addressed to another host: not production's business.
            "kaleem/staging/refreshes/qa/refresh-20261205T043000Z-eeeeee.json": try receipt(id: "refresh-20261205T043000Z-eeeeee", artifact: backup),
        ]])

        let second = try runCLI(["backup", "--policy", policy])
        #expect(second.status == 0, "\(second.stdout) \(second.stderr)")
        #expect(second.stderr.contains("not believed") && second.stderr.contains("not one of this host's backups"), "\(second.stderr)")
        #expect(second.stderr.contains("later than this host's clock allows"), "\(second.stderr)")
        let rows = try Catalog(path: dir.file("repo/catalog.sqlite")).refreshesByOtherHosts()
        #expect(rows.map(\.drillID) == ["drill-refresh-20261205T043000Z-aaaaaa"], "\(rows)")
        #expect(rows.first?.byHost == "staging" && rows.first?.artifactID == backup && rows.first?.result == .passed)
        let status = try #require(try array(try runCLI(["status", "--policy", policy, "--json"]).stdout).first)
        let elsewhere = try #require(status["refreshed_elsewhere"] as? [String: Any], "\(status)")
        #expect(elsewhere["by_host"] as? String == "staging" && elsewhere["duration_seconds"] as? Double == 9.25, "\(elsewhere)")
        #expect(elsewhere["refreshed_at"] as? String == "2026-12-05T04:30:00.000Z", "\(elsewhere)")
        #expect(elsewhere["receipt"] as? String == dirKey.dropFirst("kaleem/".count) + "refresh-20261205T043000Z-aaaaaa.json", "\(elsewhere)")
        #expect(status["last_drill"] is NSNull) // another host's word is not a drill of this host's
        // The status page's card says the same, the host name (from the bucket) escaped.
        var row = try #require(try BackupEngine(policy: try PolicyLoader.load(path: policy, environment: [:])).status().first)
        #expect(StatusPage.sourceCard(row, now: Date()).contains("data-field=\"refreshed-elsewhere\" data-by=\"staging\" class=\"ok\">into staging: passed"))
        row.refreshedElsewhere?.byHost = "<b>"
        #expect(StatusPage.sourceCard(row, now: Date()).contains("into &lt;b&gt;: passed"))

        // Read once: the next run records nothing again.
        #expect(try runCLI(["backup", "--policy", policy]).status == 0)
        #expect(try Catalog(path: dir.file("repo/catalog.sqlite")).refreshesByOtherHosts().count == 1)
    }
}

/// What the fleet's tests share: a fresh S3 server (moto) with the bucket `fleet`, a directory holding its secret
/// key (0600), and the `offsite:` line of a host's policy for it (prefix `kaleem`).
struct FleetBucket {
    let s3: S3TestServer
    let client: S3Client
    let dir = TemporaryDirectory()

    init() async throws {
        s3 = try S3TestServer()
        client = try s3.client()
        try await client.createBucket("fleet")
        guard FileManager.default.createFile(atPath: dir.file("secret"), contents: Data(s3.secretKey.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw BackupFailure("cannot write the secret key file in \(dir.path)")
        }
    }

    var offsite: String {
        "offsite: { endpoint: \"\(s3.endpoint)\", bucket: fleet, prefix: kaleem, access_key: \(s3.accessKey), secret_key_file: \(dir.file("secret")) }"
    }
}
