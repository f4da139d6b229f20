import BackupCore
import Foundation

/// A small BSON encoder, enough to write test archives.
public indirect enum TestBSON: Sendable {
    case string(String)
    case int32(Int32)
    case int64(Int64)
    case bool(Bool)
    case double(Double)
    case document([(String, TestBSON)])

    public static func encode(_ fields: [(String, TestBSON)]) -> [UInt8] {
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
            case .double(let v): body += [0x01] + name + le(v.bitPattern)
            case .document(let d): body += [0x03] + name + encode(d)
            }
        }
        return le(Int32(body.count + 5)) + body + [0]
    }

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}

/// Writes archives in mongodump 100.x's layout (mongo-tools `common/archive`): magic, header, the prelude of
/// collection metadata, then namespace blocks — interleaved as `--numParallelCollections` writes them — each
/// namespace closed by an EOF block carrying the CRC-64 of its documents.
public struct TestArchiveWriter {
    public private(set) var bytes: [UInt8] = [0x6D, 0xE2, 0x99, 0x81]
    private var crcs: [String: UInt64] = [:]
    private let crc = CRC64.xz
    static let terminator: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF]

    public init(serverVersion: String = "7.0.12", toolVersion: String = "100.9.4") {
        bytes += TestBSON.encode([("concurrent_collections", .int32(4)), ("version", .string("0.1")),
                                  ("server_version", .string(serverVersion)), ("tool_version", .string(toolVersion))])
    }

    /// One entry of the prelude. `type`: collection, view, timeseries.
    public mutating func metadata(db: String, collection: String, type: String = "collection", indexes: [String] = ["_id_"],
                                  options: String = "{}") {
        let index = indexes.map { #"{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"\#($0)"}"# }.joined(separator: ",")
        let json = #"{"indexes":[\#(index)],"uuid":"0123456789abcdef0123456789abcdef","collectionName":"\#(collection)","type":"\#(type)","options":\#(options)}"#
        bytes += TestBSON.encode([("db", .string(db)), ("collection", .string(collection)), ("metadata", .string(json)),
                                  ("size", .int32(0)), ("type", .string(type))])
    }

    public mutating func endPrelude() { bytes += Self.terminator }

    /// A block of documents of one namespace (`db` "" and collection "oplog" for the oplog).
    public mutating func block(db: String, collection: String, documents: [[UInt8]]) {
        bytes += TestBSON.encode([("db", .string(db)), ("collection", .string(collection)), ("EOF", .bool(false)), ("CRC", .int64(0))])
        let key = db + "." + collection
        var register = crcs[key] ?? crc.start
        for d in documents {
            bytes += d
            register = d.withUnsafeBytes { crc.update(register, $0) }
        }
        crcs[key] = register
        bytes += Self.terminator
    }

    /// The end of a namespace, with its CRC.
    public mutating func end(db: String, collection: String) {
        let value = crc.finalize(crcs[db + "." + collection] ?? crc.start)
        bytes += TestBSON.encode([("db", .string(db)), ("collection", .string(collection)), ("EOF", .bool(true)),
                                  ("CRC", .int64(Int64(bitPattern: value)))])
        bytes += Self.terminator
    }

    /// `n` small documents.
    public static func documents(_ n: Int, tag: String = "d", size: Int = 40) -> [[UInt8]] {
        (0..<n).map { TestBSON.encode([("_id", .int64(Int64($0))), ("tag", .string(tag)), ("pad", .string(String(repeating: "x", count: size)))]) }
    }

    /// The archive of a MongoDB 7 deployment with what mongorestore must handle: a collection whose documents
    /// span many blocks interleaved with another's, a capped and a clustered collection, an empty collection,
    /// a view, a time-series collection (documents under system.buckets), indexes in metadata, and the oplog.
    /// Document counts: app.users 250, app.events 120, app.capped 7, app.clustered 3, app.empty 0,
    /// app.weather (time-series) 12 buckets, oplog 5.
    public static func mongo7Archive() -> [UInt8] {
        var w = TestArchiveWriter()
        w.metadata(db: "app", collection: "users", indexes: ["_id_", "email_1"])
        w.metadata(db: "app", collection: "events")
        w.metadata(db: "app", collection: "capped", options: #"{"capped":true,"size":{"$numberInt":"4096"}}"#)
        w.metadata(db: "app", collection: "clustered", options: #"{"clusteredIndex":{"key":{"_id":{"$numberInt":"1"}},"unique":true}}"#)
        w.metadata(db: "app", collection: "empty")
        w.metadata(db: "app", collection: "active_users", type: "view", indexes: [],
                   options: #"{"viewOn":"users","pipeline":[{"$match":{"active":true}}]}"#)
        w.metadata(db: "app", collection: "weather", type: "timeseries", indexes: [],
                   options: #"{"timeseries":{"timeField":"ts","metaField":"sensor","granularity":"seconds"}}"#)
        w.metadata(db: "app", collection: "system.views", indexes: ["_id_"])
        w.endPrelude()
        let users = documents(250, tag: "user")
        let events = documents(120, tag: "event")
        // Interleaved blocks, as parallel collections are written.
        for i in 0..<5 {
            w.block(db: "app", collection: "users", documents: Array(users[(i * 50)..<(i * 50 + 50)]))
            w.block(db: "app", collection: "events", documents: Array(events[(i * 24)..<(i * 24 + 24)]))
        }
        w.end(db: "app", collection: "events")
        w.block(db: "app", collection: "capped", documents: documents(7, tag: "capped"))
        w.end(db: "app", collection: "users")
        w.end(db: "app", collection: "capped")
        w.block(db: "app", collection: "clustered", documents: documents(3, tag: "clustered"))
        w.end(db: "app", collection: "clustered")
        w.block(db: "app", collection: "empty", documents: [])
        w.end(db: "app", collection: "empty")
        w.block(db: "app", collection: "system.buckets.weather", documents: documents(12, tag: "bucket", size: 200))
        w.end(db: "app", collection: "system.buckets.weather")
        w.block(db: "app", collection: "system.views", documents: documents(1, tag: "view"))
        w.end(db: "app", collection: "system.views")
        w.block(db: "", collection: "oplog", documents: documents(5, tag: "op"))
        w.end(db: "", collection: "oplog")
        return w.bytes
    }
}
