// Status: what the catalog says (list, show, per-source status, last drills) and the metrics textfile.

import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import Logging
import Prometheus

/// What `status` reports for one source.
public struct SourceStatus: Sendable {
    public var source: String
    public var kind: SourceKind
    public var newestGood: ArtifactInfo?
    /// Age of the newest good backup: how much would be lost now.
    public var rpoSeconds: Double?
    public var lastRunOK: Bool?
    public var lastDrill: DrillRecord?
    /// The newest verify of a backup of the source, whether it passed, and how many backups are corrupt.
    public var lastVerify: Date?
    public var lastVerifyOK: Bool?
    public var corrupt = 0
    /// Good backups (not removed) whose off-site copy failed (the next run retries them).
    public var offsiteFailed = 0
    /// Restores of this source killed before their end: their targets may be half-restored.
    public var interruptedRestores: [InterruptedRestore] = []
    /// The newest refresh of one of this source's backups done by another host (its receipt, collected after a
    /// run, #38): another host's word, shown as such, never counted as a drill of this host's.
    public var refreshedElsewhere: Catalog.RefreshByOtherHost?
}

/// One thing wrong with a source. `SourceProblem.find` holds the rules of what counts as a problem, for
/// `status --check`, the daemon's /healthz, its status page and `fleet status` alike; each says them in its own
/// words, and judges drills as far as it knows them (`DrillRule`).
public enum SourceProblem: Sendable, Equatable {
    /// The newest good backup is older than the RPO limit.
    case stale(rpoSeconds: Double, limit: Double)
    case noGoodBackup
    case lastRunFailed
    /// The last drill failed; `couldNotRun`: it was an error (no scratch target), not a mismatch.
    case drillFailed(couldNotRun: Bool)
    case drillOverdue(ageSeconds: Double, limit: Double)
    case neverDrilled
    case corrupt(Int)
    case interruptedRestore(InterruptedRestore)

    /// How far drills are judged: not at all (/healthz and the status page), the last one must have passed
    /// (`fleet status`), or also it must exist and be recent (`status --check`).
    public enum DrillRule: Sendable {
        case ignored
        case lastMustPass
        case lastMustPassWithin(seconds: Double)
    }

    /// The last drill as far as the caller knows it.
    public struct LastDrill: Sendable {
        public var failed: Bool
        public var couldNotRun: Bool
        public var startedAt: Date?

        public init(failed: Bool, couldNotRun: Bool = false, startedAt: Date? = nil) {
            self.failed = failed
            self.couldNotRun = couldNotRun
            self.startedAt = startedAt
        }

        /// A drill recorded in the catalog: failed or could not run (an archive-only drill passed).
        public init(_ record: DrillRecord) {
            self.init(failed: record.result == .failed || record.result == .error, couldNotRun: record.result == .error, startedAt: record.startedAt)
        }
    }

    /// The problems of one source, in the order every report lists them.
    public static func find(rpoSeconds: Double?, lastRunOK: Bool?, lastDrill: LastDrill?, corrupt: Int,
                            interruptedRestores: [InterruptedRestore] = [], maxRPO: Double, drills: DrillRule, now: Date) -> [SourceProblem] {
        var found: [SourceProblem] = []
        if let rpo = rpoSeconds {
            if rpo > maxRPO { found.append(.stale(rpoSeconds: rpo, limit: maxRPO)) }
        } else {
            found.append(.noGoodBackup)
        }
        if lastRunOK == false { found.append(.lastRunFailed) }
        switch drills {
        case .ignored:
            break
        case .lastMustPass:
            if let drill = lastDrill, drill.failed { found.append(.drillFailed(couldNotRun: drill.couldNotRun)) }
        case .lastMustPassWithin(let maxAge):
            if let drill = lastDrill {
                if drill.failed { found.append(.drillFailed(couldNotRun: drill.couldNotRun)) }
                if let at = drill.startedAt, now.timeIntervalSince(at) > maxAge { found.append(.drillOverdue(ageSeconds: now.timeIntervalSince(at), limit: maxAge)) }
            } else {
                found.append(.neverDrilled)
            }
        }
        if corrupt > 0 { found.append(.corrupt(corrupt)) }
        found += interruptedRestores.map { .interruptedRestore($0) }
        return found
    }

    /// The problems of a source as `status` reports it, drills judged as `drills` says.
    public static func find(_ status: SourceStatus, maxRPO: Double, drills: DrillRule, interruptedRestores: Bool, now: Date) -> [SourceProblem] {
        find(rpoSeconds: status.rpoSeconds, lastRunOK: status.lastRunOK, lastDrill: status.lastDrill.map(LastDrill.init), corrupt: status.corrupt,
             interruptedRestores: interruptedRestores ? status.interruptedRestores : [], maxRPO: maxRPO, drills: drills, now: now)
    }
}

struct StatusReport: EngineService {
    let core: EngineCore

    func list(source: String?, limit: Int?) throws -> [ArtifactInfo] {
        if let source { _ = try core.selectSources([source]) }
        return try catalog().artifacts(source: source, limit: limit)
    }

    /// An artifact by id, unique prefix, or `latest` (the newest good backup, of `source` when given).
    func show(id: String, source: String? = nil) throws -> ArtifactInfo {
        try core.find(artifact: id, source: source, in: try catalog())
    }

    /// The newest drill of an artifact, if it was ever drilled.
    func lastDrill(of artifactID: String) throws -> DrillRecord? {
        try catalog().drills(artifactID: artifactID, limit: 1).first
    }

    /// Per source: the newest good backup and its age (the current RPO), the last drill and its duration (RTO).
    func status(now: Date? = nil) throws -> [SourceStatus] {
        try Self.status(catalog: try catalog(), policy: policy, repository: repository, now: now ?? environment.clock())
    }

    /// The same from a given catalog (the daemon's status page reads it read-only): `status` and the page show
    /// the same figures.
    static func status(catalog: Catalog, policy: Policy, repository: LocalRepository, now: Date) throws -> [SourceStatus] {
        let summaries = Dictionary(uniqueKeysWithValues: try catalog.sourceSummaries().map { ($0.source, $0) })
        let killed = RestoreMarkers.interrupted(repository).map(\.marker)
        return try policy.sources.map { source in
            let newest = try catalog.artifacts(source: source.name, status: .ok, limit: 1).first
            let drill = try catalog.drills(source: source.name, limit: 1).first
            let summary = summaries[source.name]
            return SourceStatus(source: source.name, kind: source.kind, newestGood: newest,
                                rpoSeconds: newest.map { now.timeIntervalSince($0.createdAt) },
                                lastRunOK: summary?.lastRunOK, lastDrill: drill,
                                lastVerify: summary?.lastVerify, lastVerifyOK: summary?.lastVerifyOK, corrupt: summary?.corrupt ?? 0,
                                offsiteFailed: summary?.offsiteFailed ?? 0,
                                interruptedRestores: killed.filter { $0.source == source.name },
                                refreshedElsewhere: try catalog.refreshesByOtherHosts(source: source.name, limit: 1).first)
        }
    }
    /// Creates the metrics directory (and its missing parents) 0755: node_exporter runs as its own user and must
    /// traverse and list it, while this process's umask (077) would make them 0700. Directories that exist are
    /// left as they are (`policy check` says when node_exporter cannot read one).
    static func makeReadableDirectories(_ directory: String) throws {
        var missing: [String] = []
        var current = directory
        while !current.isEmpty, current != "/", !FileManager.default.fileExists(atPath: current) {
            missing.append(current)
            current = (current as NSString).deletingLastPathComponent
        }
        try FileIO.makeDirectories(directory)
        for created in missing { chmod(created, 0o755) }
    }

    /// Why a process of another user (node_exporter's) cannot read files in `directory`, or nil when it can:
    /// every parent must be searchable by others, the directory searchable and listable.
    static func unreadableByOthers(_ directory: String) -> String? {
        var components: [String] = []
        var current = directory
        while !current.isEmpty, current != "/" {
            components.append(current)
            current = (current as NSString).deletingLastPathComponent
        }
        for path in components.reversed() {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil } // not there yet: created readable
            let needed: mode_t = path == directory ? 0o005 : 0o001
            if info.st_mode & needed != needed {
                return "\(path) is mode \(String(info.st_mode & 0o7777, radix: 8)): node_exporter (another user) cannot \(path == directory ? "list" : "traverse") it; chmod o+\(path == directory ? "rx" : "x") \(path)"
            }
        }
        return nil
    }

    /// Writes the metrics textfile when the policy names one. Never fails the command: a problem is logged.
    @discardableResult
    func writeMetricsTextfile() -> String? {
        guard let path = policy.metricsTextfile else { return nil }
        do {
            let text = MetricsExport.render(try catalog().sourceSummaries(), deployments: try catalog().deployments())
            try Self.makeReadableDirectories((path as NSString).deletingLastPathComponent)
            // node_exporter usually runs as another user: the metrics file (no secret in it) is world-readable. The
            // mode is set on the new file's descriptor before the rename, never by path (a link there is not followed).
            try FileIO.writeAtomically(Data(text.utf8), to: path, mode: 0o644)
            return text
        } catch {
            logger.warning("cannot write the metrics textfile", metadata: ["path": "\(path)", "error": "\(describe(error))"])
            return nil
        }
    }
}
