// `ls` of a Redis backup: the RDB walked key by key (the verifier's walk, reading keys whole only here), in
// bounded memory: one key at a time.
import ArtifactStore
import BackupCore
import Foundation
import RedisBackup

extension RedisAdapter {
    func contents(_ artifact: ArtifactInfo, filter: ContentFilter, context: SourceContext, emit: (ContentEntry) throws -> Void) async throws {
        let source = await GzipChunkSource(reader: try context.reader(artifact))
        try withoutActuallyEscaping(emit) { emit in
            let visitor = RDBKeyVisitor(capture: { db, key in
                filter.digests && (filter.database.map { $0 == db } ?? true) && filter.accepts(key)
            }) { key in
                guard filter.database.map({ $0 == key.db }) ?? true, filter.accepts(key.key) else { return }
                var detail: [String: JSONValue] = ["db": .int(key.db)]
                if let at = key.expireAtMs {
                    detail["expires_at"] = .string(Timestamps.iso8601(Date(timeIntervalSince1970: Double(at) / 1000)))
                }
                // The value as encoded (type byte and value, without the payload's RDB version and CRC), prefixed by
                // the database: the same key in another database is another entry.
                let digest = key.payload.map { payload -> String in
                    var h = StreamingSHA256()
                    payload.prefix(payload.count - 10).withUnsafeBytes { h.update($0) }
                    return h.finalize()
                }
                try emit(ContentEntry(path: String(decoding: key.key, as: UTF8.self), type: key.typeName, size: key.encodedBytes, detail: detail,
                                      digest: digest))
            }
            _ = try RDBVerifier.verify(source, keys: visitor)
        }
    }
}
