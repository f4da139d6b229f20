// QdrantClient: the few calls of Qdrant's REST API that backups need (collections, aliases, collection
// snapshots: create, download, delete, upload), on async-http-client. Replies are Qdrant's envelopes:
// `{"result": …, "status": "ok", "time": …}`, errors `{"status": {"error": "…"}}`. The API key travels in
// the `api-key` header only: never in a URL, a log line or a message.
import AsyncHTTPClient
import BackupCore
import Foundation
import NIOCore
import NIOHTTP1

/// A request Qdrant refused or that did not get through: where, what, the HTTP status and Qdrant's words.
public struct QdrantError: UserFacingError, Equatable {
    public var endpoint: String
    public var operation: String
    public var status: Int?
    public var message: String

    public init(endpoint: String, operation: String, status: Int?, message: String) {
        self.endpoint = endpoint
        self.operation = operation
        self.status = status
        self.message = message
    }

    public var exitStatus: ExitStatus { .failed }
    public var description: String {
        "Qdrant \(endpoint): \(operation) failed" + (status.map { " (HTTP \($0))" } ?? "") + ": \(PeerText.clean(message, limit: 1024))"
    }
    public var hint: String? {
        switch status {
        case 401?, 403?: return "check the api_key / api_key_file of the source (Qdrant's service.api_key)"
        case 404?: return "check the collection's name: kaleem-backup policy check, or GET /collections"
        case nil: return "check that Qdrant answers at \(endpoint) (the source's url) and that the timeout is long enough for large collections"
        default: return "read Qdrant's log; a snapshot needs free disk space on the Qdrant host (its snapshots_path)"
        }
    }
}

/// What Qdrant says of a collection (`GET /collections/{c}`, openapi `CollectionInfo`).
public struct QdrantCollectionInfo: Sendable, Equatable {
    /// APPROXIMATE (openapi: "Approximate number of points"; nullable): shown to people, never compared.
    /// Exact counts come from `countPoints(_:)`.
    public var pointsCount: Int
    public var status: String
    /// `config.params.vectors` as Qdrant reports it.
    public var vectors: JSONValue
    /// `config.params.shard_number` (recovery refuses a snapshot with another one), nil when not reported.
    public var shardNumber: Int?
    public var payloadSchema: JSONValue

    /// The `result` of `GET /collections/{c}`.
    public static func decode(_ result: JSONValue) throws -> QdrantCollectionInfo {
        guard case .object = result, case .object? = result["config"], case .object? = result["config"]?["params"] else {
            throw QdrantDecodingError("collection info without config.params")
        }
        var points = 0
        if let p = result["points_count"], p != .null {
            guard let n = p.intValue, n >= 0 else { throw QdrantDecodingError("points_count is not a count") }
            points = n
        }
        let status: String
        if case .string(let s)? = result["status"] { status = s } else { status = "unknown" }
        return QdrantCollectionInfo(pointsCount: points, status: status, vectors: result["config"]?["params"]?["vectors"] ?? .null,
                                    shardNumber: result["config"]?["params"]?["shard_number"]?.intValue,
                                    payloadSchema: result["payload_schema"] ?? .object([:]))
    }
}

/// A reply that is not what Qdrant's API describes.
public struct QdrantDecodingError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A collection snapshot (openapi `SnapshotDescription`): what `POST /collections/{c}/snapshots` wrote, or one
/// of `GET /collections/{c}/snapshots`.
public struct QdrantSnapshot: Sendable, Equatable {
    public var name: String
    public var size: Int64
    /// sha256 of the file, when Qdrant reports it (1.7+).
    public var checksum: String?

    public init(name: String, size: Int64, checksum: String?) {
        self.name = name
        self.size = size
        self.checksum = checksum
    }

    public static func decode(_ value: JSONValue) throws -> QdrantSnapshot {
        guard case .string(let name)? = value["name"], !name.isEmpty, let size = value["size"]?.intValue, size >= 0 else {
            throw QdrantDecodingError("a snapshot description without name or size")
        }
        var checksum: String?
        if case .string(let c)? = value["checksum"] { checksum = c.lowercased() }
        return QdrantSnapshot(name: name, size: Int64(size), checksum: checksum)
    }

    public static func decodeList(_ result: JSONValue) throws -> [QdrantSnapshot] {
        guard case .array(let list) = result else { throw QdrantDecodingError("the snapshot list is not an array") }
        return try list.map(decode)
    }
}

/// `POST /collections/{c}/points/count` → `{"count": n}` (openapi `CountResult`).
public enum QdrantCount {
    public static func decode(_ result: JSONValue) throws -> Int {
        guard let n = result["count"]?.intValue, n >= 0 else { throw QdrantDecodingError("a count result without count") }
        return n
    }
}

/// Qdrant's error body (openapi `ErrorResponse`): `{"status": {"error": "…"}, "time": …, "result": null}`.
public enum QdrantErrorBody {
    /// Qdrant's message, or nil when the body is not an error body.
    public static func message(_ data: Data) -> String? {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: data), case .string(let e)? = value["status"]?["error"] else { return nil }
        return e
    }
}

/// A 2xx reply's envelope (`{"result": …, "status": "ok", "time": …}`) and the pure readers of a `result` the client
/// applies without a type of its own (the fuzz target `fuzz-qdrant` in Fuzz/ feeds these arbitrary bytes).
public enum QdrantEnvelope {
    public enum Reading: Sendable, Equatable {
        /// The `result` (null when absent).
        case result(JSONValue)
        /// Not JSON.
        case notJSON
        /// A `status` string other than "ok".
        case status(String)
    }

    public static func read(_ data: Data) -> Reading {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: data) else { return .notJSON }
        if case .string(let s)? = value["status"], s != "ok" { return .status(s) }
        return .result(value["result"] ?? .null)
    }

    /// `GET /aliases`: alias → collection (entries without both names are skipped).
    public static func aliases(_ result: JSONValue) -> [(alias: String, collection: String)] {
        guard case .array(let list)? = result["aliases"] else { return [] }
        return list.compactMap { item in
            guard case .string(let a)? = item["alias_name"], case .string(let c)? = item["collection_name"] else { return nil }
            return (a, c)
        }
    }
}

public final class QdrantClient: @unchecked Sendable {
    public let url: String
    private let apiKey: Secret?
    private let timeout: Double
    private let http: HTTPClient

    public init(url: String, apiKey: Secret?, timeoutSeconds: Double) throws {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "http" || scheme == "https",
              parsed.host != nil, parsed.user == nil, parsed.password == nil else {
            throw BackupFailure("Qdrant url \"\(Redaction.url(url))\" is not an http:// or https:// URL without credentials", exitStatus: .usage,
                                hint: "write it as http://host:6333; the key goes in api_key_file")
        }
        var trimmed = url
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.url = trimmed
        self.apiKey = apiKey
        self.timeout = timeoutSeconds
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(Int64(min(timeoutSeconds, 30))), read: .milliseconds(Int64(timeoutSeconds * 1000))),
            decompression: .disabled)
        configuration.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func shutdown() { try? http.syncShutdown() }

    // MARK: calls

    public func listCollections() async throws -> [String] {
        let result = try await json(.GET, "/collections", "list collections")
        guard case .array(let list)? = result["collections"] else { throw malformed("list collections") }
        return list.compactMap { if case .string(let n)? = $0["name"] { return n } else { return nil } }
    }

    /// nil when the collection does not exist.
    public func collection(_ name: String) async throws -> QdrantCollectionInfo? {
        let (status, body) = try await raw(.GET, "/collections/\(Self.segment(name))", "read collection \(name)")
        if status == 404 { return nil }
        let result = try envelope(status, body, "read collection \(name)")
        do { return try QdrantCollectionInfo.decode(result) } catch { throw malformed("read collection \(name)") }
    }

    /// The EXACT number of points: `POST /collections/{c}/points/count {"exact": true}` (collection info's
    /// `points_count` is approximate).
    public func countPoints(_ name: String) async throws -> Int {
        let operation = "count the points of \(name)"
        var req = request(.POST, "/collections/\(Self.segment(name))/points/count")
        req.headers.replaceOrAdd(name: "content-type", value: "application/json")
        req.body = .bytes(ByteBuffer(string: #"{"exact":true}"#))
        let response = try await execute(req, operation)
        let data = try await collect(response, operation)
        let result = try envelope(Int(response.status.code), data, operation)
        do { return try QdrantCount.decode(result) } catch { throw malformed(operation) }
    }

    /// `GET /collections/{c}/snapshots`: the snapshot files Qdrant keeps for the collection (those it made and
    /// those uploaded into it).
    public func listSnapshots(_ collection: String) async throws -> [QdrantSnapshot] {
        let operation = "list the snapshots of \(collection)"
        let result = try await json(.GET, "/collections/\(Self.segment(collection))/snapshots", operation)
        do { return try QdrantSnapshot.decodeList(result) } catch { throw malformed(operation) }
    }

    /// alias → collection.
    public func aliases() async throws -> [(alias: String, collection: String)] {
        QdrantEnvelope.aliases(try await json(.GET, "/aliases", "list aliases"))
    }

    public func createSnapshot(_ collection: String) async throws -> QdrantSnapshot {
        let result = try await json(.POST, "/collections/\(Self.segment(collection))/snapshots?wait=true", "create a snapshot of \(collection)")
        do { return try QdrantSnapshot.decode(result) } catch { throw malformed("create a snapshot of \(collection)") }
    }

    /// Streams the snapshot file to `chunk`; returns the bytes received.
    @discardableResult
    public func downloadSnapshot(_ collection: String, name: String, chunk: (ByteBuffer) throws -> Void) async throws -> Int64 {
        let operation = "download snapshot \(name) of \(collection)"
        let response = try await execute(request(.GET, "/collections/\(Self.segment(collection))/snapshots/\(Self.segment(name))"), operation)
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            let body = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
            throw replyError(status, body, operation)
        }
        var received: Int64 = 0
        do {
            for try await buffer in response.body {
                received += Int64(buffer.readableBytes)
                try chunk(buffer)
            }
        } catch let error where !(error is UserFacingError) {
            // The connection closed or broke mid-body (what the consumer throws passes through as it is).
            throw QdrantError(endpoint: url, operation: operation, status: nil,
                              message: "the transfer broke after \(received) bytes (\(Self.describe(error)))")
        }
        return received
    }

    public func deleteSnapshot(_ collection: String, name: String) async throws {
        _ = try await json(.DELETE, "/collections/\(Self.segment(collection))/snapshots/\(Self.segment(name))?wait=true",
                           "delete snapshot \(name) of \(collection)")
    }

    public func deleteCollection(_ name: String) async throws {
        _ = try await json(.DELETE, "/collections/\(Self.segment(name))?wait=true", "delete collection \(name)")
    }

    public func createAlias(_ alias: String, collection: String) async throws {
        struct CreateAlias: Encodable { let collection_name: String; let alias_name: String }
        struct Action: Encodable { let create_alias: CreateAlias }
        struct Body: Encodable { let actions: [Action] }
        let body = try JSONEncoder().encode(Body(actions: [Action(create_alias: CreateAlias(collection_name: collection, alias_name: alias))]))
        var req = request(.POST, "/collections/aliases?wait=true")
        req.headers.replaceOrAdd(name: "content-type", value: "application/json")
        req.body = .bytes(ByteBuffer(bytes: body))
        let response = try await execute(req, "create alias \(alias)")
        let data = try await collect(response, "create alias \(alias)")
        _ = try envelope(Int(response.status.code), data, "create alias \(alias)")
    }

    /// `POST /collections/{c}/snapshots/upload?priority=snapshot&checksum=…&wait=true`, the file streamed as the
    /// multipart field `snapshot` (never held in memory). Qdrant moves the upload into its snapshots folder as
    /// `<collection>/<fileName>` and KEEPS it, whether the recovery succeeds or not: the caller deletes it
    /// (`deleteSnapshot(collection, name: fileName)`). `fileName`: `[A-Za-z0-9._-]` only.
    public func uploadSnapshot(_ collection: String, file path: String, checksum: String, fileName: String) async throws {
        let operation = "upload a snapshot into \(collection)"
        guard let handle = FileHandle(forReadingAtPath: path) else { throw BackupFailure("cannot read \(path)") }
        let size = Int64((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)??.int64Value ?? 0)
        let boundary = "kaleem-backup-" + UUID().uuidString
        let head = ByteBuffer(string: "--\(boundary)\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"\(Self.segment(fileName))\"\r\nContent-Type: application/octet-stream\r\n\r\n")
        let tail = ByteBuffer(string: "\r\n--\(boundary)--\r\n")
        let stream = AsyncStream<ByteBuffer> { continuation in
            continuation.yield(head)
            while let data = try? handle.read(upToCount: 1 << 20), !data.isEmpty {
                continuation.yield(ByteBuffer(bytes: data))
            }
            continuation.yield(tail)
            continuation.finish()
            try? handle.close()
        }
        var req = request(.POST, "/collections/\(Self.segment(collection))/snapshots/upload?priority=snapshot&checksum=\(checksum)&wait=true")
        req.headers.replaceOrAdd(name: "content-type", value: "multipart/form-data; boundary=\(boundary)")
        req.body = .stream(stream, length: .known(Int64(head.readableBytes) + size + Int64(tail.readableBytes)))
        let response = try await execute(req, operation)
        let data = try await collect(response, operation)
        _ = try envelope(Int(response.status.code), data, operation)
    }

    // MARK: machinery

    public static func segment(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }

    private func request(_ method: HTTPMethod, _ path: String) -> HTTPClientRequest {
        var r = HTTPClientRequest(url: url + path)
        r.method = method
        if let apiKey { r.headers.replaceOrAdd(name: "api-key", value: apiKey.value) }
        return r
    }

    private func execute(_ request: HTTPClientRequest, _ operation: String) async throws -> HTTPClientResponse {
        do {
            return try await http.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
        } catch {
            throw QdrantError(endpoint: url, operation: operation, status: nil, message: Self.describe(error))
        }
    }

    private func collect(_ response: HTTPClientResponse, _ operation: String) async throws -> ByteBuffer {
        do { return try await response.body.collect(upTo: 16 << 20) } catch {
            throw QdrantError(endpoint: url, operation: operation, status: nil, message: "the reply broke off (\(Self.describe(error)))")
        }
    }

    private func raw(_ method: HTTPMethod, _ path: String, _ operation: String) async throws -> (Int, ByteBuffer) {
        let response = try await execute(request(method, path), operation)
        return (Int(response.status.code), try await collect(response, operation))
    }

    private func json(_ method: HTTPMethod, _ path: String, _ operation: String) async throws -> JSONValue {
        let (status, body) = try await raw(method, path, operation)
        return try envelope(status, body, operation)
    }

    /// The `result` of a 2xx reply; a `QdrantError` with Qdrant's own message otherwise.
    private func envelope(_ status: Int, _ body: ByteBuffer, _ operation: String) throws -> JSONValue {
        guard (200..<300).contains(status) else { throw replyError(status, body, operation) }
        switch QdrantEnvelope.read(Data(body.readableBytesView)) {
        case .notJSON: throw malformed(operation)
        case .status(let s): throw QdrantError(endpoint: url, operation: operation, status: status, message: "status \(s)")
        case .result(let result): return result
        }
    }

    private func replyError(_ status: Int, _ body: ByteBuffer, _ operation: String) -> QdrantError {
        let data = Data(body.readableBytesView)
        var message = String(decoding: data.prefix(300), as: UTF8.self)
        if let e = QdrantErrorBody.message(data) { message = e }
        if let apiKey { message = Redaction.scrub(message, secrets: [apiKey]) }
        return QdrantError(endpoint: url, operation: operation, status: status, message: message.isEmpty ? "no message" : message)
    }

    private func malformed(_ operation: String) -> QdrantError {
        QdrantError(endpoint: url, operation: operation, status: nil, message: "the reply is not what Qdrant's API describes")
    }

    static func describe(_ error: Error) -> String {
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout, .deadlineExceeded, .readTimeout: return "timed out"
            case .remoteConnectionClosed: return "the connection was closed"
            default: return "\(e)"
            }
        }
        return "\(error)"
    }
}
