// The `kind: redis` entry of a policy.
import BackupCore
import Foundation

public struct RedisSourcePolicy: SourceSettings, Equatable {
    public var endpoint: RedisEndpoint
    /// A password given apart from the URL (`password_file:`, or `password:`); it wins over the URL's.
    public var password: SecretReference?
    /// Idle timeout of the snapshot connection, in seconds.
    public var timeoutSeconds: Double
    /// How long the server may take to start sending the snapshot, in seconds.
    public var startTimeoutSeconds: Double

    public init(endpoint: RedisEndpoint, password: SecretReference? = nil,
                timeoutSeconds: Double = Defaults.sourceIdleTimeoutSeconds,
                startTimeoutSeconds: Double = Defaults.snapshotStartTimeoutSeconds) {
        self.endpoint = endpoint
        self.password = password
        self.timeoutSeconds = timeoutSeconds
        self.startTimeoutSeconds = startTimeoutSeconds
    }

    public var secretFiles: [(key: String, path: String)] { password?.filePath.map { [("password_file", $0)] } ?? [] }

    public var location: String { endpoint.description }
}

extension RedisAdapter {
    func parseSettings(_ node: PolicyNode) throws(PolicyError) -> any SourceSettings {
        let map = try node.mapping(allowed: SourcePolicy.commonKeys.union(["url", "password", "password_file", "timeout", "start_timeout"]))
        guard let urlNode = map["url"] else { throw node.error("missing key \"url\" (e.g. redis://127.0.0.1:6379)") }
        let urlText = try urlNode.nonEmptyString()
        let endpoint: RedisEndpoint
        do {
            endpoint = try RedisEndpoint.parse(urlText)
        } catch {
            let shown = Redaction.url(urlText)
            switch error {
            case .tlsUnsupported: throw urlNode.error("TLS (rediss://) is not supported yet; found \"\(shown)\"")
            case .badPort: throw urlNode.error("expected a port from 1 to 65535 in \"\(shown)\"")
            case .badDatabase: throw urlNode.error("expected a database number after the / in \"\(shown)\"")
            case .missingHost: throw urlNode.error("expected a host in \"\(shown)\"")
            case .notRedisURL: throw urlNode.error("expected a URL redis://[user:password@]host[:port][/db], found \"\(shown)\"")
            }
        }
        var password: SecretReference?
        if map["password"] != nil, let f = map["password_file"] {
            throw f.error("give either password or password_file, not both")
        }
        if let p = map["password"] { password = .inline(Secret(try p.string(secret: true))) }
        if let f = map["password_file"] { password = .file(try f.nonEmptyString()) }
        var timeout = Defaults.sourceIdleTimeoutSeconds
        if let t = map["timeout"] { timeout = try t.duration() }
        var startTimeout = Defaults.snapshotStartTimeoutSeconds
        if let t = map["start_timeout"] { startTimeout = try t.duration() }
        return RedisSourcePolicy(endpoint: endpoint, password: password, timeoutSeconds: timeout, startTimeoutSeconds: startTimeout)
    }
}

/// The Redis key of `drill:` and of `restore:`: `redis_server`, the `redis-server` binaries a drill may load a
/// backup with (the one of the backup's own version preferred, then the newest that can load it), or an online
/// restore may start its scratch server with (one whose RDB the target can load: a Redis 6.2 target needs a 6.2
/// scratch server). `redis-server` on PATH is always a candidate.
public struct RedisServersPolicy: PolicyBlockSettings, Equatable {
    public var redisServers: [String] = []

    public init(redisServers: [String] = []) { self.redisServers = redisServers }
}

extension RedisAdapter {
    static let drillKeys: Set<String> = ["redis_server"]
    static let restoreKeys: Set<String> = ["redis_server"]
    var drillKeys: Set<String> { Self.drillKeys }
    var restoreKeys: Set<String> { Self.restoreKeys }

    func parseBlock(_ block: PolicyBlock, _ map: [String: PolicyNode]) throws(PolicyError) -> (any PolicyBlockSettings)? {
        var servers = RedisServersPolicy()
        if let r = map["redis_server"] { servers.redisServers = try r.stringList() }
        return servers
    }
}

extension KindBlockSettings {
    /// `drill.redis_server` or `restore.redis_server` (empty when not given).
    public var redisServers: [String] { settings(RedisAdapter().kind, as: RedisServersPolicy.self)?.redisServers ?? [] }
}
