// The content-addressed store of bucket objects: `<root>/<aa>/<sha256>`, one file per distinct content, so an
// object that did not change (or that several keys or buckets share) is stored once. Object keys never become
// paths: only hex digests do. With encryption, a blob is stored age-encrypted as `<aa>/<sha256>.age` (the
// name is still the sha256 of the object's content); both kinds can live side by side.
import ArtifactStore
import BackupCore
import Crypto
import Foundation
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// How blobs are encrypted (new ones) and decrypted (encrypted ones).
public struct BlobEncryption: Sendable {
    public var recipients: [AgeRecipient]
    /// Reads the identities when an encrypted blob must be read (they may not be configured: then it throws).
    public var identities: @Sendable () throws -> [AgeIdentity]

    public init(recipients: [AgeRecipient], identities: @escaping @Sendable () throws -> [AgeIdentity]) {
        self.recipients = recipients
        self.identities = identities
    }
}

public struct BlobStore: Sendable {
    /// `<repo>/<source>/blobs`.
    public let root: String
    public let encryption: BlobEncryption?

    public static let encryptedSuffix = ".age"

    public init(root: String, encryption: BlobEncryption? = nil) {
        self.root = root
        self.encryption = encryption
    }

    /// Where downloads are written until their hash is known (`*.partial`, removed after a crash).
    public var temporaryDirectory: String { root + "/tmp" }

    /// The blob's file: the one that exists, else where a new one would go.
    public func path(for sha256: String) -> String {
        root + "/" + relativePath(for: sha256)
    }

    /// `<aa>/<sha256>` or `<aa>/<sha256>.age`, relative to the root.
    public func relativePath(for sha256: String) -> String {
        precondition(Self.isDigest(sha256), "not a sha256 digest")
        let plain = "\(sha256.prefix(2))/\(sha256)"
        if access(root + "/" + plain, F_OK) == 0 { return plain }
        if access(root + "/" + plain + Self.encryptedSuffix, F_OK) == 0 { return plain + Self.encryptedSuffix }
        return encryption?.recipients.isEmpty == false ? plain + Self.encryptedSuffix : plain
    }

    public func isEncrypted(_ sha256: String) -> Bool { relativePath(for: sha256).hasSuffix(Self.encryptedSuffix) }

    public func contains(_ sha256: String) -> Bool {
        Self.isDigest(sha256) && access(path(for: sha256), F_OK) == 0
    }

    public static func isDigest(_ s: String) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The digest a blob file name stands for (`<sha256>` or `<sha256>.age`), or nil.
    public static func digest(ofFileName name: String) -> String? {
        let base = name.hasSuffix(encryptedSuffix) ? String(name.dropLast(encryptedSuffix.count)) : name
        return isDigest(base) ? base : nil
    }

    /// A file being written: bytes are hashed (sha256 and md5, of the content) on the way to
    /// `tmp/<random>.partial` (encrypted first when the store encrypts); `commit()` fsyncs it and renames it
    /// to its content address (or drops it when that blob exists).
    public final class Writer {
        let store: BlobStore
        private var file: AtomicFileWriter
        private var encryptor: AgeEncryptor?
        private var sha = SHA256()
        private var md5 = Insecure.MD5()
        public private(set) var size: Int64 = 0

        init(store: BlobStore) throws {
            self.store = store
            file = try Self.temporaryFile(in: store)
            encryptor = try makeEncryptor()
        }

        private func makeEncryptor() throws -> AgeEncryptor? {
            guard let recipients = store.encryption?.recipients, !recipients.isEmpty else { return nil }
            let file = self.file
            return try AgeEncryptor(recipients: recipients) { try file.write($0) }
        }

        private static func temporaryFile(in store: BlobStore) throws -> AtomicFileWriter {
            try FileIO.makeDirectories(store.temporaryDirectory)
            return try AtomicFileWriter(path: store.temporaryDirectory + "/" + UUID().uuidString.lowercased())
        }

        public func write(_ bytes: UnsafeRawBufferPointer) throws {
            if let encryptor { try encryptor.write(bytes) } else { try file.write(bytes) }
            sha.update(bufferPointer: bytes)
            md5.update(bufferPointer: bytes)
            size += Int64(bytes.count)
        }

        /// Starts over (a download is retried from the beginning).
        public func reset() throws {
            file.abort()
            file = try Self.temporaryFile(in: store)
            encryptor = try makeEncryptor()
            sha = SHA256()
            md5 = Insecure.MD5()
            size = 0
        }

        /// Stores the blob under its digest (dropping the copy when that blob exists); returns the digests and
        /// the bytes this added to the store (the file's size on disk, encrypted or not; 0 when the blob was there).
        public func commit() throws -> (sha256: String, md5: String, added: Int64) {
            try encryptor?.finish()
            let digest = sha.finalize().hexString
            var added: Int64 = 0
            if store.contains(digest) {
                file.abort()
            } else {
                let name = digest + (encryptor == nil ? "" : BlobStore.encryptedSuffix)
                let final = "\(store.root)/\(digest.prefix(2))/\(name)"
                try FileIO.makeDirectories((final as NSString).deletingLastPathComponent)
                try file.commit(as: final)
                added = FileIO.fileSize(final) ?? 0
            }
            return (digest, md5.finalize().hexString, added)
        }

        public func abort() {
            file.abort()
        }
    }

    public func writer() throws -> Writer { try Writer(store: self) }

    /// Reads a blob's content (decrypting an encrypted one) in chunks.
    public func read(_ sha256: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let path = path(for: sha256)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError("open", path: path) }
        defer { close(fd) }
        let decryptor = isEncrypted(sha256) ? AgeDecryptor(identities: try identities(), object: path) : nil
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw FileSystemError("read", path: path) }
            if n == 0 { break }
            try buffer.withUnsafeBytes { raw in
                let chunk = UnsafeRawBufferPointer(rebasing: raw[0..<n])
                if let decryptor {
                    let plain = try decryptor.feed(chunk)
                    try plain.withUnsafeBytes { try body($0) }
                } else {
                    try body(chunk)
                }
            }
        }
        if let decryptor { try decryptor.finish().withUnsafeBytes { try body($0) } }
    }

    private func identities() throws -> [AgeIdentity] {
        guard let encryption else {
            throw BackupFailure("blobs of this snapshot are encrypted and the policy has no encryption settings", exitStatus: .usage,
                                hint: "set encryption.identity_file to the age key that encrypted them")
        }
        return try encryption.identities()
    }

    /// Re-hashes a blob's content; nil when it is missing.
    public func rehash(_ sha256: String) throws -> String? {
        guard contains(sha256) else { return nil }
        if !isEncrypted(sha256) { return try sha256OfFile(path(for: sha256)) }
        var hasher = StreamingSHA256()
        try read(sha256) { hasher.update($0) }
        return hasher.finalize()
    }

    /// A plaintext file of the blob's content for an upload: the blob itself, or (encrypted) a decrypted copy in
    /// `tmp/` that `release` removes.
    public func plaintextFile(_ sha256: String) throws -> (path: String, release: () -> Void) {
        guard isEncrypted(sha256) else { return (path(for: sha256), {}) }
        try FileIO.makeDirectories(temporaryDirectory)
        let temp = try AtomicFileWriter(path: temporaryDirectory + "/" + UUID().uuidString.lowercased())
        do {
            try read(sha256) { try temp.write($0) }
        } catch {
            temp.abort()
            throw error
        }
        return (temp.partialPath, { temp.abort() })
    }

    /// Removes every blob of `partition` (its shards) not in `keeping`. Returns how many blobs and bytes went.
    @discardableResult
    public func collectGarbage(keeping: DigestSet, partition: BlobPartition = .all) throws -> (blobs: Int, bytes: Int64) {
        var removed = 0
        var bytes: Int64 = 0
        let fm = FileManager.default
        guard let shards = try? fm.contentsOfDirectory(atPath: root) else { return (0, 0) }
        for shard in shards where shard.count == 2 && partition.contains(shard) {
            let dir = root + "/" + shard
            for name in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] {
                guard let digest = Self.digest(ofFileName: name), !keeping.contains(digest) else { continue }
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
