@testable import BackupEngine
import BackupCore
import Foundation
import TestSupport
import Testing

@Suite(.blockingThreads) struct DefaultsTests {
    /// The binary's embedded policy is the file in policies/ (regenerate with scripts/embed-policy.sh).
    @Test func embeddedPolicyMatchesTheFile() throws {
        let file = try String(contentsOfFile: packageRoot + "/policies/local.yml", encoding: .utf8)
        #expect(EmbeddedPolicy.localYAML + "\n" == file || EmbeddedPolicy.localYAML == file)
    }

    /// What production.yml needs of a host: its variables, the secret files, the stack's directory, an age key.
    static func productionHost() throws -> (TemporaryDirectory, [String: String]) {
        let secrets = TemporaryDirectory()
        for f in ["redis", "minio", "qdrant"] { FileManager.default.createFile(atPath: secrets.file(f), contents: Data("s".utf8), attributes: [.posixPermissions: 0o600]) }
        for d in ["kaleem/nginx", "kaleem/ssl"] { try FileManager.default.createDirectory(atPath: secrets.file(d), withIntermediateDirectories: true) }
        for f in ["kaleem/.env", "kaleem/docker-compose.yml", "kaleem/nginx/nginx.conf", "kaleem/redis.conf"] {
            FileManager.default.createFile(atPath: secrets.file(f), contents: Data("x".utf8))
        }
        let keygen = try runProcess("/usr/bin/age-keygen", ["-o", secrets.file("age-key.txt")])
        let recipient = keygen.stderr.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        let env = ["REDIS_URL": "redis://127.0.0.1:6379", "MONGODB_URI": "mongodb://backup:pw@127.0.0.1:27017/?authSource=admin",
                   "REDIS_PASSWORD_FILE": secrets.file("redis"), "MINIO_BACKUP_SECRET_FILE": secrets.file("minio"),
                   "QDRANT_API_KEY_FILE": secrets.file("qdrant"), "KALEEM_ROOT": secrets.file("kaleem"), "KALEEM_AGE_RECIPIENT": recipient, "KALEEM_AGE_IDENTITY_FILE": secrets.file("age-key.txt")]
        return (secrets, env)
    }

    @Test(arguments: ["local.yml", "production.yml"])
    func shippedPoliciesAreValid(name: String) throws {
        let (secrets, env) = try Self.productionHost()
        _ = secrets
        let policy = try PolicyLoader.load(path: packageRoot + "/policies/" + name, environment: env)
        #expect(!policy.sources.isEmpty)
        let r = try runCLI(["policy", "check", "--policy", packageRoot + "/policies/" + name], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// A secret file that does not exist is found by `policy check`, not by the first nightly run.
    @Test func policyCheckFindsAMissingSecretFile() throws {
        var (secrets, env) = try Self.productionHost()
        _ = secrets
        env["REDIS_PASSWORD_FILE"] = "/nonexistent/redis_password"
        env["MINIO_BACKUP_SECRET_FILE"] = "/nonexistent/minio"
        let r = try runCLI(["policy", "check", "--policy", packageRoot + "/policies/production.yml"], environment: env)
        #expect(r.status == 2)
        #expect(r.stderr.contains("sources.redis.password_file: /nonexistent/redis_password is missing"), "\(r.stderr)")
        #expect(r.stderr.contains("sources.minio.secret_key_file"), "\(r.stderr)")
    }

    @Test func productionPolicyNeedsItsVariables() throws {
        let r = try runCLI(["policy", "check", "--policy", packageRoot + "/policies/production.yml"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("MONGODB_URI"))
        let redis = try runCLI(["policy", "check", "--policy", packageRoot + "/policies/production.yml"],
                               environment: ["MONGODB_URI": "mongodb://h/"])
        #expect(redis.status == 2)
        #expect(redis.stderr.contains("REDIS_URL"))
    }

    /// --version: the version and the commit the binary was built from (the BuildInfo plugin runs git at build time).
    @Test func versionNamesTheCommit() throws {
        let r = try runCLI(["--version"])
        #expect(r.status == 0)
        #expect(r.stdout.hasPrefix("0.1.0 (commit "), "\(r.stdout)")
        let head = try runProcess("/usr/bin/git", ["-C", packageRoot, "rev-parse", "--short=12", "HEAD"])
        if head.status == 0 { // a checkout: the binary names its commit (maybe marked -dirty)
            #expect(r.stdout.contains("(commit \(head.stdout.trimmingCharacters(in: .whitespacesAndNewlines))"), "\(r.stdout)")
        }
    }

    /// The README's first command: the demo on the embedded defaults, in an empty directory.
    @Test func demoRunsOnTheEmbeddedDefaults() throws {
        let dir = TemporaryDirectory()
        let r = try runCLI(["demo"], in: dir.path)
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("<embedded policies/local.yml>"))
        #expect(r.stdout.contains("verify:"))
        #expect(FileManager.default.fileExists(atPath: dir.file("backups/catalog.sqlite")))
        #expect(filesUnder(dir.file("backups")).contains { $0.hasSuffix(".rdb.gz") })

        // --json: one JSON document on stdout, nothing else on it.
        let j = try runCLI(["demo", "--json"], in: dir.path)
        #expect(j.status == 0, "\(j.stderr)")
        let demo = try object(j.stdout)
        #expect((demo["scratch_redis"] as? [String: Any])?["keys"] as? Int ?? 0 > 0)
        #expect(demo["policy"] as? String == "<embedded policies/local.yml>")
        let backup = try #require(demo["backup"] as? [String: Any])
        let made = try #require((backup["artifacts"] as? [[String: Any]])?.first?["id"] as? String)
        #expect((demo["verify"] as? [[String: Any]])?.map { $0["ok"] as? Bool } == [true])
        #expect((demo["newest"] as? [[String: Any]])?.first?["id"] as? String == made)
        #expect((demo["newest"] as? [[String: Any]])?.count == 2)
    }

    /// Without a policy a command refuses (exit 2) and says where it looked; it used to run the embedded demo
    /// policy and create ./backups in whatever directory it ran from (cron's $HOME, systemd's /). The demo still
    /// runs on the embedded defaults (above).
    @Test(arguments: [["list"], ["backup"], ["rotate", "--dry-run"], ["policy", "check"], ["schedule"]])
    func aCommandWithoutAPolicyRefuses(command: [String]) throws {
        let dir = TemporaryDirectory()
        // A host with the package installed has /etc/kaleem-backup/policy.yml (found, rightly): hidden here under
        // an empty tmpfs in a private mount namespace.
        let r = FileManager.default.fileExists(atPath: "/etc/kaleem-backup")
            ? try runProcess("unshare", ["--mount", "sh", "-c", "mount -t tmpfs none /etc/kaleem-backup && exec \"$@\"", "sh",
                                         try kaleemBinary()] + command, environment: cliEnvironment(), currentDirectory: dir.path)
            : try runCLI(command, in: dir.path)
        #expect(r.status == 2, "\(r.status) \(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("no policy found"), "\(r.stderr)")
        #expect(r.stderr.contains("--policy"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}
