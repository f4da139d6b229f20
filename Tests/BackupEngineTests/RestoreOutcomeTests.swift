import BackupCore
@testable import BackupEngine
import Foundation
import Testing
import TestSupport

/// #37: the seven per-kind JSON structs of `restore --json` became one `RestoreOutcome` (the common keys and the
/// kind's `details`). The documents must stay byte for byte: each kind's old struct (copied here as it was before
/// #37) and the outcome the kind now builds are encoded as `Output.json` encodes, and compared.
@Suite(.blockingThreads) struct RestoreOutcomeTests {
    static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    // The documents before #37.
    struct FilesJSON: Encodable {
        var source: String, artifact: String, target: String, dry_run: Bool, in_place: Bool
        var added: [String], changed: [String], unchanged: [String], kept: [String], written: Int, duration_seconds: Double
    }
    struct RedisJSON: Encodable {
        var source: String, artifact: String, target: String, dry_run: Bool, steps: [String], warnings: [String], duration_seconds: Double
    }
    struct RedisKeysJSON: Encodable {
        var source: String, artifact: String, target: String, pattern: String, db: Int?, dry_run: Bool, replace: Bool
        var matched: Int, restored: Int, skipped_existing: Int, skipped_expired: Int, duration_seconds: Double
    }
    struct MongoJSON: Encodable {
        var source: String, artifact: String, target: String, dry_run: Bool, restored: Int, failed: Int, expected: Int
        var namespaces: [String: Int], oplog_entries: Int, oplog_replayed: Bool, oplog_applied: Int?, duration_seconds: Double, verified: Bool
    }
    struct QdrantJSON: Encodable {
        var source: String, artifact: String, collection: String, target: String, dry_run: Bool, points: Int, expected: Int
        var aliases: [String], duration_seconds: Double
    }
    struct BucketJSON: Encodable {
        var source: String, artifact: String, bucket: String, target: String, endpoint: String, dry_run: Bool, uploaded: Int
        var unchanged: Int, deleted: Int, planned_uploads: Int, planned_deletes: Int, requests: Int, duration_seconds: Double
    }
    struct BucketFilesJSON: Encodable {
        var source: String, artifact: String, bucket: String, directory: String, dry_run: Bool, written: Int, unchanged: Int
        var bytes: Int64, duration_seconds: Double
    }

    static let id = "20261205T210000Z-abcdef"

    func outcome(_ status: RestoreStatus, _ seconds: Double, _ details: [String: JSONValue]) -> RestoreOutcome {
        RestoreOutcome(source: "src", artifact: Self.id, status: status, durationSeconds: seconds, details: details, lines: ["ignored"])
    }

    @Test func everyKindsDocumentIsUnchanged() throws {
        let files = try Self.encode(FilesJSON(source: "src", artifact: Self.id, target: "/srv/x/y", dry_run: false, in_place: true, added: ["a"],
                                              changed: ["b/c"], unchanged: [], kept: ["/srv/x/y/b/c.kb-1"], written: 2, duration_seconds: 0.123))
        #expect(try Self.encode(outcome(.ok, 0.123, ["target": .string("/srv/x/y"), "in_place": .bool(true), "added": .strings(["a"]),
                                                      "changed": .strings(["b/c"]), "unchanged": .strings([]),
                                                      "kept": .strings(["/srv/x/y/b/c.kb-1"]), "written": .int(2)])) == files)

        let redis = try Self.encode(RedisJSON(source: "src", artifact: Self.id, target: "127.0.0.1:6379", dry_run: true,
                                              steps: ["dry run: nothing was changed"], warnings: ["w"], duration_seconds: 0))
        #expect(try Self.encode(outcome(.dryRun, 0, ["target": .string("127.0.0.1:6379"), "steps": .strings(["dry run: nothing was changed"]),
                                                      "warnings": .strings(["w"])])) == redis)

        for db in [nil, 3] as [Int?] {
            let keys = try Self.encode(RedisKeysJSON(source: "src", artifact: Self.id, target: "h:1", pattern: "user:*", db: db, dry_run: false,
                                                     replace: false, matched: 5, restored: 3, skipped_existing: 1, skipped_expired: 1,
                                                     duration_seconds: 1.5))
            var details: [String: JSONValue] = ["target": .string("h:1"), "pattern": .string("user:*"), "replace": .bool(false), "matched": .int(5),
                                                "restored": .int(3), "skipped_existing": .int(1), "skipped_expired": .int(1)]
            if let db { details["db"] = .int(db) }
            #expect(try Self.encode(outcome(.ok, 1.5, details)) == keys)
        }

        for applied in [nil, 7] as [Int?] {
            let mongo = try Self.encode(MongoJSON(source: "src", artifact: Self.id, target: "mongodb://h/ (the source itself)", dry_run: false,
                                                  restored: 10, failed: 0, expected: 10, namespaces: ["app.users": 6, "app.orders": 4],
                                                  oplog_entries: 7, oplog_replayed: applied != nil, oplog_applied: applied,
                                                  duration_seconds: 2.25, verified: true))
            var details: [String: JSONValue] = [
                "target": .string("mongodb://h/ (the source itself)"), "restored": .int(10), "failed": .int(0), "expected": .int(10),
                "namespaces": .object(["app.users": .int(6), "app.orders": .int(4)]), "oplog_entries": .int(7),
                "oplog_replayed": .bool(applied != nil), "verified": .bool(true),
            ]
            if let applied { details["oplog_applied"] = .int(applied) }
            #expect(try Self.encode(outcome(.ok, 2.25, details)) == mongo)
        }

        let qdrant = try Self.encode(QdrantJSON(source: "src", artifact: Self.id, collection: "docs", target: "docs2", dry_run: false, points: 100,
                                                expected: 100, aliases: ["live"], duration_seconds: 0.5))
        #expect(try Self.encode(outcome(.ok, 0.5, ["collection": .string("docs"), "target": .string("docs2"), "points": .int(100),
                                                    "expected": .int(100), "aliases": .strings(["live"])])) == qdrant)

        let bucket = try Self.encode(BucketJSON(source: "src", artifact: Self.id, bucket: "media", target: "media-copy", endpoint: "http://127.0.0.1:9000",
                                                dry_run: false, uploaded: 4, unchanged: 2, deleted: 1, planned_uploads: 4, planned_deletes: 1,
                                                requests: 9, duration_seconds: 3))
        #expect(try Self.encode(outcome(.ok, 3, ["bucket": .string("media"), "target": .string("media-copy"), "endpoint": .string("http://127.0.0.1:9000"),
                                                  "uploaded": .int(4), "unchanged": .int(2), "deleted": .int(1), "planned_uploads": .int(4),
                                                  "planned_deletes": .int(1), "requests": .int(9)])) == bucket)

        let bucketFiles = try Self.encode(BucketFilesJSON(source: "src", artifact: Self.id, bucket: "media", directory: "/tmp/out", dry_run: false,
                                                          written: 3, unchanged: 1, bytes: 5_000_000_000, duration_seconds: 0.25))
        #expect(try Self.encode(outcome(.ok, 0.25, ["bucket": .string("media"), "directory": .string("/tmp/out"), "written": .int(3),
                                                     "unchanged": .int(1), "bytes": .int(5_000_000_000)])) == bucketFiles)
    }

    /// The document reads back as the outcome it was (status from `dry_run` and the kind's `verified`).
    @Test func documentsDecode() throws {
        for (status, verified) in [(RestoreStatus.ok, true), (.dryRun, false), (.unverified, false)] {
            let original = outcome(status, 1.25, ["target": .string("t"), "verified": .bool(verified)])
            var decoded = try JSONDecoder().decode(RestoreOutcome.self, from: Data(try Self.encode(original).utf8))
            decoded.lines = original.lines
            #expect(decoded == original)
        }
    }
}
