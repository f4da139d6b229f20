// `ls` of a bucket snapshot: its objects, from the snapshot's manifest (no object's blob is read).
import ArtifactStore
import BackupCore
import BucketMirror
import Foundation

extension BucketAdapter {
    func contents(_ artifact: ArtifactInfo, filter: ContentFilter, context: SourceContext, emit: (ContentEntry) throws -> Void) async throws {
        // A chunk at a time: a snapshot of millions of objects lists in bounded memory.
        let document = try await loadDocument(artifact, context: context)
        try await document.forEachEntry(reader: chunkReader(source: artifact.source, context: context)) { bucket, object in
            if filter.accepts(object.key) {
                try emit(ContentEntry(path: object.key, type: "object", size: object.size,
                                      detail: ["bucket": .string(bucket), "sha256": .string(object.sha256),
                                               "last_modified": .string(object.lastModified)],
                                      digest: object.sha256))
            }
        }
    }
}
