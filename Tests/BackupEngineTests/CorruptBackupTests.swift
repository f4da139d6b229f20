import ArtifactStore
import BackupCore
import Foundation
import Testing
import TestSupport

/// #18 (integrity that shows and alerts): `verify` records its result per artifact; a backup it finds damaged
/// is `corrupt` in list, show and status, is never the newest good backup (show latest, status, rotation), is
/// never removed by rotation, is counted in the metrics, and becomes `ok` again when a later verify passes.
@Suite(.blockingThreads) struct CorruptBackupTests {
    @Test func aDamagedBackupIsMarkedCorruptAndNeitherChosenNorRemoved() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        let textfile = dir.file("metrics/kaleem_backup.prom")
        let policy = writeRedisPolicy(in: dir, url: redis.url,
                                      extra: "retention: { daily: 0, keep_last: 2 }\nmetrics: { textfile: \(textfile) }")
        func run(_ args: [String]) throws -> ProcessResult { try runCLI(args + ["--policy", policy]) }
        func backup() throws -> [String: Any] {
            let r = try run(["backup", "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            return try #require((try object(r.stdout)["artifacts"] as? [[String: Any]])?.first)
        }

        let first = try backup()
        let firstID = try #require(first["id"] as? String)
        // Never verified yet: the metrics say so (0), and show says never.
        #expect(try String(contentsOfFile: textfile, encoding: .utf8).contains("kaleem_backup_last_verify_timestamp_seconds{source=\"redis\"} 0"))
        #expect(try object(try run(["show", firstID, "--json"]).stdout)["last_verify"] is NSNull)
        #expect(try run(["show", firstID]).stdout.contains("never"))

        // A second backup, then damage it (the newest).
        let second = try backup()
        let secondID = try #require(second["id"] as? String)
        let path = dir.file("repo/" + (try #require(second["path"] as? String)))
        var bytes = try #require(FileManager.default.contents(atPath: path))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))

        let verify = try run(["verify", "--all", "--json"])
        #expect(verify.status == 4, "\(verify.stdout) \(verify.stderr)")
        let results = try array(verify.stdout)
        #expect(results.count == 2)
        let damaged = try #require(results.first { $0["id"] as? String == secondID })
        #expect(damaged["ok"] as? Bool == false && damaged["status"] as? String == "corrupt", "\(damaged)")
        #expect(results.first { $0["id"] as? String == firstID }?["status"] as? String == "ok")
        #expect(try run(["verify", secondID]).stdout.contains("marked corrupt"))

        // list, show, status: corrupt, and not the newest good; the run itself still counts as a success.
        let listed = try array(try run(["list", "--json"]).stdout)
        #expect(listed.first { $0["id"] as? String == secondID }?["status"] as? String == "corrupt")
        let shown = try object(try run(["show", secondID, "--json"]).stdout)
        let lastVerify = try #require(shown["last_verify"] as? [String: Any])
        #expect(lastVerify["ok"] as? Bool == false && (lastVerify["detail"] as? String)?.isEmpty == false)
        #expect(try object(try run(["show", "latest", "--json"]).stdout)["id"] as? String == firstID)
        let status = try #require(try array(try run(["status", "--json"]).stdout).first)
        #expect(status["newest_good"] as? String == firstID)
        #expect(status["corrupt"] as? Int == 1 && status["last_verify_ok"] as? Bool == false && status["last_run_ok"] as? Bool == true, "\(status)")
        #expect(try run(["status"]).stdout.contains("1 CORRUPT"))
        let metrics = try String(contentsOfFile: textfile, encoding: .utf8)
        #expect(metrics.contains("kaleem_backup_corrupt_artifacts{source=\"redis\"} 1"), "\(metrics)")
        #expect(metrics.contains("kaleem_backup_last_verify_success{source=\"redis\"} 0"))
        #expect(metrics.contains("kaleem_backup_last_run_success{source=\"redis\"} 1"))
        #expect(!metrics.contains("kaleem_backup_last_verify_timestamp_seconds{source=\"redis\"} 0\n"))

        // A restore of --latest takes the newest good one, not the corrupt one.
        let plan = try run(["restore", "redis", "--latest", "--to-url", redis.url, "--dry-run", "--json"])
        #expect(plan.stdout.contains(firstID) && !plan.stdout.contains(secondID), "\(plan.stdout) \(plan.stderr)")

        // Rotation keeps it (never removed automatically) and keeps the newest good one; later good backups
        // make the oldest good one go (keep_last 2 counts good ones only), never the corrupt one.
        let rotation = try object(try run(["rotate", "--json"]).stdout)
        let kept = (rotation["keep"] as? [[String: Any]] ?? []).reduce(into: [String: [String]]()) { $0[$1["id"] as? String ?? ""] = $1["reasons"] as? [String] }
        #expect(kept[secondID]?.contains { $0.contains("corrupt") } == true, "\(rotation)")
        #expect(kept[firstID]?.contains("newest good") == true, "\(rotation)")
        let thirdID = try #require(try backup()["id"] as? String)
        let fourthID = try #require(try backup()["id"] as? String)
        let remaining = Set(try array(try run(["list", "--json"]).stdout).compactMap { $0["id"] as? String })
        #expect(remaining == [secondID, thirdID, fourthID], "\(remaining)")
        #expect(FileManager.default.fileExists(atPath: path))

        // The file put right (as a copy from off-site would): a verify that passes makes it ok again.
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        let again = try run(["verify", secondID, "--json"])
        #expect(again.status == 0)
        #expect(try array(again.stdout).first?["status"] as? String == "ok")
        #expect(try object(try run(["show", secondID, "--json"]).stdout)["status"] as? String == "ok")
        #expect(try String(contentsOfFile: textfile, encoding: .utf8).contains("kaleem_backup_corrupt_artifacts{source=\"redis\"} 0"))
    }

    /// A verify that cannot run (the age identity is missing) is a failure, recorded, but not damage: the backup
    /// stays good.
    @Test func aVerifyThatCannotRunDoesNotMarkTheBackupCorrupt() throws {
        let redis = try RedisTestServer()
        let dir = TemporaryDirectory()
        #expect(try runProcess("age-keygen", ["-o", dir.file("key.txt")]).status == 0)
        let identity = try #require(try AgeIdentity.parseFile(try String(contentsOfFile: dir.file("key.txt"), encoding: .utf8)).first)
        let policy = writeRedisPolicy(in: dir, url: redis.url,
                                      extra: "encryption: { recipients: [\(identity.recipient.description)], identity_file: \(dir.file("key.txt")) }")
        let r = try runCLI(["backup", "--json", "--policy", policy])
        #expect(r.status == 0, "\(r.stderr)")
        let id = try #require((try object(r.stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)
        try FileManager.default.removeItem(atPath: dir.file("key.txt"))
        let verify = try runCLI(["verify", id, "--json", "--policy", policy])
        #expect(verify.status != 0)
        #expect(try array(verify.stdout).first?["status"] as? String == "ok", "\(verify.stdout) \(verify.stderr)")
        let shown = try object(try runCLI(["show", id, "--json", "--policy", policy]).stdout)
        #expect(shown["status"] as? String == "ok")
        #expect((shown["last_verify"] as? [String: Any])?["ok"] as? Bool == false)
    }
}
