import BackupCore
import Foundation
import QdrantClient
import TestSupport
import Testing

/// Qdrant's replies as its OpenAPI (qdrant/qdrant docs/redoc/master/openapi.json) describes them, decoded
/// with our client's types (Tests/Fixtures/qdrant/openapi-*.json; PROVENANCE.md says where each comes from).
@Suite(.blockingThreads) struct QdrantAPIFixtureTests {
    static func result(_ name: String) throws -> JSONValue {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturesDirectory + "/qdrant/" + name))
        let envelope = try JSONDecoder().decode(JSONValue.self, from: data)
        #expect(envelope["status"] == .string("ok"))
        return try #require(envelope["result"])
    }

    @Test func collectionInfo() throws {
        let info = try QdrantCollectionInfo.decode(try Self.result("openapi-collection-info.json"))
        #expect(info.pointsCount == 1000 && info.status == "green" && info.shardNumber == 1)
        #expect(info.vectors == .object(["size": .int(384), "distance": .string("Cosine")]))
        #expect(info.payloadSchema["lang"]?["data_type"] == .string("keyword"))
    }

    /// Named vectors, an optimizer error and `points_count: null` (the schema allows it: approximate, nullable).
    @Test func collectionInfoNamedVectorsNullCount() throws {
        let info = try QdrantCollectionInfo.decode(try Self.result("openapi-collection-info-named.json"))
        #expect(info.pointsCount == 0 && info.status == "yellow" && info.shardNumber == 2)
        #expect(info.vectors["image"]?["size"] == .int(512) && info.vectors["text"]?["datatype"] == .string("float16"))
        #expect(throws: QdrantDecodingError.self) { try QdrantCollectionInfo.decode(.object(["status": .string("green")])) }
        #expect(throws: QdrantDecodingError.self) {
            try QdrantCollectionInfo.decode(.object(["points_count": .int(-1), "config": .object(["params": .object([:])])]))
        }
    }

    @Test func snapshotCreate() throws {
        let snapshot = try QdrantSnapshot.decode(try Self.result("openapi-snapshot-create.json"))
        #expect(snapshot.name == "my-collection-3766212330831337-2024-07-22-08-31-55.snapshot" && snapshot.size == 1_000_000)
        #expect(snapshot.checksum == "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0")
    }

    @Test func snapshotList() throws {
        let list = try QdrantSnapshot.decodeList(try Self.result("openapi-snapshot-list.json"))
        #expect(list.map(\.name) == ["my-collection-3766212330831337-2024-07-22-08-31-55.snapshot",
                                     "kaleem-backup-restore-5d1e0c1e-4d3b-4f0a-9d53-0d6f1b2a3c4d.snapshot"])
        #expect(list.last?.checksum == nil && list.last?.size == 20480)
        #expect(throws: QdrantDecodingError.self) { try QdrantSnapshot.decodeList(.object([:])) }
    }

    @Test func count() throws {
        #expect(try QdrantCount.decode(try Self.result("openapi-count.json")) == 1000)
        #expect(throws: QdrantDecodingError.self) { try QdrantCount.decode(.object(["count": .string("many")])) }
    }

    @Test func errorBody() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturesDirectory + "/qdrant/openapi-error.json"))
        let message = try #require(QdrantErrorBody.message(data))
        #expect(message.hasPrefix("Wrong input: Snapshot is not compatible with existing collection"))
        #expect(QdrantErrorBody.message(Data(#"{"result": true, "status": "ok"}"#.utf8)) == nil)
    }
}
