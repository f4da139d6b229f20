// The snapshot manifest (`<id>.snapshot.json`): for each bucket, every object's key, size, ETag,
// last-modified and the sha256 of its content (the blob that holds it). A snapshot is a point in time: the
// blobs it names are kept as long as it is.
import BackupCore
import Foundation

/// How every manifest document (snapshot files of both formats, chunks) is written: sorted keys, so equal
/// content gives equal bytes (and equal chunk addresses).
enum ManifestJSON {
    static func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }
}

public struct BucketSnapshot: Codable, Sendable, Equatable {
    public static let formatName = "kaleem-backup/bucket-snapshot/1"

    public var format: String = formatName
    public var source: String
    public var artifact: String
    /// The S3 endpoint (no credentials).
    public var endpoint: String
    public var createdAt: String
    public var buckets: [Bucket]

    public struct Bucket: Codable, Sendable, Equatable {
        public var name: String
        /// Only keys under this prefix were taken ("" for all).
        public var prefix: String
        public var objects: [Entry]

        public init(name: String, prefix: String, objects: [Entry]) {
            self.name = name
            self.prefix = prefix
            self.objects = objects
        }
    }

    public struct Entry: Codable, Sendable, Equatable {
        public var key: String
        public var size: Int64
        public var etag: String
        public var lastModified: String
        public var sha256: String
        /// MD5 of the content (what a single-part upload's ETag is), to recognise it in a target bucket.
        public var md5: String?

        enum CodingKeys: String, CodingKey {
            case key, size, etag, sha256, md5
            case lastModified = "last_modified"
        }

        public init(key: String, size: Int64, etag: String, lastModified: String, sha256: String, md5: String?) {
            self.key = key
            self.size = size
            self.etag = etag
            self.lastModified = lastModified
            self.sha256 = sha256
            self.md5 = md5
        }
    }

    enum CodingKeys: String, CodingKey {
        case format, source, artifact, endpoint, buckets
        case createdAt = "created_at"
    }

    public init(source: String, artifact: String, endpoint: String, createdAt: String, buckets: [Bucket]) {
        self.source = source
        self.artifact = artifact
        self.endpoint = endpoint
        self.createdAt = createdAt
        self.buckets = buckets
    }

    public func encoded() throws -> Data { try ManifestJSON.encode(self) }

    /// Reads a manifest; a file of another format or a damaged one is an error naming the file.
    public static func decode(_ data: Data, file: String) throws -> BucketSnapshot {
        let snapshot: BucketSnapshot
        do {
            snapshot = try JSONDecoder().decode(BucketSnapshot.self, from: data)
        } catch {
            throw BackupFailure("\(file) is not a readable bucket snapshot manifest: \(error)", exitStatus: .integrity,
                                hint: "the file is damaged; verify it (kaleem-backup verify) and use another backup")
        }
        guard snapshot.format == formatName else {
            throw BackupFailure("\(file) has format \"\(snapshot.format)\", this version reads \"\(formatName)\"", exitStatus: .integrity)
        }
        return snapshot
    }

    /// Every blob the snapshot references.
    public var blobDigests: Set<String> {
        var all = Set<String>()
        for bucket in buckets { for entry in bucket.objects { all.insert(entry.sha256) } }
        return all
    }

    public var objectCount: Int { buckets.reduce(0) { $0 + $1.objects.count } }
    public var byteCount: Int64 { buckets.reduce(0) { $0 + $1.objects.reduce(0) { $0 + $1.size } } }

    public func bucket(named name: String) -> Bucket? { buckets.first { $0.name == name } }
}
