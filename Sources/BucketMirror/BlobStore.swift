// The content-addressed store of bucket objects: `<root>/<aa>/<sha256>`, one file per distinct content, so an
// object that did not change (or that several keys or buckets share) is stored once. Object keys never become
// paths: only hex digests do.
import ArtifactStore
import BackupCore
import Crypto
import Foundation
import NIOCore

public struct BlobStore: Sendable {
    /// `<repo>/<source>/blobs`.
    public let root: String

    public init(root: String) {
        self.root = root
    }

    /// Where downloads are written until their hash is known (`*.partial`, removed after a crash).
    public var temporaryDirectory: String { root + "/tmp" }

    public func path(for sha256: String) -> String {
        precondition(Self.isDigest(sha256), "not a sha256 digest")
        return "\(root)/\(sha256.prefix(2))/\(sha256)"
    }

    public func contains(_ sha256: String) -> Bool {
        Self.isDigest(sha256) && access(path(for: sha256), F_OK) == 0
    }

    static func isDigest(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// A file being written: bytes are hashed (sha256 and md5) on the way to `tmp/<random>.partial`;
    /// `commit()` fsyncs it and renames it to its content address (or drops it when that blob exists).
    public final class Writer {
        let store: BlobStore
        private var file: AtomicFileWriter
        private var sha = SHA256()
        private var md5 = Insecure.MD5()
        public private(set) var size: Int64 = 0

        init(store: BlobStore) throws {
            self.store = store
            file = try Self.temporaryFile(in: store)
        }

        private static func temporaryFile(in store: BlobStore) throws -> AtomicFileWriter {
            try FileIO.makeDirectories(store.temporaryDirectory)
            return try AtomicFileWriter(path: store.temporaryDirectory + "/" + UUID().uuidString.lowercased())
        }

        public func write(_ bytes: UnsafeRawBufferPointer) throws {
            try file.write(bytes)
            sha.update(bufferPointer: bytes)
            md5.update(bufferPointer: bytes)
            size += Int64(bytes.count)
        }

        /// Starts over (a download is retried from the beginning).
        public func reset() throws {
            file.abort()
            file = try Self.temporaryFile(in: store)
            sha = SHA256()
            md5 = Insecure.MD5()
            size = 0
        }

        /// Stores the blob under its digest (dropping the copy when that blob exists); returns the digests.
        public func commit() throws -> (sha256: String, md5: String) {
            let digest = sha.finalize().hexString
            let final = store.path(for: digest)
            if access(final, F_OK) == 0 {
                file.abort()
            } else {
                try FileIO.makeDirectories((final as NSString).deletingLastPathComponent)
                try file.commit(as: final)
            }
            return (digest, md5.finalize().hexString)
        }

        public func abort() {
            file.abort()
        }
    }

    public func writer() throws -> Writer { try Writer(store: self) }

    /// Re-hashes a blob; nil when it is missing.
    public func rehash(_ sha256: String) throws -> String? {
        guard contains(sha256) else { return nil }
        return try sha256OfFile(path(for: sha256))
    }

    /// Removes every blob not in `keeping`, and leftover temporary files. Returns how many blobs and bytes went.
    @discardableResult
    public func collectGarbage(keeping: Set<String>) throws -> (blobs: Int, bytes: Int64) {
        var removed = 0
        var bytes: Int64 = 0
        let fm = FileManager.default
        guard let shards = try? fm.contentsOfDirectory(atPath: root) else { return (0, 0) }
        for shard in shards where shard.count == 2 {
            let dir = root + "/" + shard
            for name in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where Self.isDigest(name) && !keeping.contains(name) {
                let size = FileIO.fileSize(dir + "/" + name) ?? 0
                if unlink(dir + "/" + name) == 0 {
                    removed += 1
                    bytes += size
                }
            }
            _ = rmdir(dir) // only succeeds when empty
        }
        return (removed, bytes)
    }
}
