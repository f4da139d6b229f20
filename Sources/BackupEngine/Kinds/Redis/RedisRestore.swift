// Redis restores: file mode (install the RDB for a stopped server) and online mode (replication from a
// scratch server loaded with the backup).
import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import RedisBackup

/// Where a Redis backup goes.
public enum RedisRestoreTarget: Sendable {
    /// File mode: install the RDB as `<directory>/<dbfilename>` for a server that is stopped (the procedure of runbooks/restore-redis.md).
    case directory(path: String, dbfilename: String, serverURL: String?)
    /// Online mode: a live server replicates from a scratch server (listening on `listen`) loaded with the backup.
    case online(url: String, listen: String)
    /// Only the keys matching `pattern` (of database `database`), into a live server, with RESTORE.
    case keys(url: String, pattern: String, database: Int?, replace: Bool)
}

extension RedisAdapter {
    /// The --to-url with its password from `--to-password-file`, else `$REDISCLI_AUTH` (redis-cli's variable),
    /// else as written: a password need not be in argv (`ps` shows argv to every user).
    static func targetURL(_ url: String, passwordFile: String?) throws -> String {
        let password: String
        if let passwordFile {
            guard let data = FileManager.default.contents(atPath: passwordFile) else {
                throw BackupFailure("cannot read --to-password-file \(passwordFile)", exitStatus: .usage, hint: "check that it exists and is readable by this user")
            }
            password = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
        } else if let fromEnvironment = ProcessInfo.processInfo.environment["REDISCLI_AUTH"], !fromEnvironment.isEmpty {
            password = fromEnvironment
        } else {
            return url
        }
        let endpoint: RedisEndpoint
        do { endpoint = try RedisEndpoint.parse(url) } catch {
            throw BackupFailure("--to-url \(Redaction.url(url)) is not a redis:// URL (\(error))", exitStatus: .usage)
        }
        let encoded = password.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let user = (endpoint.username ?? "").addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let host = endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host
        return "redis://\(user):\(encoded)@\(host):\(endpoint.port)" + (endpoint.database.map { "/\($0)" } ?? "")
    }

    var restoreOptions: [RestoreOptionSpec] {
        [
            RestoreOptionSpec("to-dir", value: "DIR", help: "file mode: install the RDB into this directory (the server's `dir`)"),
            RestoreOptionSpec("dbfilename", value: "NAME", help: "file mode: the file name (the server's `dbfilename`)", default: "dump.rdb"),
            RestoreOptionSpec("server-url", value: "URL", help: "file mode: check this server's dir, dbfilename and appendonly first (redis://…)"),
            RestoreOptionSpec("to-url", value: "URL", help: "online mode: replace all the data of this live server (redis://…; its password better through --to-password-file or REDISCLI_AUTH than in the URL)"),
            RestoreOptionSpec("to-password-file", value: "FILE", help: "the --to-url server's password, read from this file (else $REDISCLI_AUTH, as redis-cli; else the URL's)"),
            RestoreOptionSpec("listen", value: "ADDR", help: "online mode: the address the target uses to reach the scratch server", default: "127.0.0.1"),
            RestoreOptionSpec("match", value: "PATTERN", help: "only the keys matching this glob (SCAN MATCH rules), into the live server of --to-url; existing keys are left alone"),
            RestoreOptionSpec("db", value: "N", help: "with --match: only keys of this database"),
            RestoreOptionSpec("replace", help: "with --match: overwrite keys that exist in the target (needs --yes)"),
        ]
    }

    func restoreTarget(_ source: TypedSource<RedisSourcePolicy>, _ o: RestoreOptions) throws -> RedisRestoreTarget {
        if let pattern = o.value("match") {
            return try keysTarget(o, pattern: pattern)
        }
        if o.given("db") || o.given("replace") {
            throw BackupFailure("--db and --replace go with --match (a partial restore)", exitStatus: .usage)
        }
        if o.given("to-dir") && o.given("to-url") {
            throw BackupFailure("--to-dir (file mode) and --to-url (online mode) exclude each other", exitStatus: .usage)
        }
        if let dir = o.value("to-dir") {
            let name = o.value("dbfilename") ?? "dump.rdb"
            guard !dir.isEmpty else {
                throw BackupFailure("--to-dir is empty: it would write into /", exitStatus: .usage,
                                    hint: "give the server's data directory (its `dir`), e.g. --to-dir /var/lib/redis")
            }
            guard TargetFileWriter.isPlainName(name) else {
                throw BackupFailure("--dbfilename \(name) is not a file name (a name, not a path: no /)", exitStatus: .usage,
                                    hint: "give the server's dbfilename, e.g. dump.rdb; the directory is --to-dir")
            }
            return .directory(path: dir, dbfilename: name, serverURL: o.value("server-url"))
        } else if let url = o.value("to-url") {
            return .online(url: try Self.targetURL(url, passwordFile: o.value("to-password-file")), listen: o.value("listen") ?? "127.0.0.1")
        }
        throw BackupFailure("a Redis restore needs --to-dir DIR (file mode) or --to-url redis://… (online mode)", exitStatus: .usage,
                            hint: "file mode for a server whose data directory you can reach; online mode for one in a container")
    }

    /// Restores a Redis backup.
    ///
    /// file mode: write <dbfilename>.partial, fsync, keep the current file as <dbfilename>.pre-restore-<time>,
    ///            rename into place, fsync the directory; print the steps left (SHUTDOWN NOSAVE, AOF off, start,
    ///            AOF back on); with a server URL, check its dir/dbfilename/appendonly first
    /// online mode: RedisOnlineRestore (scratch server + REPLICAOF), then compare the key counts
    /// keys: RedisKeyRestore.swift
    func planRestore(_ artifact: ArtifactInfo, into target: RedisRestoreTarget, source: TypedSource<RedisSourcePolicy>, request: RestoreRequest,
                     context: SourceContext) async throws -> RestorePlan {
        if case .keys(let url, let pattern, let database, let replace) = target {
            return try planKeys(artifact, url: url, pattern: pattern, database: database, replace: replace, source: source, request: request, context: context)
        }
        let name = source.name
        let redisPolicy = source.settings
        let recorded = artifact.stats["keys"]?.intValue ?? 0
        var lines = ["restore \(name) backup \(artifact.id) (taken \(Timestamps.iso8601(artifact.createdAt)), \(recorded) keys, RDB v\(artifact.stats["rdb_version"]?.intValue ?? 0))"]
        var warnings: [String] = []
        let targetText: String
        let mode: String
        var scratch: RedisVersions.Candidate?
        var needsConfirmation: BackupFailure?
        switch target {
        case .directory(let path, let dbfilename, let serverURL):
            mode = "file"
            targetText = path + "/" + dbfilename
            lines.append("into \(targetText) (file mode; the current file, if any, is kept as \(dbfilename).pre-restore-<time>)")
            if let serverURL { warnings += try checkServerForFileRestore(serverURL, directory: path, dbfilename: dbfilename, artifact: artifact) }
            if FileManager.default.fileExists(atPath: targetText) {
                needsConfirmation = BackupFailure("\(path)/\(dbfilename) exists; refusing to replace it without --yes", exitStatus: .usage,
                                                  hint: "read the plan above, then run the same command with --yes")
            }
        case .online(let url, let listen):
            mode = "online"
            let endpoint = try RedisEndpoint.parse(url)
            targetText = endpoint.description
            scratch = try onlineScratchServer(for: artifact, target: endpoint, context: context)
            lines.append("into the live server \(targetText) (online mode: it replicates from a scratch server on \(listen), then becomes a master again; ALL its current data is replaced)")
            lines.append("scratch server: \(scratch!.executable) (Redis \(scratch!.version), RDB \(scratch!.rdbVersion))")
            needsConfirmation = BackupFailure("an online restore replaces ALL the data of \(targetText); refusing without --yes", exitStatus: .usage,
                                              hint: "read the plan above, then run the same command with --yes")
        case .keys:
            preconditionFailure("planned above")
        }
        func result(_ steps: [String], detail: String) -> RestoreResult {
            RestoreResult(lines: steps.enumerated().map { "\($0.offset + 1). \($0.element)" }, detail: detail,
                          details: ["target": .string(targetText), "steps": .strings(steps), "warnings": .strings(warnings)])
        }
        let chosen = scratch
        return RestorePlan(
            mode: mode, target: targetText, lines: lines + warnings.map { "warning: \($0)" }, needsConfirmation: needsConfirmation,
            dryRun: result(["dry run: nothing was changed"], detail: "plan only"),
            apply: { _ in
                let steps: [String]
                switch target {
                case .directory(let path, let dbfilename, _):
                    let kept = try await installRDB(artifact, directory: path, dbfilename: dbfilename, context: context)
                    steps = [
                        kept.map { "the previous file was kept as \($0)" } ?? "there was no previous file",
                        "now, on the Redis host: redis-cli SHUTDOWN NOSAVE   (a plain SHUTDOWN would overwrite the restored file)",
                        "if appendonly is yes: move the appendonly directory aside and start with --appendonly no (the AOF would win over the RDB)",
                        "start redis-server; wait for 'DB loaded from disk' / INFO persistence loading:0; check INFO keyspace (\(recorded) keys recorded, minus any expired since)",
                        "if AOF was on: redis-cli CONFIG SET appendonly yes; wait for aof_rewrite_in_progress:0; redis-cli CONFIG REWRITE",
                    ]
                case .online(let url, let listen):
                    let endpoint = try RedisEndpoint.parse(url)
                    let dir = try context.temporaryDirectory(prefix: "kaleem-restore")
                    defer { try? FileManager.default.removeItem(atPath: dir) }
                    _ = try await installRDB(artifact, directory: dir, dbfilename: "dump.rdb", context: context)
                    let outcome = try RedisOnlineRestore.run(target: endpoint, password: endpoint.password, rdbDirectory: dir, listen: listen,
                                                             timeout: max(redisPolicy.timeoutSeconds, 120),
                                                             redisServer: chosen?.executable ?? "redis-server",
                                                             // A refresh's scrub (#38) runs against the scratch server before the live one replicates.
                                                             beforeReplication: context.scrubHook.map { hook in
                                                                 { (host: String, port: Int, password: Secret) throws in try hook.run(host: host, port: port, input: password.value + "\n") }
                                                             })
                    let total = outcome.keys.values.reduce(0, +)
                    steps = ["the target holds \(total) keys (\(recorded) recorded at backup time, minus those expired since); it is a master again"]
                    if total > recorded { throw BackupFailure("the target holds \(total) keys after the restore, more than the \(recorded) backed up") }
                case .keys:
                    preconditionFailure("planned above")
                }
                return result(steps, detail: steps.first ?? "")
            })
    }

    /// The scratch server for an online restore, chosen before anything is touched: it must load the backup's
    /// RDB and send one the target can load (Redis 6.2 loads RDB ≤ 9, 7.0 ≤ 10, …); the one of the backup's own
    /// version is preferred. None fits: refused, with the ways that work.
    private func onlineScratchServer(for artifact: ArtifactInfo, target: RedisEndpoint, context: SourceContext) throws -> RedisVersions.Candidate {
        let connection = try RESPConnection(endpoint: target, ioTimeout: 10)
        defer { connection.close() }
        try RedisSnapshot.authenticate(connection, endpoint: target, password: target.password)
        let targetVersion = try connection.info("server")["redis_version"] ?? "unknown"
        let targetRDB = RedisVersions.rdbVersion(forRedis: targetVersion)
        let backupRDB = artifact.stats["rdb_version"]?.intValue
        let backupVersion = artifact.stats["redis_version"].flatMap { if case .string(let v) = $0 { return v } else { return nil } }
        if let targetRDB, let backupRDB, backupRDB > targetRDB {
            throw RedisError(endpoint: target.description,
                             problem: "the backup is RDB \(backupRDB) (written by Redis \(backupVersion ?? "unknown")); the target runs Redis \(targetVersion), which loads RDB up to \(targetRDB). Refused before anything was touched",
                             hint: "restore into a server of version \(backupVersion.map(RedisVersions.series) ?? "the backup's") or newer")
        }
        let candidates = context.policy.restore.redisServers + ["redis-server"]
        let (chosen, found) = RedisVersions.chooseScratch(candidates, loads: backupRDB, mustNotExceed: targetRDB, prefer: backupVersion)
        guard let chosen else {
            let there = found.isEmpty ? "no redis-server could be run" : found.map { "\($0.executable) (\($0.version), RDB \($0.rdbVersion))" }.joined(separator: ", ")
            throw RedisError(endpoint: target.description,
                             problem: "the target runs Redis \(targetVersion) (loads RDB ≤ \(targetRDB.map(String.init) ?? "?")); no scratch redis-server here sends an RDB it can load: \(there). Refused before anything was touched: the target keeps all its data",
                             hint: "set restore.redis_server in the policy to a redis-server \(RedisVersions.series(targetVersion)) binary, or restore in file mode (--to-dir) and start the target on the file")
        }
        return chosen
    }

    /// Decompresses the artifact into `<dir>` under a random temporary name (created O_EXCL|O_NOFOLLOW relative
    /// to the directory's descriptor: a symlink planted in the server's data directory cannot redirect it),
    /// fsyncs, gives it the mode and owner of the file it replaces, keeps that file aside, renames into place.
    /// A target name that is a symlink is refused before anything is written. Returns the name the previous
    /// file was kept under.
    private func installRDB(_ artifact: ArtifactInfo, directory: String, dbfilename: String, context: SourceContext) async throws -> String? {
        let leftovers = TargetFileWriter.removeLeftovers(in: directory)
        if !leftovers.isEmpty {
            context.logger.notice("removed what an interrupted restore left", metadata: ["directory": "\(directory)", "files": "\(leftovers.joined(separator: ", "))"])
        }
        let writer = try TargetFileWriter(directory: directory, name: dbfilename)
        let reader = try await context.reader(artifact, progress: "restore")
        var kept: String?
        do {
            while try reader.read({ try writer.write($0) }) {}
            guard reader.storedSHA256 == artifact.sha256 else {
                throw IntegrityError(object: context.absolute(artifact.path), problem: "the file changed while it was being restored")
            }
            var existing = stat()
            if lstat(directory + "/" + dbfilename, &existing) == 0 {
                kept = "\(dbfilename).pre-restore-\(Timestamps.compact(context.now()))"
            }
            try writer.commit(mode: 0o600, keep: kept)
        } catch {
            writer.abort()
            throw error
        }
        return kept
    }

    /// CONFIG GET dir, dbfilename, appendonly of the server the file is meant for; warnings when they disagree.
    private func checkServerForFileRestore(_ url: String, directory: String, dbfilename: String, artifact: ArtifactInfo) throws -> [String] {
        let endpoint = try RedisEndpoint.parse(url)
        let c = try RESPConnection(endpoint: endpoint, ioTimeout: 10)
        defer { c.close() }
        try RedisSnapshot.authenticate(c, endpoint: endpoint, password: endpoint.password)
        let version = try c.info("server")["redis_version"] ?? "unknown"
        if let loads = RedisVersions.rdbVersion(forRedis: version), let rdb = artifact.stats["rdb_version"]?.intValue, rdb > loads {
            throw RedisError(endpoint: endpoint.description,
                             problem: "the server runs Redis \(version), which loads RDB up to \(loads); the backup is RDB \(rdb). Refused: nothing was written",
                             hint: "restore into a server of the backup's version or newer")
        }
        var warnings: [String] = []
        let dir = try RedisOnlineRestore.configGet(c, "dir")
        let file = try RedisOnlineRestore.configGet(c, "dbfilename")
        let aof = try RedisOnlineRestore.configGet(c, "appendonly")
        if let dir, URL(fileURLWithPath: dir).standardizedFileURL.path != URL(fileURLWithPath: directory).standardizedFileURL.path {
            warnings.append("the server's dir is \(dir), not \(directory) (fine if that is the same volume seen from a container)")
        }
        if let file, file != dbfilename { warnings.append("the server's dbfilename is \(file), not \(dbfilename): it will not load this file") }
        if aof == "yes" { warnings.append("appendonly is yes: at start the server loads ONLY the AOF and ignores the restored RDB; follow the AOF steps") }
        return warnings
    }
}
