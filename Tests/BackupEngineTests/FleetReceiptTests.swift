import BackupEngine
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
struct FleetReceiptTests {
    @Test func aRefreshKeepsTheNewestThirtyReceiptsOfItsDirectory() async throws {
        let s3 = try S3TestServer()
        let client = try s3.client()
        defer { client.shutdown() }
        try await client.createBucket("fleet")
        let dir = TemporaryDirectory()
        FileManager.default.createFile(atPath: dir.file("secret"), contents: Data(s3.secretKey.utf8), attributes: [.posixPermissions: 0o600])
        let policy = dir.file("staging.yml")
        try """
        host: staging
        repository:
          path: \(dir.file("repo"))
          offsite: { endpoint: "\(s3.endpoint)", bucket: fleet, prefix: kaleem, access_key: \(s3.accessKey), secret_key_file: \(dir.file("secret")) }
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
