import BackupCore
import Foundation
import RedisBackup
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `Tests/StandIns/qdrant_standin.py` on a free 127.0.0.1 port, with its collections, API key and failure
/// modes; stopped when released. A stand-in that cannot start fails the test (never skips it).
public final class QdrantStandIn: @unchecked Sendable {
    public let port: Int
    public let directory: TemporaryDirectory
    private let process: ChildProcess
    public let apiKey: String?

    /// - Parameters:
    ///   - collections: name → (points, dimension).
    ///   - aliases: alias → collection.
    ///   - shards: collection → shard_number (default 1).
    ///   - modes: QDRANT_MODE switches (fail_create, hang_download, truncate, bad_checksum, fail_upload, extra_bytes,
    ///     no_shard_number).
    public init(collections: [String: (points: Int, dim: Int)], aliases: [String: String] = [:], shards: [String: Int] = [:],
                apiKey: String? = nil, modes: [String] = []) throws {
        directory = TemporaryDirectory("kb-qdrant")
        self.apiKey = apiKey
        let described = Dictionary(uniqueKeysWithValues: collections.map { name, c in
            (name, ["points": c.points, "dim": c.dim, "shards": shards[name] ?? 1])
        })
        let state: [String: Any] = ["collections": described, "aliases": aliases]
        try JSONSerialization.data(withJSONObject: state).write(to: URL(fileURLWithPath: directory.file("collections.json")))
        port = try FreePort.pick()
        var env = ["QDRANT_LOG=\(directory.file("requests.jsonl"))"]
        if let apiKey { env.append("QDRANT_API_KEY=\(apiKey)") }
        if !modes.isEmpty { env.append("QDRANT_MODE=\(modes.joined(separator: ","))") }
        process = try ChildProcess(executable: "/usr/bin/env", arguments: env + ["python3", packageRoot + "/Tests/StandIns/qdrant_standin.py",
                                                                                 String(port), directory.path])
        let deadline = Date().addingTimeInterval(20)
        while httpGet(url + "/_standin/snapshots", timeout: 1)?.0 != 200 {
            if !process.isRunning || Date() > deadline {
                process.signal(SIGKILL)
                throw BackupFailure("the Qdrant stand-in did not start on port \(port)")
            }
            usleep(50_000)
        }
    }

    public var url: String { "http://127.0.0.1:\(port)" }

    /// Snapshot files still on the "server", as "<collection>/<file>": those Qdrant made, those uploaded into a
    /// collection (Qdrant keeps them), those of deleted collections (Qdrant keeps their folder).
    public func snapshotsLeft() -> [String] {
        guard let (_, body) = httpGet(url + "/_standin/snapshots"),
              let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else { return ["?"] }
        return json["result"] as? [String] ?? ["?"]
    }

    /// Every request it received: method, path, and whether the api-key header was ok / absent / wrong.
    public func requests() -> [[String: Any]] {
        let text = (try? String(contentsOfFile: directory.file("requests.jsonl"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// GET with the key, as a client would: the collection's JSON `result`, or nil (404 and the like).
    public func collection(_ name: String) -> [String: Any]? {
        var request = URLRequest(url: URL(string: url + "/collections/" + name)!)
        if let apiKey { request.setValue(apiKey, forHTTPHeaderField: "api-key") }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var out: [String: Any]?
        URLSession.shared.dataTask(with: request) { data, response, _ in
            if (response as? HTTPURLResponse)?.statusCode == 200, let data,
               let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] { out = json["result"] as? [String: Any] }
            done.signal()
        }.resume()
        _ = done.wait(timeout: .now() + 10)
        return out
    }

    /// The exact number of points (POST /collections/{c}/points/count, exact), or nil (404 and the like).
    /// Collection info's `points_count` is approximate, as Qdrant's is.
    public func count(_ name: String) -> Int? {
        var request = URLRequest(url: URL(string: url + "/collections/" + name + "/points/count")!)
        request.httpMethod = "POST"
        request.httpBody = Data(#"{"exact": true}"#.utf8)
        request.setValue("application/json", forHTTPHeaderField: "content-type")
        if let apiKey { request.setValue(apiKey, forHTTPHeaderField: "api-key") }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var out: Int?
        URLSession.shared.dataTask(with: request) { data, response, _ in
            if (response as? HTTPURLResponse)?.statusCode == 200, let data,
               let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
                out = (json["result"] as? [String: Any])?["count"] as? Int
            }
            done.signal()
        }.resume()
        _ = done.wait(timeout: .now() + 10)
        return out
    }

    deinit {
        process.signal(SIGKILL)
        _ = process.wait()
    }
}
