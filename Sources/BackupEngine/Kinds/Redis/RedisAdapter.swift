// `kind: redis`: a SYNC snapshot streamed into the pipeline while the RDB verifier walks it; restores as a file
// or online (replication from a scratch server); drills into a scratch redis-server.
import ArtifactStore
import BackupCore
import Foundation
import RedisBackup

extension RDBError: IntegrityFailure {}

struct RedisAdapter: SourceAdapter {
    let kind = SourceKind("redis")
    let layout = ArtifactLayout.stream(extension: "rdb")
    let summary = "a SYNC snapshot (RDB), restored as a file (--to-dir) or into a live server (--to-url)"

    // MARK: backup

    /// The snapshot's bytes go to the writer and, through a bounded channel, to the RDB verifier running on
    /// its own thread. A snapshot that does not verify fails.
    func backupStream(_ source: SourcePolicy, into writer: ArtifactWriter, context: SourceContext) throws -> [String: JSONValue] {
        let policy = try settings(source, as: RedisSourcePolicy.self)
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
                                   deadlineError: DeadlineExceeded(source: source.name, seconds: source.deadlineSeconds)) { chunk in
                try verification.feed(chunk, alongside: writer)
            }
        }
        var stats = report.stats
        stats["framing"] = .string(taken.framing.rawValue)
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

    /// One pass: the full verification (sha256, size, gzip, RDB, key count) decompresses the artifact, and every
    /// byte it reads is written as the scratch server's dump.rdb; then a scratch redis-server (127.0.0.1, free
    /// port, no persistence) loads it and the keys loaded (+ expired at load) are compared with those recorded.
    func drill(_ artifact: ArtifactInfo, source: SourcePolicy, context: SourceContext) async -> (DrillResult, String) {
        do {
            return try await drillRedis(artifact, context: context)
        } catch let error as ScratchStartError {
            return (.failed, error.message)
        } catch {
            return (.error, "the drill could not run: \(context.describe(error))")
        }
    }

    private func drillRedis(_ artifact: ArtifactInfo, context: SourceContext) async throws -> (DrillResult, String) {
        let dir = try context.temporaryDirectory(prefix: "kaleem-drill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rdb = try AtomicFileWriter(path: dir + "/dump.rdb")
        var writeError: Error?
        let check = await context.verify(artifact, copy: { bytes in
            do { try rdb.write(bytes) } catch { writeError = error; throw error }
        })
        guard check.ok else {
            rdb.abort()
            if let writeError { throw writeError } // the scratch disk, not the backup: the drill could not run
            return (.failed, "the backup does not verify: \(check.detail)")
        }
        try rdb.commit(durable: false) // scratch: read once by the server below, deleted after; no fsync
        // The server of the backup's own version when one is configured, else the newest that loads it.
        let backupVersion = artifact.stats["redis_version"].flatMap { if case .string(let v) = $0 { return v } else { return nil } }
        let (chosen, found) = RedisVersions.chooseScratch(context.policy.drill.redisServers + ["redis-server"],
                                                         loads: artifact.stats["rdb_version"]?.intValue, mustNotExceed: nil, prefer: backupVersion)
        guard let chosen else {
            let there = found.isEmpty ? "no redis-server could be run" : found.map { "\($0.executable) (\($0.version))" }.joined(separator: ", ")
            return (.error, "no redis-server here can load RDB v\(artifact.stats["rdb_version"]?.intValue ?? 0): \(there); set drill.redis_server in the policy")
        }
        let server: ScratchRedisServer
        do {
            server = try ScratchRedisServer.start(executable: chosen.executable, directory: dir, startTimeout: 600, dieWithParent: true)
        } catch let error as BackupFailure where error.message.contains("exited at start") {
            throw ScratchStartError(message: "redis-server refused to load the backup: \(error.message)")
        }
        defer { server.stop() }
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

    func rollback(_ artifact: ArtifactInfo, source: SourcePolicy, restoreData: Bool, context: SourceContext) async throws -> [String] {
        guard restoreData else {
            return ["kaleem-backup restore \(artifact.source) --backup \(artifact.id) --to-url \"$REDIS_URL\" --yes"]
        }
        let url = try redisURL(source, context: context)
        let done = try await restoreRedis(source, backup: .id(artifact.id), target: .online(url: url), dryRun: false, confirmed: true,
                                    listen: "127.0.0.1", context: context) { _ in }
        return ["restored \(artifact.source) from \(artifact.id): \(done.steps.first ?? "")"]
    }

    private func redisURL(_ source: SourcePolicy, context: SourceContext) throws -> String {
        let policy = try settings(source, as: RedisSourcePolicy.self)
        var endpoint = policy.endpoint
        if let secret = try context.secrets(for: source.name).resolve(policy.password, key: "password") { endpoint.password = secret }
        let auth = endpoint.password.map { ":\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")@" } ?? ""
        let user = endpoint.username.map { $0 + (endpoint.password == nil ? "@" : "") } ?? ""
        return "redis://\(user)\(auth)\(endpoint.host):\(endpoint.port)"
    }

}
