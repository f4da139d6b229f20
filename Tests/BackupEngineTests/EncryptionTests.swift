import ArtifactStore
import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

/// Encryption at rest end to end: a Redis backup encrypted to an age recipient is what the real `age` tool
/// decrypts; verify, drill and restore decrypt on the fly; a wrong key or a tampered file is exit 4.
@Suite(.blockingThreads) struct EncryptionTests {
    @Test func encryptedBackupsRoundTrip() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        try SampleData.fill(c, databases: [0, 2], keysPerType: 10)
        c.close()
        let dir = TemporaryDirectory()
        #expect(try runProcess("age-keygen", ["-o", dir.file("key.txt")]).status == 0)
        let keyText = try String(contentsOfFile: dir.file("key.txt"), encoding: .utf8)
        let identity = try #require(try AgeIdentity.parseFile(keyText).first)
        let policy = writeRedisPolicy(in: dir, url: redis.url, extra: """
        encryption:
          recipients: [\(identity.recipient.description)]
          identity_file: \(dir.file("key.txt"))
        """)

        let b = try runCLI(["backup", "--policy", policy, "--json", "-v"])
        #expect(b.status == 0, "\(b.stderr)")
        let a = try #require((try object(b.stdout)["artifacts"] as? [[String: Any]])?.first)
        #expect(a["compression"] as? String == "gzip+age")
        let file = dir.file("repo/" + (a["path"] as! String))
        let head = try #require(FileManager.default.contents(atPath: file)).prefix(22)
        #expect(String(decoding: head, as: UTF8.self) == "age-encryption.org/v1\n")
        #expect(try sha256sum(file) == a["sha256"] as? String) // the hash of what is stored, encrypted
        #expect(!b.stderr.contains(identity.secretKeyText) && !anyFileContains(dir.file("repo"), identity.secretKeyText))

        // The standard tools read it: age -d, then gzip -d, then redis-check-rdb.
        let plain = try runProcess("/bin/sh", ["-c", "age -d -i \"$0\" \"$1\" | gzip -dc > \"$2\" && redis-check-rdb \"$2\"",
                                               dir.file("key.txt"), file, dir.file("dump.rdb")])
        #expect(plain.status == 0, "\(plain.stdout) \(plain.stderr)")

        // verify and drill decrypt on the fly.
        #expect(try runCLI(["verify", "--all", "--policy", policy]).status == 0)
        let drill = try runCLI(["drill", "--policy", policy, "--json"])
        #expect(drill.status == 0, "\(drill.stdout) \(drill.stderr)")
        #expect(try array(drill.stdout).first?["result"] as? String == "passed")
        // A file-mode restore writes the decrypted RDB.
        let restoreDir = TemporaryDirectory()
        let r = try runCLI(["restore", "redis", "--latest", "--to-dir", restoreDir.path, "--policy", policy])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.contents(atPath: restoreDir.file("dump.rdb")) == FileManager.default.contents(atPath: dir.file("dump.rdb")))

        // The wrong key: exit 4, and says so.
        #expect(try runProcess("age-keygen", ["-o", dir.file("other.txt")]).status == 0)
        let wrongPolicy = writeRedisPolicy(in: dir, url: redis.url, extra: """
        encryption:
          recipients: [\(identity.recipient.description)]
          identity_file: \(dir.file("other.txt"))
        """, name: "wrong.yml")
        let wrong = try runCLI(["verify", "--all", "--policy", wrongPolicy])
        #expect(wrong.status == 4)
        #expect((wrong.stdout + wrong.stderr).contains("wrong key"))
        // No key at all: a usage error naming the setting.
        let noKey = writeRedisPolicy(in: dir, url: redis.url, extra: "encryption: { recipients: [\(identity.recipient.description)] }", name: "nokey.yml")
        let missing = try runCLI(["restore", "redis", "--latest", "--to-dir", restoreDir.path, "--yes", "--policy", noKey])
        #expect(missing.status == 4 || missing.status == 2)
        #expect(missing.stderr.contains("identity_file"))

        // One byte changed in the payload: verify and drill fail with exit 4.
        var bytes = try #require(FileManager.default.contents(atPath: file))
        bytes[bytes.count - 40] ^= 0x20
        try bytes.write(to: URL(fileURLWithPath: file))
        #expect(try runCLI(["verify", "--all", "--policy", policy]).status == 4)
        #expect(try runCLI(["drill", "--policy", policy]).status == 4)
    }

    @Test func badRecipientsArePolicyErrors() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1", extra: "encryption: { recipients: [ssh-ed25519 AAAA] }")
        let r = try runCLI(["policy", "check", "--policy", policy])
        #expect(r.status == 2)
        #expect(r.stderr.contains("encryption.recipients"))
    }
}
