// `kind: redis`: a SYNC snapshot streamed into the pipeline while the RDB verifier walks it; restores as a file
// or online (replication from a scratch server); drills into a scratch redis-server.
import ArtifactStore
import BackupCore
import Foundation
import RedisBackup

extension RDBError: IntegrityFailure {}

extension ImportFormat {
    /// An RDB file (`redis-YYYYMMDD.rdb`, a copy of a server's dump.rdb).
    static let rdb = ImportFormat(rawValue: "rdb", kind: SourceKind("redis"))
}

struct RedisAdapter: ImportingKind {
    typealias Settings = RedisSourcePolicy
    let kind = SourceKind("redis")
    let fileExtension = "rdb"
    let summary = "a SYNC snapshot (RDB), restored as a file (--to-dir) or into a live server (--to-url)"

    // MARK: backup

    /// The snapshot's bytes go to the writer and, through a bounded channel, to the RDB verifier running on
    /// its own thread. A snapshot that does not verify fails.
    func backupStream(_ source: TypedSource<RedisSourcePolicy>, into writer: ArtifactWriter, context: SourceContext) throws -> [String: JSONValue] {
        let policy = source.settings
        let password = try context.secrets(for: source.name).resolve(policy.password, key: "password") ?? policy.endpoint.password
        if let delay = Self.disklessSyncDelay(policy.endpoint, password: password), delay > 0 {
            context.logger.info("the server waits before it sends the snapshot (repl-diskless-sync-delay); CONFIG SET repl-diskless-sync-delay 0 removes the wait",
                                metadata: ["source": "\(source.name)", "seconds": "\(delay)"])
            context.progress?.begin("backup \(source.name) (the server waits \(delay) s first: repl-diskless-sync-delay)")
        }
        let verification = VerifierThread { source in try RDBVerifier.verify(source) }
        let (taken, report) = try verification.around {
            try RedisSnapshot.take(endpoint: policy.endpoint, password: password, timeout: policy.timeoutSeconds,
                                   startTimeout: policy.startTimeoutSeconds,
                                   deadline: Date(timeIntervalSinceNow: source.deadlineSeconds),
                                   deadlineError: DeadlineExceeded(source: source.name, seconds: source.deadlineSeconds),
                                   rate: source.policy.rateWindow()) { chunk in
                try verification.feed(chunk, alongside: writer)
            }
        }
        var stats = report.stats
        stats["framing"] = .string(taken.framing.rawValue)
        return stats
    }

    /// `import` of an RDB file (`redis-YYYYMMDD.rdb`, a copy of the server's dump.rdb): the same verifier as a
    /// snapshot's, over the file's bytes.
    func importFormat(of path: String, isDirectory: Bool, head: [UInt8]) -> ImportFormat? {
        !isDirectory && head.starts(with: Array("REDIS".utf8)) ? .rdb : nil
    }
    var importedFile: String? { "an RDB file (REDIS…)" }

    func importStream(format: ImportFormat, from path: String, digest: String, into writer: ArtifactWriter, context: SourceContext) throws -> [String: JSONValue] {
        guard format == .rdb else { throw BackupFailure("a redis source imports RDB files, not a \(format.rawValue)", exitStatus: .usage) }
        let verification = VerifierThread { source in try RDBVerifier.verify(source) }
        let (_, report) = try verification.around {
            try Importer.stream(path, format: format, expecting: digest) { chunk in try verification.feed(chunk, alongside: writer) }
        }
        var stats = report.stats
        stats["framing"] = .string("file")
        return stats
    }

    /// The seconds a diskless server waits before a snapshot (`repl-diskless-sync-delay`, 5 by default), or nil
    /// when it is not diskless or will not say (CONFIG may be denied to a backup user: then nothing is said).
    static func disklessSyncDelay(_ endpoint: RedisEndpoint, password: Secret?) -> Int? {
        guard let c = try? RESPConnection(endpoint: endpoint, ioTimeout: 5) else { return nil }
        defer { c.close() }
        guard (try? RedisSnapshot.authenticate(c, endpoint: endpoint, password: password)) != nil,
              (try? RedisOnlineRestore.configGet(c, "repl-diskless-sync")) == "yes" else { return nil }
        return (try? RedisOnlineRestore.configGet(c, "repl-diskless-sync-delay")).flatMap { $0 }.flatMap(Int.init)
    }

    // MARK: verify

    func verifyContents(_ artifact: ArtifactInfo, _ contents: GzipChunkSource, path: String) throws -> String {
        let report = try RDBVerifier.verify(contents)
        var rest = contents
        rest.drain()
        try rest.finishError()
        if let recorded = artifact.stats["keys"]?.intValue, recorded != report.keys {
            throw IntegrityError(object: path, problem: "RDB holds \(report.keys) keys, the catalog recorded \(recorded)")
        }
        return "sha256 ok, gzip ok, RDB v\(report.version) checksum \(report.checksum.rawValue), \(report.keys) keys"
    }

    // MARK: drill

    private struct ScratchStartError: Error { var message: String }

    /// One pass, overlapped with the load: the scratch server's dump.rdb is a FIFO. The full verification
    /// (sha256, size, gzip, RDB, key count) decompresses the artifact on its own task and writes every byte it
    /// reads into the FIFO while a scratch redis-server (127.0.0.1, free port, no persistence) loads from the
    /// other end; then the keys loaded (+ expired at load) are compared with those recorded. The verdict is the
    /// verification's: a server that loaded bytes which then failed to verify (a wrong sha256 found at the end)
    /// still fails the drill. The RDB never touches the scratch disk.
    func drill(_ artifact: ArtifactInfo, source: TypedSource<RedisSourcePolicy>, context: SourceContext) async -> (DrillResult, String) {
        do {
            return try await drillRedis(artifact, context: context)
        } catch let error as ScratchStartError {
            return (.failed, error.message)
        } catch {
            return (.error, "the drill could not run: \(context.describe(error))")
        }
    }

    private func drillRedis(_ artifact: ArtifactInfo, context: SourceContext) async throws -> (DrillResult, String) {
        // The server of the backup's own version when one is configured, else the newest that loads it.
        let backupVersion = artifact.stats["redis_version"].flatMap { if case .string(let v) = $0 { return v } else { return nil } }
        let (chosen, found) = RedisVersions.chooseScratch(context.policy.drill.redisServers + ["redis-server"],
                                                         loads: artifact.stats["rdb_version"]?.intValue, mustNotExceed: nil, prefer: backupVersion)
        guard let chosen else {
            let there = found.isEmpty ? "no redis-server could be run" : found.map { "\($0.executable) (\($0.version))" }.joined(separator: ", ")
            return (.error, "no redis-server here can load RDB v\(artifact.stats["rdb_version"]?.intValue ?? 0): \(there); set drill.redis_server in the policy")
        }
        let dir = try context.temporaryDirectory(prefix: "kaleem-drill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let feed = try ScratchFeed(fifo: dir + "/dump.rdb")
        defer { feed.abandon() } // on every way out: a verification still writing stops (it throws within 100 ms)
        // The verification on a task of its own (an engine thread); the server is started and stopped on this
        // one, which it dies with (parent-death signal).
        async let checked: VerifyResult = {
            let result = await context.verify(artifact, copy: { bytes in try feed.write(bytes) })
            feed.verificationEnded(ok: result.ok)
            return result
        }()
        let started: Result<ScratchRedisServer, Error>
        do {
            // A verification that fails while the server loads stops the server (it would wait for the rest).
            started = .success(try ScratchRedisServer.start(executable: chosen.executable, directory: dir, startTimeout: 600,
                                                            dieWithParent: true, giveUp: { feed.verificationFailed }))
        } catch {
            started = .failure(error)
        }
        defer { if case .success(let server) = started { server.stop() } }
        // Loaded, or gone: the verification goes on to its own verdict without writing what is left, so that a
        // damaged backup is called damaged even when the server choked on the damage first.
        feed.stopFeeding()
        let check = await checked
        guard check.ok else { return (.failed, "the backup does not verify: \(check.detail)") }
        let server: ScratchRedisServer
        do {
            server = try started.get()
        } catch let error as BackupFailure where error.message.contains("exited at start") {
            throw ScratchStartError(message: "redis-server refused to load the backup: \(error.message)")
        } catch let refused as ScratchRedisServer.RefusedToLoad {
            throw ScratchStartError(message: "scratch redis-server \(chosen.version) refused to load the backup: \(refused.line)")
        }
        let connection = try server.connect()
        defer { connection.close() }
        let loadedPerDB = try connection.keyspace()
        let persistence = try connection.info("persistence")
        let expiredAtLoad = persistence["rdb_last_load_keys_expired"].flatMap { Int($0) } ?? 0
        let loaded = loadedPerDB.values.reduce(0, +)
        let recorded = artifact.stats["keys"]?.intValue ?? 0
        let perDB = loadedPerDB.keys.sorted().map { "db\($0)=\(loadedPerDB[$0]!)" }.joined(separator: " ")
        let detail = "scratch redis-server \(chosen.version) loaded \(loaded) keys (+\(expiredAtLoad) expired at load) of \(recorded) recorded at backup time\(perDB.isEmpty ? "" : ": " + perDB)"
        return (loaded + expiredAtLoad == recorded ? .passed : .failed, detail)
    }

    // MARK: rollback

    func rollback(_ artifact: ArtifactInfo, source: TypedSource<RedisSourcePolicy>, restoreData: Bool, context: SourceContext) async throws -> [String] {
        guard restoreData else {
            return ["kaleem-backup restore \(artifact.source) --backup \(artifact.id) --to-url \"$REDIS_URL\" --yes"]
        }
        let url = try redisURL(source, context: context)
        let done = try await context.restore(self, source, into: .online(url: url, listen: "127.0.0.1"),
                                             RestoreRequest(source: source.name, backup: .id(artifact.id), confirmed: true))
        let first: String
        if case .array(let steps)? = done.details["steps"], case .string(let step)? = steps.first { first = step } else { first = "" }
        return ["restored \(artifact.source) from \(artifact.id): \(first)"]
    }

    private func redisURL(_ source: TypedSource<RedisSourcePolicy>, context: SourceContext) throws -> String {
        let policy = source.settings
        var endpoint = policy.endpoint
        if let secret = try context.secrets(for: source.name).resolve(policy.password, key: "password") { endpoint.password = secret }
        let auth = endpoint.password.map { ":\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")@" } ?? ""
        let user = endpoint.username.map { $0 + (endpoint.password == nil ? "@" : "") } ?? ""
        return "redis://\(user)\(auth)\(endpoint.host):\(endpoint.port)"
    }

}
