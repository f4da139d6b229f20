// Qdrant's JSON envelopes (QdrantClient): `{"result": …, "status": "ok", "time": …}` decoded into BackupCore's
// JSONValue (Foundation's JSONDecoder), its `result` read by every decoder the client applies (collection info,
// snapshot description and list, count), and the error body `{"status": {"error": …}}`.
import BackupCore
import FuzzSupport
import Foundation
import QdrantClient

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = Data(bytes: data, count: size)
    _ = QdrantErrorBody.message(body)
    guard case .result(let result) = QdrantEnvelope.read(body) else { return 0 }
    _ = try? QdrantCollectionInfo.decode(result)
    _ = try? QdrantSnapshot.decode(result)
    _ = try? QdrantSnapshot.decodeList(result)
    _ = try? QdrantCount.decode(result)
    _ = QdrantEnvelope.aliases(result)
    _ = result.description
    return 0
}
