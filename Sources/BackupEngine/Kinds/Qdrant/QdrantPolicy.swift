// The `kind: qdrant` entry of a policy.
import BackupCore
import Foundation

public struct QdrantSourcePolicy: SourceSettings, Equatable {
    /// `http://qdrant:6333`.
    public var url: String
    /// Sent in the `api-key` header only.
    public var apiKey: SecretReference?
    /// Collections to snapshot; empty: every collection (`GET /collections`).
    public var collections: [String] = []
    /// Per request (a snapshot of a large collection takes a while: `POST …/snapshots?wait=true`).
    public var timeoutSeconds: Double = 30 * 60

    public init(url: String) { self.url = url }

    public var location: String { url + (collections.isEmpty ? " (all collections)" : " (\(collections.joined(separator: ", ")))") }
    public var secretFiles: [(key: String, path: String)] { apiKey?.filePath.map { [("api_key_file", $0)] } ?? [] }
}

extension QdrantAdapter {
    func parseSettings(_ node: PolicyNode) throws(PolicyError) -> any SourceSettings {
        let map = try node.mapping(allowed: SourcePolicy.commonKeys.union(["url", "api_key", "api_key_file", "collections", "timeout"]))
        guard let u = map["url"] else { throw node.error("missing key \"url\" (e.g. http://qdrant:6333)") }
        let url = try u.nonEmptyString()
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw u.error("expected an http:// or https:// URL, found \"\(Redaction.url(url))\"")
        }
        guard Redaction.url(url) == url else { throw u.error("the url must not hold credentials; give api_key_file") }
        var policy = QdrantSourcePolicy(url: url)
        switch (map["api_key"], map["api_key_file"]) {
        case (let k?, nil): policy.apiKey = .inline(Secret(try k.string(secret: true)))
        case (nil, let f?): policy.apiKey = .file(try f.nonEmptyString())
        case (_?, let f?): throw f.error("give either api_key or api_key_file, not both")
        case (nil, nil): break
        }
        if let c = map["collections"] {
            policy.collections = try c.stringList()
            for name in policy.collections where name.contains("/") || name.isEmpty {
                throw c.error("\"\(name)\" is not a collection name")
            }
        }
        if let t = map["timeout"] { policy.timeoutSeconds = try t.duration() }
        return policy
    }
}
