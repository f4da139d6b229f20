// The S3 operations kaleem-backup needs (the S3 API reference), each one request (or one paged series).
import AsyncHTTPClient
import BackupCore
import Crypto
import Foundation
import NIOCore
#if canImport(Glibc)
import Glibc
#endif
import NIOHTTP1

/// One object of a listing.
public struct S3Object: Sendable, Equatable {
    public var key: String
    public var size: Int64
    /// Without quotes.
    public var etag: String
    /// As the server wrote it (`2009-10-12T17:50:30.000Z`); compared as text between listings of one server.
    public var lastModified: String

    public init(key: String, size: Int64, etag: String, lastModified: String) {
        self.key = key
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
    }
}

/// What a GET returned besides the bytes.
public struct S3ObjectHead: Sendable {
    public var size: Int64
    public var etag: String
    public var lastModified: String?
}

/// A multipart upload whose bytes did not hash to what the caller expected; it was aborted.
public struct S3ContentMismatch: Error, CustomStringConvertible {
    public var key: String
    public var expected: String
    public var actual: String
    public var description: String { "content of \(key) hashed to \(actual) while uploading, expected \(expected)" }
}

extension S3Client {
    // MARK: buckets

    public func listBuckets() async throws -> [String] {
        let reply = try await send(.GET, "ListBuckets")
        guard let names = S3Replies.bucketNames(Data(reply.body.readableBytesView)) else {
            throw malformed("ListBuckets")
        }
        return names
    }

    /// True when the bucket exists and these credentials may use it; false when it does not exist.
    public func bucketExists(_ bucket: String) async throws -> Bool {
        let reply = try await send(.HEAD, "HeadBucket \"\(bucket)\"", bucket: bucket, accept: { $0 == 200 || $0 == 404 })
        return reply.status == 200
    }

    /// Creates the bucket; one that already exists and is ours is fine.
    public func createBucket(_ bucket: String) async throws {
        var body = Body.empty
        if signer.region != "us-east-1" {
            let xml = "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>\(signer.region)</LocationConstraint></CreateBucketConfiguration>"
            let buffer = ByteBuffer(string: xml)
            body = .bytes(buffer, sha256: buffer.sha256Hex)
        }
        do {
            _ = try await send(.PUT, "CreateBucket \"\(bucket)\"", bucket: bucket, body: body)
        } catch let error as S3Error where error.code == "BucketAlreadyOwnedByYou" {
            return
        }
    }

    /// Deletes an empty bucket.
    public func deleteBucket(_ bucket: String) async throws {
        _ = try await send(.DELETE, "DeleteBucket \"\(bucket)\"", bucket: bucket)
    }

    // MARK: listing

    /// Every object of a bucket (under `prefix`), in key order, one ListObjectsV2 request per 1,000 keys.
    public func listObjects(bucket: String, prefix: String = "") async throws -> [S3Object] {
        var objects: [S3Object] = []
        try await listObjects(bucket: bucket, prefix: prefix) { objects.append(contentsOf: $0) }
        return objects
    }

    /// Lists a bucket a page (up to 1,000 keys) at a time, in the server's order (UTF-8 key order), handing
    /// each page to `page` before the next is requested: memory is bounded by one page, not by the bucket.
    /// `maxPages` stops after that many pages.
    public func listObjects(bucket: String, prefix: String = "", maxPages: Int = .max, page: ([S3Object]) async throws -> Void) async throws {
        var token: String?
        var pages = 0
        // A peer that repeats a page, or goes back, or sends empty truncated pages for ever, would list until the
        // deadline: S3 lists in key order, so each page must start after the last key of the one before.
        var lastKey: String?
        var emptyTruncated = 0
        repeat {
            var query: [(String, String)] = [("list-type", "2"), ("encoding-type", "url"), ("max-keys", "1000")]
            if !prefix.isEmpty { query.append(("prefix", prefix)) }
            if let token { query.append(("continuation-token", token)) }
            let operation = "ListObjectsV2 bucket \"\(bucket)\""
            let reply = try await send(.GET, operation, bucket: bucket, query: query)
            guard let listing = S3Replies.listPage(Data(reply.body.readableBytesView)) else { throw malformed(operation) }
            let objects = listing.objects
            let previousToken = token
            token = listing.isTruncated ? listing.nextContinuationToken : nil
            if listing.isTruncated && token == nil { throw malformed(operation + " (truncated without a continuation token)") }
            if let token, token == previousToken { throw malformed(operation + " (the same continuation token again: the listing would never end)") }
            if let first = objects.first?.key, let lastKey, Array(first.utf8).lexicographicallyPrecedes(Array(lastKey.utf8)) || first == lastKey {
                throw malformed(operation + " (a page starts at or before the previous page's last key: the listing went back)")
            }
            if let last = objects.last?.key { lastKey = last }
            emptyTruncated = objects.isEmpty && token != nil ? emptyTruncated + 1 : 0
            if emptyTruncated > 100 { throw malformed(operation + " (more than 100 empty pages in a row, each truncated)") }
            try await page(objects)
            pages += 1
        } while token != nil && pages < maxPages
    }

    /// The "directories" right under `prefix` (ListObjectsV2 with a delimiter: its `CommonPrefixes`, each
    /// `prefix + name + delimiter`), in key order, one request per 1,000; at most `limit` of them (a peer or a
    /// bucket with more is an error, not an unbounded list).
    public func listCommonPrefixes(bucket: String, prefix: String = "", delimiter: String = "/", limit: Int = 10_000) async throws -> [String] {
        var token: String?
        var prefixes: [String] = []
        var seen = Set<String>()
        var pages = 0
        let operation = "ListObjectsV2 bucket \"\(bucket)\" (delimiter)"
        repeat {
            var query: [(String, String)] = [("list-type", "2"), ("encoding-type", "url"), ("max-keys", "1000"), ("delimiter", delimiter)]
            if !prefix.isEmpty { query.append(("prefix", prefix)) }
            if let token { query.append(("continuation-token", token)) }
            let reply = try await send(.GET, operation, bucket: bucket, query: query)
            guard let listing = S3Replies.listPage(Data(reply.body.readableBytesView)) else { throw malformed(operation) }
            let previousToken = token
            token = listing.isTruncated ? listing.nextContinuationToken : nil
            if listing.isTruncated && token == nil { throw malformed(operation + " (truncated without a continuation token)") }
            if let token, token == previousToken { throw malformed(operation + " (the same continuation token again: the listing would never end)") }
            for p in listing.commonPrefixes where p.hasPrefix(prefix) && p.hasSuffix(delimiter) && seen.insert(p).inserted {
                prefixes.append(p)
            }
            pages += 1
            if prefixes.count > limit || pages > limit / 10 + 100 {
                throw malformed(operation + " (more than \(limit) prefixes under \"\(prefix)\")")
            }
        } while token != nil
        return prefixes
    }

    /// The first object of a bucket (under `prefix`), or nil when it is empty: one ListObjectsV2 request with
    /// max-keys 1 (what a preflight needs to prove ListBucket without listing a million keys).
    public func firstObject(bucket: String, prefix: String = "") async throws -> S3Object? {
        var query: [(String, String)] = [("list-type", "2"), ("encoding-type", "url"), ("max-keys", "1")]
        if !prefix.isEmpty { query.append(("prefix", prefix)) }
        let operation = "ListObjectsV2 bucket \"\(bucket)\""
        let reply = try await send(.GET, operation, bucket: bucket, query: query)
        guard let listing = S3Replies.listPage(Data(reply.body.readableBytesView)) else { throw malformed(operation) }
        return listing.objects.first
    }

    // MARK: objects

    /// Streams an object to `write` (called with each chunk as it arrives). A retry after a broken transfer
    /// calls `restart` first, so the sink starts over.
    public func getObject(bucket: String, key: String, restart: () throws -> Void,
                          write: (ByteBuffer) throws -> Void) async throws -> S3ObjectHead {
        let operation = "GetObject \(bucket)/\(key)"
        return try await withRetries(operation) { attempt in
            if attempt > 1 { try restart() }
            let request = makeRequest(.GET, bucket: bucket, key: key, query: [], headers: [], body: .empty)
            let response = try await execute(request, operation)
            guard response.status == .ok else {
                let body = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
                throw replyError(status: Int(response.status.code), body: body, operation: operation,
                                 requestID: response.headers.first(name: "x-amz-request-id"))
            }
            var received: Int64 = 0
            var iterator = response.body.makeAsyncIterator()
            let rate = rateWindow(operation)
            while true {
                let chunk: ByteBuffer?
                do { chunk = try await iterator.next() } catch { throw transportError(error, operation) }
                guard let chunk else { break }
                try rate.add(chunk.readableBytes)
                received += Int64(chunk.readableBytes)
                try write(chunk)
            }
            if let length = response.headers.first(name: "content-length").flatMap({ Int64($0) }), length != received {
                throw S3Error(endpoint: endpoint, operation: operation, status: nil, code: nil,
                              message: "the transfer stopped after \(received) of \(length) bytes")
            }
            return S3ObjectHead(size: received, etag: Self.unquote(response.headers.first(name: "etag") ?? ""),
                                lastModified: response.headers.first(name: "last-modified"))
        }
    }

    /// Uploads bytes in one PutObject; returns the ETag.
    @discardableResult
    public func putObject(bucket: String, key: String, bytes: ByteBuffer, sha256: String? = nil,
                          metadata: [String: String] = [:]) async throws -> String {
        let hash = sha256 ?? bytes.sha256Hex
        let headers = metadata.sorted { $0.key < $1.key }.map { ("x-amz-meta-" + $0.key, $0.value) }
        let reply = try await send(.PUT, "PutObject \(bucket)/\(key)", bucket: bucket, key: key, headers: headers,
                                   body: .bytes(bytes, sha256: hash))
        return Self.unquote(reply.headers.first(name: "etag") ?? "")
    }

    /// Uploads a file: one PutObject up to the multipart threshold, else a multipart upload in `partSize`
    /// parts (aborted on any failure). The bytes are hashed as they are read; when `expectedSHA256` is given
    /// and they differ, nothing is left in the bucket and `S3ContentMismatch` is thrown. Memory: one part.
    @discardableResult
    public func putFile(bucket: String, key: String, path: String, expectedSHA256: String? = nil,
                        metadata: [String: String] = [:]) async throws -> String {
        let file = try ReadOnlyFile(path: path)
        defer { file.close() }
        let size = try file.size()
        if size <= options.multipartThreshold {
            let bytes = try file.read(Int(size))
            let actual = bytes.sha256Hex
            if let expectedSHA256, actual != expectedSHA256 {
                throw S3ContentMismatch(key: key, expected: expectedSHA256, actual: actual)
            }
            return try await putObject(bucket: bucket, key: key, bytes: bytes, sha256: actual, metadata: metadata)
        }
        return try await multipartUpload(bucket: bucket, key: key, file: file, size: size, expectedSHA256: expectedSHA256,
                                         metadata: metadata)
    }

    private func multipartUpload(bucket: String, key: String, file: ReadOnlyFile, size: Int64, expectedSHA256: String?,
                                 metadata: [String: String]) async throws -> String {
        let headers = metadata.sorted { $0.key < $1.key }.map { ("x-amz-meta-" + $0.key, $0.value) }
        let start = try await send(.POST, "CreateMultipartUpload \(bucket)/\(key)", bucket: bucket, key: key,
                                   query: [("uploads", "")], headers: headers)
        guard let uploadID = S3Replies.uploadID(Data(start.body.readableBytesView)) else {
            throw malformed("CreateMultipartUpload \(bucket)/\(key)")
        }
        do {
            var whole = SHA256()
            var parts: [(Int, String)] = []
            var offset: Int64 = 0
            var number = 1
            while offset < size {
                let length = Int(min(Int64(options.partSize), size - offset))
                let bytes = try file.read(length)
                bytes.withUnsafeReadableBytes { whole.update(bufferPointer: $0) }
                let reply = try await send(.PUT, "UploadPart \(number) of \(bucket)/\(key)", bucket: bucket, key: key,
                                           query: [("partNumber", String(number)), ("uploadId", uploadID)],
                                           body: .bytes(bytes, sha256: bytes.sha256Hex))
                parts.append((number, reply.headers.first(name: "etag") ?? ""))
                offset += Int64(length)
                number += 1
            }
            let actual = whole.finalize().hex
            if let expectedSHA256, actual != expectedSHA256 {
                throw S3ContentMismatch(key: key, expected: expectedSHA256, actual: actual)
            }
            var body = "<CompleteMultipartUpload>"
            for (n, etag) in parts { body += "<Part><PartNumber>\(n)</PartNumber><ETag>\(Self.xmlEscape(etag))</ETag></Part>" }
            body += "</CompleteMultipartUpload>"
            let buffer = ByteBuffer(string: body)
            let operation = "CompleteMultipartUpload \(bucket)/\(key)"
            let reply = try await send(.POST, operation, bucket: bucket, key: key, query: [("uploadId", uploadID)],
                                       body: .bytes(buffer, sha256: buffer.sha256Hex))
            // A 200 reply can still carry an <Error> body.
            switch S3Replies.completion(Data(reply.body.readableBytesView)) {
            case nil: throw malformed(operation)
            case .error?: throw replyError(status: reply.status, body: reply.body, operation: operation, requestID: nil)
            case .etag(let etag)?: return etag
            }
        } catch {
            _ = try? await send(.DELETE, "AbortMultipartUpload \(bucket)/\(key)", bucket: bucket, key: key,
                                query: [("uploadId", uploadID)])
            throw error
        }
    }

    /// Size, ETag and `x-amz-meta-*` of an object; nil when it does not exist.
    public func headObject(bucket: String, key: String) async throws -> (size: Int64, etag: String, metadata: [String: String])? {
        let reply = try await send(.HEAD, "HeadObject \(bucket)/\(key)", bucket: bucket, key: key, accept: { $0 == 200 || $0 == 404 })
        guard reply.status == 200 else { return nil }
        var metadata: [String: String] = [:]
        for header in reply.headers where header.name.lowercased().hasPrefix("x-amz-meta-") {
            metadata[String(header.name.lowercased().dropFirst("x-amz-meta-".count))] = header.value
        }
        let size = reply.headers.first(name: "content-length").flatMap { Int64($0) } ?? -1
        return (size, Self.unquote(reply.headers.first(name: "etag") ?? ""), metadata)
    }

    public func deleteObject(bucket: String, key: String) async throws {
        _ = try await send(.DELETE, "DeleteObject \(bucket)/\(key)", bucket: bucket, key: key)
    }

    /// Deletes keys 1,000 per request (DeleteObjects); throws when the server reports any key it could not delete.
    public func deleteObjects(bucket: String, keys: [String]) async throws {
        var start = 0
        while start < keys.count {
            let batch = keys[start..<min(keys.count, start + 1000)]
            var body = "<Delete><Quiet>true</Quiet>"
            for key in batch { body += "<Object><Key>\(Self.xmlEscape(key))</Key></Object>" }
            body += "</Delete>"
            let buffer = ByteBuffer(string: body)
            let md5 = buffer.withUnsafeReadableBytes { Data(Insecure.MD5.hash(data: $0)).base64EncodedString() }
            let operation = "DeleteObjects bucket \"\(bucket)\""
            let reply = try await send(.POST, operation, bucket: bucket, query: [("delete", "")],
                                       headers: [("content-md5", md5)], body: .bytes(buffer, sha256: buffer.sha256Hex))
            if let failed = S3Replies.firstDeleteError(Data(reply.body.readableBytesView)) {
                throw S3Error(endpoint: endpoint, operation: operation, status: reply.status, code: failed.code,
                              message: "could not delete \(failed.key ?? "a key"): \(failed.message ?? "")")
            }
            start += batch.count
        }
    }

    // MARK: helpers

    func malformed(_ operation: String) -> S3Error {
        S3Error(endpoint: endpoint, operation: operation, status: nil, code: nil, message: "the reply is not the XML S3 sends")
    }

    static func unquote(_ etag: String) -> String { S3Replies.unquote(etag) }

    static func xmlEscape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                // Control characters cannot appear in XML 1.0 text, even escaped; S3 accepts the numeric form.
                if c.value < 0x20 && c != "\t" && c != "\n" { out += "&#\(c.value);" } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }
}

/// A file read in pieces into ByteBuffers.
final class ReadOnlyFile {
    let fd: Int32
    let path: String

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BackupFailure("cannot open \(path): \(String(cString: strerror(errno)))") }
    }

    func size() throws -> Int64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw BackupFailure("cannot stat \(path): \(String(cString: strerror(errno)))") }
        return Int64(st.st_size)
    }

    /// The next `count` bytes (fewer only at the end of the file).
    func read(_ count: Int) throws -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        var left = count
        while left > 0 {
            let n = try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: left) { ptr -> Int in
                let r = Glibc.read(fd, ptr.baseAddress, left)
                if r < 0 { throw BackupFailure("cannot read \(path): \(String(cString: strerror(errno)))") }
                return r
            }
            if n == 0 { break }
            left -= n
        }
        return buffer
    }

    func close() { Glibc.close(fd) }
}
