// What a backup holds, one entry at a time: `ls`. Each kind lists its own contents (Redis keys walked from the
// RDB, a bucket snapshot's objects, a files backup's tar entries, MongoDB namespaces, Qdrant collections); the
// engine only finds the artifact and hands entries to the caller, so memory stays bounded whatever the size.
import BackupCore
import Foundation

/// Which entries `ls` shows. `prefix` and `match` (a glob with Redis's `SCAN MATCH` rules) apply to the
/// entry's path (a Redis key, an object key, a file path, a namespace, a collection); `database` to Redis.
public struct ContentFilter: Sendable {
    public var prefix: String?
    public var match: Glob?
    public var database: Int?
    /// Fill `ContentEntry.digest` (for `diff`): Redis then reads every selected value whole, one at a time.
    public var digests = false
    /// MongoDB: walk the archive itself instead of reading the counts its walk recorded at backup time.
    public var deep = false

    public init(prefix: String? = nil, match: String? = nil, database: Int? = nil, digests: Bool = false) {
        self.prefix = prefix
        self.match = match.map(Glob.init)
        self.database = database
        self.digests = digests
    }

    public func accepts(_ path: String) -> Bool { accepts(Array(path.utf8)) }

    public func accepts(_ path: [UInt8]) -> Bool {
        if let prefix, !path.starts(with: prefix.utf8) { return false }
        if let match, !match.matches(path) { return false }
        return true
    }
}

/// One thing a backup holds.
public struct ContentEntry: Sendable {
    /// The key, object key, file path, namespace or collection.
    public var path: String
    /// `string`/`hash`/… for Redis, `object`, `file`/`directory`/`symlink`, `namespace`, `collection`.
    public var type: String
    /// Bytes as stored (Redis: the value's encoded size; objects and files: their size), nil when unknown.
    public var size: Int64?
    /// Per kind: `db`, `expires_at` (Redis), `bucket`, `sha256`, `last_modified` (objects), `mode`, `mtime`,
    /// `link` (files), `documents` (MongoDB), `points` (Qdrant).
    public var detail: [String: JSONValue]
    /// What `diff` compares (with `ContentFilter.digests`): the content's sha256 (objects, files, Redis values as
    /// encoded, Qdrant snapshots) or a count (MongoDB namespaces). Nil when unknown (directories).
    public var digest: String?

    public init(path: String, type: String, size: Int64?, detail: [String: JSONValue] = [:], digest: String? = nil) {
        self.path = path
        self.type = type
        self.size = size
        self.detail = detail
        self.digest = digest
    }
}
