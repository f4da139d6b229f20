// A small S3 client on async-http-client: path-style requests signed with SigV4, retries with backoff on
// server errors, timeouts and connection resets, S3 error codes in the messages. Operations are in
// S3Client+Operations.swift; this file is the request machinery.
import AsyncHTTPClient
import BackupCore
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

public struct S3ClientOptions: Sendable {
    /// Per-request timeout, in seconds (a whole object download gets `timeout` of silence, not of total time).
    public var timeoutSeconds: Double = 60
    /// Tries per request, the first included.
    public var attempts: Int = 4
    /// Pause before try n+1, in seconds.
    public var backoff: @Sendable (Int) -> Double = { attempt in min(8, 0.25 * pow(2, Double(attempt - 1))) }
    /// Connections kept to the server (the concurrency of downloads and uploads).
    public var maxConnections: Int = 8
    /// Uploads above this size use multipart upload.
    public var multipartThreshold: Int64 = 16 << 20
    /// Part size of a multipart upload (at least 5 MiB, except the last part).
    public var partSize: Int = 8 << 20
    /// A reply body (a listing page, an object) that arrives slower than this many bytes a second over
    /// `rateWindowSeconds` is abandoned: a server trickling a byte every half second keeps each silence under
    /// `timeoutSeconds` and would otherwise hold a backup until its deadline. 0 turns the check off.
    public var minimumRate: Int64 = 1024
    public var rateWindowSeconds: Double = 30

    public init() {}
}

public final class S3Client: @unchecked Sendable {
    /// `http://host:port` (with no trailing slash), as given.
    public let endpoint: String
    public let signer: SigV4Signer
    public let options: S3ClientOptions
    let http: HTTPClient
    private let scheme: String
    private let hostHeader: String
    private let basePath: String
    private let lock = NSLock()
    private var requests = 0

    public init(endpoint: String, region: String = "us-east-1", credentials: S3Credentials,
                options: S3ClientOptions = S3ClientOptions()) throws {
        guard let url = URL(string: endpoint), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty else {
            throw BackupFailure("S3 endpoint \"\(endpoint)\" is not an http:// or https:// URL", exitStatus: .usage,
                                hint: "write it as http://host:port, for example http://minio:9000")
        }
        guard url.user == nil, url.password == nil else {
            throw BackupFailure("S3 endpoint \(Redaction.url(endpoint)) holds credentials", exitStatus: .usage,
                                hint: "give them as access_key and secret_key_file instead")
        }
        var trimmed = endpoint
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.endpoint = trimmed
        self.scheme = scheme
        let defaultPort = scheme == "https" ? 443 : 80
        hostHeader = url.port.map { $0 == defaultPort ? host : "\(host):\($0)" } ?? host
        var path = url.path
        while path.hasSuffix("/") { path.removeLast() }
        basePath = path
        signer = SigV4Signer(credentials: credentials, region: region)
        self.options = options
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(Int64(min(options.timeoutSeconds, 30))), read: .milliseconds(Int64(options.timeoutSeconds * 1000))),
            decompression: .disabled)
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: options.maxConnections)
        // Our own retries (with backoff, counted, reported) cover a refused connection; the pool's would wait
        // silently until the request's deadline.
        configuration.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Closes the connections. Call it once, when done.
    public func shutdown() {
        try? http.syncShutdown()
    }

    /// HTTP requests sent so far (retries included).
    public var requestCount: Int { lock.withLock { requests } }

    // MARK: requests

    enum Body {
        case empty
        /// Bytes and their hex SHA-256.
        case bytes(ByteBuffer, sha256: String)
    }

    struct Response {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    func url(bucket: String?, key: String?, query: [(String, String)]) -> (url: String, path: String) {
        var path = basePath
        if let bucket { path += "/" + S3Encoding.strict(bucket) }
        if let key { path += "/" + S3Encoding.path(key) }
        if path.isEmpty { path = "/" }
        var url = "\(scheme)://\(hostHeader)\(path)"
        if !query.isEmpty {
            url += "?" + query.map { $0.1.isEmpty ? S3Encoding.strict($0.0) : "\(S3Encoding.strict($0.0))=\(S3Encoding.strict($0.1))" }
                .joined(separator: "&")
        }
        return (url, path)
    }

    func makeRequest(_ method: HTTPMethod, bucket: String?, key: String?, query: [(String, String)],
                     headers extra: [(String, String)], body: Body) -> HTTPClientRequest {
        let (url, path) = url(bucket: bucket, key: key, query: query)
        var request = HTTPClientRequest(url: url)
        request.method = method
        var headers: [(String, String)] = [("host", hostHeader)] + extra
        let payloadHash: String
        switch body {
        case .empty:
            payloadHash = SigV4Signer.emptyPayloadHash
            if method == .PUT || method == .POST { headers.append(("content-length", "0")) }
        case .bytes(let buffer, let sha):
            payloadHash = sha
            request.body = .bytes(buffer)
            headers.append(("content-length", String(buffer.readableBytes)))
        }
        let signing = SigV4Signer.Request(method: method.rawValue, encodedPath: path, query: query, headers: headers,
                                          payloadHash: payloadHash)
        for (name, value) in headers + signer.sign(signing, date: Date()) where name != "content-length" {
            request.headers.replaceOrAdd(name: name, value: value)
        }
        return request
    }

    /// Sends a request, with retries, and reads its reply (up to `limit` bytes). Throws `S3Error` for any
    /// status not in `accept` (default: 2xx).
    func send(_ method: HTTPMethod, _ operation: String, bucket: String? = nil, key: String? = nil,
              query: [(String, String)] = [], headers: [(String, String)] = [], body: Body = .empty,
              accept: (Int) -> Bool = { (200..<300).contains($0) }, limit: Int = 64 << 20) async throws -> Response {
        try await withRetries(operation) { attempt in
            let request = self.makeRequest(method, bucket: bucket, key: key, query: query, headers: headers, body: body)
            let response = try await self.execute(request, operation)
            var data = ByteBuffer()
            let rate = self.rateWindow(operation)
            do {
                for try await chunk in response.body {
                    try rate.add(chunk.readableBytes)
                    guard data.readableBytes + chunk.readableBytes <= limit else {
                        throw S3Error(endpoint: self.endpoint, operation: operation, status: nil, code: nil,
                                      message: "the reply is larger than \(limit) bytes")
                    }
                    var piece = chunk
                    data.writeBuffer(&piece)
                }
            } catch {
                throw self.transportError(error, operation)
            }
            if !accept(Int(response.status.code)) {
                throw self.replyError(status: Int(response.status.code), body: data, operation: operation, requestID: response.headers.first(name: "x-amz-request-id"))
            }
            return Response(status: Int(response.status.code), headers: response.headers, body: data)
        }
    }

    /// The minimum rate of one reply body (`minimumRate` over `rateWindowSeconds`).
    func rateWindow(_ operation: String) -> RateWindow {
        let endpoint = self.endpoint, rate = options.minimumRate
        return RateWindow(bytesPerSecond: rate, window: options.rateWindowSeconds) { bytes, seconds in
            S3Error(endpoint: endpoint, operation: operation, status: nil, code: nil,
                    message: "the reply arrived at \(Int(Double(bytes) / max(seconds, 1))) bytes/s over \(Int(seconds)) s, below \(rate) bytes/s (a server trickling its answer)")
        }
    }

    func execute(_ request: HTTPClientRequest, _ operation: String) async throws -> HTTPClientResponse {
        lock.withLock { requests += 1 }
        do {
            return try await http.execute(request, timeout: .milliseconds(Int64(options.timeoutSeconds * 1000)))
        } catch {
            throw transportError(error, operation)
        }
    }

    /// Runs `body` until it succeeds, throws a non-retryable error, or the attempts run out.
    func withRetries<T>(_ operation: String, _ body: (Int) async throws -> T) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await body(attempt)
            } catch var error as S3Error {
                guard error.retryable, attempt < options.attempts else {
                    error.attempts = attempt
                    throw error
                }
                try await Task.sleep(nanoseconds: UInt64(options.backoff(attempt) * 1e9))
                attempt += 1
            }
        }
    }

    func transportError(_ error: Error, _ operation: String) -> S3Error {
        if let s3 = error as? S3Error { return s3 }
        let text: String
        switch error {
        case let e as HTTPClientError where e == .readTimeout || e == .deadlineExceeded:
            text = "no reply within \(Int(options.timeoutSeconds)) s"
        case let e as HTTPClientError where e == .connectTimeout:
            text = "connection timed out"
        case let e as HTTPClientError where e == .remoteConnectionClosed:
            text = "the server closed the connection"
        default:
            let raw = "\(error)"
            if raw.contains("Connection refused") {
                text = "connection refused"
            } else if raw.contains("Connection reset") {
                text = "connection reset by the server"
            } else if raw.contains("Name or service not known") || raw.contains("nodename nor servname") || raw.contains("NXDOMAIN") {
                text = "cannot resolve the host name"
            } else {
                text = raw
            }
        }
        return S3Error(endpoint: endpoint, operation: operation, status: nil, code: nil, message: text)
    }

    func replyError(status: Int, body: ByteBuffer, operation: String, requestID: String?) -> S3Error {
        var code: String?
        var message = ""
        if let error = S3Replies.error(Data(body.readableBytesView)) {
            code = error.code
            message = error.message
        }
        if code == nil {
            // HEAD replies have no body: name the usual meaning of the status.
            switch status {
            case 403: code = "AccessDenied"
            case 404: code = "NotFound"
            default: break
            }
        }
        return S3Error(endpoint: endpoint, operation: operation, status: status, code: code, message: message)
    }
}

extension ByteBuffer {
    var sha256Hex: String {
        withUnsafeReadableBytes { SHA256.hash(data: $0).hex }
    }
}
