// The drill runner: the newest (or a chosen) backup restored into a scratch target, checked, recorded.

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

struct DrillRunner: EngineService {
    let core: EngineCore

    /// Restore drills: prove that backups restore, and measure how long it takes (the RTO).
    ///
    /// drill, per source:
    ///   artifact = latest | named | random good backup
    ///   the kind's adapter verifies it (a mismatch fails the drill), restores it into a scratch target it
    ///   creates (a scratch redis-server, scratch databases, a scratch bucket…), compares, removes the target
    ///   record the drill (result, duration, what was compared) in the catalog
    /// Drills never touch a production target: each adapter creates its own scratch target.
    func drill(sources names: [String] = [], selector: DrillSelector = .latest) async throws -> [DrillRecord] {
        let catalog = try catalog()
        var selected = try core.selectSources(names)
        if case .id(let id) = selector {
            let artifact = try core.statusReport.show(id: id)
            selected = try core.selectSources([artifact.source])
        }
        var records: [DrillRecord] = []
        for source in selected {
            let artifact: ArtifactInfo
            do {
                switch selector {
                case .latest: artifact = try core.selectArtifact(source: source.name, .latest)
                case .id(let id):
                    artifact = try core.selectArtifact(source: source.name, .id(id))
                    // A typo must not fire BackupDrillFailing: only a good backup is drilled, and a refusal is not recorded.
                    guard artifact.status == .ok else {
                        throw BackupFailure("backup \(artifact.id) is \(artifact.status.rawValue), not a good backup: there is nothing to drill",
                                            exitStatus: .usage, hint: "pick a good one: kaleem-backup list --source \(source.name)")
                    }
                case .random:
                    let good = try catalog.artifacts(source: source.name, status: .ok)
                    guard let pick = good.randomElement() else { throw try core.noGoodBackup(source: source.name, "to drill") }
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
        core.statusReport.writeMetricsTextfile()
        await core.notifier.notify(drills: records)
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
}
