// The receipt collector (#38): the other side of a refresh. Staging restores one of production's backups into its
// live stores and leaves a receipt under its OWN off-site directory (`<staging>/refreshes/<prod>/<id>.json`; it may
// not write production's). After each of its own runs, production reads the receipts addressed to it and records
// them in its own catalog (`refreshes_by_other_hosts`), so that its catalog, `status` and its off-site copy say
// that its backup was restored and checked elsewhere, and when.
//
// collect:
//   the hosts: one delimiter listing of the bucket's prefix (host-named directories other than this one)
//   per host: one listing of `<host>/refreshes/<this host>/`; the newest `perHost` receipts not read before
//   each one as untrusted input (`RefreshReceipts.fetch`: at most 64 KiB in the listing and after the GET, strict
//     shape, schema, place), then each source entry kept only when it names one of THIS catalog's backups of that
//     source (or none: a refresh that could not run, worth knowing too)
//   recorded (a host and drill id already there is left as it was); nothing here can fail the run: logged
// Another host's word is recorded as such: never a row of `drills`, so it never satisfies this host's own drill
// alerts (a staging that lies can make production look refreshed, not drilled).

import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation
import OffsiteStore

struct ReceiptCollector: EngineService {
    let core: EngineCore

    /// Receipts read per other host and run at most (a writer keeps 30: `RefreshReceipts.kept`).
    static let perHost = 60

    /// What one collection did.
    struct Outcome: Sendable, Equatable {
        var recorded = 0
        /// Receipts (or entries) not believed, and why: logged.
        var refused: [String] = []
    }

    @discardableResult
    func collect() async -> Outcome {
        var outcome = Outcome()
        guard policy.repository.offsite != nil else { return outcome }
        do {
            guard let root = try core.offsiteBucketRoot() else { return outcome }
            defer { root.close() }
            let me = try core.offsiteHost()
            let scratch = try EngineCore.privateTemporaryDirectory(prefix: "receipts")
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let catalog = try catalog()
            let now = environment.clock()
            for prefix in try await root.client.listCommonPrefixes(bucket: root.bucket, prefix: root.prefix) {
                let writer = String(prefix.dropFirst(root.prefix.count).dropLast())
                guard writer != me, HostName.isValid(writer) else { continue }
                // One host whose directory cannot be listed (or whose rows cannot be written) does not stop the others.
                do {
                    let directory = writer + "/" + RefreshReceipts.directory + "/" + me + "/"
                    let known = try catalog.collectedReceipts(byHost: writer)
                    let files = try await root.list(under: directory).filter {
                        let name = $0.relative.dropFirst(directory.count)
                        return $0.relative.hasPrefix(directory) && !name.contains("/") && name.hasSuffix(".json") && !known.contains($0.relative)
                    }
                    let newest = files.sorted(by: RefreshReceipts.newer).prefix(Self.perHost)
                    var rows: [Catalog.RefreshByOtherHost] = []
                    for file in newest {
                        // One receipt that cannot be fetched or read (gone since the listing, an archived object, a
                        // hostile one) is refused alone: the others of this host and the other hosts are still read.
                        do {
                            rows += try await read(file, writer: writer, me: me, root: root, catalog: catalog, scratch: scratch, now: now, outcome: &outcome)
                        } catch {
                            outcome.refused.append("\(file.relative): \(describe(error))")
                        }
                    }
                    outcome.recorded += try catalog.insertRefreshesByOtherHosts(rows)
                } catch {
                    outcome.refused.append("\(writer)/\(RefreshReceipts.directory)/\(me)/: \(describe(error))")
                }
            }
        } catch {
            logger.warning("the refresh receipts of other hosts could not be read", metadata: ["error": "\(describe(error))"])
        }
        for line in outcome.refused {
            logger.warning("a refresh receipt of another host was not believed", metadata: ["receipt": "\(line)"])
        }
        if outcome.recorded > 0 { logger.info("refreshes of this host's backups by other hosts recorded", metadata: ["count": "\(outcome.recorded)"]) }
        return outcome
    }

    /// One receipt fetched and checked (`RefreshReceipts.fetch`: it throws why it is refused): the rows it gives
    /// (none when refused, with why in `outcome`).
    private func read(_ file: RepositoryFile, writer: String, me: String, root: S3Repository, catalog: Catalog,
                      scratch: String, now: Date, outcome: inout Outcome) async throws -> [Catalog.RefreshByOtherHost] {
        let receipt = try await RefreshReceipts.fetch(file, from: root, to: scratch + "/receipt.json", writer: writer, fromHost: me)
        guard let refreshedAt = Timestamps.parseISO8601(receipt.started_at) else {
            outcome.refused.append("\(file.relative): its start time is not a time")
            return []
        }
        // A refresh dated ahead of this host's clock (beyond a day of skew) would stay "the newest" for ever.
        guard refreshedAt <= now.addingTimeInterval(86_400) else {
            outcome.refused.append("\(file.relative): it says the refresh started at \(receipt.started_at), later than this host's clock allows")
            return []
        }
        var rows: [Catalog.RefreshByOtherHost] = []
        for entry in receipt.sources {
            if !entry.artifact.isEmpty {
                // Only a backup this catalog holds, by its exact id, of the source the entry names: anything else
                // is not ours (a prefix is not an id: `artifact(matching:)` would also throw on an ambiguous one).
                let artifact = try? catalog.artifact(matching: entry.artifact)
                guard let artifact, artifact.id == entry.artifact, artifact.source == entry.source else {
                    outcome.refused.append("\(file.relative): \(entry.source) names backup \(String(entry.artifact.prefix(64))), which is not one of this host's backups of \(entry.source)")
                    continue
                }
            }
            guard !entry.drill_id.isEmpty, entry.drill_id.count <= 64 else {
                outcome.refused.append("\(file.relative): \(entry.source) has no drill id of ours")
                continue
            }
            rows.append(Catalog.RefreshByOtherHost(byHost: writer, drillID: entry.drill_id, receipt: file.relative, artifactID: entry.artifact,
                                                   source: entry.source, refreshedAt: refreshedAt, durationSeconds: entry.duration_seconds,
                                                   result: DrillResult(rawValue: entry.result) ?? .error,
                                                   detail: String(PeerText.clean(entry.detail).prefix(1024)), collectedAt: now))
        }
        return rows
    }
}
