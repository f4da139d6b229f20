import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import MongoBackup
import RedisBackup

/// Which backup a drill restores.
public enum DrillSelector: Sendable, Equatable {
    case latest
    case id(String)
    case random
}

extension BackupEngine {
    /// Restore drills: prove that backups restore, and measure how long it takes (the RTO).
    ///
    /// drill, per source:
    ///   artifact = latest | named | random good backup
    ///   verify it (sha256, gzip, format); a mismatch fails the drill
    ///   Redis: decompress into a private temp dir, start a scratch redis-server on it (127.0.0.1, free port,
    ///          no persistence), wait for loading:0, compare the keys loaded (+ those expired at load) with
    ///          the keys recorded at backup time, SHUTDOWN NOSAVE, remove the dir
    ///   MongoDB: the archive verification (every CRC and count) — `archive-only` — or, with drill.mongo_uri,
    ///            a mongorestore into scratch databases
    ///   MinIO: the snapshot restored into a scratch bucket kb-drill-<id>, read back, compared, deleted
    ///   record the drill (result, duration, what was compared) in the catalog
    /// Drills never touch a production target: the scratch server is started here, on 127.0.0.1.
    public func drill(sources names: [String] = [], selector: DrillSelector = .latest) throws -> [DrillRecord] {
        let catalog = try catalog()
        var selected = try selectSources(names)
        if case .id(let id) = selector {
            let artifact = try show(id: id)
            selected = try selectSources([artifact.source])
        }
        var records: [DrillRecord] = []
        for source in selected {
            let artifact: ArtifactInfo
            do {
                switch selector {
                case .latest: artifact = try selectArtifact(source: source.name, .latest)
                case .id(let id): artifact = try selectArtifact(source: source.name, .id(id))
                case .random:
                    let good = try catalog.artifacts(source: source.name, status: .ok)
                    guard let pick = good.randomElement() else { throw BackupFailure("source \"\(source.name)\" has no good backup to drill") }
                    artifact = pick
                }
            } catch {
                if !names.isEmpty || selected.count == 1 { throw error }
                logger.warning("no drill", metadata: ["source": "\(source.name)", "reason": "\(describe(error))"])
                continue
            }
            let started = environment.clock()
            let clockStart = DispatchTime.now()
            let (result, detail) = drillOne(artifact, source: source)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - clockStart.uptimeNanoseconds) / 1e9
            var rng = SystemRandomNumberGenerator()
            let record = DrillRecord(id: "drill-" + Identifier.make(at: started, using: &rng), artifactID: artifact.id,
                                     source: source.name, startedAt: started, durationSeconds: max(seconds, 0.001),
                                     result: result, detail: detail, host: environment.host)
            try catalog.insertDrill(record)
            logger.info("drill", metadata: ["source": "\(source.name)", "artifact": "\(artifact.id)", "result": "\(result.rawValue)",
                                            "seconds": "\(String(format: "%.2f", seconds))"])
            records.append(record)
        }
        writeMetricsTextfile()
        notify(drills: records)
        return records
    }

    private func drillOne(_ artifact: ArtifactInfo, source: SourcePolicy) -> (DrillResult, String) {
        // Redis verifies while it decompresses (one pass over the file, in drillRedis); the others verify first.
        if case .redis = source.settings {} else {
            let check = verifyOne(artifact)
            guard check.ok else { return (.failed, "the backup does not verify: \(check.detail)") }
        }
        switch source.settings {
        case .redis:
            do {
                return try drillRedis(artifact)
            } catch let error as ScratchStartError {
                return (.failed, error.message)
            } catch {
                return (.error, "the drill could not run: \(describe(error))")
            }
        case .mongodb(let mongo):
            if let scratch = policy.drill.mongoURI {
                do {
                    return try drillMongo(artifact, mongo, scratch: scratch)
                } catch {
                    return (.error, "the drill could not run: \(describe(error))")
                }
            }
            let docs = artifact.stats["documents"]?.intValue ?? 0
            let ns = artifact.stats["namespaces"]?.intValue ?? 0
            return (.archiveOnly, "archive verified (\(docs) documents in \(ns) namespaces, every CRC); no scratch MongoDB configured, nothing restored")
        case .s3(let s3):
            do {
                return try drillBuckets(artifact, s3)
            } catch {
                return (.error, "the drill could not run: \(describe(error))")
            }
        }
    }

    private struct ScratchStartError: Error { var message: String }

    /// MongoDB into the scratch server of `drill.mongo_uri`: each database `db` of the archive is restored as
    /// `kb_drill_<id>_db` (never under its own name, so even a scratch URI pointing at production writes
    /// nothing of production), per-namespace counts compared with the archive's, then the scratch databases
    /// are dropped.
    private func drillMongo(_ artifact: ArtifactInfo, _ mongo: MongoSourcePolicy, scratch: SecretReference) throws -> (DrillResult, String) {
        guard let uri = try secretResolver(for: artifact.source).resolve(scratch, key: "drill.mongo_uri") else {
            return (.error, "no drill.mongo_uri")
        }
        guard case .object(let perNamespace)? = artifact.stats["per_namespace"] else { return (.error, "the backup recorded no namespaces") }
        let system: Set<String> = ["admin", "config", "local"]
        var databases = Set<String>()
        for ns in perNamespace.keys where ns != MongoArchiveVerifier.oplogNamespace {
            if let dot = ns.firstIndex(of: "."), !system.contains(String(ns[..<dot])) { databases.insert(String(ns[..<dot])) }
        }
        guard !databases.isEmpty else { return (.archiveOnly, "the archive holds no application database to restore") }
        let prefix = "kb_drill_\(artifact.id.suffix(6))_"
        var args: [String] = []
        for db in databases.sorted() { args += ["--nsInclude=\(db).*", "--nsFrom=\(db).*", "--nsTo=\(prefix)\(db).*"] }
        if artifact.stats["gzip_inside"] == .bool(true) { args.append("--gzip") }
        let tools = MongoTools(uri: uri, timeoutSeconds: mongo.timeoutSeconds, source: artifact.source)
        let reader = try artifactReader(artifact)
        /// Drops the scratch databases; says whether it could.
        func dropScratch() -> String {
            let script = databases.sorted().map { "kb.getSiblingDB(\"\(prefix)\($0)\").dropDatabase();" }.joined(separator: "\n")
            do {
                _ = try tools.shell(command: policy.drill.mongosh, script: script)
                return "scratch databases dropped"
            } catch {
                logger.warning("scratch databases not dropped", metadata: ["prefix": "\(prefix)", "error": "\(describe(error))"])
                return "scratch databases \(prefix)* NOT dropped (\(describe(error))): drop them by hand"
            }
        }
        let outcome: MongoToolOutcome
        do {
            outcome = try tools.restore(command: mongo.mongorestore, arguments: args) {
                var chunk: [UInt8]?
                _ = try reader.read { chunk = Array($0) }
                return chunk
            }
        } catch {
            _ = dropScratch()
            throw error
        }
        let dropped = dropScratch()
        var restored: [String: Int] = [:]
        for line in outcome.stderrTail {
            guard let r = line.range(of: #"finished restoring (\S+) \((\d+) documents?, (\d+) failures?\)"#, options: .regularExpression) else { continue }
            let parts = line[r].split(separator: " ")
            if parts.count >= 4, let n = Int(parts[3].dropFirst()) { restored[String(parts[2])] = n }
        }
        var mismatches: [String] = []
        var compared = 0
        for (ns, value) in perNamespace {
            guard let dot = ns.firstIndex(of: "."), databases.contains(String(ns[..<dot])), let expected = value.intValue else { continue }
            let renamed = prefix + ns
            compared += 1
            if restored[renamed] != expected { mismatches.append("\(renamed): \(restored[renamed].map(String.init) ?? "none") of \(expected)") }
        }
        if let summary = Self.restoreSummary(outcome.stderrTail), summary.failed > 0 {
            mismatches.append("\(summary.failed) document(s) failed to restore")
        }
        let into = " into \(Redaction.url(uri.value)) as \(prefix)*"
        if mismatches.isEmpty {
            return (.passed, "restored \(compared) namespaces\(into); every document count matches the archive; \(dropped)")
        }
        return (.failed, "restored\(into), counts differ: " + mismatches.sorted().joined(separator: "; ") + "; \(dropped)")
    }

    private func drillRedis(_ artifact: ArtifactInfo) throws -> (DrillResult, String) {
        let dir = try Self.privateTemporaryDirectory(prefix: "kaleem-drill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // One pass: the full verification (sha256, size, gzip, RDB, key count) decompresses the artifact, and
        // every byte it reads is written as the scratch server's dump.rdb.
        let rdb = try AtomicFileWriter(path: dir + "/dump.rdb")
        var writeError: Error?
        let check = verifyOne(artifact, copy: { bytes in
            do { try rdb.write(bytes) } catch { writeError = error; throw error }
        })
        guard check.ok else {
            rdb.abort()
            if let writeError { throw writeError } // the scratch disk, not the backup: the drill could not run
            return (.failed, "the backup does not verify: \(check.detail)")
        }
        try rdb.commit()
        let server: ScratchRedisServer
        do {
            server = try ScratchRedisServer.start(directory: dir, startTimeout: 600)
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
        let detail = "scratch redis-server loaded \(loaded) keys (+\(expiredAtLoad) expired at load) of \(recorded) recorded at backup time\(perDB.isEmpty ? "" : ": " + perDB)"
        return (loaded + expiredAtLoad == recorded ? .passed : .failed, detail)
    }

    /// The newest drill of an artifact, if it was ever drilled.
    public func lastDrill(of artifactID: String) throws -> DrillRecord? {
        try catalog().drills(artifactID: artifactID, limit: 1).first
    }

    static func privateTemporaryDirectory(prefix: String) throws -> String {
        var template = Array((NSTemporaryDirectory() + "/\(prefix)-XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw FileSystemError("create a temporary directory in", path: NSTemporaryDirectory())
        }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Per source: the newest good backup and its age (the current RPO), the last drill and its duration (RTO).
    public func status(now: Date? = nil) throws -> [SourceStatus] {
        let catalog = try catalog()
        let summaries = Dictionary(uniqueKeysWithValues: try catalog.sourceSummaries().map { ($0.source, $0) })
        let now = now ?? environment.clock()
        return try policy.sources.map { source in
            let newest = try catalog.artifacts(source: source.name, status: .ok, limit: 1).first
            let drill = try catalog.drills(source: source.name, limit: 1).first
            let summary = summaries[source.name]
            return SourceStatus(source: source.name, kind: source.kind, newestGood: newest,
                                rpoSeconds: newest.map { now.timeIntervalSince($0.createdAt) },
                                lastRunOK: summary?.lastRunOK, lastDrill: drill)
        }
    }
}

/// What `status` reports for one source.
public struct SourceStatus: Sendable {
    public var source: String
    public var kind: SourceKind
    public var newestGood: ArtifactInfo?
    /// Age of the newest good backup: how much would be lost now.
    public var rpoSeconds: Double?
    public var lastRunOK: Bool?
    public var lastDrill: DrillRecord?
}
