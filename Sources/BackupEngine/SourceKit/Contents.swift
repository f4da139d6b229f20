// What a backup holds, one entry at a time: `ls`. Each kind lists its own contents (Redis keys walked from the
// RDB, a bucket snapshot's objects, a files backup's tar entries, MongoDB namespaces, Qdrant collections); the
// engine only finds the artifact and hands entries to the caller, so memory stays bounded whatever the size.
import BackupCore
import Foundation

/// Which entries `ls` shows. `prefix` and `match` (a glob with Redis's `SCAN MATCH` rules) apply to the
/// entry's path (a Redis key, an object key, a file path, a namespace, a collection); `options` are the kinds'
/// own filters (`SourceAdapter.contentFilters`: Redis's `db`, MongoDB's `deep`), by name, each read by its kind.
public struct ContentFilter: Sendable {
    public var prefix: String?
    public var match: Glob?
    /// Fill `ContentEntry.digest` (for `diff`): Redis then reads every selected value whole, one at a time.
    public var digests = false
    /// The kinds' own filters by name: the value of `--NAME VALUE`, or "" for a flag. A kind reads its own and
    /// ignores the others'.
    public var options: [String: String] = [:]

    public init(prefix: String? = nil, match: String? = nil, options: [String: String] = [:], digests: Bool = false) {
        self.prefix = prefix
        self.match = match.map(Glob.init)
        self.options = options
        self.digests = digests
    }

    /// Whether the flag `name` was given.
    public func flag(_ name: String) -> Bool { options[name] != nil }

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

/// One of a kind's own `ls`/`diff` filters: `--name VALUE` (or a flag), for the help and for `ContentFilter.options`.
public struct ContentFilterOption: Sendable, Equatable {
    public var name: String
    /// `N`, …; nil for a flag.
    public var valueName: String?
    public var help: String

    public init(_ name: String, value: String? = nil, help: String) {
        self.name = name
        self.valueName = value
        self.help = help
    }
}
