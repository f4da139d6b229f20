// The `kind: s3` entry of a policy (MinIO or any S3 endpoint).
import BackupCore
import Foundation

/// A MinIO (or any S3) source: point-in-time snapshots of buckets into a content-addressed blob store.
public struct S3SourcePolicy: SourceSettings, Equatable {
    /// `http://host:port`, path-style.
    public var endpoint: String
    public var region = "us-east-1"
    /// Buckets to snapshot; empty means every bucket the credentials can list.
    public var buckets: [String] = []
    /// Only keys under this prefix.
    public var prefix = ""
    public var accessKey: String
    public var secretKey: SecretReference
    /// Downloads (and restore uploads) at a time.
    public var concurrency = 8
    /// Per-request timeout, in seconds.
    public var timeoutSeconds: Double = 60

    public init(endpoint: String, accessKey: String, secretKey: SecretReference) {
        self.endpoint = endpoint
        self.accessKey = accessKey
        self.secretKey = secretKey
    }

    public var secretFiles: [(key: String, path: String)] { secretKey.filePath.map { [("secret_key_file", $0)] } ?? [] }

    public var location: String {
        let list = buckets.isEmpty ? "all buckets" : buckets.joined(separator: ", ")
        return "\(endpoint) (\(list)\(prefix.isEmpty ? "" : ", prefix \(prefix)"))"
    }
}

extension BucketAdapter {
    func parseSettings(_ node: PolicyNode) throws(PolicyError) -> any SourceSettings {
        let map = try node.mapping(allowed: SourcePolicy.commonKeys.union(["endpoint", "region", "buckets", "prefix", "access_key", "secret_key",
                                                                         "secret_key_file", "concurrency", "timeout"]))
        guard let e = map["endpoint"] else { throw node.error("missing key \"endpoint\" (e.g. http://minio:9000)") }
        let endpoint = try PolicyParser.parseS3Endpoint(e)
        guard let a = map["access_key"] else { throw node.error("missing key \"access_key\"") }
        let secret = try PolicyParser.secretKey(map, in: node)
        var policy = S3SourcePolicy(endpoint: endpoint, accessKey: try a.nonEmptyString(), secretKey: secret)
        if let r = map["region"] { policy.region = try r.nonEmptyString() }
        if let b = map["buckets"] {
            policy.buckets = try b.stringList()
            for bucket in policy.buckets where !BucketName.isValid(bucket) {
                throw b.error("\"\(bucket)\" is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)")
            }
        }
        if let p = map["prefix"] { policy.prefix = try p.string() }
        if let c = map["concurrency"] { policy.concurrency = try c.int(in: 1...64) }
        if let t = map["timeout"] { policy.timeoutSeconds = try t.duration() }
        return policy
    }
}

/// The bucket keys of `drill:`.
public struct BucketDrillPolicy: PolicyBlockSettings, Equatable {
    /// Where MinIO drills create their scratch bucket `kb-drill-<id>`; nil: the source's own endpoint.
    public var s3Endpoint: String?

    public init(s3Endpoint: String? = nil) { self.s3Endpoint = s3Endpoint }
}

extension BucketAdapter {
    static let drillKeys: Set<String> = ["endpoint"]
    var drillKeys: Set<String> { Self.drillKeys }

    func parseBlock(_ block: PolicyBlock, _ map: [String: PolicyNode]) throws(PolicyError) -> (any PolicyBlockSettings)? {
        guard block == .drill else { return nil }
        var drill = BucketDrillPolicy()
        if let e = map["endpoint"] { drill.s3Endpoint = try PolicyParser.parseS3Endpoint(e) }
        return drill
    }
}

extension KindBlockSettings {
    /// `drill.endpoint` (nil when not given).
    public var s3Endpoint: String? { settings(BucketAdapter().kind, as: BucketDrillPolicy.self)?.s3Endpoint }
}
