@testable import BackupCLI
import BackupCore
import BackupEngine
import Foundation
import RedisBackup
import S3Client
import Testing
import TestSupport

/// #18 (progress and context): on a terminal (a pty through `script`), long work is drawn on stderr and the first
/// line names the policy and the repository; a pipe gets none of it, `-v` gets the context line, `--quiet` gets
/// errors only, `--json` no progress. A real redis-server that waits before its snapshot
/// (`repl-diskless-sync-delay 2`) makes the backup long enough to be drawn, and its wait is said.
@Suite(.blockingThreads) struct ProgressTests {
    /// Runs the CLI under a pseudo-terminal; stdout and stderr arrive together.
    func onTerminal(_ arguments: [String]) throws -> ProcessResult {
        let command = ([try kaleemBinary()] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        return try runProcess("/usr/bin/script", ["-qfec", command, "/dev/null"], environment: cliEnvironment(["TERM": "xterm", "COLUMNS": "160"]))
    }

    @Test func aTerminalSeesProgressAndContextAPipeDoesNot() throws {
        let redis = try RedisTestServer(settings: ["repl-diskless-sync-delay 2"])
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: redis.url)
        let clear = "\r\u{1B}[K"

        let tty = try onTerminal(["backup", "--policy", policy])
        #expect(tty.status == 0, "\(tty.stdout)")
        #expect(tty.stdout.hasPrefix("kaleem-backup: policy \(policy), repository \(dir.file("repo"))"), "\(tty.stdout.prefix(200))")
        #expect(tty.stdout.contains(clear + "backup redis (the server waits 2 s first: repl-diskless-sync-delay)"), "\(tty.stdout)")
        // The line is cleared before the result is printed.
        let lastDraw = try #require(tty.stdout.range(of: clear, options: .backwards))
        #expect(tty.stdout[lastDraw.upperBound...].hasPrefix("run "), "\(tty.stdout[lastDraw.lowerBound...])")

        let piped = try runCLI(["backup", "--policy", policy])
        #expect(piped.status == 0)
        #expect(!piped.stderr.contains("\u{1B}[K") && !piped.stderr.contains("kaleem-backup: policy"), "\(piped.stderr)")

        let verbose = try runCLI(["backup", "-v", "--policy", policy])
        #expect(verbose.stderr.hasPrefix("kaleem-backup: policy \(policy), repository"), "\(verbose.stderr)")
        #expect(verbose.stderr.contains("repl-diskless-sync-delay") && verbose.stderr.contains("seconds=2"), "\(verbose.stderr)")
        #expect(!verbose.stderr.contains("\u{1B}[K"))

        let quiet = try onTerminal(["backup", "--quiet", "--policy", policy])
        #expect(quiet.status == 0)
        #expect(!quiet.stdout.contains("\u{1B}[K") && !quiet.stdout.contains("kaleem-backup: policy"), "\(quiet.stdout)")

        let json = try onTerminal(["backup", "--json", "--policy", policy])
        #expect(json.status == 0)
        #expect(!json.stdout.contains("\u{1B}[K"), "\(json.stdout.prefix(300))")
        #expect(json.stdout.contains("\"artifacts\""))
    }

    /// --quiet keeps errors and drops warnings: a failed backup still says why.
    @Test func quietKeepsErrors() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(try FreePort.pick())", extra: "retention: { keep_last: 0, daily: 0 }")
        let r = try runCLI(["backup", "--quiet", "--policy", policy])
        #expect(r.status == 1)
        #expect(r.stderr.contains("error") && r.stderr.contains("Connection refused"), "\(r.stderr)")
        #expect(!r.stderr.contains("warning"), "\(r.stderr)")
    }

    /// What the engine reports while it works, seen through the meter's observer: a files backup counts files, a
    /// restore counts the bytes it reads against the recorded size, a bucket restore counts objects.
    @Test func backupsAndRestoresReportWhatTheyDo() async throws {
        try await EngineExecutor.run {
            let seen = Seen()
            let meter = ProgressMeter { state in if let state { seen.record(state) } }
            func engine(_ path: String) throws -> BackupEngine {
                var environment = EngineEnvironment(variables: [:])
                environment.progress = meter
                return BackupEngine(policy: try PolicyLoader.load(path: path, environment: [:]), environment: environment)
            }
            // Files: every file and directory counted, against the total.
            let files = try FilesSourceTests.Setup()
            let backup = try await engine(files.policy).backup(tag: .manual)
            #expect(backup.exitStatus == .ok)
            let counted = try #require(seen.last { $0.label == "backup config" })
            #expect(counted.itemUnit == "files" && counted.totalItems ?? 0 > 5 && counted.items == counted.totalItems, "\(counted)")
            #expect(counted.bytes > 0)

            // Redis: a file-mode restore reads the whole artifact under "restore <id>".
            let redis = try RedisTestServer()
            let c = try redis.connect()
            for i in 0..<2_000 { _ = try c.command(["SET", "k\(i)", String(repeating: "v", count: 100)]) }
            c.close()
            let dir = TemporaryDirectory()
            let policy = writeRedisPolicy(in: dir, url: redis.url)
            let redisEngine = try engine(policy)
            let taken = try #require(try await redisEngine.backup(tag: .manual).artifacts.first)
            try FileManager.default.createDirectory(atPath: dir.file("restored"), withIntermediateDirectories: true)
            _ = try await redisEngine.restore(RestoreRequest(source: "redis", backup: .latest, confirmed: true),
                                              kindArguments: ["--to-dir", dir.file("restored")]) { _ in }
            let read = try #require(seen.last { $0.label == "restore \(taken.id)" })
            #expect(read.totalBytes == taken.bytesRaw && read.bytes == taken.bytesRaw, "\(read)")

            // A bucket: the restore counts the objects it uploads against the plan.
            let server = try S3TestServer()
            let client = try server.client()
            defer { client.shutdown() }
            try await client.createBucket("media")
            try await putAll(client, ["media": Dictionary(uniqueKeysWithValues: (0..<12).map { ("k\($0)", Array("object \($0)".utf8)) })])
            try await client.createBucket("offsite-copy")
            let bucketDir = TemporaryDirectory()
            let bucketPolicy = writeS3Policy(in: bucketDir, server: server, buckets: ["media"])
            // The same source with an off-site copy (on the same S3 server).
            var text = try String(contentsOfFile: bucketPolicy, encoding: .utf8)
            text = text.replacingOccurrences(of: "  path: \(bucketDir.file("repo"))\n", with: """
                  path: \(bucketDir.file("repo"))
                  offsite: { endpoint: "\(server.endpoint)", bucket: offsite-copy, prefix: p, access_key: \(server.accessKey), secret_key_file: \(bucketDir.file("s3-secret")) }

                """)
            try text.write(toFile: bucketPolicy, atomically: true, encoding: .utf8)
            let bucketEngine = try engine(bucketPolicy)
            let snapshot = try #require(try await bucketEngine.backup(tag: .manual).artifacts.first)
            #expect(snapshot.offsite == .ok, "\(snapshot)")
            // The blobs are gone here: the restore fetches them from off-site, counted blob by blob.
            try FileManager.default.removeItem(atPath: bucketDir.file("repo/minio/blobs"))
            _ = try await bucketEngine.restore(RestoreRequest(source: "minio", backup: .latest, confirmed: true),
                                               kindArguments: ["--bucket", "media", "--to-bucket", "media-copy"]) { _ in }
            let uploaded = try #require(seen.last { $0.label == "restore \(snapshot.id) into media-copy" })
            #expect(uploaded.itemUnit == "objects" && uploaded.items == 12 && uploaded.totalItems == 12, "\(uploaded)")
            let fetched = try #require(seen.last { $0.label.hasPrefix("fetch blobs of minio from ") })
            #expect(fetched.itemUnit == "blobs" && fetched.items == 12 && fetched.totalItems == 12 && fetched.bytes > 0, "\(fetched)")
        }
    }

    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var states: [ProgressMeter.State] = []
        func record(_ s: ProgressMeter.State) { lock.withLock { states.append(s) } }
        func last(where match: (ProgressMeter.State) -> Bool) -> ProgressMeter.State? { lock.withLock { states.last(where: match) } }
    }

    @Test func theLineSaysDoneTotalRateAndETA() {
        var s = ProgressMeter.State(label: "verify X", bytes: 50 << 20, totalBytes: 100 << 20, itemUnit: "objects", generation: 1)
        #expect(ProgressRenderer.line(s, seconds: 5) == "verify X  50.0 MiB / 100.0 MiB  50%  10.0 MiB/s  ETA 0:05")
        s = ProgressMeter.State(label: "backup minio", bytes: 3 << 20, items: 250, totalItems: 1000, itemUnit: "objects", generation: 2)
        #expect(ProgressRenderer.line(s, seconds: 10) == "backup minio  250 / 1000 objects  3.0 MiB  ETA 0:30")
        s = ProgressMeter.State(label: "backup redis", bytes: 700, itemUnit: "objects", generation: 3)
        #expect(ProgressRenderer.line(s, seconds: 1) == "backup redis  700 B  700 B/s")
    }
}
