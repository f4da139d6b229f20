// The storage seam: one protocol for a place that holds the repository's files under their relative paths
// (`<source>/<day>/<id>.rdb.gz`, `<source>/blobs/aa/<sha256>`, `catalog/catalog.sqlite`). Two implementations:
// the local directory (`LocalRepository`, here) and an S3 bucket under a prefix (`S3Repository`, target
// `OffsiteStore`: the off-site copy). The off-site replicator, `verify --offsite`, `catalog rebuild` and the
// fetch-when-missing path use only this protocol; one contract suite (`RepositoryContractTests`) runs against
// both.
import BackupCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One file as a repository knows it.
public struct RepositoryFile: Sendable, Equatable {
    /// Relative to the repository's root.
    public var relative: String
    public var size: Int64
    /// The sha256 the store recorded for it (S3: the object's metadata), nil when it records none (a local file:
    /// its content is the record; `digest` re-reads it).
    public var recordedSHA256: String?
    /// When the store last wrote it, by the store's clock (S3: the listing's LastModified, ISO 8601 in UTC), nil
    /// where the store does not say.
    public var lastModified: String?

    public init(relative: String, size: Int64, recordedSHA256: String?, lastModified: String? = nil) {
        self.relative = relative
        self.size = size
        self.recordedSHA256 = recordedSHA256
        self.lastModified = lastModified
    }

    /// The same file: name, size and recorded sha256 (when it was written is the store's, not the file's).
    public static func == (a: RepositoryFile, b: RepositoryFile) -> Bool {
        a.relative == b.relative && a.size == b.size && a.recordedSHA256 == b.recordedSHA256
    }
}

public protocol Repository: Sendable {
    /// Where it is, for messages: a directory path or `s3://bucket/prefix`.
    var location: String { get }
    /// Stores a local file as `relative` (atomically: a reader sees the old file, none, or the whole new one)
    /// and checks what was stored: its size, and its sha256 against `sha256` (the caller's, computed once).
    func put(_ localFile: String, as relative: String, sha256: String) async throws
    /// Copies `relative` into the local file `localFile` (written as `<localFile>.partial`, renamed when whole);
    /// with `sha256`, a copy whose content hashes otherwise is an `IntegrityError` and leaves nothing behind.
    func get(_ relative: String, to localFile: String, sha256: String?) async throws
    /// The file's size (and recorded sha256), nil when there is no such file.
    func stat(_ relative: String) async throws -> RepositoryFile?
    /// Every file whose relative path starts with `prefix` (a directory ends with `/`), in no promised order.
    func list(under prefix: String) async throws -> [RepositoryFile]
    /// The same files a page at a time (a remote store lists 1,000 per request): memory holds one page.
    func list(under prefix: String, page: ([RepositoryFile]) async throws -> Void) async throws
    /// Removes files; one that is already gone is not an error.
    func delete(_ relatives: [String]) async throws
    /// Re-reads a file whole and returns the sha256 of its content.
    func digest(_ relative: String) async throws -> String
    /// Releases connections (a no-op for a directory).
    func close()
}

extension Repository {
    public func list(under prefix: String, page: ([RepositoryFile]) async throws -> Void) async throws {
        try await page(list(under: prefix))
    }

    /// The stored file exists with this size and sha256: by the recorded sha256 when the store records one,
    /// else by re-reading it.
    public func check(_ relative: String, size: Int64, sha256: String) async throws {
        guard let file = try await stat(relative) else {
            throw IntegrityError(object: location + relative, problem: "the file is missing")
        }
        guard file.size == size else {
            throw IntegrityError(object: location + relative, problem: "it has \(file.size) bytes, expected \(size)")
        }
        let actual: String
        if let recorded = file.recordedSHA256 { actual = recorded } else { actual = try await digest(relative) }
        guard actual == sha256 else {
            throw IntegrityError(object: location + relative, problem: "sha256 is \(actual), expected \(sha256)")
        }
    }
}

/// Relative paths a repository accepts: no empty, `.` or `..` component, no leading `/`. A path read from a
/// manifest or a listing goes through this before it names a file.
public enum RepositoryPath {
    public static func validate(_ relative: String, in location: String) throws {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false)
        guard !relative.isEmpty, !relative.hasPrefix("/"), !relative.utf8.contains(0),
              parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw IntegrityError(object: location, problem: "refusing the path \(String(reflecting: relative)): a repository path is relative, without empty, '.' or '..' parts")
        }
    }
}

// MARK: the local directory

extension LocalRepository: Repository {
    public var location: String { root + "/" }

    public func put(_ localFile: String, as relative: String, sha256: String) async throws {
        try RepositoryPath.validate(relative, in: location)
        let path = absolute(relative)
        if URL(fileURLWithPath: localFile).standardizedFileURL.path == path {
            // Already in place: check it, as a remote store would.
            try await check(relative, size: FileIO.fileSize(path) ?? -1, sha256: sha256)
            return
        }
        try Self.copy(localFile, to: path, expecting: sha256, object: location + relative)
    }

    public func get(_ relative: String, to localFile: String, sha256: String?) async throws {
        try RepositoryPath.validate(relative, in: location)
        let path = absolute(relative)
        guard access(path, F_OK) == 0 else {
            throw IntegrityError(object: location + relative, problem: "the file is missing")
        }
        try Self.copy(path, to: localFile, expecting: sha256, object: location + relative)
    }

    public func stat(_ relative: String) async throws -> RepositoryFile? {
        try RepositoryPath.validate(relative, in: location)
        return FileIO.fileSize(absolute(relative)).map { RepositoryFile(relative: relative, size: $0, recordedSHA256: nil) }
    }

    public func list(under prefix: String) async throws -> [RepositoryFile] {
        // Walk from the deepest directory the prefix names, then filter by the whole prefix.
        let directory = prefix.contains("/") ? String(prefix[..<prefix.lastIndex(of: "/")!]) : ""
        if !directory.isEmpty { try RepositoryPath.validate(directory, in: location) }
        let start = directory.isEmpty ? root : absolute(directory)
        guard let walker = FileManager.default.enumerator(atPath: start) else { return [] }
        var files: [RepositoryFile] = []
        while let sub = walker.nextObject() as? String {
            let relative = directory.isEmpty ? sub : directory + "/" + sub
            guard relative.hasPrefix(prefix), !relative.hasSuffix(AtomicFileWriter.partialSuffix) else { continue }
            var info = Glibc.stat()
            guard lstat(absolute(relative), &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            files.append(RepositoryFile(relative: relative, size: Int64(info.st_size), recordedSHA256: nil))
        }
        return files
    }

    public func delete(_ relatives: [String]) async throws {
        for relative in relatives {
            try RepositoryPath.validate(relative, in: location)
            if unlink(absolute(relative)) != 0, errno != ENOENT {
                throw FileSystemError("remove", path: absolute(relative))
            }
        }
    }

    public func digest(_ relative: String) async throws -> String {
        try RepositoryPath.validate(relative, in: location)
        return try sha256OfFile(absolute(relative))
    }

    public func close() {}

    /// Copies a file through `<to>.partial` (fsynced, renamed), hashing on the way; a mismatch leaves nothing.
    static func copy(_ from: String, to: String, expecting sha256: String?, object: String) throws {
        let input = open(from, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw FileSystemError("open", path: from) }
        defer { Glibc.close(input) }
        try FileIO.makeDirectories((to as NSString).deletingLastPathComponent)
        let output = try AtomicFileWriter(path: to)
        do {
            var hasher = StreamingSHA256()
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(input, $0.baseAddress, $0.count) }
                if n < 0 { if errno == EINTR { continue }; throw FileSystemError("read", path: from) }
                if n == 0 { break }
                try buffer.withUnsafeBytes {
                    let chunk = UnsafeRawBufferPointer(rebasing: $0[0..<n])
                    hasher.update(chunk)
                    try output.write(chunk)
                }
            }
            let digest = hasher.finalize()
            if let sha256, digest != sha256 {
                throw IntegrityError(object: object, problem: "sha256 is \(digest), expected \(sha256)")
            }
            try output.commit()
        } catch {
            output.abort()
            throw error
        }
    }

    /// The fetch-when-missing path: when `relative` is not here, copies it from `other` (the off-site copy),
    /// checking `sha256` when known. Returns whether it fetched.
    @discardableResult
    public func fetchIfMissing(_ relative: String, sha256: String?, from other: any Repository) async throws -> Bool {
        try RepositoryPath.validate(relative, in: location)
        guard access(absolute(relative), F_OK) != 0 else { return false }
        try await other.get(relative, to: absolute(relative), sha256: sha256)
        return true
    }
}
