// `kind: qdrant`: collection snapshots (POST /collections/{c}/snapshots), streamed into one archive per run
// (a tar of `collections/<name>.snapshot`), each checked against the size and sha256 Qdrant reported and
// walked as a tar (config.json present; old-GNU sparse entries and base-256 sizes, as tar-rs writes them from
// Qdrant 1.12 on) while it arrives; the server's snapshot is deleted whatever happens. The points are counted
// exactly (POST …/points/count, exact) just before and just after the snapshot: collection info's
// `points_count` is approximate and is recorded only for people to read.
import ArtifactStore
import BackupCore
import Crypto
import Foundation
import NIOCore
import QdrantClient
import TarFormat

struct QdrantAdapter: StreamKind {
    typealias Settings = QdrantSourcePolicy
    let kind = SourceKind("qdrant")
    let fileExtension = "tar"
    let summary = "collection snapshots (Qdrant's snapshot API), restored by upload into a collection"
    var restoresOnRollbackByDefault: Bool { false }

    func client(_ source: TypedSource<QdrantSourcePolicy>, context: SourceContext) throws -> (QdrantClient, QdrantSourcePolicy) {
        let q = source.settings
        let key = try context.secrets(for: source.name).resolve(q.apiKey, key: "api_key")
        return (try QdrantClient(url: q.url, apiKey: key, timeoutSeconds: q.timeoutSeconds), q)
    }

    static func entryName(_ collection: String) -> String { "collections/" + QdrantClient.segment(collection) + ".snapshot" }

    /// The download's state, shared with the async callback.
    private final class Download: @unchecked Sendable {
        var tar: TarWriter
        var hasher = SHA256()
        var received: Int64 = 0
        init(_ tar: TarWriter) { self.tar = tar }
    }

    // MARK: backup

    func backupStream(_ source: TypedSource<QdrantSourcePolicy>, into writer: ArtifactWriter, context: SourceContext) async throws -> [String: JSONValue] {
        let (client, q) = try client(source, context: context)
        defer { client.shutdown() }
        let names = q.collections.isEmpty ? (try await client.listCollections()).sorted() : q.collections
        let aliases = (try await client.aliases())
        let state = Download(TarWriter { try writer.write($0) })
        var collections: [String: JSONValue] = [:]
        var points = 0
        context.progress?.counting("collections", total: names.count)
        for name in names {
            defer { context.progress?.add(items: 1) }
            guard let info = (try await client.collection(name)) else {
                throw QdrantError(endpoint: client.url, operation: "read collection \(name)", status: 404, message: "collection \(name) does not exist")
            }
            let before = (try await client.countPoints(name))
            let snapshot = (try await client.createSnapshot(name))
            do {
                let after = try await client.countPoints(name)
                let sha = try await download(name, snapshot, client: client, into: state, context: context)
                await deleteSnapshot(name, snapshot, client: client, context: context)
                points += before
                var record: [String: JSONValue] = [
                    // Exact counts just before and just after the snapshot: the snapshot's own lies between them
                    // (equal when nothing was written meanwhile). points_approximate: collection info's, for people.
                    "points": .int(before), "points_after": .int(after), "points_exact": .bool(true),
                    "points_approximate": .int(info.pointsCount),
                    "vectors": info.vectors, "payload_schema": info.payloadSchema,
                    "aliases": .array(aliases.filter { $0.collection == name }.map { .string($0.alias) }),
                    "snapshot": .string(snapshot.name), "size": .int(Int(snapshot.size)), "sha256": .string(sha),
                ]
                if let shards = info.shardNumber { record["shard_number"] = .int(shards) }
                collections[name] = .object(record)
            } catch {
                await deleteSnapshot(name, snapshot, client: client, context: context) // left behind, snapshots fill Qdrant's disk
                throw error
            }
        }
        try state.tar.finish()
        return ["collections": .object(collections), "collections_count": .int(names.count), "points": .int(points)]
    }

    /// One snapshot into the archive: its bytes to the tar and, through a bounded channel, to the tar walker;
    /// size and sha256 compared with what Qdrant reported. Returns the sha256.
    private func download(_ name: String, _ snapshot: QdrantSnapshot, client: QdrantClient, into state: Download,
                          context: SourceContext) async throws -> String {
        let verification = VerifierThread { source in try QdrantSnapshotCheck.verify(source) }
        state.hasher = SHA256()
        state.received = 0
        try state.tar.begin(TarEntry(path: Self.entryName(name), type: .file, size: snapshot.size, mode: 0o600, mtime: context.now().timeIntervalSince1970.rounded()))
        let object = "snapshot \(snapshot.name) of collection \(name) at \(client.url)"
        let (_, report) = try await verification.around {
            _ = try await client.downloadSnapshot(name, name: snapshot.name) { buffer in
                state.received += Int64(buffer.readableBytes)
                guard state.received <= snapshot.size else {
                    throw IntegrityError(object: object, problem: "the server sent more than the \(snapshot.size) bytes it reported")
                }
                if let early = verification.earlyFailure { throw early }
                try buffer.withUnsafeReadableBytes { bytes in
                    try state.tar.write(bytes)
                    state.hasher.update(bufferPointer: bytes)
                }
                verification.channel.send(Array(buffer.readableBytesView))
            }
            guard state.received == snapshot.size else {
                throw IntegrityError(object: object, problem: "the download ended after \(state.received) of \(snapshot.size) bytes (truncated)")
            }
        }
        let sha = state.hasher.finalize().hexString
        if let expected = snapshot.checksum, expected != sha {
            throw IntegrityError(object: object, problem: "sha256 is \(sha), Qdrant reported \(expected)")
        }
        try state.tar.end()
        context.logger.info("qdrant snapshot", metadata: ["collection": "\(name)", "bytes": "\(snapshot.size)", "entries": "\(report.entries)"])
        return sha
    }

    private func deleteSnapshot(_ name: String, _ snapshot: QdrantSnapshot, client: QdrantClient, context: SourceContext) async {
        do {
            (try await client.deleteSnapshot(name, name: snapshot.name))
        } catch {
            context.logger.warning("the snapshot could not be deleted on the Qdrant server: delete it by hand",
                                   metadata: ["collection": "\(name)", "snapshot": "\(snapshot.name)", "error": "\(context.describe(error))"])
        }
    }

    // MARK: verify

    func verifyContents(_ artifact: ArtifactInfo, _ contents: GzipChunkSource, path: String) throws -> String {
        guard case .object(let recorded)? = artifact.stats["collections"] else {
            throw IntegrityError(object: path, problem: "the catalog recorded no collections")
        }
        var reader = TarReader(contents)
        var seen: [String] = []
        while let entry = try reader.next() {
            guard let name = recorded.keys.first(where: { Self.entryName($0) == entry.path }) else {
                throw IntegrityError(object: path, problem: "\(entry.path) is not a collection the backup recorded")
            }
            let verification = VerifierThread { source in try QdrantSnapshotCheck.verify(source) }
            var hasher = SHA256()
            _ = try verification.around {
                try reader.content { slice in
                    hasher.update(data: slice)
                    if let early = verification.earlyFailure { throw early }
                    verification.channel.send(Array(slice))
                }
            }
            let sha = hasher.finalize().hexString
            guard recorded[name]?["sha256"] == .string(sha) else {
                throw IntegrityError(object: path, problem: "the snapshot of \(name) hashes to \(sha), the backup recorded \(recorded[name]?["sha256"]?.description ?? "none")")
            }
            seen.append(name)
        }
        var rest = contents
        rest.drain()
        try rest.finishError()
        let missing = Set(recorded.keys).subtracting(seen)
        if !missing.isEmpty { throw IntegrityError(object: path, problem: "snapshots missing: \(missing.sorted().joined(separator: ", "))") }
        return "sha256 ok, gzip ok, \(seen.count) collection snapshot(s): tar ok, config.json present, sha256 as Qdrant reported"
    }

}

/// Walks a collection snapshot (a tar, as Qdrant writes it): every header, size and padding, the end blocks,
/// and the collection's `config.json` present.
enum QdrantSnapshotCheck {
    struct Report: Sendable { var entries: Int }

    static func verify<S: ByteSource>(_ source: S) throws -> Report {
        var reader = TarReader(source)
        var entries = 0
        var config = false
        while let entry = try reader.next() {
            entries += 1
            let path = entry.path.hasPrefix("./") ? String(entry.path.dropFirst(2)) : entry.path
            if path == "config.json" { config = true }
        }
        guard config else { throw TarError(offset: reader.offset, problem: "the snapshot holds no config.json (not a collection snapshot)") }
        return Report(entries: entries)
    }
}
