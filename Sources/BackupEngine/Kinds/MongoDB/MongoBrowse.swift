// `ls` of a MongoDB backup: its namespaces and document counts, as the archive walk recorded them at backup
// time (the catalog's stats: the walk is the one `verify` repeats).
import BackupCore
import Foundation

extension MongoAdapter {
    func contents(_ artifact: ArtifactInfo, filter: ContentFilter, context: SourceContext, emit: (ContentEntry) throws -> Void) throws {
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
