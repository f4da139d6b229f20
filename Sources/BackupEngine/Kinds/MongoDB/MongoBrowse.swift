// `ls` of a MongoDB backup: its namespaces and document counts, as the archive walk recorded them at backup
// time (the catalog's stats), or, with --deep, walked again from the stored archive now.
import ArtifactStore
import BackupCore
import Foundation
import MongoBackup

extension MongoAdapter {
    func contents(_ artifact: ArtifactInfo, filter: ContentFilter, context: SourceContext, emit: (ContentEntry) throws -> Void) async throws {
        if filter.flag("deep") {
            let (report, _) = try await MongoArchiveCheck.verify(GzipChunkSource(reader: try context.reader(artifact)))
            let views = Set(report.views)
            var names = Set(report.namespaces.keys).union(views).union(report.collections)
            names.formUnion(report.timeseries.keys)
            for ns in names.sorted() where filter.accepts(ns) {
                let documents = report.namespaces[ns] ?? 0
                var detail: [String: JSONValue] = ["documents": .int(documents)]
                if let buckets = report.timeseries[ns] { detail["timeseries_buckets"] = .string(buckets) }
                let type = views.contains(ns) ? "view" : report.timeseries[ns] != nil ? "timeseries" : "namespace"
                try emit(ContentEntry(path: ns, type: type, size: nil, detail: detail, digest: "documents=\(documents)"))
            }
            return
        }
        guard case .object(let perNamespace)? = artifact.stats["per_namespace"] else {
            throw BackupFailure("backup \(artifact.id) recorded no namespaces", exitStatus: .failed,
                                hint: "kaleem-backup verify \(artifact.id) walks the archive and says what it holds")
        }
        for (ns, documents) in perNamespace.sorted(by: { $0.key < $1.key }) where filter.accepts(ns) {
            var detail: [String: JSONValue] = ["documents": documents]
            if let data = artifact.stats["timeseries"]?[ns] { detail["timeseries_buckets"] = data }
            try emit(ContentEntry(path: ns, type: "namespace", size: nil, detail: detail, digest: "documents=\(documents)"))
        }
    }
}

// What `ls` and `list` know of MongoDB backups.
extension MongoAdapter {
    var contentFilters: [ContentFilterOption] {
        [ContentFilterOption("deep", help: "MongoDB: walk the stored archive now (namespaces, views, time series, counts) instead of reading what its walk recorded at backup time.")]
    }

    func detailSummary(stats: [String: JSONValue]) -> String {
        guard let docs = stats["documents"]?.intValue, let ns = stats["namespaces"]?.intValue else { return "" }
        // Documents and oplog entries apart: mongorestore restores the first, replays the second only on request.
        let oplog = stats["oplog_entries"]?.intValue ?? stats["per_namespace"]?["oplog"]?.intValue ?? 0
        return oplog > 0 ? "\(docs - oplog) documents + \(oplog) oplog entries in \(ns) namespaces" : "\(docs) documents in \(ns) namespaces"
    }

    /// Versions before 2026-12 left `kaleem-mongo-*` directories with a connection string in them.
    var temporaryDirectoryPrefixes: [TemporaryDirectoryPrefix] { [TemporaryDirectoryPrefix(prefix: "kaleem-mongo-", carriesPID: false)] }
}
