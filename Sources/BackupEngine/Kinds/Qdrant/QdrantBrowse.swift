// `ls` of a Qdrant backup: its collections (points, vectors, aliases, snapshot size and sha256), as recorded.
import BackupCore
import Foundation

extension QdrantAdapter {
    func contents(_ artifact: ArtifactInfo, filter: ContentFilter, context: SourceContext, emit: (ContentEntry) throws -> Void) throws {
        guard case .object(let collections)? = artifact.stats["collections"] else {
            throw BackupFailure("backup \(artifact.id) recorded no collections", exitStatus: .failed)
        }
        for (name, info) in collections.sorted(by: { $0.key < $1.key }) where filter.accepts(name) {
            var detail: [String: JSONValue] = [:]
            if case .object(let fields) = info {
                for key in ["points", "aliases", "sha256", "snapshot"] { if let v = fields[key] { detail[key] = v } }
            }
            let digest = "points=\(info["points"]?.intValue ?? 0)"
            try emit(ContentEntry(path: name, type: "collection", size: info["size"]?.intValue.map(Int64.init), detail: detail, digest: digest))
        }
    }
}

// What `list` knows of Qdrant backups.
extension QdrantAdapter {
    func detailSummary(stats: [String: JSONValue]) -> String {
        guard let points = stats["points"]?.intValue, let count = stats["collections_count"]?.intValue else { return "" }
        return "\(points) points in \(count) collection\(count == 1 ? "" : "s")"
    }
}
