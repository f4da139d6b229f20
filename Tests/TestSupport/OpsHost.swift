// The operations document's host as a test fixture: the stack's directory laid out as the document lays it out
// (Tests/Fixtures/ops-host/, provenance in Tests/Fixtures/PROVENANCE.md), and the environment that
// policies/production.yml reads, so that the shipped policy runs against it unchanged.
import BackupCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

public final class OpsHost: @unchecked Sendable {
    /// How the host keeps its nginx configuration.
    public enum NginxForm: Sendable {
        /// The document's: `./nginx.conf` at the root (mounted by docker-compose.prod.yml) beside `nginx.lb.conf`.
        case rootFile
        /// The other common form: a `nginx/` directory (`nginx/nginx.conf`, `nginx/conf.d/`), no root nginx.conf.
        case directory
    }

    /// Everything of the test: the stack, secrets, the repository. Under /var/tmp: the docker stand-in hides /tmp
    /// (and $TMPDIR) from what it runs "in a container", and the MongoDB stand-in's log must stay visible.
    public let base: String
    /// The stack's directory (the document's /opt/kaleem; KALEEM_ROOT).
    public var root: String { base + "/kaleem" }
    /// A directory standing for the backup user's $HOME (where cron starts jobs).
    public var home: String { base + "/home" }
    public var repository: String { base + "/backups" }
    /// The .env written (§5.4.1's three secrets), to check it comes back and never shows in output.
    public let envFileText: String
    public let recipient: String

    /// The files the document's host holds that a configuration backup must keep, relative to `root`.
    public static let documentFiles = [".env", ".env.gpg", "docker-compose.yml", "docker-compose.prod.yml",
                                       "docker-compose.image.override.yml", "nginx.conf", "nginx.lb.conf",
                                       "redis.conf", "ssl/fullchain.pem", "ssl/privkey.pem"]

    public init(nginx: NginxForm = .rootFile) throws {
        base = "/var/tmp/kb-ops-host-\(UUID().uuidString.prefix(8))"
        let fm = FileManager.default
        let root = base + "/kaleem"
        for d in ["kaleem/ssl", "kaleem/qdrant_data/collections", "kaleem/embedding-service", "secrets", "home", "tmp"] {
            try fm.createDirectory(atPath: base + "/" + d, withIntermediateDirectories: true)
        }
        let fixtures = fixturesDirectory + "/ops-host/"
        var copied = ["docker-compose.yml", "docker-compose.prod.yml", "docker-compose.image.override.yml", "redis.conf"]
        if nginx == .rootFile { copied += ["nginx.conf", "nginx.lb.conf"] }
        for name in copied { try fm.copyItem(atPath: fixtures + name, toPath: base + "/kaleem/" + name) }
        if nginx == .directory {
            try fm.createDirectory(atPath: base + "/kaleem/nginx/conf.d", withIntermediateDirectories: true)
            try fm.copyItem(atPath: fixtures + "nginx.lb.conf", toPath: base + "/kaleem/nginx/nginx.conf")
            try Data("server { listen 80; location / { proxy_pass http://api:3000; } }\n".utf8).write(to: URL(fileURLWithPath: base + "/kaleem/nginx/conf.d/default.conf"))
        }
        // §5.4.1: JWT_SECRET, DATABASE_PASSWORD, REDIS_PASSWORD from openssl rand; random here too.
        func hex(_ n: Int) -> String { (0..<n).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }
        envFileText = "JWT_SECRET=\(hex(32))\nDATABASE_PASSWORD=\(hex(16))\nREDIS_PASSWORD=\(hex(16))\n"
        fm.createFile(atPath: root + "/.env", contents: Data(envFileText.utf8), attributes: [.posixPermissions: 0o600])
        // `gpg --symmetric` output stands in as random bytes: kaleem-backup never looks inside it.
        fm.createFile(atPath: root + "/.env.gpg", contents: Data((0..<256).map { _ in UInt8.random(in: 0...255) }))
        fm.createFile(atPath: root + "/ssl/fullchain.pem", contents: Data("-----BEGIN CERTIFICATE-----\nMIIB\(hex(24))\n-----END CERTIFICATE-----\n".utf8))
        fm.createFile(atPath: root + "/ssl/privkey.pem", contents: Data("-----BEGIN PRIVATE KEY-----\nMIIE\(hex(24))\n-----END PRIVATE KEY-----\n".utf8),
                      attributes: [.posixPermissions: 0o600])
        // Data and build contexts of the stack, which are not configuration.
        fm.createFile(atPath: root + "/qdrant_data/collections/data.bin", contents: Data(count: 4096))
        fm.createFile(atPath: root + "/embedding-service/Dockerfile", contents: Data("FROM python:3.12-slim\n".utf8))

        let keygen = try runProcess("/usr/bin/age-keygen", ["-o", base + "/secrets/age-key.txt"])
        guard keygen.status == 0 else { throw BackupFailure("age-keygen failed: \(keygen.stderr)") }
        recipient = keygen.stderr.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
    }

    /// A secret file under secrets/, 0600.
    @discardableResult
    public func secret(_ name: String, _ value: String) -> String {
        let path = base + "/secrets/" + name
        FileManager.default.createFile(atPath: path, contents: Data(value.utf8), attributes: [.posixPermissions: 0o600])
        return path
    }

    /// What production.yml reads as `${VAR}` on this host, plus the stand-ins on PATH (docker, the MongoDB tools);
    /// the values of sources not started are placeholders (enough to load the policy; a backup of them fails).
    public func environment(redisURL: String = "redis://127.0.0.1:1", redisPassword: String = "unset",
                            minioEndpoint: String = "http://127.0.0.1:1", minioAccessKey: String = "kaleem-backup", minioSecret: String = "unset",
                            qdrantURL: String = "http://127.0.0.1:1", qdrantKey: String = "unset",
                            mongoURI: String = "mongodb://backup:pw@127.0.0.1:27017/?authSource=admin",
                            webhookBase: String = "http://127.0.0.1:1") -> [String: String] {
        [
            "PATH": packageRoot + "/Tests/StandIns:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            "HOME": home, "TMPDIR": base + "/tmp",
            "KALEEM_ROOT": root, "KALEEM_BACKUP_DIR": repository, "KALEEM_METRICS_TEXTFILE": base + "/metrics/kaleem_backup.prom",
            "KALEEM_AGE_RECIPIENT": recipient, "KALEEM_AGE_IDENTITY_FILE": base + "/secrets/age-key.txt",
            "MONGODB_URI": mongoURI,
            "REDIS_URL": redisURL, "REDIS_PASSWORD_FILE": secret("redis_password", redisPassword),
            "MINIO_ENDPOINT": minioEndpoint, "MINIO_BACKUP_ACCESS_KEY": minioAccessKey,
            "MINIO_BACKUP_SECRET_FILE": secret("minio_backup_secret", minioSecret),
            "QDRANT_URL": qdrantURL, "QDRANT_API_KEY_FILE": secret("qdrant_api_key", qdrantKey),
            "N8N_BASE_URL": webhookBase,
            "STANDIN_LOG": base + "/standin.jsonl", "DOCKER_LOG": base + "/docker.jsonl",
        ]
    }

    /// The docker stand-in's calls, one object each (argv, cwd).
    public func dockerCalls() -> [[String: Any]] {
        let text = (try? String(contentsOfFile: base + "/docker.jsonl", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    deinit { try? FileManager.default.removeItem(atPath: base) }
}
