import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import RedisBackup

/// Where a Redis backup goes.
public enum RedisRestoreTarget: Sendable {
    /// File mode: install the RDB as `<directory>/<dbfilename>` for a server that is stopped (REFERENCE §3a).
    case directory(path: String, dbfilename: String, serverURL: String?)
    /// Online mode: a live server replicates from a scratch server loaded with the backup.
    case online(url: String)
}

public struct RedisRestoreResult: Sendable {
    public var artifact: ArtifactInfo
    public var target: String
    /// What the operator still has to do (file mode), or what was checked (online mode).
    public var steps: [String]
    public var warnings: [String]
    public var durationSeconds: Double
}

extension BackupEngine {
    /// Restores a Redis backup (verified first: sha256, gzip, RDB; exit 4 on a mismatch).
    ///
    /// file mode: write <dbfilename>.partial, fsync, keep the current file as <dbfilename>.pre-restore-<time>,
    ///            rename into place, fsync the directory; print the steps left (SHUTDOWN NOSAVE, AOF off, start,
    ///            AOF back on); with a server URL, check its dir/dbfilename/appendonly first
    /// online mode: RedisOnlineRestore (scratch server + REPLICAOF), then compare the key counts
    public func restoreRedis(source name: String, backup: BackupSelector, target: RedisRestoreTarget, dryRun: Bool,
                             confirmed: Bool, listen: String = "127.0.0.1", plan: ([String]) -> Void) throws -> RedisRestoreResult {
        let source = try selectSources([name])[0]
        guard case .redis(let redisPolicy) = source.settings else {
            throw BackupFailure("source \"\(name)\" is not a Redis source", exitStatus: .usage)
        }
        let artifact = try selectArtifact(source: name, backup)
        let check = verifyOne(artifact)
        guard check.ok else {
            throw IntegrityError(object: "backup \(artifact.id) of \(name)", problem: "refusing to restore: \(check.detail)")
        }
        let recorded = artifact.stats["keys"]?.intValue ?? 0
        var lines = ["restore \(name) backup \(artifact.id) (taken \(Timestamps.iso8601(artifact.createdAt)), \(recorded) keys, RDB v\(artifact.stats["rdb_version"]?.intValue ?? 0))"]
        var warnings: [String] = []
        let targetText: String
        switch target {
        case .directory(let path, let dbfilename, let serverURL):
            targetText = path + "/" + dbfilename
            lines.append("into \(targetText) (file mode; the current file, if any, is kept as \(dbfilename).pre-restore-<time>)")
            if let serverURL { warnings += try checkServerForFileRestore(serverURL, directory: path, dbfilename: dbfilename) }
        case .online(let url):
            let endpoint = try RedisEndpoint.parse(url)
            targetText = endpoint.description
            lines.append("into the live server \(targetText) (online mode: it replicates from a scratch server on \(listen), then becomes a master again; ALL its current data is replaced)")
        }
        plan(lines + warnings.map { "warning: \($0)" })
        if !dryRun && !confirmed {
            switch target {
            case .directory(let path, let dbfilename, _) where FileManager.default.fileExists(atPath: path + "/" + dbfilename):
                throw BackupFailure("\(path)/\(dbfilename) exists; refusing to replace it without --yes", exitStatus: .usage,
                                    hint: "read the plan above, then run the same command with --yes")
            case .online:
                throw BackupFailure("an online restore replaces ALL the data of \(targetText); refusing without --yes", exitStatus: .usage,
                                    hint: "read the plan above, then run the same command with --yes")
            default:
                break
            }
        }
        let mode: String
        switch target {
        case .directory: mode = "file"
        case .online: mode = "online"
        }
        let started = environment.clock()
        let clock = DispatchTime.now()
        if dryRun {
            try recordRestore(artifact, mode: mode, target: targetText, outcome: "dry-run", started: started, seconds: 0, detail: "plan only")
            return RedisRestoreResult(artifact: artifact, target: targetText, steps: ["dry run: nothing was changed"], warnings: warnings, durationSeconds: 0)
        }
        var steps: [String] = []
        do {
            switch target {
            case .directory(let path, let dbfilename, _):
                let kept = try installRDB(artifact, directory: path, dbfilename: dbfilename)
                steps = [
                    kept.map { "the previous file was kept as \($0)" } ?? "there was no previous file",
                    "now, on the Redis host: redis-cli SHUTDOWN NOSAVE   (a plain SHUTDOWN would overwrite the restored file)",
                    "if appendonly is yes: move the appendonly directory aside and start with --appendonly no (the AOF would win over the RDB)",
                    "start redis-server; wait for 'DB loaded from disk' / INFO persistence loading:0; check INFO keyspace (\(recorded) keys recorded, minus any expired since)",
                    "if AOF was on: redis-cli CONFIG SET appendonly yes; wait for aof_rewrite_in_progress:0; redis-cli CONFIG REWRITE",
                ]
            case .online(let url):
                let endpoint = try RedisEndpoint.parse(url)
                let dir = try Self.privateTemporaryDirectory(prefix: "kaleem-restore")
                defer { try? FileManager.default.removeItem(atPath: dir) }
                _ = try installRDB(artifact, directory: dir, dbfilename: "dump.rdb")
                let outcome = try RedisOnlineRestore.run(target: endpoint, password: endpoint.password, rdbDirectory: dir, listen: listen,
                                                         timeout: max(redisPolicy.timeoutSeconds, 120))
                let total = outcome.keys.values.reduce(0, +)
                steps = ["the target holds \(total) keys (\(recorded) recorded at backup time, minus those expired since); it is a master again"]
                if total > recorded { throw BackupFailure("the target holds \(total) keys after the restore, more than the \(recorded) backed up") }
            }
        } catch {
            try? recordRestore(artifact, mode: mode, target: targetText, outcome: "failed", started: started,
                               seconds: Self.seconds(since: clock), detail: describe(error))
            throw error
        }
        let seconds = Self.seconds(since: clock)
        try recordRestore(artifact, mode: mode, target: targetText, outcome: "ok", started: started, seconds: seconds,
                          detail: steps.first ?? "")
        return RedisRestoreResult(artifact: artifact, target: targetText, steps: steps, warnings: warnings, durationSeconds: seconds)
    }

    static func seconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }

    /// Decompresses the artifact to `<dir>/<name>.partial`, fsyncs, keeps an existing file aside, renames into place.
    /// Returns the name the previous file was kept under.
    private func installRDB(_ artifact: ArtifactInfo, directory: String, dbfilename: String) throws -> String? {
        let destination = directory + "/" + dbfilename
        let reader = try artifactReader(artifact)
        let writer = try AtomicFileWriter(path: destination + ".incoming")
        do {
            while try reader.read({ try writer.write($0) }) {}
            guard reader.storedSHA256 == artifact.sha256 else {
                throw IntegrityError(object: repository.absolute(artifact.path), problem: "the file changed while it was being restored")
            }
            try writer.commit()
        } catch {
            writer.abort()
            throw error
        }
        var kept: String?
        if FileManager.default.fileExists(atPath: destination) {
            let name = "\(dbfilename).pre-restore-\(Timestamps.compact(environment.clock()))"
            guard rename(destination, directory + "/" + name) == 0 else { throw FileSystemError("keep the previous file", path: destination) }
            kept = name
        }
        guard rename(destination + ".incoming", destination) == 0 else { throw FileSystemError("rename into place", path: destination) }
        try FileIO.syncDirectory(directory)
        return kept
    }

    /// CONFIG GET dir, dbfilename, appendonly of the server the file is meant for; warnings when they disagree.
    private func checkServerForFileRestore(_ url: String, directory: String, dbfilename: String) throws -> [String] {
        let endpoint = try RedisEndpoint.parse(url)
        let c = try RESPConnection(endpoint: endpoint, ioTimeout: 10)
        defer { c.close() }
        try RedisSnapshot.authenticate(c, endpoint: endpoint, password: endpoint.password)
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

    func recordRestore(_ artifact: ArtifactInfo, mode: String, target: String, outcome: String, started: Date, seconds: Double,
                       detail: String) throws {
        var rng = SystemRandomNumberGenerator()
        let user = ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? String(getuid())
        try catalog().insertRestore(id: "restore-" + Identifier.make(at: started, using: &rng), artifactID: artifact.id,
                                    source: artifact.source, startedAt: started, durationSeconds: seconds, mode: mode,
                                    target: target, outcome: outcome, user: user, host: environment.host, detail: detail)
    }
}
