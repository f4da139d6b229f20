import BackupCore
import Foundation
import TestSupport
import Testing

/// The configuration files of the stack (kind: files) through the CLI, with real files: modes, owners,
/// symlinks, unicode and long names; GNU tar and age read the artifact; secrets never reach the disk in clear.
@Suite(.serialized, .blockingThreads) struct FilesSourceTests {
    static let longName = String(repeating: "ü", count: 80) + "-a-name-longer-than-ustar-allows.conf"

    struct Setup {
        let dir = TemporaryDirectory("kb-files")
        var root: String { dir.file("opt/kaleem") }
        var policy: String { dir.file("policy.yml") }

        init(encrypted: Bool = true, extra: String = "", paths: String = #"[.env, "docker-compose*.yml", nginx/, ssl/, redis.conf, current.conf]"#) throws {
            let fm = FileManager.default
            try fm.createDirectory(atPath: root + "/nginx/cache", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: root + "/ssl", withIntermediateDirectories: true)
            func file(_ p: String, _ text: String, _ mode: Int = 0o644) {
                fm.createFile(atPath: root + "/" + p, contents: Data(text.utf8), attributes: [.posixPermissions: mode])
            }
            file(".env", "MONGO_PASSWORD=s3cret-from-openssl-rand\n", 0o600)
            file("docker-compose.yml", "services:\n  api: { image: kaleem-api:${IMAGE_TAG} }\n")
            file("docker-compose.prod.yml", "services: {}\n")
            file("nginx/nginx.conf", "events {}\nhttp { server { listen 80; } }\n")
            file("nginx/\(FilesSourceTests.longName)", "long\n", 0o640)
            file("nginx/cache/blob", "cached\n")
            file("nginx/access.log", "log\n")
            file("ssl/server.key", "-----BEGIN PRIVATE KEY-----\n", 0o600)
            file("ssl/server.pem", "-----BEGIN CERTIFICATE-----\n")
            file("redis.conf", "appendonly yes\n")
            try fm.createSymbolicLink(atPath: root + "/current.conf", withDestinationPath: "nginx/nginx.conf")
            try fm.createSymbolicLink(atPath: root + "/nginx/outside", withDestinationPath: "/etc/hostname") // stored as a link, never followed
            var text = """
            repository: { path: \(dir.file("repo")) }
            sources:
              config: { kind: files, root: \(root), paths: \(paths), exclude: ["*.log", "nginx/cache/"] \(extra) }
            """
            if encrypted {
                let keygen = try runProcess("/usr/bin/age-keygen", ["-o", dir.file("age-key.txt")])
                #expect(keygen.status == 0, "\(keygen.stderr)")
                let recipient = try #require(keygen.stderr.split(separator: " ").last).trimmingCharacters(in: .whitespacesAndNewlines)
                text += "\nencryption: { recipients: [\(recipient)], identity_file: \(dir.file("age-key.txt")) }\n"
            }
            fm.createFile(atPath: policy, contents: Data(text.utf8))
        }

        func run(_ args: [String]) throws -> ProcessResult { try runCLI(args + ["--policy", policy]) }
    }

    @Test func backupVerifyAndGNUTarReadsIt() throws {
        let s = try Setup()
        let backup = try s.run(["backup", "--json"])
        #expect(backup.status == 0, "\(backup.stdout) \(backup.stderr)")
        let a = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)
        #expect(a["compression"] as? String == "gzip+age")
        let stats = try #require(a["stats"] as? [String: Any])
        let entries = try #require(stats["entries"] as? [[String: Any]])
        let paths = entries.compactMap { $0["path"] as? String }
        #expect(paths.contains(".env") && paths.contains("ssl/server.key") && paths.contains("nginx/\(Self.longName)"))
        #expect(!paths.contains("nginx/access.log") && !paths.contains { $0.hasPrefix("nginx/cache") })
        let link = try #require(entries.first { $0["path"] as? String == "nginx/outside" })
        #expect(link["type"] as? String == "symlink" && link["link"] as? String == "/etc/hostname")
        let env = try #require(entries.first { $0["path"] as? String == ".env" })
        #expect(env["mode"] as? String == "600" && env["user"] as? String == "root" && (env["sha256"] as? String)?.count == 64)
        #expect(stats["files"] as? Int == 8 && stats["symlinks"] as? Int == 2)

        // `age -d | gzip -dc | tar -t` with GNU tar lists every entry, with its mode and the link.
        let artifactPath = s.dir.file("repo/" + (try #require(a["path"] as? String)))
        let listed = try runProcess("/bin/sh", ["-c", "age -d -i \"$1\" \"$2\" | gzip -dc | tar -tv", "sh", s.dir.file("age-key.txt"), artifactPath])
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stdout.contains("-rw------- root/root") && listed.stdout.contains("ssl/server.key"))
        #expect(listed.stdout.contains("nginx/\(Self.longName)") && listed.stdout.contains("current.conf -> nginx/nginx.conf"))
        // The secret is nowhere in clear in the repository.
        #expect(!anyFileContains(s.dir.file("repo"), "s3cret-from-openssl-rand"))
        #expect(try s.run(["verify", "--all"]).status == 0)

        // A second backup says what changed since the first.
        try "MONGO_PASSWORD=rotated\n".write(toFile: s.root + "/.env", atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: s.root + "/redis.conf")
        FileManager.default.createFile(atPath: s.root + "/nginx/new.conf", contents: Data("x\n".utf8))
        let named = try s.run(["backup", "--json"])
        #expect(named.status == 1 && named.stdout.contains("redis.conf does not exist"), "a named path that vanished: \(named.stdout)")
        let text = try String(contentsOfFile: s.policy, encoding: .utf8).replacingOccurrences(of: "redis.conf, ", with: "\"redis*.conf\", ")
        try text.write(toFile: s.policy, atomically: true, encoding: .utf8)
        let second = try s.run(["backup", "--json"])
        #expect(second.status == 0, "\(second.stdout) \(second.stderr)")
        let st = try #require((try object(second.stdout)["artifacts"] as? [[String: Any]])?.first?["stats"] as? [String: Any])
        #expect(st["added"] as? Int == 1 && st["changed"] as? Int == 1 && st["removed"] as? Int == 1, "\(st)")
        #expect((st["warnings"] as? [String])?.contains { $0.contains("redis*.conf matches nothing") } == true)
    }

    @Test func secretsAreNeverStoredInClear() throws {
        let s = try Setup(encrypted: false)
        let check = try s.run(["policy", "check"])
        #expect(check.status == 2 && check.stderr.contains(".env holds secrets") && check.stderr.contains("server.key"), "\(check.stderr)")
        let backup = try s.run(["backup"])
        #expect(backup.status == 2, "\(backup.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.dir.file("repo/config")))
        // The policy can say so explicitly.
        let allowed = try Setup(encrypted: false, extra: ", allow_plaintext_secrets: true")
        #expect(try allowed.run(["backup"]).status == 0)
        // The age key itself is never taken into a backup.
        let keyInside = try Setup(extra: "", paths: "[.env, age-key.txt]")
        try FileManager.default.copyItem(atPath: keyInside.dir.file("age-key.txt"), toPath: keyInside.root + "/age-key.txt")
        let text = try String(contentsOfFile: keyInside.policy, encoding: .utf8)
            .replacingOccurrences(of: "identity_file: \(keyInside.dir.file("age-key.txt"))", with: "identity_file: \(keyInside.root)/age-key.txt")
        try text.write(toFile: keyInside.policy, atomically: true, encoding: .utf8)
        let r = try keyInside.run(["backup"])
        #expect(r.status == 2 && r.stderr.contains("age identity file"), "\(r.stderr)")
    }

    @Test func specialFilesAreRefused() throws {
        let s = try Setup(paths: "[nginx/]")
        #expect(mkfifo(s.root + "/nginx/pipe", 0o600) == 0)
        let r = try s.run(["backup", "--json"])
        #expect(r.status == 1 && r.stdout.contains("is a FIFO"), "\(r.stdout)")
    }

    @Test func restoreIntoADirectoryAndInPlace() throws {
        let s = try Setup()
        let backup = try s.run(["backup", "--json"])
        let id = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first?["id"] as? String)
        let out = s.dir.file("restored")
        let restore = try s.run(["restore", "config", "--backup", id, "--to-dir", out, "--json"])
        #expect(restore.status == 0, "\(restore.stderr)")
        for p in [".env", "nginx/nginx.conf", "nginx/\(Self.longName)", "ssl/server.key", "docker-compose.prod.yml"] {
            #expect(FileManager.default.contents(atPath: out + "/" + p) == FileManager.default.contents(atPath: s.root + "/" + p), "\(p)")
        }
        let attrs = try FileManager.default.attributesOfItem(atPath: out + "/ssl/server.key")
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        #expect((try FileManager.default.attributesOfItem(atPath: out + "/nginx/\(Self.longName)")[.posixPermissions] as? Int) == 0o640)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/current.conf") == "nginx/nginx.conf")
        let originalTime = try FileManager.default.attributesOfItem(atPath: s.root + "/nginx/nginx.conf")[.modificationDate] as? Date
        let restoredTime = try FileManager.default.attributesOfItem(atPath: out + "/nginx/nginx.conf")[.modificationDate] as? Date
        #expect(abs((originalTime ?? .distantPast).timeIntervalSince(restoredTime ?? .distantFuture)) < 0.001)

        // The live file changed: the dry run says so, a restore without --yes refuses, in place keeps the old one.
        try "services: { broken }\n".write(toFile: s.root + "/docker-compose.yml", atomically: true, encoding: .utf8)
        let dry = try s.run(["restore", "config", "--backup", id, "--in-place", "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("changed docker-compose.yml") && dry.stdout.contains("unchanged .env"), "\(dry.stdout)")
        #expect(try s.run(["restore", "config", "--backup", id, "--in-place"]).status == 2)
        let inPlace = try s.run(["restore", "config", "--backup", id, "--in-place", "--yes", "--json"])
        #expect(inPlace.status == 0, "\(inPlace.stderr)")
        #expect(try String(contentsOfFile: s.root + "/docker-compose.yml", encoding: .utf8).contains("kaleem-api"))
        #expect(try String(contentsOfFile: s.root + "/docker-compose.yml.kb-\(id)", encoding: .utf8).contains("broken"))
        #expect((try object(inPlace.stdout)["kept"] as? [String])?.count == 1)

        // One file only.
        let one = s.dir.file("one")
        #expect(try s.run(["restore", "config", "--backup", id, "--to-dir", one, "--file", "nginx/nginx.conf"]).status == 0)
        #expect(filesUnder(one) == ["nginx/nginx.conf"])

        // A drill extracts and compares, and reports drift against the live files.
        try "MONGO_PASSWORD=changed\n".write(toFile: s.root + "/.env", atomically: true, encoding: .utf8)
        let drill = try s.run(["drill", "--json"])
        #expect(drill.status == 0 && drill.stdout.contains("1 file(s) differ from the live configuration"), "\(drill.stdout)")
    }

    /// Crafted archives (their catalog row and manifest forged to match, as an attacker with the repository
    /// could): names with `..`, absolute names, a symlink used as a parent directory. Nothing is written
    /// outside the target.
    @Test(arguments: ["dotdot", "absolute", "symlinkParent"])
    func craftedArchivesWriteNothingOutside(_ attack: String) throws {
        let s = try Setup(encrypted: false, extra: ", allow_plaintext_secrets: true", paths: "[redis.conf]")
        let backup = try s.run(["backup", "--json"])
        let a = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)
        let id = try #require(a["id"] as? String)
        let artifact = s.dir.file("repo/" + (try #require(a["path"] as? String)))
        let outside = s.dir.file("outside")
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        let target = s.dir.file("target")
        // Python's tarfile writes what we ask, however unsafe; the row and manifest are forged to match.
        let script = #"""
        import gzip, hashlib, io, json, sqlite3, sys, tarfile
        attack, artifact, db, manifest_path, outside = sys.argv[1:6]
        members = {"dotdot": [("../escaped", "file", b"x")], "absolute": [(outside + "/escaped", "file", b"x")],
                   "symlinkParent": [("link", "symlink", outside), ("link/escaped", "file", b"x")]}[attack]
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            entries = []
            for name, kind, data in members:
                info = tarfile.TarInfo(name)
                if kind == "symlink":
                    info.type, info.linkname = tarfile.SYMTYPE, data
                    t.addfile(info)
                    entries.append({"path": name, "type": "symlink", "link": data, "size": 0, "mode": "777"})
                else:
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
                    entries.append({"path": name, "type": "file", "size": len(data), "mode": "644", "sha256": hashlib.sha256(data).hexdigest()})
        blob = gzip.compress(buf.getvalue())
        open(artifact, "wb").write(blob)
        sha = hashlib.sha256(blob).hexdigest()
        c = sqlite3.connect(db)
        row = c.execute("select stats from artifacts").fetchone()
        stats = json.loads(row[0]); stats["entries"] = entries
        c.execute("update artifacts set sha256=?, bytes_stored=?, stats=?", (sha, len(blob), json.dumps(stats))); c.commit()
        m = json.load(open(manifest_path)); m["artifact"]["sha256"] = sha; m["artifact"]["bytes_stored"] = len(blob); m["artifact"]["stats"] = stats
        json.dump(m, open(manifest_path, "w"))
        """#
        let manifest = artifact.replacingOccurrences(of: ".tar.gz", with: ".manifest.json")
        let forged = try runProcess("python3", ["-c", script, attack, artifact, s.dir.file("repo/catalog.sqlite"), manifest, outside])
        #expect(forged.status == 0, "\(forged.stderr)")
        let r = try s.run(["restore", "config", "--backup", id, "--to-dir", target, "--yes"])
        #expect(r.status != 0, "\(attack): \(r.stdout)")
        #expect(r.stderr.contains("refusing"), "\(attack): \(r.stderr)")
        #expect(filesUnder(outside).isEmpty, "\(attack): written outside: \(filesUnder(outside))")
        #expect(!FileManager.default.fileExists(atPath: s.dir.file("escaped")))
    }

    /// A file that keeps changing while it is read is read again once, then stored as read and said so.
    @Test func aFileChangingDuringTheBackupIsReadAgainAndReported() throws {
        let s = try Setup(encrypted: false, extra: ", allow_plaintext_secrets: true", paths: "[busy.log.data]")
        let busy = s.root + "/busy.log.data"
        FileManager.default.createFile(atPath: busy, contents: Data(count: 24 << 20))
        let (writer, _) = try startProcess("/bin/sh", ["-c", "while :; do echo x >> \"$0\"; done", busy])
        // SIGKILL: a SIGTERM can be ignored (the test process may ignore it, and an ignored signal stays ignored
        // across exec), and then the loop would outlive the test.
        defer { kill(writer.processIdentifier, SIGKILL); writer.waitUntilExit() }
        usleep(100_000)
        let r = try s.run(["backup", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let stats = try #require((try object(r.stdout)["artifacts"] as? [[String: Any]])?.first?["stats"] as? [String: Any])
        #expect(stats["changed_during_backup"] as? Int == 1, "\(stats.filter { $0.key != "entries" })")
        #expect((stats["warnings"] as? [String])?.first?.contains("changed while it was read") == true)
        #expect(try s.run(["verify", "--all"]).status == 0)
    }
}
