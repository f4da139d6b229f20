// MongoBackup: MongoDB through the official tools. `mongodump --archive` and `mongorestore --archive` run as
// subprocesses (swift-subprocess), credentials through a 0600 `--config` file, never argv; archives are
// verified natively (no MongoDB needed): magic, prelude, body blocks, per-namespace CRC-64/XZ and counts.
import BackupCore
import Foundation

/// What a verified mongodump archive holds.
public struct MongoArchiveReport: Sendable, Equatable {
    public var formatVersion: String
    public var serverVersion: String?
    public var toolVersion: String?
    /// `db.collection` (the oplog of `--oplog` as `oplog`) → documents.
    public var namespaces: [String: Int]
    /// Namespaces announced in the prelude (collections and views).
    public var collections: [String]
    /// Views announced in the prelude (no documents of their own: the definition is in `<db>.system.views`).
    public var views: [String] = []
    /// Time-series collections → the namespace their documents (buckets) are dumped under
    /// (`<db>.system.buckets.<name>` before MongoDB 8.3). Their counts are reported under the collection's name.
    public var timeseries: [String: String] = [:]
    public var bytes: Int64

    public var documents: Int { namespaces.values.reduce(0, +) }

    /// Entries of the oplog (`--oplog`), which mongorestore replays only with `--oplogReplay`.
    public var oplogEntries: Int { namespaces[MongoArchiveVerifier.oplogNamespace] ?? 0 }

    /// Documents mongorestore would restore without `--oplogReplay` (the oplog is not a collection).
    public var restorableDocuments: Int { namespaces.filter { $0.key != MongoArchiveVerifier.oplogNamespace }.values.reduce(0, +) }

    public var stats: [String: JSONValue] {
        var out: [String: JSONValue] = [
            "archive_version": .string(formatVersion),
            "namespaces": .int(namespaces.count),
            "documents": .int(documents),
            "per_namespace": .object(namespaces.mapValues { .int($0) }),
            "archive_bytes": .int(Int(bytes)),
        ]
        out["oplog_entries"] = .int(oplogEntries)
        out["restorable_documents"] = .int(restorableDocuments)
        if !views.isEmpty { out["views"] = .array(views.sorted().map { .string($0) }) }
        if !timeseries.isEmpty { out["timeseries"] = .object(timeseries.mapValues { .string($0) }) }
        if let serverVersion { out["server_version"] = .string(serverVersion) }
        if let toolVersion { out["tool_version"] = .string(toolVersion) }
        return out
    }
}

/// Why an archive is not valid: where (byte offset) and what. Exit 4.
public struct MongoArchiveError: UserFacingError, Equatable {
    public var offset: Int64
    public var problem: String
    public var exitStatus: ExitStatus { .integrity }
    public var description: String { "mongodump archive is not valid at byte \(offset): \(problem)" }
}

/// Reads a mongodump archive (`common/archive/spec.md` of mongo-tools) as it streams:
///
///     magic 6D E2 99 81 | header {concurrent_collections, version "0.1", server_version, tool_version}
///     metadata* {db, collection, metadata, size, type} | FF FF FF FF
///     ( {db, collection, EOF: false, CRC: 0} document* FF FF FF FF
///     | {db, collection, EOF: true, CRC: int64} FF FF FF FF )*
///
/// Every document's framing is checked (length 5 bytes to 16 MiB + 16 KiB, trailing 0), every namespace's
/// documents are counted and their raw bytes fed to CRC-64/XZ, compared with the namespace's EOF block.
/// A gzipped archive (`--gzip`) must be inflated by the caller first (see `isGzip`).
public enum MongoArchiveVerifier {
    public static let magic: [UInt8] = [0x6D, 0xE2, 0x99, 0x81]
    public static let terminator: UInt32 = 0xFFFF_FFFF
    public static let oplogNamespace = "oplog"
    /// mongod's limit plus the slack mongo-tools allows.
    static let maxDocumentSize = 16 * 1024 * 1024 + 16 * 1024

    /// True when the bytes start like a gzip stream (what `mongodump --archive --gzip` writes).
    public static func isGzip(_ prefix: [UInt8]) -> Bool { prefix.count >= 2 && prefix[0] == 0x1F && prefix[1] == 0x8B }

    public static func verify<S: ByteSource>(_ source: S) throws -> MongoArchiveReport {
        var reader = ByteReader(source)
        do {
            return try parse(&reader)
        } catch ByteReader<S>.Failure.truncated(let at) {
            throw MongoArchiveError(offset: at, problem: "the archive ends in the middle of a block (truncated)")
        } catch let error as BSON.Malformed {
            throw MongoArchiveError(offset: reader.offset, problem: "malformed BSON: \(error.problem)")
        }
    }

    private static func namespace(_ fields: [String: BSONValue]) -> String {
        let db = fields["db"]?.string ?? ""
        let collection = fields["collection"]?.string ?? ""
        return db.isEmpty && collection == "oplog" ? oplogNamespace : "\(db).\(collection)"
    }

    private static func parse<S>(_ r: inout ByteReader<S>) throws -> MongoArchiveReport {
        if try r.atEnd() { throw MongoArchiveError(offset: 0, problem: "the archive is empty") }
        let head = try r.bytes(4)
        guard head == magic else {
            let hint = isGzip(head) ? " (it is gzip-compressed: inflate it first)" : ""
            throw MongoArchiveError(offset: 0, problem: "no mongodump archive magic 6de29981, found \(head.map { String(format: "%02x", $0) }.joined())\(hint)")
        }
        let header = try BSON.fields(try document(&r, context: "archive header"))
        guard let version = header["version"]?.string else {
            throw MongoArchiveError(offset: r.offset, problem: "the archive header has no version")
        }
        guard version == "0.1" else {
            throw MongoArchiveError(offset: r.offset, problem: "archive format version \(version) is not supported (expected 0.1)")
        }
        var expectedEnds: Set<String> = [] // collections announced in the prelude: each must end in the body
        var report = MongoArchiveReport(formatVersion: version, serverVersion: header["server_version"]?.string,
                                        toolVersion: header["tool_version"]?.string, namespaces: [:], collections: [], bytes: 0)

        // Prelude: collection metadata up to the terminator.
        while true {
            let at = r.offset
            let length = try r.uint32LE()
            if length == terminator { break }
            let meta = try BSON.fields(try document(&r, length: length, at: at, context: "collection metadata"))
            guard meta["collection"]?.string != nil, meta["db"]?.string != nil else {
                throw MongoArchiveError(offset: at, problem: "collection metadata without db and collection")
            }
            let ns = namespace(meta)
            // mongorestore parses this Extended JSON (options, indexes) and refuses the archive when it cannot.
            if let json = meta["metadata"]?.string, !json.isEmpty,
               (try? JSONSerialization.jsonObject(with: Data(json.utf8))) == nil {
                throw MongoArchiveError(offset: at, problem: "the metadata of collection \(ns) is not valid JSON (indexes and options cannot be restored)")
            }
            report.collections.append(ns)
            // mongorestore's rules (common/archive/prelude.go): a view has no documents; a time-series
            // collection's documents are its buckets, under system.buckets.<name> before MongoDB 8.3; every
            // other type (collections, capped, clustered, empty ones) has an end block of its own.
            switch meta["type"]?.string {
            case "view":
                report.views.append(ns)
            case "timeseries":
                let dataNS = Self.bucketsBefore83(report.serverVersion)
                    ? "\(meta["db"]!.string!).system.buckets.\(meta["collection"]!.string!)" : ns
                report.timeseries[ns] = dataNS
                expectedEnds.insert(dataNS)
            default:
                expectedEnds.insert(ns)
            }
        }

        // Body: namespace blocks.
        let crc = CRC64.xz
        var registers: [String: UInt64] = [:]
        var open: Set<String> = []
        var closed: Set<String> = []
        while try !r.atEnd() {
            let at = r.offset
            let length = try r.uint32LE()
            if length == terminator {
                throw MongoArchiveError(offset: at, problem: "two terminators in a row (a block with no namespace header)")
            }
            let block = try BSON.fields(try document(&r, length: length, at: at, context: "namespace header"))
            let ns = namespace(block)
            guard block["collection"]?.string != nil, case .bool(let eof)? = block["EOF"] else {
                throw MongoArchiveError(offset: at, problem: "namespace header without collection and EOF fields")
            }
            if eof {
                guard let stored = block["CRC"]?.int64 else {
                    throw MongoArchiveError(offset: at, problem: "end of namespace \(ns) has no CRC")
                }
                let computed = crc.finalize(registers[ns] ?? crc.start)
                if UInt64(bitPattern: stored) != computed {
                    throw MongoArchiveError(offset: at, problem: String(format: "CRC mismatch for namespace %@: stored %016llx, computed %016llx", ns, UInt64(bitPattern: stored), computed))
                }
                if closed.contains(ns) { throw MongoArchiveError(offset: at, problem: "namespace \(ns) ends twice") }
                open.remove(ns)
                closed.insert(ns)
                report.namespaces[ns] = report.namespaces[ns] ?? 0
                let end = r.offset
                guard try r.uint32LE() == terminator else {
                    throw MongoArchiveError(offset: end, problem: "no terminator after the end of namespace \(ns)")
                }
                continue
            }
            if closed.contains(ns) { throw MongoArchiveError(offset: at, problem: "documents for namespace \(ns) after its end") }
            open.insert(ns)
            var register = registers[ns] ?? crc.start
            var count = report.namespaces[ns] ?? 0
            while true {
                let docAt = r.offset
                let docLength = try r.uint32LE()
                if docLength == terminator { break }
                let doc = try document(&r, length: docLength, at: docAt, context: "document of \(ns)")
                register = doc.withUnsafeBytes { crc.update(register, $0) }
                count += 1
            }
            registers[ns] = register
            report.namespaces[ns] = count
        }
        if let unfinished = open.union(expectedEnds.subtracting(closed)).sorted().first {
            throw MongoArchiveError(offset: r.offset, problem: "the archive ends before the end of namespace \(unfinished) (truncated)")
        }
        report.bytes = r.offset
        // A time-series collection's documents (buckets) are counted under its own name.
        for (collection, dataNS) in report.timeseries where dataNS != collection {
            report.namespaces[collection] = report.namespaces.removeValue(forKey: dataNS) ?? 0
        }
        return report
    }

    /// True when a server of this version dumps time-series data under `system.buckets.<name>` (before 8.3).
    static func bucketsBefore83(_ serverVersion: String?) -> Bool {
        guard let serverVersion else { return true }
        let parts = serverVersion.split(separator: ".").compactMap { Int($0.prefix { $0.isNumber }) }
        guard parts.count >= 2 else { return true }
        return parts[0] < 8 || (parts[0] == 8 && parts[1] < 3)
    }

    /// Reads one BSON document whose int32 length was not read yet.
    private static func document<S>(_ r: inout ByteReader<S>, context: String) throws -> [UInt8] {
        let at = r.offset
        return try document(&r, length: try r.uint32LE(), at: at, context: context)
    }

    /// Reads the rest of a BSON document whose int32 length was just read; returns all its bytes.
    private static func document<S>(_ r: inout ByteReader<S>, length: UInt32, at: Int64, context: String) throws -> [UInt8] {
        guard length >= 5, Int(length) <= maxDocumentSize else {
            throw MongoArchiveError(offset: at, problem: "\(context) has an impossible length \(length)")
        }
        let n = Int(length)
        var bytes = [UInt8(n & 0xff), UInt8((n >> 8) & 0xff), UInt8((n >> 16) & 0xff), UInt8((n >> 24) & 0xff)]
        bytes += try r.bytes(n - 4)
        guard bytes.last == 0 else { throw MongoArchiveError(offset: at, problem: "\(context) does not end with a 0 byte") }
        return bytes
    }
}
