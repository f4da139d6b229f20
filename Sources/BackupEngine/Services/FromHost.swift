// `restore … --from-host NAME` and `drill --from-host NAME` (#38): another host's backups, read from its
// directory of the shared off-site bucket and restored into this host's targets.
//
// The other host's catalog copy is fetched and checked as untrusted input (`FleetStatusReader.fetchCatalogCopy`),
// then an engine is made over a scratch repository (0700, removed afterwards) whose catalog is that copy and whose
// off-site copy is that host's directory, wrapped read only (`ReadOnlyRepository`): whatever the restore or drill
// needs is fetched from there, verified against that host's recorded sha256 and the kind's walk, and restored
// into the targets named on this host's command line, with this host's policy (its sources, tools and
// encryption identities). Nothing is ever written to the other host's directory. The restores and drills the
// scratch catalog records are carried over to THIS host's catalog (`from_host_restores`, `from_host_drills`:
// tables of their own, naming the other host and its backup id, which this catalog does not hold), whether the
// body succeeded or not; the rest of the scratch catalog (verify results) goes away with it.

import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation

struct FromHost: EngineService {
    let core: EngineCore

    /// Runs `body` with an engine over host `name`'s off-site copy; the scratch repository is removed after.
    func with<T>(host name: String, _ body: (EngineCore) async throws -> T) async throws -> T {
        if let problem = HostName.problem(name) {
            throw BackupFailure("--from-host \"\(name)\" \(problem)", exitStatus: .usage, hint: "kaleem-backup fleet status lists the hosts")
        }
        guard let offsite = policy.repository.offsite, let root = try core.offsiteBucketRoot() else {
            throw BackupFailure("--from-host reads another host's off-site copy, and \(policy.origin) has no repository.offsite", exitStatus: .usage,
                                hint: "add repository.offsite: the bucket the other host copies to")
        }
        defer { root.close() }
        if let me = try? core.offsiteHost(), me == name {
            throw BackupFailure("--from-host \(name) is this host (its policy's host:)", exitStatus: .usage, hint: "leave out --from-host to restore this host's own backups")
        }
        let scratch = try EngineCore.privateTemporaryDirectory(prefix: "from-host")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let catalogPath = scratch + "/catalog.sqlite"
        let copy = try await FleetStatusReader.fetchCatalogCopy(name + "/" + CatalogRebuilder.offsiteCopy, from: root, to: catalogPath)
        try copy.close()
        var foreign = policy
        foreign.host = name
        foreign.repository.path = scratch + "/repository"
        foreign.repository.catalog = catalogPath
        foreign.metricsTextfile = nil
        foreign.schedules = []
        let engine = EngineCore(policy: foreign, environment: environment, readOnlyOffsite: true, markerRepository: repository)
        try engine.repository.prepare()
        logger.info("reading another host's off-site copy", metadata: ["host": "\(name)", "from": "\(offsite.location + name + "/")"])
        let scratchCatalog = try engine.catalog()
        let drillsBefore = Set(try scratchCatalog.drills().map(\.id))
        let restoresBefore = Set(try scratchCatalog.allRestores().map(\.id))
        do {
            let result = try await body(engine)
            carryOver(from: scratchCatalog, host: name, drillsBefore: drillsBefore, restoresBefore: restoresBefore)
            return result
        } catch {
            carryOver(from: scratchCatalog, host: name, drillsBefore: drillsBefore, restoresBefore: restoresBefore)
            throw error
        }
    }

    /// The restores and drills the body recorded in the scratch catalog, into this host's catalog (naming `host`).
    /// A failure to record is logged, never the outcome of the restore itself.
    private func carryOver(from scratch: Catalog, host: String, drillsBefore: Set<String>, restoresBefore: Set<String>) {
        do {
            let home = try catalog()
            for drill in try scratch.drills().reversed() where !drillsBefore.contains(drill.id) {
                try home.insertFromHostDrill(drill, fromHost: host, purpose: "drill")
            }
            for restore in try scratch.allRestores().reversed() where !restoresBefore.contains(restore.id) {
                try home.insertFromHostRestore(restore, fromHost: host)
            }
        } catch {
            logger.error("the restore or drill of another host's backup could not be recorded in this host's catalog",
                         metadata: ["host": "\(host)", "error": "\(describe(error))"])
        }
    }
}
