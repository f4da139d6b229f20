// The policy parser (YAML via Yams, then PolicyParser's checks, `${VAR}` expansion, schedules, cron, retention,
// offsite, notify...). The kinds' own settings parsers live in BackupEngine, which this package does not build
// (it pulls the whole server stack); a stand-in table reads each source's keys with the same PolicyNode readers
// they use (strings, lists, durations, booleans, a Redis URL through RedisEndpoint.parse).
import BackupCore
import Foundation

struct StandInSettings: SourceSettings, Equatable {
    var location: String
}

struct StandInParser: SourceSettingsParser {
    let kind: SourceKind

    func parseSettings(_ node: PolicyNode) throws(PolicyError) -> any SourceSettings {
        var location = kind.rawValue
        for (key, value) in try node.orderedMapping() where key != "kind" {
            switch key {
            case "url" where kind.rawValue == "redis":
                let text = try value.nonEmptyString()
                guard let endpoint = try? RedisEndpoint.parse(text) else { throw value.error("not a Redis URL") }
                location = endpoint.description
            case "paths", "exclude", "collections", "secret_paths", "redis_server": _ = try value.stringList()
            case "timeout", "start_timeout", "deadline": _ = try value.duration()
            case "allow_plaintext_secrets", "oplog": _ = try value.bool()
            case "port", "workers": _ = try value.int(in: 1...65535)
            case "mongodump", "command": _ = try value.command()
            case "endpoint": _ = try PolicyParser.parseS3Endpoint(value)
            default: _ = try value.string(secret: key.contains("password") || key.contains("secret"))
            }
        }
        return StandInSettings(location: location)
    }
}

private let kinds = SourceKindTable(["redis", "mongodb", "files", "qdrant", "bucket"].map { StandInParser(kind: SourceKind($0)) })
private let environment = ["HOME": "/root", "REDIS_PASSWORD": "secret", "BACKUP_DIR": "/var/backups/kaleem", "EMPTY": ""]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? PolicyParser.parse(text, origin: "fuzz.yml", environment: environment, sourceKinds: kinds)
    return 0
}
