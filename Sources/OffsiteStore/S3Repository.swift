// The repository's layout in an S3 / MinIO bucket under a prefix: the off-site copy. Keys are
// `prefix + relative path`; each object carries its sha256 as metadata (`x-amz-meta-sha256`), set on upload
// and checked after it, so `stat` and `check` need no re-read.
import ArtifactStore
import BackupCore
import Foundation
import S3Client

public struct S3Repository: Repository {
    public let client: S3Client
    public let bucket: String
    /// Put before every relative path as it is (the policy's `prefix`, usually ending with `/`).
    public let prefix: String
    public let location: String

    /// `location` names it in messages (default `s3://bucket/prefix`; the engine passes the policy's
    /// `endpoint/bucket/prefix`).
    public init(client: S3Client, bucket: String, prefix: String, location: String? = nil) {
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.location = location ?? "s3://\(bucket)/\(prefix)"
    }

    func key(_ relative: String) throws -> String {
        try RepositoryPath.validate(relative, in: location)
        return prefix + relative
    }

    public func put(_ localFile: String, as relative: String, sha256: String) async throws {
        let key = try key(relative)
        guard let size = FileIO.fileSize(localFile) else { throw FileSystemError("read", path: localFile) }
        _ = try await client.putFile(bucket: bucket, key: key, path: localFile, expectedSHA256: sha256,
                                     metadata: ["sha256": sha256])
        try await check(relative, size: size, sha256: sha256)
    }

    public func get(_ relative: String, to localFile: String, sha256 expected: String?) async throws {
        let key = try key(relative)
        try FileIO.makeDirectories((localFile as NSString).deletingLastPathComponent)
        var file = try AtomicFileWriter(path: localFile)
        var hasher = StreamingSHA256()
        do {
            // A transfer broken midway is retried from the start, into a fresh partial file.
            _ = try await client.getObject(bucket: bucket, key: key, restart: {
                file.abort()
                file = try AtomicFileWriter(path: localFile)
                hasher = StreamingSHA256()
            }) { chunk in
                try chunk.withUnsafeReadableBytes { bytes in
                    hasher.update(bytes)
                    try file.write(bytes)
                }
            }
            let digest = hasher.finalize()
            if let expected, digest != expected {
                throw IntegrityError(object: location + relative, problem: "sha256 is \(digest), expected \(expected)")
            }
            try file.commit()
        } catch {
            file.abort()
            throw error
        }
    }

    public func stat(_ relative: String) async throws -> RepositoryFile? {
        guard let head = try await client.headObject(bucket: bucket, key: key(relative)) else { return nil }
        return RepositoryFile(relative: relative, size: head.size, recordedSHA256: head.metadata["sha256"])
    }

    public func list(under relativePrefix: String) async throws -> [RepositoryFile] {
        var files: [RepositoryFile] = []
        try await list(under: relativePrefix) { files.append(contentsOf: $0) }
        return files
    }

    public func list(under relativePrefix: String, page: ([RepositoryFile]) async throws -> Void) async throws {
        try await client.listObjects(bucket: bucket, prefix: prefix + relativePrefix) { objects in
            try await page(objects.compactMap { object in
                guard object.key.hasPrefix(prefix) else { return nil }
                let relative = String(object.key.dropFirst(prefix.count))
                // A key this layout never writes (`a//b`, `../x`) is not a file of the repository.
                guard (try? RepositoryPath.validate(relative, in: location)) != nil else { return nil }
                return RepositoryFile(relative: relative, size: object.size, recordedSHA256: nil,
                                      lastModified: object.lastModified.isEmpty ? nil : object.lastModified)
            })
        }
    }

    public func delete(_ relatives: [String]) async throws {
        try await client.deleteObjects(bucket: bucket, keys: relatives.map(key))
    }

    public func digest(_ relative: String) async throws -> String {
        let key = try key(relative)
        var hasher = StreamingSHA256()
        _ = try await client.getObject(bucket: bucket, key: key, restart: { hasher = StreamingSHA256() }) { chunk in
            chunk.withUnsafeReadableBytes { hasher.update($0) }
        }
        return hasher.finalize()
    }

    public func close() { client.shutdown() }
}

/// Another host's off-site copy, read only (`--from-host`, #38): reads go through, a write or a removal is refused
/// before any request is made, whatever code path asks for it.
public struct ReadOnlyRepository: Repository {
    public let base: any Repository
    public init(_ base: any Repository) { self.base = base }
    public var location: String { base.location }

    public func put(_ localFile: String, as relative: String, sha256: String) async throws {
        throw BackupFailure("refused to write \(location + relative): another host's off-site copy is read only")
    }
    public func get(_ relative: String, to localFile: String, sha256: String?) async throws { try await base.get(relative, to: localFile, sha256: sha256) }
    public func stat(_ relative: String) async throws -> RepositoryFile? { try await base.stat(relative) }
    public func list(under prefix: String) async throws -> [RepositoryFile] { try await base.list(under: prefix) }
    public func list(under prefix: String, page: ([RepositoryFile]) async throws -> Void) async throws { try await base.list(under: prefix, page: page) }
    public func delete(_ relatives: [String]) async throws {
        guard !relatives.isEmpty else { return }
        throw BackupFailure("refused to remove \(relatives.count) file(s) from \(location): another host's off-site copy is read only")
    }
    public func digest(_ relative: String) async throws -> String { try await base.digest(relative) }
    public func close() { base.close() }
}
