// The `kind: mongodb` entry of a policy.
import BackupCore
import Foundation

/// A MongoDB source, backed up with the official tools.
public struct MongoSourcePolicy: SourceSettings, Equatable {
    /// The connection string (it may hold a password): inline (after `${VAR}` expansion) or `uri_file`.
    public var uri: SecretReference
    /// The mongodump command: a path or name, or a wrapper such as `[docker, run, --rm, -i, mongo:7, mongodump]`.
    public var mongodump: [String]
    public var mongorestore: [String]
    /// At most one database (mongodump dumps one database or all of them); empty means all.
    public var databases: [String]
    /// Collections of that database to leave out.
    public var exclude: [String]
    /// `--oplog`, for a point-in-time dump of a whole replica set.
    public var oplog: Bool
    /// The longest a dump or restore may run, in seconds.
    public var timeoutSeconds: Double

    public init(uri: SecretReference, mongodump: [String] = ["mongodump"], mongorestore: [String] = ["mongorestore"],
                databases: [String] = [], exclude: [String] = [], oplog: Bool = false,
                timeoutSeconds: Double = Defaults.mongoTimeoutSeconds) {
        self.uri = uri
        self.mongodump = mongodump
        self.mongorestore = mongorestore
        self.databases = databases
        self.exclude = exclude
        self.oplog = oplog
        self.timeoutSeconds = timeoutSeconds
    }

    public var secretFiles: [(key: String, path: String)] { uri.filePath.map { [("uri_file", $0)] } ?? [] }

    public var location: String {
        switch uri {
        case .inline(let uri): return Redaction.url(uri.value)
        case .file(let path): return "uri from \(path)"
        }
    }
}

extension MongoAdapter {
    func parseSettings(_ node: PolicyNode) throws(PolicyError) -> any SourceSettings {
        let map = try node.mapping(allowed: SourcePolicy.commonKeys.union(["uri", "uri_file", "mongodump", "mongorestore", "databases", "exclude", "oplog", "timeout"]))
        let uri: SecretReference
        switch (map["uri"], map["uri_file"]) {
        case (let u?, nil):
            let text = try u.string(secret: true)
            guard text.hasPrefix("mongodb://") || text.hasPrefix("mongodb+srv://") else {
                throw u.error("expected a connection string mongodb://… or mongodb+srv://…, found \"\(Redaction.url(text))\"")
            }
            uri = .inline(Secret(text))
        case (nil, let f?): uri = .file(try f.nonEmptyString())
        case (_?, let f?): throw f.error("give either uri or uri_file, not both")
        case (nil, nil): throw node.error("missing key \"uri\" (or uri_file), e.g. uri: \"${MONGODB_URI:?set MONGODB_URI}\"")
        }
        var policy = MongoSourcePolicy(uri: uri)
        if let c = map["mongodump"] { policy.mongodump = try c.command() }
        if let c = map["mongorestore"] { policy.mongorestore = try c.command() }
        if let d = map["databases"] {
            policy.databases = try d.stringList()
            if policy.databases.count > 1 {
                throw d.error("mongodump dumps one database or all of them: list at most one (use one source per database)")
            }
        }
        if let e = map["exclude"] {
            policy.exclude = try e.stringList()
            if !policy.exclude.isEmpty && policy.databases.isEmpty {
                throw e.error("exclude needs databases: mongodump leaves out collections of one database only")
            }
        }
        if let o = map["oplog"] { policy.oplog = try o.bool() }
        if policy.oplog && !policy.databases.isEmpty {
            throw map["oplog"]!.error("oplog: true needs a dump of the whole replica set (no databases)")
        }
        if let t = map["timeout"] { policy.timeoutSeconds = try t.duration() }
        return policy
    }
}

extension MongoSourcePolicy: ComposeCommands {
    public func applying(_ project: ComposeProject) -> MongoSourcePolicy {
        var copy = self
        copy.mongodump = project.apply(to: mongodump)
        copy.mongorestore = project.apply(to: mongorestore)
        return copy
    }

    public var commands: [(key: String, command: [String])] { [("mongodump", mongodump), ("mongorestore", mongorestore)] }
}

/// The MongoDB keys of `drill:`: where drills restore into.
public struct MongoDrillPolicy: PolicyBlockSettings, Equatable {
    /// A MongoDB to restore drills into (databases `kb_drill_<id>_<db>`, dropped afterwards); none: archive-only.
    public var mongoURI: SecretReference?
    /// The shell used to drop the scratch databases (its script, connection string included, goes through stdin).
    public var mongosh: [String] = ["mongosh"]
    /// Without `mongo_uri`: the image of a throwaway MongoDB container (`docker run --rm`, published on a free
    /// 127.0.0.1 port, removed after) a drill restores into. `auto`: `mongo:<major.minor>` of the server the
    /// backup was taken from; `off`: archive-only drills.
    public var mongoImage: String = "auto"

    public init(mongoURI: SecretReference? = nil, mongosh: [String] = ["mongosh"]) {
        self.mongoURI = mongoURI
        self.mongosh = mongosh
    }

    /// `drill.mongosh` is a Compose command like the sources' tools: the `compose:` project applies to it.
    public func applying(_ project: ComposeProject) -> MongoDrillPolicy {
        var out = self
        out.mongosh = project.apply(to: mongosh)
        return out
    }

    public var commands: [(key: String, command: [String])] { [("mongosh", mongosh)] }
}

extension MongoAdapter {
    static let drillKeys: Set<String> = ["mongo_uri", "mongo_uri_file", "mongosh", "mongo_image"]
    var drillKeys: Set<String> { Self.drillKeys }

    func parseBlock(_ block: PolicyBlock, _ map: [String: PolicyNode]) throws(PolicyError) -> (any PolicyBlockSettings)? {
        guard block == .drill else { return nil }
        var drill = MongoDrillPolicy()
        if let i = map["mongo_image"] {
            let image = try i.nonEmptyString()
            // A word `docker run` takes as an image: no option, no space, no shell.
            guard image.range(of: #"^[a-z0-9][a-z0-9._/:@-]*$"#, options: .regularExpression) != nil else {
                throw i.error("expected auto, off or an image such as mongo:7.0, found \"\(image)\"")
            }
            drill.mongoImage = image
        }
        if let u = map["mongo_uri"] { drill.mongoURI = .inline(Secret(try u.string(secret: true))) }
        if let f = map["mongo_uri_file"] { drill.mongoURI = .file(try f.nonEmptyString()) }
        if let c = map["mongosh"] { drill.mongosh = try c.command() }
        return drill
    }
}

extension KindBlockSettings {
    /// The `drill:` block's MongoDB keys (their defaults when it has none).
    public var mongo: MongoDrillPolicy { settings(MongoAdapter().kind, as: MongoDrillPolicy.self) ?? MongoDrillPolicy() }
    public var mongoURI: SecretReference? { mongo.mongoURI }
    public var mongosh: [String] { mongo.mongosh }
    public var mongoImage: String { mongo.mongoImage }
}
