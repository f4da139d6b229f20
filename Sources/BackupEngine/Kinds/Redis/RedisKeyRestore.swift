// Partial Redis restores: only the keys matching a pattern, into a live server, through `RESTORE` with the
// payload built from the backup's RDB (the value's bytes as stored, the RDB version, a CRC-64: what `DUMP`
// produces). Keys that exist are skipped unless --replace; keys whose TTL ran out are not restored; TTLs are
// kept as absolute times (ABSTTL). Nothing else of the target is touched.
import ArtifactStore
import BackupCore
import Foundation
import RedisBackup

extension RedisAdapter {
    /// `--match PATTERN`: the keys restore's options, checked.
    func keysTarget(_ o: RestoreOptions, pattern: String) throws -> RedisRestoreTarget {
        guard let url = try o.value("to-url").map({ try Self.targetURL($0, passwordFile: o.value("to-password-file")) }) else {
            throw BackupFailure("--match restores keys into a live server: give it with --to-url redis://…", exitStatus: .usage,
                                hint: "to look at the keys first: kaleem-backup ls ID --match '\(pattern)'")
        }
        if o.given("to-dir") { throw BackupFailure("--match restores into a live server (--to-url), not into a file (--to-dir)", exitStatus: .usage) }
        let database: Int?
        if let text = o.value("db") {
            guard let n = Int(text), n >= 0 else { throw BackupFailure("--db \(text) is not a database number", exitStatus: .usage) }
            database = n
        } else {
            database = nil
        }
        _ = try RedisEndpoint.parse(url)
        return .keys(url: url, pattern: pattern, database: database, replace: o.given("replace"))
    }

    /// The target connected and its version checked (it must read the backup's DUMP payloads); the apply step
    /// walks the backup's RDB once, restoring (or, rehearsing, looking up) each matching key.
    func planKeys(_ artifact: ArtifactInfo, url: String, pattern: String, database: Int?, replace: Bool, source: TypedSource<RedisSourcePolicy>,
                  request: RestoreRequest, context: SourceContext) throws -> RestorePlan {
        let glob = Glob(pattern)
        let endpoint = try RedisEndpoint.parse(url)
        let backupRDB = artifact.stats["rdb_version"]?.intValue
        let connection = try RESPConnection(endpoint: endpoint, ioTimeout: 30)
        let targetVersion: String
        do {
            try RedisSnapshot.authenticate(connection, endpoint: endpoint, password: endpoint.password)
            targetVersion = try connection.info("server")["redis_version"] ?? "unknown"
            if let loads = RedisVersions.rdbVersion(forRedis: targetVersion), let backupRDB, backupRDB > loads {
                throw RedisError(endpoint: endpoint.description,
                                 problem: "the target runs Redis \(targetVersion), which reads DUMP payloads up to RDB \(loads); the backup is RDB \(backupRDB). Refused before anything was touched",
                                 hint: "restore into a server of the backup's version or newer, or restore the whole backup into a scratch server of that version and copy the keys")
            }
        } catch {
            connection.close()
            throw error
        }
        let lines = [
            "restore the keys of \(source.name) backup \(artifact.id) (taken \(Timestamps.iso8601(artifact.createdAt))) matching \(String(reflecting: pattern))\(database.map { " in database \($0)" } ?? "")",
            "into the live server \(endpoint.description) (Redis \(targetVersion)): only those keys; " + (replace ? "keys that exist there are REPLACED" : "keys that exist there are left as they are (--replace to overwrite them)"),
            "TTLs are kept as absolute times; keys whose TTL has run out since the backup are not restored",
        ]
        let counts = KeyCounts()
        return RestorePlan(
            mode: "keys", target: endpoint.description, lines: lines,
            needsConfirmation: replace ? BackupFailure("--replace overwrites keys of \(endpoint.description); refusing without --yes", exitStatus: .usage,
                                                       hint: "read the plan above (or run it with --dry-run first), then add --yes") : nil,
            apply: { rehearse in
                let nowMs = Int64(context.now().timeIntervalSince1970 * 1000)
                var selected = -1
                let visitor = RDBKeyVisitor(capture: { db, key in (database.map { $0 == db } ?? true) && glob.matches(key) && !rehearse }) { key in
                    guard database.map({ $0 == key.db }) ?? true, glob.matches(key.key) else { return }
                    counts.matched += 1
                    if let at = key.expireAtMs, at <= nowMs { counts.expired += 1; return }
                    if key.db != selected {
                        guard try connection.command(["SELECT", String(key.db)]) == .simple("OK") else {
                            throw RedisError(endpoint: endpoint.description, problem: "SELECT \(key.db) was refused (the target has fewer databases?)")
                        }
                        selected = key.db
                    }
                    if rehearse {
                        try connection.send([Array("EXISTS".utf8), key.key])
                        if case .integer(1) = try connection.readReply() { counts.existing += 1 } else { counts.restored += 1 }
                        return
                    }
                    guard let payload = key.payload else { return }
                    var args: [[UInt8]] = [Array("RESTORE".utf8), key.key, Array(String(key.expireAtMs ?? 0).utf8), payload]
                    if replace { args.append(Array("REPLACE".utf8)) }
                    if key.expireAtMs != nil { args.append(Array("ABSTTL".utf8)) }
                    try connection.send(args)
                    switch try connection.readReply() {
                    case .simple("OK"): counts.restored += 1
                    case .error(let message) where message.hasPrefix("BUSYKEY"): counts.existing += 1
                    case .error(let message):
                        throw RedisError(endpoint: endpoint.description,
                                         problem: "RESTORE of key \(String(reflecting: String(decoding: key.key.prefix(200), as: UTF8.self))) failed: \(message)",
                                         hint: "keys restored before this one stay restored; the rest were not tried")
                    case let other:
                        throw RedisError(endpoint: endpoint.description, problem: "unexpected reply to RESTORE: \(other)")
                    }
                }
                _ = try await RDBVerifier.verify(GzipChunkSource(reader: try context.reader(artifact, progress: "restore keys of")), keys: visitor)
                let summary = rehearse
                    ? "\(counts.matched) keys match: \(counts.restored) would be restored, \(counts.existing) exist there (\(replace ? "would be replaced" : "would be left")), \(counts.expired) expired since the backup"
                    : "\(counts.matched) keys match: \(counts.restored) restored, \(counts.existing) left as they were (they exist there), \(counts.expired) not restored (expired since the backup)"
                var details: [String: JSONValue] = [
                    "target": .string(endpoint.description), "pattern": .string(pattern), "replace": .bool(replace), "matched": .int(counts.matched),
                    "restored": .int(rehearse ? 0 : counts.restored), "skipped_existing": .int(counts.existing), "skipped_expired": .int(counts.expired),
                ]
                if let database { details["db"] = .int(database) }
                return RestoreResult(lines: [summary], detail: "pattern \(pattern): " + summary, details: details)
            },
            failureDetail: { "pattern \(pattern): \(counts.restored) restored before the failure: \($0)" },
            close: { connection.close() })
    }
}

/// The keys a keys restore has seen so far (the failure's detail says how many were restored).
private final class KeyCounts {
    var matched = 0
    var restored = 0
    var existing = 0
    var expired = 0
}
