// A `mongodump --out DIR` directory (the operations document's nightly `mongodb-YYYYMMDD/`) turned into the
// mongodump archive stream kaleem-backup stores, so that such a dump is verified, restored through
// `mongorestore --archive` and rotated like any backup. The layout read is mongo-tools' (mongodump/prepare.go,
// common/archive): `<db>/<collection>.bson` (documents back to back), `<db>/<collection>.metadata.json`
// (extended JSON: options, indexes, uuid, collectionName, type), `oplog.bson` at the top for `--oplog`, and
// `prelude.json` ({"ServerVersion", "ToolVersion"}) from Database Tools 100.x. The archive written is the one
// `mongodump --archive` writes: magic, prelude header, one metadata document per namespace, a terminator, then
// per namespace its blocks and an EOF header carrying the CRC-64/XZ of its documents.
import BackupCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

public struct DumpDirectoryError: UserFacingError, Equatable {
    public var path: String
    public var problem: String
    public var exitStatus: ExitStatus { .integrity }
    public var description: String { "\(path): \(problem)" }
    public var hint: String? { "check that this is a mongodump --out directory, written completely (not --gzip: gunzip its files first)" }
}

public enum DumpDirectoryArchiver {
    /// A BSON document is at most 16 MiB; the oplog's entries may carry a little more (mongo-tools reads up to
    /// 16 MiB + 16 KiB, db.MaxBSONSize plus the replication overhead).
    public static let largestDocument = 16 * 1024 * 1024 + 16 * 1024
    /// A metadata file larger than this is not one.
    public static let largestMetadata = 16 * 1024 * 1024
    /// Documents are written in blocks of about this size (mongodump's own are ~ 1 MiB too).
    static let blockSize = 1 << 20

    struct Namespace {
        var db: String
        var collection: String
        var metadata: String?
        var type: String
        var bson: String?
    }

    /// True when `path` is a directory that looks like a mongodump --out dump (a `<db>/*.bson` or
    /// `*.metadata.json`, or a top-level `oplog.bson`).
    public static func looksLikeDump(_ path: String) -> Bool {
        guard let top = try? FileManager.default.contentsOfDirectory(atPath: path) else { return false }
        if top.contains("oplog.bson") { return true }
        for db in top {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: path + "/" + db)) ?? []
            if files.contains(where: { $0.hasSuffix(".bson") || $0.hasSuffix(".metadata.json") }) { return true }
        }
        return false
    }

    /// Writes the archive of the dump in `directory` through `emit`, in pieces of about a block. Throws
    /// `DumpDirectoryError` on anything that is not a complete dump (a truncated document, a gzipped file, a
    /// metadata file that is not JSON); never reads a length it has not checked.
    public static func archive(directory: String, emit: ([UInt8]) throws -> Void) throws {
        let namespaces = try scan(directory)
        var serverVersion = "unknown", toolVersion = "unknown"
        if case .regular(let size)? = entry(directory + "/prelude.json"), size < 1 << 20,
           let data = FileManager.default.contents(atPath: directory + "/prelude.json"), data.count < 1 << 20,
           let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            serverVersion = (object["ServerVersion"] as? String) ?? serverVersion
            toolVersion = (object["ToolVersion"] as? String) ?? toolVersion
        }
        var out = MongoArchiveVerifier.magic
        out += BSONWriter.document([("concurrent_collections", .int32(1)), ("version", .string("0.1")),
                                    ("server_version", .string(serverVersion)), ("tool_version", .string(toolVersion))])
        for ns in namespaces where ns.metadata != nil {
            out += BSONWriter.document([("db", .string(ns.db)), ("collection", .string(ns.collection)), ("metadata", .string(ns.metadata!)),
                                        ("size", .int32(0)), ("type", .string(ns.type))])
        }
        out += terminator
        try emit(out)
        let crc = CRC64.xz
        for ns in namespaces {
            guard let file = ns.bson else { continue } // a view: metadata only
            var register = crc.start
            try documents(of: file) { block in
                register = block.withUnsafeBytes { crc.update(register, $0) }
                try emit(header(ns, eof: false, crc: 0) + block + terminator)
            }
            try emit(header(ns, eof: true, crc: Int64(bitPattern: crc.finalize(register))) + terminator)
        }
    }

    static let terminator: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF]

    static func header(_ ns: Namespace, eof: Bool, crc: Int64) -> [UInt8] {
        BSONWriter.document([("db", .string(ns.db)), ("collection", .string(ns.collection)), ("EOF", .bool(eof)), ("CRC", .int64(crc))])
    }

    /// The namespaces of the dump, sorted (databases, then collections), the oplog last.
    static func scan(_ directory: String) throws -> [Namespace] {
        let fm = FileManager.default
        guard let top = try? fm.contentsOfDirectory(atPath: directory) else {
            throw DumpDirectoryError(path: directory, problem: "cannot be read as a directory")
        }
        var out: [Namespace] = []
        for db in top.sorted() {
            let dbPath = directory + "/" + db
            // Links are not followed (lstat): a `<db>` or a file that points elsewhere would import what is
            // outside the dump (another directory's files, /etc/shadow); a FIFO would block the read forever.
            switch entry(dbPath) {
            case .directory: break
            case .other(let what): throw DumpDirectoryError(path: dbPath, problem: "is \(what), not a database directory (links are not followed)")
            default: continue
            }
            let files = try fm.contentsOfDirectory(atPath: dbPath)
            for file in files where file.hasSuffix(".bson") || file.hasSuffix(".metadata.json") {
                if case .other(let what) = entry(dbPath + "/" + file) {
                    throw DumpDirectoryError(path: dbPath + "/" + file, problem: "is \(what), not a regular file (links are not followed)")
                }
            }
            if let gz = files.first(where: { $0.hasSuffix(".bson.gz") || $0.hasSuffix(".metadata.json.gz") }) {
                throw DumpDirectoryError(path: dbPath + "/" + gz, problem: "is gzipped (mongodump --gzip --out)")
            }
            let names = Set(files.compactMap { f -> String? in
                if f.hasSuffix(".metadata.json") { return String(f.dropLast(".metadata.json".count)) }
                if f.hasSuffix(".bson") { return String(f.dropLast(".bson".count)) }
                return nil
            })
            for name in names.sorted() {
                var ns = Namespace(db: db, collection: unescape(name), metadata: nil, type: "collection", bson: nil)
                let metadataPath = dbPath + "/" + name + ".metadata.json"
                if fm.fileExists(atPath: metadataPath) {
                    let text = try readMetadata(metadataPath)
                    ns.metadata = text.string
                    // Database Tools 100.x name the collection inside (file names of long names are hashed).
                    if let real = text.object["collectionName"] as? String, !real.isEmpty { ns.collection = real }
                    if let type = text.object["type"] as? String, !type.isEmpty { ns.type = type }
                }
                if files.contains(name + ".bson") { ns.bson = dbPath + "/" + name + ".bson" }
                out.append(ns)
            }
        }
        if case .other(let what) = entry(directory + "/oplog.bson") {
            throw DumpDirectoryError(path: directory + "/oplog.bson", problem: "is \(what), not a regular file (links are not followed)")
        }
        if fm.fileExists(atPath: directory + "/oplog.bson") {
            out.append(Namespace(db: "", collection: "oplog", metadata: nil, type: "collection", bson: directory + "/oplog.bson"))
        }
        if out.isEmpty { throw DumpDirectoryError(path: directory, problem: "holds no <db>/<collection>.bson or .metadata.json") }
        return out
    }

    enum Entry {
        case regular(size: Int64)
        case directory
        /// A symbolic link, a FIFO, a device, a socket: what it is, in words.
        case other(String)
    }

    /// What `path` itself is (lstat: a link is a link); nil when it does not exist.
    static func entry(_ path: String) -> Entry? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .regular(size: Int64(info.st_size))
        case S_IFDIR: return .directory
        case S_IFLNK: return .other("a symbolic link")
        case S_IFIFO: return .other("a FIFO")
        case S_IFSOCK: return .other("a socket")
        default: return .other("a device")
        }
    }

    static func readMetadata(_ path: String) throws -> (string: String, object: [String: Any]) {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        if let size = attributes?[.size] as? Int, size > largestMetadata {
            throw DumpDirectoryError(path: path, problem: "is \(size) bytes, more than any collection's metadata")
        }
        guard let data = FileManager.default.contents(atPath: path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let string = String(data: data, encoding: .utf8) else {
            throw DumpDirectoryError(path: path, problem: "is not a JSON object")
        }
        return (string, object)
    }

    /// mongodump escapes `/` and `%`-style characters of collection names in file names (url.PathEscape).
    static func unescape(_ name: String) -> String { name.removingPercentEncoding ?? name }

    /// The documents of a .bson file, in blocks of about `blockSize` bytes; each length checked before use.
    static func documents(of path: String, block: ([UInt8]) throws -> Void) throws {
        // O_NONBLOCK: a FIFO put in place of the file after the scan does not block the open; then refused.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { throw DumpDirectoryError(path: path, problem: "cannot be opened: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw DumpDirectoryError(path: path, problem: "is not a regular file")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        var offset: Int64 = 0
        var pending: [UInt8] = []
        func readExactly(_ n: Int) throws -> [UInt8]? {
            var buffer = [UInt8](repeating: 0, count: n)
            var got = 0
            while got < n {
                let r = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, n - got) }
                if r < 0 {
                    if errno == EINTR { continue }
                    throw DumpDirectoryError(path: path, problem: "read failed at byte \(offset + Int64(got)): \(String(cString: strerror(errno)))")
                }
                if r == 0 { break }
                got += r
            }
            if got == 0 { return nil }
            guard got == n else { throw DumpDirectoryError(path: path, problem: "ends inside a document at byte \(offset + Int64(got)) (truncated)") }
            return buffer
        }
        while let head = try readExactly(4) {
            let length = Int(Int32(littleEndian: head.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }))
            guard length >= 5, length <= largestDocument else {
                throw DumpDirectoryError(path: path, problem: "a document at byte \(offset) claims \(length) bytes (BSON documents are 5 bytes to 16 MiB)")
            }
            guard let rest = try readExactly(length - 4) else {
                throw DumpDirectoryError(path: path, problem: "ends inside a document at byte \(offset + 4) (truncated)")
            }
            guard rest.last == 0 else { throw DumpDirectoryError(path: path, problem: "the document at byte \(offset) does not end with a NUL") }
            pending += head
            pending += rest
            offset += Int64(length)
            if pending.count >= blockSize {
                try block(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
        if !pending.isEmpty { try block(pending) }
    }
}

/// Just enough BSON to write an archive's headers.
enum BSONWriter {
    enum Value {
        case string(String)
        case int32(Int32)
        case int64(Int64)
        case bool(Bool)
    }

    static func document(_ fields: [(String, Value)]) -> [UInt8] {
        var body: [UInt8] = []
        for (key, value) in fields {
            let name = Array(key.utf8) + [0]
            switch value {
            case .string(let s):
                let bytes = Array(s.utf8) + [0]
                body += [0x02] + name + le(Int32(bytes.count)) + bytes
            case .int32(let v): body += [0x10] + name + le(v)
            case .int64(let v): body += [0x12] + name + le(v)
            case .bool(let v): body += [0x08] + name + [v ? 1 : 0]
            }
        }
        return le(Int32(body.count + 5)) + body + [0]
    }

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}
