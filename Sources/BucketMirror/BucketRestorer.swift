// restore of one bucket of a snapshot into a target bucket:
//   list the target (if it exists) under the snapshot's prefix
//   an object whose key, size and content already match (its ETag is the recorded ETag, the content's MD5,
//     or the multipart ETag our upload would give) is left alone
//   every other object of the snapshot is uploaded from its blob, checked against its sha256 first
//     (a mismatch stops the restore: `BlobMismatch`)
//   objects the snapshot does not hold are deleted only when asked (`deleteExtra`)
import ArtifactStore
import BackupCore
import Crypto
import Foundation
import S3Client

public struct BucketRestorePlan: Sendable {
    public var sourceBucket: String
    public var targetBucket: String
    public var targetExists: Bool
    /// Objects in the target before the restore (under the prefix).
    public var targetObjects: Int
    public var upload: [BucketSnapshot.Entry]
    public var unchanged: Int
    /// Keys in the target that the snapshot does not hold.
    public var extra: [String]
    public var deleteExtra: Bool
    /// Uploads that replace an object of the target holding something else.
    public var overwrites = 0

    public var uploadBytes: Int64 { upload.reduce(0) { $0 + $1.size } }

    public var description: [String] {
        var lines = ["bucket \(sourceBucket) -> \(targetBucket)\(targetExists ? " (holds \(targetObjects) objects)" : " (will be created)")",
                     "upload \(upload.count) objects (\(uploadBytes) bytes), \(unchanged) already identical"
                        + (overwrites > 0 ? "; \(overwrites) of the uploads replace a different object there" : "")]
        if deleteExtra {
            lines.append("delete \(extra.count) objects the snapshot does not hold")
        } else if !extra.isEmpty {
            lines.append("keep \(extra.count) objects the snapshot does not hold (--delete-extra removes them)")
        }
        return lines
    }
}

public struct BucketRestoreResult: Sendable {
    public var plan: BucketRestorePlan
    public var uploaded: Int
    public var deleted: Int
    public var requests: Int
}

/// A blob that is missing or whose content no longer hashes to its name.
public struct BlobMismatch: UserFacingError {
    public var key: String
    public var sha256: String
    public var problem: String
    public var exitStatus: ExitStatus { .integrity }
    public var description: String { "blob \(sha256) of object \(key) \(problem); the restore stopped" }
    public var hint: String? { "verify the snapshot (kaleem-backup verify) and restore an older one" }
}

public struct BucketRestorer: Sendable {
    public let client: S3Client
    public let blobs: BlobStore
    /// Told each object uploaded with its size (progress on a terminal).
    public var onUploaded: (@Sendable (_ bytes: Int64) -> Void)?

    public init(client: S3Client, blobs: BlobStore) {
        self.client = client
        self.blobs = blobs
    }

    public func plan(_ bucket: BucketSnapshot.Bucket, into target: String, deleteExtra: Bool) async throws -> BucketRestorePlan {
        let exists = try await client.bucketExists(target)
        let current = exists ? try await client.listObjects(bucket: target, prefix: bucket.prefix) : []
        var byKey: [String: S3Object] = [:]
        for object in current { byKey[object.key] = object }
        var upload: [BucketSnapshot.Entry] = []
        var unchanged = 0
        var overwrites = 0
        for entry in bucket.objects {
            let there = byKey.removeValue(forKey: entry.key)
            if let there, there.size == entry.size, try matches(there.etag, entry) {
                unchanged += 1
            } else {
                upload.append(entry)
                if there != nil { overwrites += 1 }
            }
        }
        return BucketRestorePlan(sourceBucket: bucket.name, targetBucket: target, targetExists: exists, targetObjects: current.count,
                                 upload: upload, unchanged: unchanged, extra: byKey.keys.sorted(), deleteExtra: deleteExtra,
                                 overwrites: overwrites)
    }

    /// True when an object with this ETag holds the entry's content.
    func matches(_ etag: String, _ entry: BucketSnapshot.Entry) throws -> Bool {
        if etag == entry.etag || etag == entry.md5 { return true }
        // A multipart ETag: the one our own upload of this blob would produce.
        if etag.contains("-"), entry.size > client.options.multipartThreshold, blobs.contains(entry.sha256), !blobs.isEncrypted(entry.sha256) {
            return try multipartETag(of: blobs.path(for: entry.sha256), partSize: client.options.partSize) == etag
        }
        return false
    }

    /// `hex(md5(md5(p1) ‖ … ‖ md5(pN)))-N` (the multipart ETag S3 and MinIO compute).
    func multipartETag(of path: String, partSize: Int) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError("open", path: path) }
        defer { close(fd) }
        var digests = Data()
        var parts = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var part = Insecure.MD5()
        var inPart = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw FileSystemError("read", path: path) }
            if n == 0 { break }
            var offset = 0
            while offset < n {
                let take = min(n - offset, partSize - inPart)
                buffer.withUnsafeBytes { part.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + take])) }
                inPart += take
                offset += take
                if inPart == partSize {
                    digests.append(contentsOf: part.finalize())
                    parts += 1
                    part = Insecure.MD5()
                    inPart = 0
                }
            }
        }
        if inPart > 0 {
            digests.append(contentsOf: part.finalize())
            parts += 1
        }
        return Insecure.MD5.hash(data: digests).hexString + "-\(parts)"
    }

    public func execute(_ plan: BucketRestorePlan, concurrency: Int) async throws -> BucketRestoreResult {
        let before = client.requestCount
        if !plan.targetExists { try await client.createBucket(plan.targetBucket) }
        // Every blob is there before anything is written.
        for entry in plan.upload where !blobs.contains(entry.sha256) {
            throw BlobMismatch(key: entry.key, sha256: entry.sha256, problem: "is missing from the blob store")
        }
        let target = plan.targetBucket
        let uploaded = onUploaded
        _ = try await concurrentMap(plan.upload, limit: concurrency) { entry in
            try await upload(entry, to: target)
            uploaded?(entry.size)
        }
        if plan.deleteExtra, !plan.extra.isEmpty {
            try await client.deleteObjects(bucket: plan.targetBucket, keys: plan.extra)
        }
        return BucketRestoreResult(plan: plan, uploaded: plan.upload.count, deleted: plan.deleteExtra ? plan.extra.count : 0,
                                   requests: client.requestCount - before)
    }

    private func upload(_ entry: BucketSnapshot.Entry, to bucket: String) async throws {
        do {
            let (path, release) = try blobs.plaintextFile(entry.sha256)
            defer { release() }
            try await client.putFile(bucket: bucket, key: entry.key, path: path, expectedSHA256: entry.sha256)
        } catch let mismatch as S3ContentMismatch {
            throw BlobMismatch(key: entry.key, sha256: entry.sha256, problem: "hashes to \(mismatch.actual): it changed on disk")
        }
    }
}

extension BucketRestorer {
    /// Reads every object of `target` back and compares it with the snapshot's entries: the same keys, and
    /// for each its size and the sha256 of its bytes. Returns the differences (empty: identical).
    public func compare(_ bucket: BucketSnapshot.Bucket, with target: String, concurrency: Int) async throws -> [String] {
        let listed = try await client.listObjects(bucket: target, prefix: bucket.prefix)
        var problems: [String] = []
        var there: [String: S3Object] = [:]
        for object in listed { there[object.key] = object }
        var toRead: [BucketSnapshot.Entry] = []
        for entry in bucket.objects {
            guard let object = there.removeValue(forKey: entry.key) else { problems.append("\(entry.key): missing"); continue }
            if object.size != entry.size { problems.append("\(entry.key): \(object.size) bytes, expected \(entry.size)"); continue }
            toRead.append(entry)
        }
        for key in there.keys.sorted() { problems.append("\(key): not in the snapshot") }
        let client = self.client
        problems += try await concurrentMap(toRead, limit: concurrency) { entry -> String? in
            var hasher = SHA256()
            _ = try await client.getObject(bucket: target, key: entry.key, restart: { hasher = SHA256() }) { chunk in
                chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            }
            let digest = hasher.finalize().hexString
            return digest == entry.sha256 ? nil : "\(entry.key): sha256 \(digest), expected \(entry.sha256)"
        }.compactMap { $0 }
        return problems.sorted()
    }

    /// Deletes every object of a bucket, then the bucket (a drill's scratch bucket).
    public func removeBucket(_ bucket: String) async throws {
        let keys = try await client.listObjects(bucket: bucket).map(\.key)
        try await client.deleteObjects(bucket: bucket, keys: keys)
        try await client.deleteBucket(bucket)
    }
}
