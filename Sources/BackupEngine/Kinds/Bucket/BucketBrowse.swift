// `ls` of a bucket snapshot: its objects, from the snapshot's manifest (no blob is read).
import ArtifactStore
import BackupCore
import BucketMirror
import Foundation

extension BucketAdapter {
    func contents(_ artifact: ArtifactInfo, filter: ContentFilter, context: SourceContext, emit: (ContentEntry) throws -> Void) async throws {
        let snapshot = try await loadSnapshot(artifact, context: context)
        for bucket in snapshot.buckets {
            for object in bucket.objects where filter.accepts(object.key) {
                try emit(ContentEntry(path: object.key, type: "object", size: object.size,
                                      detail: ["bucket": .string(bucket.name), "sha256": .string(object.sha256),
                                               "last_modified": .string(object.lastModified)],
                                      digest: object.sha256))
            }
        }
    }
}
