// `ls` of a Redis backup: the RDB walked key by key (the verifier's walk, reading keys whole only here), in
// bounded memory: one key at a time.
import ArtifactStore
import BackupCore
import Foundation
import RedisBackup

extension RedisAdapter {
    func contents(_ artifact: ArtifactInfo, filter: ContentFilter, context: SourceContext, emit: (ContentEntry) throws -> Void) async throws {
        let database = try Self.database(filter)
        let source = await GzipChunkSource(reader: try context.reader(artifact))
        try withoutActuallyEscaping(emit) { emit in
            let visitor = RDBKeyVisitor(capture: { db, key in
                filter.digests && (database.map { $0 == db } ?? true) && filter.accepts(key)
            }) { key in
                guard database.map({ $0 == key.db }) ?? true, filter.accepts(key.key) else { return }
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

// What `ls`, `diff` and `list` know of Redis backups.
extension RedisAdapter {
    var contentFilters: [ContentFilterOption] { [ContentFilterOption("db", value: "N", help: "Redis: only this database.")] }

    /// `--db N`.
    static func database(_ filter: ContentFilter) throws -> Int? {
        guard let text = filter.options["db"] else { return nil }
        guard let n = Int(text) else { throw BackupFailure("--db \(text) is not a database number", exitStatus: .usage) }
        return n
    }

    /// The same key in another database is another entry.
    func diffKey(_ entry: ContentEntry) -> String {
        if let db = entry.detail["db"]?.intValue { return "db\(db)\u{0}" + entry.path }
        return entry.path
    }

    func detailSummary(stats: [String: JSONValue]) -> String {
        var parts: [String] = []
        if let keys = stats["keys"]?.intValue { parts.append("\(keys) keys") }
        if let v = stats["rdb_version"]?.intValue { parts.append("RDB v\(v)") }
        return parts.joined(separator: ", ")
    }
}
