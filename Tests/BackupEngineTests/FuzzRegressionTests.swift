import ArtifactStore
import BackupCatalog
import BackupCore
import BackupEngine
import Foundation
import MongoBackup
import QdrantClient
import RedisBackup
import S3Client
import TarFormat
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Every input kept under Tests/Fixtures/fuzz/<target>/ (the seeds, and each crash-<sha1> the libFuzzer targets of
/// Fuzz/ found: scripts/fuzz-coverage.sh) replayed through the same reader as its fuzz target: each must end in a
/// result or an error, never a trap (a trap kills this test process). Passes with no crash file present.
@Suite(.blockingThreads) struct FuzzRegressionTests {
    static let root = fixturesDirectory + "/fuzz"

    /// The inputs of one target: every file under its directory but the notes.
    static func inputs(_ target: String) throws -> [(name: String, bytes: [UInt8])] {
        let dir = root + "/" + target
        guard let walker = FileManager.default.enumerator(atPath: dir) else { return [] }
        var out: [(String, [UInt8])] = []
        for case let path as String in walker where !path.hasSuffix(".note") {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            out.append((path, Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + path)))))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// The same readers as Fuzz/Sources/fuzz-<target> (the policy with the real kinds, not the fuzz stand-in).
    static let readers: [String: @Sendable ([UInt8]) throws -> Void] = [
        "resp": { bytes in try feed(bytes) { connection in for _ in 0..<10_000 { _ = try connection.readReply() } } },
        "snapshot": { bytes in
            try feed(bytes) { connection in
                _ = try RedisSnapshot.receive(connection, endpoint: RedisEndpoint(host: "fuzz"), startTimeout: 5) { _ in }
            }
        },
        "rdb": { bytes in
            _ = try? RDBVerifier.verify(ChunkedBytes(bytes, chunkSize: 1 + bytes.count % 97))
            _ = try RDBVerifier.verify(ChunkedBytes(bytes, chunkSize: 1 + bytes.count % 97),
                                       keys: RDBKeyVisitor(capture: { _, _ in true }, visit: { _ in }))
        },
        "mongo": { bytes in _ = try MongoArchiveVerifier.verify(ChunkedBytes(bytes, chunkSize: 1 + bytes.count % 97)) },
        "tar": { bytes in
            var reader = TarReader(ChunkedBytes(bytes, chunkSize: 1 + bytes.count % 97))
            while let entry = try reader.next() {
                if entry.size <= 16 << 20 { try reader.content { _ in } }
            }
        },
        "policy": { bytes in
            _ = try PolicyParser.parse(String(decoding: bytes, as: UTF8.self), origin: "fuzz.yml",
                                       environment: ["HOME": "/root", "REDIS_PASSWORD": "secret", "BACKUP_DIR": "/var/backups/kaleem", "EMPTY": ""],
                                       sourceKinds: SourceKinds.policyTable)
        },
        "cron": { bytes in
            let cron = try CronSchedule(String(decoding: bytes, as: UTF8.self))
            for zone in ["UTC", "America/New_York"] {
                _ = cron.upcoming(after: Date(timeIntervalSince1970: 1_790_000_000), in: TimeZone(identifier: zone)!, count: 3)
            }
        },
        "s3xml": { bytes in
            let body = Data(bytes)
            _ = S3Replies.listPage(body)
            _ = S3Replies.bucketNames(body)
            _ = S3Replies.uploadID(body)
            _ = S3Replies.completion(body)
            _ = S3Replies.error(body)
            _ = S3Replies.firstDeleteError(body)
        },
        "qdrant": { bytes in
            _ = QdrantErrorBody.message(Data(bytes))
            guard case .result(let result) = QdrantEnvelope.read(Data(bytes)) else { return }
            _ = try? QdrantCollectionInfo.decode(result)
            _ = try? QdrantSnapshot.decodeList(result)
            _ = try? QdrantSnapshot.decode(result)
            _ = try? QdrantCount.decode(result)
            _ = QdrantEnvelope.aliases(result)
        },
        "age": { bytes in
            let decryptor = AgeDecryptor(identities: [try fuzzAgeIdentity()], object: "fuzz.age")
            let chunk = 1 + bytes.count % 97
            try bytes.withUnsafeBytes { b in
                var off = 0
                while off < b.count {
                    let n = min(chunk, b.count - off)
                    _ = try decryptor.feed(UnsafeRawBufferPointer(rebasing: b[off..<off + n]))
                    off += n
                }
            }
            _ = try decryptor.finish()
        },
        "gzip": { bytes in
            try withInputFile(bytes) { path in
                let reader = try GzipReader(path: path, chunkSize: 1 + bytes.count % 4099)
                while try reader.read({ _ in }) {}
            }
            let source = try InflatingSource(ChunkedBytes(bytes, chunkSize: 1 + bytes.count % 97))
            while try source.nextChunk() != nil {}
            _ = MemoryGzip.decompress(Data(bytes), limit: 1 << 20)
        },
        "manifest": { bytes in
            let manifest = try Manifest.decode(Data(bytes))
            let a = manifest.artifact
            _ = manifest.refusal(at: (a.path as NSString).deletingLastPathComponent + "/" + a.id + ".manifest.json")
        },
        "catalog": { bytes in
            try withInputFile(bytes) { path in
                let copy = try Catalog(path: path)
                defer { try? copy.close() }
                if try copy.copyRefusal() == nil {
                    _ = try copy.newestRunStart()
                    _ = try copy.artifacts(includeDeleted: true)
                }
            }
        },
    ]

    /// The key the age seeds are encrypted to (Fuzz/Sources/fuzz-age holds the same; made for the seeds only).
    static func fuzzAgeIdentity() throws -> AgeIdentity {
        try AgeIdentity("AGE-SECRET-KEY-1VR3Y7VNYFT0MJ57U6P745XRXVZU8QPQWVWD77XMEPU9AVGGFFWKQ9FW0ZQ")
    }

    /// The input as a file (the gzip reader and a catalog copy take a path), removed afterwards.
    static func withInputFile(_ bytes: [UInt8], _ body: (String) throws -> Void) throws {
        let dir = TemporaryDirectory("kb-fuzz")
        let path = dir.path + "/input"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        try body(path)
    }

    /// The input written in full to one end of a socketpair (by a thread: it may exceed the socket's buffer),
    /// then that end shut; `body` reads the other end through a connection, as the fuzz targets do.
    static func feed(_ bytes: [UInt8], _ body: (RESPConnection) throws -> Void) throws {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { throw BackupFailure("socketpair") }
        let peer = fds[1]
        let done = DispatchSemaphore(value: 0)
        Thread {
            bytes.withUnsafeBytes { b in
                var off = 0
                while off < b.count {
                    let n = send(peer, b.baseAddress! + off, b.count - off, Int32(MSG_NOSIGNAL))
                    if n < 0 { if errno == EINTR { continue }; break }
                    off += n
                }
            }
            shutdown(peer, Int32(SHUT_WR))
            done.signal()
        }.start()
        defer { done.wait(); close(peer) }
        let connection = RESPConnection(fileDescriptor: fds[0], endpointDescription: "fuzz", ioTimeout: 5)
        defer { connection.close() }
        try body(connection)
    }

    @Test func everyKeptInputEndsInAResultOrAnError() throws {
        let targets = (try? FileManager.default.contentsOfDirectory(atPath: Self.root)) ?? []
        var replayed = 0
        for target in targets.sorted() {
            let reader = try #require(Self.readers[target], "Tests/Fixtures/fuzz/\(target): no reader to replay it with (add one here)")
            for input in try Self.inputs(target) {
                _ = try? reader(input.bytes)
                replayed += 1
            }
        }
        // The seeds (RESP replies, cron expressions, a policy) are always there.
        #expect(replayed > 0)
    }

    /// The policy fuzzer's first find: a syntax error in a file with CR line ends trapped (a reversed range in
    /// PolicyParser.syntaxError). Now it is a syntax error naming a line.
    @Test func policyWithCRLineEndsAndASyntaxErrorIsRefused() throws {
        for newline in ["\r", "\r\n", "\n"] {
            let text = ["repository:", "  path: /b", "sources:", "  r:", "    kind: redis", "    url: [redis://x", "  other: {", ""]
                .joined(separator: newline)
            #expect(throws: PolicyError.self) {
                try PolicyParser.parse(text, origin: "t.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
            }
        }
    }
}
