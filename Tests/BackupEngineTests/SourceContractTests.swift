import BackupCore
import BackupEngine
import Foundation
import NIOCore
import S3Client
import TestSupport
import Testing

/// What the source contract suite needs to run one kind: its server or stand-in, the policy entry of a source
/// named `src`, and the kind's restore options into a side target. Add one for every registered kind.
protocol SourceContractHarness: Sendable {
    /// The `sources.src` mapping (flow style), pointing at the running server.
    var sourceEntry: String { get }
    /// Environment for the CLI (stand-ins on PATH, …).
    var environment: [String: String] { get }
    /// The kind's options for a restore into a side target (never the source itself); `--yes` is added.
    func restoreArguments(scratch: TemporaryDirectory) -> [String]
    /// Checks the side target after the restore.
    func checkRestored(scratch: TemporaryDirectory) async throws
    /// Paths `ls` must show (keys, object keys, files, namespaces, collections), and the type of the first.
    var listed: (paths: [String], type: String) { get }
    func stop()
}

/// How to start each kind's harness: the registry's kinds, each must have one.
let contractHarnesses: [String: @Sendable () async throws -> any SourceContractHarness] = [
    "redis": { try RedisHarness() },
    "mongodb": { try MongoHarness() },
    "s3": { try await BucketHarness.start() },
    "files": { try FilesHarness() },
    "qdrant": { try QdrantHarness() },
]

/// One test for every registered kind: backup → verify → one flipped byte makes verify fail with exit 4 →
/// restore into a side target → drill → a second backup rotates the first away. A kind added to the registry
/// is tested here by giving it a harness, not by writing new tests.
@Suite(.serialized) struct SourceContractTests {
    @Test(arguments: SourceKinds.names)
    func contract(kind: String) async throws {
        guard let start = contractHarnesses[kind] else {
            Issue.record("the registered kind \(kind) has no contract harness: add one to contractHarnesses")
            return
        }
        let harness = try await start()
        defer { harness.stop() }
        let dir = TemporaryDirectory("kb-contract")
        let scratch = TemporaryDirectory("kb-contract-target")
        let policy = dir.file("policy.yml")
        FileManager.default.createFile(atPath: policy, contents: Data("""
        repository: { path: \(dir.file("repo")) }
        sources:
          src: \(harness.sourceEntry)
        retention: { keep_last: 1, daily: 0 }
        """.utf8))
        func run(_ args: [String]) throws -> ProcessResult {
            try runCLI(args + ["--policy", policy], environment: harness.environment)
        }

        // backup
        let backup = try run(["backup", "--json"])
        #expect(backup.status == 0, "\(kind) backup: \(backup.stdout) \(backup.stderr)")
        let artifact = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)
        #expect(artifact["kind"] as? String == kind)
        #expect(artifact["status"] as? String == "ok")
        let id = try #require(artifact["id"] as? String)
        let path = dir.file("repo/" + (try #require(artifact["path"] as? String)))

        // verify
        let verify = try run(["verify", id, "--json"])
        #expect(verify.status == 0, "\(kind) verify: \(verify.stdout) \(verify.stderr)")

        // one flipped byte: exit 4; flipped back: ok again
        var bytes = try #require(FileManager.default.contents(atPath: path))
        let at = bytes.count / 2
        bytes[at] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        let tampered = try run(["verify", id, "--json"])
        #expect(tampered.status == 4, "\(kind) verify of a flipped byte: \(tampered.status) \(tampered.stdout) \(tampered.stderr)")
        bytes[at] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(try run(["verify", id]).status == 0)

        // ls: what the backup holds, all of it, then one entry by --match and by --prefix
        let ls = try run(["ls", id, "--json"])
        #expect(ls.status == 0, "\(kind) ls: \(ls.stderr)")
        let entries = try array(ls.stdout)
        let paths = Set(entries.compactMap { $0["path"] as? String })
        #expect(Set(harness.listed.paths).isSubset(of: paths), "\(kind) ls: \(paths.sorted().prefix(20))")
        #expect(entries.allSatisfy { $0["type"] is String && $0.keys.contains("size") })
        let first = harness.listed.paths[0]
        let one = try array(try run(["ls", id, "--json", "--match", first]).stdout)
        #expect(one.map { $0["path"] as? String } == [first] && one.first?["type"] as? String == harness.listed.type, "\(kind) ls --match \(first): \(one)")
        let byPrefix = try array(try run(["ls", id, "--json", "--prefix", first]).stdout).compactMap { $0["path"] as? String }
        #expect(byPrefix.contains(first) && byPrefix.allSatisfy { $0.hasPrefix(first) })

        // restore into a side target
        let restore = try run(["restore", "src", "--backup", id] + harness.restoreArguments(scratch: scratch) + ["--yes", "--json"])
        #expect(restore.status == 0, "\(kind) restore: \(restore.stdout) \(restore.stderr)")
        try await harness.checkRestored(scratch: scratch)

        // drill
        let drill = try run(["drill", "--json"])
        #expect(drill.status == 0, "\(kind) drill: \(drill.stdout) \(drill.stderr)")
        let result = (try? array(drill.stdout).first?["result"] as? String) ?? nil
        #expect(result == "passed" || result == "archive-only", "\(kind) drill: \(drill.stdout)")

        // a second backup rotates the first away (keep_last: 1), and what stays verifies
        let second = try run(["backup", "--json"])
        #expect(second.status == 0, "\(kind) second backup: \(second.stderr)")
        let listed = try array(try run(["list", "--json"]).stdout)
        #expect(listed.count == 1 && listed.first?["id"] as? String != id, "\(kind) rotation: \(listed.map { $0["id"] ?? "" })")
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try run(["verify", "--all"]).status == 0)
    }

    /// The registry is the one list of kinds; the CLI's help lists every kind's restore options from it.
    @Test func restoreHelpListsEveryKind() throws {
        let help = try runCLI(["restore", "--help"])
        // Laid out as the others (#36): OVERVIEW, USAGE, OPTIONS, then each kind's options as OPTIONS are (the
        // name from column 2, the help from column 26), every line within 80 columns.
        let options = try #require(help.stdout.range(of: "\nOPTIONS:\n"))
        for kind in SourceKinds.names {
            let section = try #require(help.stdout.range(of: "\n\(kind.uppercased()) SOURCE OPTIONS:\n"), "\(help.stdout)")
            #expect(section.lowerBound > options.upperBound)
        }
        #expect(help.stdout.contains("--to-dir") && help.stdout.contains("--to-bucket") && help.stdout.contains("--ns-from"))
        #expect(help.stdout.contains("\n  --in-place              write them over"), "\(help.stdout)")
        for line in help.stdout.split(separator: "\n") where !line.hasPrefix("USAGE:") { #expect(line.count <= 80, "\(line)") }
    }

    /// A kind option of another kind is refused with the options this kind takes (exit 2).
    @Test func anotherKindsOptionIsRefused() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1")
        let r = try runCLI(["restore", "redis", "--latest", "--to-bucket", "x", "--policy", policy])
        #expect(r.status == 2)
        #expect(r.stderr.contains("--to-bucket is not an option of redis sources") && r.stderr.contains("--to-dir"), "\(r.stderr)")
    }

    /// An artifact of a kind this build does not know is an error naming the kind, never read as another kind.
    @Test func unknownKindInTheCatalogIsNamed() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(server.server.port)")
        let backup = try runCLI(["backup", "--json", "--policy", policy])
        #expect(backup.status == 0)
        let db = dir.file("repo/catalog.sqlite")
        let r = try runProcess("python3", ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"update artifacts set kind='tape'\"); c.commit()", db])
        #expect(r.status == 0, "\(r.stderr)")
        let verify = try runCLI(["verify", "--all", "--json", "--policy", policy])
        #expect(verify.status == 4)
        #expect(verify.stdout.contains("unknown source kind \\\"tape\\\""), "\(verify.stdout)")
    }

    /// The catalog's strings are read into types: a compression this build does not know is an error naming it
    /// (exit 4), never read as gzip. (A deployment event cannot be unknown: the schema's CHECK refuses it.)
    @Test func unknownCompressionIsNamed() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(server.server.port)")
        let backup = try runCLI(["backup", "--json", "--policy", policy])
        #expect(backup.status == 0, "\(backup.stderr)")
        let db = dir.file("repo/catalog.sqlite")
        let r = try runProcess("python3", ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"update artifacts set compression='zstd'\"); c.commit()", db])
        #expect(r.status == 0, "\(r.stderr)")
        let verify = try runCLI(["verify", "--all", "--json", "--policy", policy])
        #expect(verify.status == 4)
        #expect(verify.stdout.contains("compression \\\"zstd\\\""), "\(verify.stdout)")
        let list = try runCLI(["list", "--json", "--policy", policy])
        #expect(list.stdout.contains("\"compression\" : \"zstd\""), "\(list.stdout)")
    }
}

// MARK: harnesses

struct RedisHarness: SourceContractHarness {
    let server: RedisTestServer

    init() throws {
        server = try RedisTestServer()
        let c = try server.connect()
        defer { c.close() }
        for i in 0..<200 { _ = try c.command(["SET", "key:\(i)", "value \(i)"]) }
        _ = try c.command(["HSET", "h", "a", "1", "b", "2"])
    }

    var sourceEntry: String { "{ kind: redis, url: \"redis://127.0.0.1:\(server.server.port)\", timeout: 20s }" }
    var listed: (paths: [String], type: String) { (["key:7", "key:199", "h"], "string") }
    var environment: [String: String] { [:] }
    func restoreArguments(scratch: TemporaryDirectory) -> [String] { ["--to-dir", scratch.path] }
    func checkRestored(scratch: TemporaryDirectory) async throws {
        let rdb = try #require(FileManager.default.contents(atPath: scratch.file("dump.rdb")))
        #expect(rdb.starts(with: Data("REDIS".utf8)))
    }
    func stop() {}
}

struct MongoHarness: SourceContractHarness {
    let tmp = TemporaryDirectory("kb-contract-mongo")

    init() throws {}

    var sourceEntry: String { "{ kind: mongodb, uri: \"mongodb://backup:pw@db.internal:27017/?authSource=admin\", timeout: 10s }" }
    var listed: (paths: [String], type: String) { (["test.foo"], "namespace") }
    var environment: [String: String] {
        ["PATH": packageRoot + "/Tests/StandIns:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
         "STANDIN_LOG": tmp.file("standin.jsonl"), "TMPDIR": tmp.path]
    }
    func restoreArguments(scratch: TemporaryDirectory) -> [String] { ["--to-uri", "mongodb://127.0.0.1:27018/"] }
    func checkRestored(scratch: TemporaryDirectory) async throws {
        let log = (try? String(contentsOfFile: tmp.file("standin.jsonl"), encoding: .utf8)) ?? ""
        #expect(log.contains("mongorestore"), "the stand-in mongorestore was not run: \(log)")
    }
    func stop() {}
}

struct BucketHarness: SourceContractHarness {
    let server: S3TestServer
    let secretFile: TemporaryDirectory

    static func start() async throws -> BucketHarness {
        let server = try S3TestServer()
        let client = try server.client()
        do {
            try await client.createBucket("contract-src")
            for i in 0..<20 {
                try await client.putObject(bucket: "contract-src", key: "obj/\(i).txt", bytes: ByteBuffer(string: "object \(i) " + String(repeating: "x", count: i * 100)))
            }
        } catch {
            client.shutdown()
            throw error
        }
        client.shutdown()
        let dir = TemporaryDirectory("kb-contract-s3")
        FileManager.default.createFile(atPath: dir.file("secret"), contents: Data(server.secretKey.utf8), attributes: [.posixPermissions: 0o600])
        return BucketHarness(server: server, secretFile: dir)
    }

    var listed: (paths: [String], type: String) { (["obj/3.txt", "obj/19.txt"], "object") }
    var sourceEntry: String {
        "{ kind: s3, endpoint: \"\(server.endpoint)\", buckets: [contract-src], access_key: \(server.accessKey), secret_key_file: \(secretFile.file("secret")), timeout: 10s }"
    }
    var environment: [String: String] { ["KALEEM_BACKUP_S3_ATTEMPTS": "2", "KALEEM_BACKUP_S3_BACKOFF": "0.05"] }
    func restoreArguments(scratch: TemporaryDirectory) -> [String] { ["--to-bucket", "contract-restored"] }
    func checkRestored(scratch: TemporaryDirectory) async throws {
        let client = try server.client()
        let keys = try await client.listObjects(bucket: "contract-restored").map(\.key)
        client.shutdown()
        #expect(keys.count == 20)
    }
    func stop() { server.stop() }
}

struct FilesHarness: SourceContractHarness {
    let root = TemporaryDirectory("kb-contract-files")

    init() throws {
        try FileManager.default.createDirectory(atPath: root.file("nginx"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: root.file("docker-compose.yml"), contents: Data(String(repeating: "services: {}\n", count: 400).utf8))
        FileManager.default.createFile(atPath: root.file("nginx/nginx.conf"), contents: Data("events {}\n".utf8))
    }

    var sourceEntry: String { "{ kind: files, root: \(root.path), paths: [\"docker-compose*.yml\", nginx/] }" }
    var listed: (paths: [String], type: String) { (["nginx/nginx.conf", "docker-compose.yml"], "file") }
    var environment: [String: String] { [:] }
    func restoreArguments(scratch: TemporaryDirectory) -> [String] { ["--to-dir", scratch.file("restored")] }
    func checkRestored(scratch: TemporaryDirectory) async throws {
        #expect(FileManager.default.contents(atPath: scratch.file("restored/nginx/nginx.conf")) == Data("events {}\n".utf8))
    }
    func stop() {}
}

struct QdrantHarness: SourceContractHarness {
    let server: QdrantStandIn

    init() throws { server = try QdrantStandIn(collections: ["documents": (points: 40, dim: 8)]) }

    var sourceEntry: String { "{ kind: qdrant, url: \"\(server.url)\", timeout: 20s }" }
    var listed: (paths: [String], type: String) { (["documents"], "collection") }
    var environment: [String: String] { [:] }
    func restoreArguments(scratch: TemporaryDirectory) -> [String] { ["--to-collection", "documents_restored"] }
    func checkRestored(scratch: TemporaryDirectory) async throws {
        #expect(server.count("documents_restored") == 40) // exact: collection info's points_count is approximate
    }
    func stop() {}
}
