import BackupCore
import Foundation
import TarFormat
import TestSupport
import Testing

/// Qdrant through the CLI against the stand-in (Qdrant's reply shapes, the api-key check, snapshot tars in a
/// collection snapshot's layout): the good path, each failure, tampering, a wrong key, restore into another
/// name, drills and rollback. Nothing is left on the server, the key is nowhere but in its header.
@Suite(.serialized, .blockingThreads) struct QdrantTests {
    static let key = "qdrant-key-\(UUID().uuidString.prefix(8))"

    struct Setup {
        let dir = TemporaryDirectory("kb-qdrant-cli")
        let server: QdrantStandIn
        var policy: String { dir.file("policy.yml") }

        init(modes: [String] = [], timeout: String = "20s", key: String = QdrantTests.key, collections: String = "",
             extra: [String: (points: Int, dim: Int)] = [:], shards: [String: Int] = [:]) throws {
            server = try QdrantStandIn(collections: ["documents": (points: 120, dim: 8), "faq": (points: 30, dim: 4)].merging(extra) { $1 },
                                       aliases: ["docs": "documents"], shards: shards, apiKey: QdrantTests.key, modes: modes)
            FileManager.default.createFile(atPath: dir.file("qdrant_key"), contents: Data(key.utf8), attributes: [.posixPermissions: 0o600])
            FileManager.default.createFile(atPath: policy, contents: Data("""
            repository: { path: \(dir.file("repo")) }
            sources:
              qdrant: { kind: qdrant, url: "\(server.url)", api_key_file: \(dir.file("qdrant_key")), timeout: \(timeout) \(collections) }
            """.utf8))
        }

        func run(_ args: [String]) throws -> ProcessResult { try runCLI(args + ["--policy", policy]) }
    }

    @Test func goodPathRestoreDrillAndRollback() throws {
        let s = try Setup()
        let backup = try s.run(["backup", "--json"])
        #expect(backup.status == 0, "\(backup.stdout) \(backup.stderr)")
        let a = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)
        let stats = try #require(a["stats"] as? [String: Any])
        let collections = try #require(stats["collections"] as? [String: [String: Any]])
        #expect(collections["documents"]?["points"] as? Int == 120 && collections["faq"]?["points"] as? Int == 30)
        #expect((collections["documents"]?["vectors"] as? [String: Any])?["size"] as? Int == 8)
        #expect(collections["documents"]?["aliases"] as? [String] == ["docs"])
        #expect(collections["documents"]?["payload_schema"] != nil)
        #expect(s.server.snapshotsLeft().isEmpty, "snapshots left on the server: \(s.server.snapshotsLeft())")
        // The key went in its header on every request, and nowhere else.
        #expect(s.server.requests().allSatisfy { $0["api_key"] as? String == "ok" })
        #expect(!(backup.stdout + backup.stderr).contains(Self.key) && !anyFileContains(s.dir.file("repo"), Self.key))
        #expect(try s.run(["verify", "--all"]).status == 0)

        // Restore into another name; an existing non-empty collection needs --yes; aliases on request.
        let other = try s.run(["restore", "qdrant", "--latest", "--collection", "documents", "--to-collection", "documents_copy", "--json"])
        #expect(other.status == 0, "\(other.stdout) \(other.stderr)")
        #expect(s.server.count("documents_copy") == 120)
        let refused = try s.run(["restore", "qdrant", "--latest", "--collection", "faq"])
        #expect(refused.status == 2 && refused.stderr.contains("refusing to replace it without --yes"), "\(refused.stderr)")
        let withAliases = try s.run(["restore", "qdrant", "--latest", "--collection", "documents", "--with-aliases", "--yes", "--json"])
        #expect(withAliases.status == 0, "\(withAliases.stderr)")
        #expect((try object(withAliases.stdout)["aliases"] as? [String]) == ["docs"])
        let several = try s.run(["restore", "qdrant", "--latest", "--yes"])
        #expect(several.status == 2 && several.stderr.contains("name one with --collection"))

        // A drill recovers each collection into a scratch one, compares, deletes it.
        let drill = try s.run(["drill", "--json"])
        #expect(drill.status == 0 && drill.stdout.contains("\"passed\""), "\(drill.stdout)")
        #expect(s.server.collection("kb_drill_" + String((a["id"] as? String ?? "").suffix(6)).lowercased() + "_documents") == nil)

        // Rollback with data restores Qdrant only when asked for (--include qdrant).
        let pre = try s.run(["hook", "pre-deploy", "--release", "r42"])
        #expect(pre.status == 0, "\(pre.stderr)")
        let plain = try s.run(["hook", "rollback", "--release", "r42", "--reason", "health"])
        #expect(plain.stdout.contains("--collection documents --with-aliases --yes"), "\(plain.stdout)")
        let restored = try s.run(["hook", "rollback", "--release", "r42", "--reason", "health", "--restore-data", "--include", "qdrant", "--yes"])
        #expect(restored.status == 0 && restored.stdout.contains("restored 120 points into collection documents"), "\(restored.stdout) \(restored.stderr)")
        #expect(s.server.snapshotsLeft().isEmpty)
    }

    /// A flipped byte in the stored archive is caught by verify (exit 4) and no restore uses it.
    @Test func tamperingIsCaught() throws {
        let s = try Setup()
        let backup = try s.run(["backup", "--json"])
        let a = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)
        let path = s.dir.file("repo/" + (try #require(a["path"] as? String)))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 3] ^= 0x08
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(try s.run(["verify", "--all"]).status == 4)
        let r = try s.run(["restore", "qdrant", "--latest", "--collection", "faq", "--to-collection", "x", "--yes"])
        #expect(r.status == 4, "\(r.stderr)")
        #expect(s.server.collection("x") == nil)
    }

    /// Each failure is a failed backup naming the collection and the cause; nothing stays on the server, and
    /// the good backup from before is untouched.
    @Test(arguments: [("fail_create", "No space left on device"), ("truncate", "the transfer broke after"), ("bad_checksum", "Qdrant reported"),
                      ("hang_download", "timed out"), ("extra_bytes", "more than the")])
    func failuresAreNamedAndLeaveNothing(mode: String, expected: String) throws {
        let good = try Setup(collections: ", collections: [faq]")
        #expect(try good.run(["backup"]).status == 0)
        // Only the hang waits for the timeout: the other modes keep 20 s, so a loaded machine's slow answer is not
        // taken for a hang.
        let timeout = mode == "hang_download" ? "2s" : "20s"
        let s = try Setup(modes: [mode], timeout: timeout, collections: ", collections: [faq]")
        // The same repository as the good run: the earlier backup must stay.
        try FileManager.default.removeItem(atPath: s.dir.path)
        try FileManager.default.createDirectory(atPath: s.dir.path, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: s.dir.file("qdrant_key"), contents: Data(Self.key.utf8), attributes: [.posixPermissions: 0o600])
        try String(contentsOfFile: good.policy, encoding: .utf8).replacingOccurrences(of: good.server.url, with: s.server.url)
            .replacingOccurrences(of: "timeout: 20s", with: "timeout: \(timeout)").write(toFile: s.policy, atomically: true, encoding: .utf8)
        let r = try s.run(["backup", "--json"])
        #expect(r.status == 1 || r.status == 4, "\(mode): \(r.status) \(r.stderr)")
        let detail = ((try? object(r.stdout)["artifacts"] as? [[String: Any]])??.first?["detail"] as? String) ?? ""
        #expect(detail.contains(expected), "\(mode): \(detail)")
        #expect(detail.contains("faq"), "\(mode): \(detail)")
        #expect(s.server.snapshotsLeft().isEmpty, "\(mode): left \(s.server.snapshotsLeft())")
        let list = try array(try s.run(["list", "--json"]).stdout)
        #expect(list.filter { $0["status"] as? String == "ok" }.count == 1, "\(mode)")
        #expect(!(r.stdout + r.stderr).contains(Self.key))
    }

    @Test func aWrongKeyIsNamedNotShown() throws {
        let s = try Setup(key: "not-the-key")
        let r = try s.run(["backup", "--json"])
        #expect(r.status == 1)
        #expect(r.stdout.contains("HTTP 401") && r.stdout.contains("Invalid API key"), "\(r.stdout)")
        #expect(!(r.stdout + r.stderr).contains("not-the-key"))
        #expect(s.server.requests().allSatisfy { $0["api_key"] as? String == "wrong" })
    }

    /// Every stand-in snapshot holds a WAL segment with holes, written as tar-rs writes it from Qdrant 1.12 on
    /// (a GNU sparse entry, type S): the backup reads it, verify reads it, and the archive keeps it byte for byte.
    @Test func sparseSnapshotsAreReadAndKept() throws {
        let s = try Setup()
        let backup = try s.run(["backup", "--json"])
        #expect(backup.status == 0, "\(backup.stdout) \(backup.stderr)")
        #expect(try s.run(["verify", "--all"]).status == 0)
        let a = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)
        let tar = s.dir.file("archive.tar")
        try gunzip(s.dir.file("repo/" + (try #require(a["path"] as? String))), to: tar)
        var outer = TarReader(ChunkedBytes([UInt8](try Data(contentsOf: URL(fileURLWithPath: tar))), chunkSize: 1 << 16))
        var sparse: [String] = []
        while let entry = try outer.next() {
            var snapshot: [UInt8] = []
            try outer.content { snapshot += $0 }
            var inner = TarReader(ChunkedBytes(snapshot, chunkSize: 4096))
            while let e = try inner.next() { if e.sparse != nil { sparse.append(entry.path + ":" + e.path) } }
        }
        #expect(sparse.sorted() == ["collections/documents.snapshot:0/wal/open-1", "collections/faq.snapshot:0/wal/open-1"], "\(sparse)")
    }

    /// Qdrant keeps every snapshot uploaded into a collection (snapshots/<collection>/<file>) and a deleted
    /// collection's snapshot folder: after a backup, two restores and a drill, nothing of ours is left.
    @Test func nothingLeftOnTheServer() throws {
        let s = try Setup()
        #expect(try s.run(["backup"]).status == 0)
        #expect(s.server.snapshotsLeft().isEmpty, "\(s.server.snapshotsLeft())")
        let copy = try s.run(["restore", "qdrant", "--latest", "--collection", "documents", "--to-collection", "documents_copy"])
        #expect(copy.status == 0, "\(copy.stderr)")
        let over = try s.run(["restore", "qdrant", "--latest", "--collection", "faq", "--yes"])
        #expect(over.status == 0, "\(over.stderr)")
        let drill = try s.run(["drill", "--json"])
        #expect(drill.status == 0 && drill.stdout.contains("\"passed\""), "\(drill.stdout)")
        #expect(s.server.snapshotsLeft().isEmpty, "left on the server: \(s.server.snapshotsLeft())")
        // Through the API: each upload (2 restores, 2 drill collections) deleted by its own name.
        let deleted = s.server.requests().filter {
            $0["method"] as? String == "DELETE" && ($0["path"] as? String ?? "").contains("/snapshots/kaleem-backup-restore-")
        }
        #expect(deleted.count == 4, "\(deleted)")
        #expect(s.server.collection("documents_copy") != nil && s.server.count("faq") == 30)
    }

    /// Collection info's points_count is approximate (the stand-in's counts not-yet-vacuumed deleted points, as
    /// Qdrant's may): the backup records exact counts, and a restore or a drill compares exact counts only.
    @Test func approximateCountsNeverFailARestoreOrDrill() throws {
        let s = try Setup()
        #expect(s.server.collection("documents")?["points_count"] as? Int == 122 && s.server.count("documents") == 120)
        let backup = try s.run(["backup", "--json"])
        let a = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)
        let documents = try #require((a["stats"] as? [String: Any])?["collections"] as? [String: [String: Any]])["documents"]
        #expect(documents?["points"] as? Int == 120 && documents?["points_after"] as? Int == 120 && documents?["points_exact"] as? Bool == true)
        #expect(documents?["points_approximate"] as? Int == 122)
        let restore = try s.run(["restore", "qdrant", "--latest", "--collection", "documents", "--to-collection", "documents_copy", "--json"])
        #expect(restore.status == 0, "\(restore.stdout) \(restore.stderr)")
        #expect((try? object(restore.stdout)["points"] as? Int) == 120)
        #expect(s.server.collection("documents_copy")?["points_count"] as? Int == 120 && s.server.count("documents_copy") == 120)
        let drill = try s.run(["drill", "--json"])
        #expect(drill.status == 0 && drill.stdout.contains("\"passed\""), "\(drill.stdout)")
    }

    /// A restore into an existing collection of another shape: Qdrant answers 400 (recover.rs); the plan sees it
    /// first and refuses with exit 2, nothing uploaded, the collection unchanged, the way out in the hint.
    @Test func anotherShapeIsRefusedUpFront() throws {
        let s = try Setup()
        #expect(try s.run(["backup"]).status == 0)
        let r = try s.run(["restore", "qdrant", "--latest", "--collection", "documents", "--to-collection", "faq", "--yes"])
        #expect(r.status == 2, "\(r.status) \(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("exists with another shape") || r.stderr.contains("exists with another shape"), "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("nothing was written") && r.stderr.contains("--to-collection"), "\(r.stderr)")
        #expect(s.server.count("faq") == 30)
        #expect(((s.server.collection("faq")?["config"] as? [String: Any])?["params"] as? [String: Any]).flatMap { ($0["vectors"] as? [String: Any])?["size"] as? Int } == 4)
        #expect(!s.server.requests().contains { ($0["path"] as? String ?? "").contains("/snapshots/upload") })
        #expect(s.server.snapshotsLeft().isEmpty, "\(s.server.snapshotsLeft())")
        let dry = try s.run(["restore", "qdrant", "--latest", "--collection", "documents", "--to-collection", "faq", "--dry-run"])
        #expect(dry.status == 2, "\(dry.stderr)")
    }

    /// A difference the plan cannot see (here collection info without shard_number, the stand-in's
    /// no_shard_number): Qdrant's 400 is reported as the same refusal, exit 2, the collection unchanged, and the
    /// file Qdrant kept from the upload deleted.
    @Test func aServerRefusalIsReportedAndCleanedUp() throws {
        let s = try Setup(modes: ["no_shard_number"], collections: ", collections: [documents]", extra: ["sharded": (points: 10, dim: 8)],
                          shards: ["sharded": 2])
        #expect(try s.run(["backup"]).status == 0)
        let r = try s.run(["restore", "qdrant", "--latest", "--collection", "documents", "--to-collection", "sharded", "--yes"])
        #expect(r.status == 2, "\(r.status) \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("Collection shard number: 2 Snapshot shard number: 1") && r.stderr.contains("nothing was written"), "\(r.stderr)")
        #expect(s.server.requests().contains { ($0["path"] as? String ?? "").contains("/collections/sharded/snapshots/upload") })
        #expect(s.server.count("sharded") == 10)
        #expect(s.server.snapshotsLeft().isEmpty, "\(s.server.snapshotsLeft())")
    }
}
