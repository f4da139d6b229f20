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
    ///   MongoDB: the archive verification (every CRC and count) — `archive-only`
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
        let check = verifyOne(artifact)
        guard check.ok else { return (.failed, "the backup does not verify: \(check.detail)") }
        switch source.settings {
        case .redis:
            do {
                return try drillRedis(artifact)
            } catch let error as ScratchStartError {
                return (.failed, error.message)
            } catch {
                return (.error, "the drill could not run: \(describe(error))")
            }
        case .mongodb:
            let docs = artifact.stats["documents"]?.intValue ?? 0
            let ns = artifact.stats["namespaces"]?.intValue ?? 0
            return (.archiveOnly, "archive verified (\(docs) documents in \(ns) namespaces, every CRC); no scratch MongoDB configured, nothing restored")
        }
    }

    private struct ScratchStartError: Error { var message: String }

    private func drillRedis(_ artifact: ArtifactInfo) throws -> (DrillResult, String) {
        let dir = try Self.privateTemporaryDirectory(prefix: "kaleem-drill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Decompress the artifact as the scratch server's dump.rdb.
        let reader = try GzipReader(path: repository.absolute(artifact.path))
        let rdb = try AtomicFileWriter(path: dir + "/dump.rdb")
        do {
            while try reader.read({ try rdb.write($0) }) {}
            try rdb.commit()
        } catch {
            rdb.abort()
            throw error
        }
        let server: ScratchRedisServer
        do {
            server = try ScratchRedisServer.start(directory: dir, startTimeout: 600)
        } catch let error as BackupFailure where error.message.contains("exited at start") {
            throw ScratchStartError(message: "redis-server refused to load the backup: \(error.message)")
        }
        defer { server.stop() }
        let connection = try server.connect()
        defer { connection.close() }
        guard case .bulk(let keyspaceInfo?) = try connection.command("INFO", "keyspace"),
              case .bulk(let persistenceInfo?) = try connection.command("INFO", "persistence") else {
            return (.error, "the scratch server did not answer INFO")
        }
        var loadedPerDB: [Int: Int] = [:]
        for line in String(decoding: keyspaceInfo, as: UTF8.self).split(whereSeparator: \.isNewline) where line.hasPrefix("db") {
            let parts = line.split(separator: ":")
            if parts.count == 2, let db = Int(parts[0].dropFirst(2)),
               let keys = parts[1].split(separator: ",").first?.split(separator: "=").last.flatMap({ Int($0) }) {
                loadedPerDB[db] = keys
            }
        }
        let persistence = Self.infoFields(persistenceInfo)
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

    static func infoFields(_ info: [UInt8]) -> [String: String] {
        var out: [String: String] = [:]
        for line in String(decoding: info, as: UTF8.self).split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            out[String(line[..<colon])] = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        }
        return out
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
