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
                try emit(Self.entry(object, bucket: bucket))
            }
        }
    }

    static func entry(_ object: BucketSnapshot.Entry, bucket: String) -> ContentEntry {
        ContentEntry(path: object.key, type: "object", size: object.size,
                     detail: ["bucket": .string(bucket), "sha256": .string(object.sha256), "last_modified": .string(object.lastModified)],
                     digest: object.sha256)
    }

    /// Both snapshots' entries merged bucket by bucket in key order, a chunk of each in memory: the memory is
    /// the differences, never the bucket.
    func diff(_ from: ArtifactInfo, _ to: ArtifactInfo, filter: ContentFilter, context: SourceContext) async throws -> ContentDiff? {
        let reader = chunkReader(source: from.source, context: context)
        let old = try await loadDocument(from, context: context)
        let new = try await loadDocument(to, context: context)
        var result = ContentDiff(from: from, to: to)
        let names = Set(old.buckets.map(\.name)).union(new.buckets.map(\.name)).sorted()
        for name in names {
            let before: EntryStream? = old.cursor(bucket: name, reader: reader)
            let after: EntryStream? = new.cursor(bucket: name, reader: reader)
            func next(_ stream: EntryStream?) async throws -> BucketSnapshot.Entry? {
                while let entry = try await stream?.next() { if filter.accepts(entry.key) { return entry } }
                return nil
            }
            var a = try await next(before)
            var b = try await next(after)
            while a != nil || b != nil {
                if let x = a, b == nil || KeyOrder.less(x.key, b!.key) {
                    result.removed.append(Self.entry(x, bucket: name))
                    a = try await next(before)
                } else if let y = b, a == nil || KeyOrder.less(y.key, a!.key) {
                    result.added.append(Self.entry(y, bucket: name))
                    b = try await next(after)
                } else if let x = a, let y = b {
                    if x.sha256 != y.sha256 {
                        result.changed.append((Self.entry(x, bucket: name), Self.entry(y, bucket: name)))
                    } else {
                        result.unchanged += 1
                    }
                    a = try await next(before)
                    b = try await next(after)
                }
            }
        }
        return result
    }
}

// What `diff` and `list` know of bucket snapshots.
extension BucketAdapter {
    /// The same key in another bucket is another entry.
    func diffKey(_ entry: ContentEntry) -> String {
        if case .string(let bucket)? = entry.detail["bucket"] { return bucket + "\u{0}" + entry.path }
        return entry.path
    }

    func detailSummary(stats: [String: JSONValue]) -> String {
        guard let objects = stats["objects"]?.intValue, let buckets = stats["buckets"]?.intValue else { return "" }
        var text = "\(objects) objects in \(buckets) bucket\(buckets == 1 ? "" : "s")"
        if let new = stats["new"]?.intValue, let changed = stats["changed"]?.intValue, let deleted = stats["deleted"]?.intValue {
            text += (stats["previous"] ?? .null) == .null ? " (first snapshot)" : " (+\(new) ~\(changed) -\(deleted) since the previous)"
        }
        return text
    }
}
