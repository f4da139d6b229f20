import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import Logging

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
    ///   the kind's adapter verifies it (a mismatch fails the drill), restores it into a scratch target it
    ///   creates (a scratch redis-server, scratch databases, a scratch bucket…), compares, removes the target
    ///   record the drill (result, duration, what was compared) in the catalog
    /// Drills never touch a production target: each adapter creates its own scratch target.
    public func drill(sources names: [String] = [], selector: DrillSelector = .latest) async throws -> [DrillRecord] {
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
                case .id(let id):
                    artifact = try selectArtifact(source: source.name, .id(id))
                    // A typo must not fire BackupDrillFailing: only a good backup is drilled, and a refusal is not recorded.
                    guard artifact.status == .ok else {
                        throw BackupFailure("backup \(artifact.id) is \(artifact.status.rawValue), not a good backup: there is nothing to drill",
                                            exitStatus: .usage, hint: "pick a good one: kaleem-backup list --source \(source.name)")
                    }
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
            let (result, detail) = await drillOne(artifact, source: source)
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
        await notify(drills: records)
        return records
    }

    /// The kind's drill; a kind this build does not know is a drill that could not run.
    private func drillOne(_ artifact: ArtifactInfo, source: SourcePolicy) async -> (DrillResult, String) {
        do {
            return try await registry.adapter(for: source.kind).drill(artifact, source: source, context: context)
        } catch {
            return (.error, "the drill could not run: \(describe(error))")
        }
    }

    /// The newest drill of an artifact, if it was ever drilled.
    public func lastDrill(of artifactID: String) throws -> DrillRecord? {
        try catalog().drills(artifactID: artifactID, limit: 1).first
    }

    /// A fresh 0700 directory `<tmp>/<prefix>-<pid>-XXXXXX`: the pid lets a later run remove what a killed
    /// process left (decompressed backups are data: they must not stay in /tmp).
    static func privateTemporaryDirectory(prefix: String) throws -> String {
        var template = Array((NSTemporaryDirectory() + "/\(prefix)-\(getpid())-XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw FileSystemError("create a temporary directory in", path: NSTemporaryDirectory())
        }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Removes temporary directories of ours whose process is gone (a drill or restore killed midway leaves a
    /// decompressed backup; versions before 2026-12 left `kaleem-mongo-*` with a connection string in it).
    static func removeStaleTemporaryDirectories(logger: Logger) {
        let tmp = NSTemporaryDirectory()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? [] {
            var stale = false
            if name.hasPrefix("kaleem-mongo-") {
                stale = true
            } else if let prefix = ["kaleem-drill-", "kaleem-restore-"].first(where: { name.hasPrefix($0) }) {
                let parts = name.dropFirst(prefix.count).split(separator: "-")
                if parts.count == 2, let pid = pid_t(parts[0]), pid != getpid(), kill(pid, 0) != 0 && errno == ESRCH { stale = true }
            }
            guard stale else { continue }
            let path = (tmp as NSString).appendingPathComponent(name)
            var info = stat()
            guard lstat(path, &info) == 0, info.st_uid == getuid(), (info.st_mode & S_IFMT) == S_IFDIR else { continue }
            if (try? FileManager.default.removeItem(atPath: path)) != nil {
                logger.warning("removed a temporary directory a killed run left", metadata: ["path": "\(path)"])
            }
        }
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
