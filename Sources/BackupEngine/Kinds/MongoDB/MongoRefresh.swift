// A refresh of a MongoDB source (#38): production's backup restored into scratch databases, scrubbed there, then
// swapped into staging's live databases collection by collection. What staging's API sees changes only at the swap,
// and only to the scrubbed data; a restore, count or scrub that fails leaves the live databases untouched.
//
//   1. every application database `db` of the backup (admin, config and local never: users and roles are not a
//      refresh's to replace) gets the scratch name `kbrefresh_<db>`; one that would pass MongoDB's limits (63 bytes
//      for a database name, 255 for a namespace), a backup with time-series collections or views (which
//      renameCollection refuses), and a scrub naming `{database}` for a backup of several databases are refused
//      before anything is written;
//   2. scratch databases a killed refresh left behind (every `kbrefresh_*` the server lists) are dropped (and said so);
//   3. the backup restored (verified, recorded as a restore) with `--nsInclude=db.* --nsFrom=db.* --nsTo=kbrefresh_db.*`,
//      every namespace's count compared with the backup's (an archive's oplog is not replayed: mongorestore
//      replays only into a whole, unrenamed restore);
//   4. the scrub hook, given the scratch databases (`{database}`, `{databases}`);
//   5. the live and scratch collections listed; then, in one mongosh script, per database: each scratch collection
//      renamed over its live one (`renameCollection … dropTarget: true`, run against admin), each live collection
//      or view the scratch copy does not hold dropped (`system.*` never), and the scratch database dropped.
// Any failure before 5 drops the scratch databases and throws: the live data is what it was.
import ArtifactStore
import BackupCore
import Foundation
import MongoBackup

extension MongoAdapter {
    /// The prefix of a refresh's scratch databases: `kbrefresh_<db>`.
    static let refreshPrefix = "kbrefresh_"

    /// The databases a refresh swaps, each with its scratch name, or why it cannot (nothing written yet).
    static func refreshDatabases(_ artifact: ArtifactInfo, scrub: [String]?) throws -> [(live: String, scratch: String)] {
        let all = Self.namespaces(of: artifact).map(\.name)
        let names = Self.applicationDatabases(of: artifact)
        let unsafe = names.filter { !isValidDatabaseName($0) }
        if !unsafe.isEmpty {
            throw BackupFailure("backup \(artifact.id) records database names MongoDB does not allow: \(unsafe.sorted().map { String(reflecting: $0) }.joined(separator: ", "))",
                                exitStatus: .integrity, hint: "verify the backup and its manifest")
        }
        // A database already named as a scratch one would be taken for a killed refresh's leftover and dropped, or
        // be renamed over by another's scratch (the attack on #38): the prefix is the refresh's own.
        // (Case-blind: MongoDB refuses two databases whose names differ only in case.)
        if let taken = names.sorted().first(where: { $0.lowercased().hasPrefix(refreshPrefix) }) {
            throw BackupFailure("backup \(artifact.id) holds the database \(String(reflecting: taken)), whose name starts with \(refreshPrefix), the prefix of a refresh's scratch databases",
                                exitStatus: .usage, hint: "a refresh cannot tell it from its own scratch: leave this source out of the refresh: entry, or restore it by hand")
        }
        // mongorestore reads `*` in --nsInclude/--nsFrom/--nsTo as a wildcard: `a*.*` would take in admin.* too.
        // `{databases}` is the scratch names joined by commas: a name holding one would read as two.
        if let comma = names.sorted().first(where: { $0.contains(",") }) {
            throw BackupFailure("backup \(artifact.id) holds the database \(String(reflecting: comma)), whose comma would make the scrub's {databases} (comma-separated) ambiguous",
                                exitStatus: .usage, hint: "leave this source out of the refresh: entry, or restore it by hand")
        }
        if let wild = names.sorted().first(where: { $0.contains("*") }) {
            throw BackupFailure("backup \(artifact.id) holds the database \(String(reflecting: wild)), whose `*` mongorestore's namespace options read as a wildcard (it would restore other databases into the scratch)",
                                exitStatus: .usage, hint: "leave this source out of the refresh: entry, or restore it by hand")
        }
        guard !names.isEmpty else {
            throw BackupFailure("backup \(artifact.id) holds no application database to refresh (only admin, config or local, which a refresh never replaces)", exitStatus: .usage)
        }
        for db in names where (refreshPrefix + db).utf8.count > 63 {
            throw BackupFailure("database \(String(reflecting: db)) is \(db.utf8.count) bytes long: its scratch database \(refreshPrefix)\(db) would pass MongoDB's 63-byte limit on database names, so a refresh cannot restore it beside the live one",
                                exitStatus: .usage, hint: "leave this source out of the refresh: entry, or restore it by hand (kaleem-backup restore with --ns-from/--ns-to)")
        }
        for ns in all where names.contains(String(ns.prefix { $0 != "." })) && (refreshPrefix + ns).utf8.count > 255 {
            throw BackupFailure("namespace \(String(reflecting: ns)) would pass MongoDB's 255-byte limit on namespaces as \(refreshPrefix)\(ns) in the refresh's scratch database",
                                exitStatus: .usage, hint: "leave this source out of the refresh: entry, or restore it by hand")
        }
        func inApp(_ ns: String) -> Bool { names.contains(String(ns.prefix { $0 != "." })) }
        if case .object(let series)? = artifact.stats["timeseries"], let ns = series.keys.sorted().first(where: inApp) {
            throw BackupFailure("backup \(artifact.id) holds the time-series collection \(ns): renameCollection refuses time-series collections, so a refresh cannot swap it into place",
                                exitStatus: .usage, hint: "leave this source out of the refresh: entry, or restore it by hand (kaleem-backup restore --drop)")
        }
        if case .array(let views)? = artifact.stats["views"], let view = views.compactMap({ (v: JSONValue) -> String? in if case .string(let s) = v { return s }; return nil }).sorted().first(where: inApp) {
            throw BackupFailure("backup \(artifact.id) holds the view \(view): renameCollection refuses views, so a refresh cannot swap it into place",
                                exitStatus: .usage, hint: "leave this source out of the refresh: entry, or restore it by hand (kaleem-backup restore --drop)")
        }
        if let scrub, names.count > 1, scrub.contains(where: { $0.contains("{database}") }) {
            throw BackupFailure("the scrub names {database}, but backup \(artifact.id) holds \(names.count) databases (\(names.sorted().joined(separator: ", ")))",
                                exitStatus: .usage, hint: "use {databases} (the scratch databases, comma-separated) in the scrub command")
        }
        return names.sorted().map { ($0, refreshPrefix + $0) }
    }

    /// The whole refresh of one MongoDB source (see the head of this file); the lines say what was done.
    func refreshBySwap(_ artifact: ArtifactInfo, source: TypedSource<MongoSourcePolicy>, context: SourceContext) async throws -> [String] {
        let hook = context.scrubHook
        let databases = try Self.refreshDatabases(artifact, scrub: hook?.scrub.command)
        let tools = try tools(source.settings, source: source.name, context: context)
        if MongoURIOptions.unacknowledged(tools.uri.value) {
            throw BackupFailure("the uri of \(source.name) asks for an unacknowledged write concern (w=0): mongorestore then counts nothing, so a refresh could check nothing",
                                exitStatus: .usage, hint: "remove w=0 from sources.\(source.name).uri")
        }
        let mongosh = context.policy.drill.mongosh
        var lines: [String] = []

        // Collections of each named database, as [(name, type)], through one listing script.
        func list(_ names: [String]) async throws -> [String: [(name: String, type: String)]] {
            let script = names.enumerated().map { i, db in
                "print(\(MongoshScript.jsString("kb-list \(i) ")) + JSON.stringify(kb.getSiblingDB(\(MongoshScript.jsString(db))).getCollectionInfos({}).map((kb_c) => [kb_c.name, kb_c.type])));"
            }.joined(separator: "\n")
            let printed = try await tools.query(command: mongosh, script: script)
            var out: [String: [(name: String, type: String)]] = [:]
            // The tag is searched for, not expected at the start: a REPL may put a prompt before what it prints.
            for line in printed {
                guard let tag = line.range(of: "kb-list ") else { continue }
                let rest = line[tag.upperBound...]
                guard let space = rest.firstIndex(of: " "), let i = Int(rest[..<space]), names.indices.contains(i),
                      let rows = try? JSONSerialization.jsonObject(with: Data(rest[rest.index(after: space)...].utf8)) as? [[Any]] else { continue }
                out[names[i]] = rows.compactMap { row in
                    guard row.count == 2, let name = row[0] as? String else { return nil }
                    return (name, row[1] as? String ?? "collection")
                }
            }
            if let missing = names.first(where: { out[$0] == nil }) {
                throw MongoToolError(tool: "mongosh", problem: "listed no collections for \(missing) (its output was cut or not of the script's form)", stderrTail: [],
                                     hintText: "run the same mongosh by hand; nothing was swapped")
            }
            return out
        }
        /// Drops the scratch databases; says how it went (never throws: the failure it follows is the news).
        func dropScratch() async -> String {
            do {
                _ = try await tools.shell(command: mongosh, script: Self.dropDatabasesScript(databases.map(\.scratch)))
                return "scratch databases dropped"
            } catch {
                context.logger.warning("refresh scratch databases not dropped", metadata: ["source": "\(source.name)", "error": "\(context.describe(error))"])
                return "scratch databases \(databases.map(\.scratch).joined(separator: ", ")) NOT dropped (\(context.describe(error))); the next refresh drops them"
            }
        }
        func failing(_ error: Error) async -> Error {
            let dropped = await dropScratch()
            return BackupFailure("\(context.describe(error)); the live databases were not touched; \(dropped)",
                                 exitStatus: (error as? UserFacingError)?.exitStatus ?? .failed, hint: (error as? UserFacingError)?.hint)
        }

        // 2. What a killed refresh left behind goes first: every scratch database on the server (a killed refresh of
        // an older backup may have left one of a database this backup no longer holds), found by listDatabases
        // (nameOnly: a user without the cluster privilege is shown the databases it may use), and this run's own.
        let listedDatabases = try await tools.query(command: mongosh, script:
            "print(\(MongoshScript.jsString("kb-dbs ")) + JSON.stringify(kb.adminCommand({\"listDatabases\": 1, \"nameOnly\": true}).databases.map((kb_d) => kb_d.name)));")
        guard let dbsLine = listedDatabases.last(where: { $0.contains("kb-dbs ") }), let range = dbsLine.range(of: "kb-dbs "),
              let names = try? JSONSerialization.jsonObject(with: Data(dbsLine[range.upperBound...].utf8)) as? [String] else {
            throw MongoToolError(tool: "mongosh", problem: "listed no databases (its output was cut or not of the script's form)", stderrTail: [],
                                 hintText: "run the same mongosh by hand; nothing was written")
        }
        let leftovers = Set(names.filter { $0.hasPrefix(Self.refreshPrefix) }).union(databases.map(\.scratch)).sorted()
        let stale = try await list(leftovers).filter { !$0.value.isEmpty }
        _ = try await tools.shell(command: mongosh, script: Self.dropDatabasesScript(leftovers))
        for (db, collections) in stale.sorted(by: { $0.key < $1.key }) {
            context.logger.warning("stale refresh scratch database dropped", metadata: ["source": "\(source.name)", "database": "\(db)", "collections": "\(collections.count)"])
            lines.append("a scratch database \(db) left by an earlier refresh that did not finish (\(collections.count) collections) was dropped first")
        }

        // 3. The backup into the scratch databases, verified and counted.
        let target = MongoRestoreTarget(renames: databases.map { (from: "\($0.live).*", to: "\($0.scratch).*") }, drop: true,
                                        include: databases.map { "\($0.live).*" }, checkEachNamespace: true)
        let done: RestoreOutcome
        do {
            done = try await context.restore(self, source, into: target, RestoreRequest(source: source.name, backup: .id(artifact.id), confirmed: true))
            guard done.details["verified"] == .bool(true) else {
                throw BackupFailure("the restore into the scratch databases is not verified", exitStatus: .failed)
            }
        } catch {
            throw await failing(error)
        }
        let restored = done.details["restored"]?.intValue ?? 0
        lines.append("restored \(restored) documents of \(artifact.id) into \(databases.map(\.scratch).joined(separator: ", ")), every namespace's count as recorded"
                     + (artifact.stats["per_namespace"]?[MongoArchiveVerifier.oplogNamespace] != nil ? " (the oplog not replayed: mongorestore replays it only into an unrenamed restore)" : ""))

        // 4. The scrub, against the scratch databases.
        if let hook {
            do {
                let extra = ["{database}": databases.count == 1 ? databases[0].scratch : "", "{databases}": databases.map(\.scratch).joined(separator: ",")]
                try await EngineExecutor.run { try hook.run(host: nil, port: nil, extra: extra) }
            } catch {
                throw await failing(error)
            }
        }

        // 5. The swap.
        let listed: [String: [(name: String, type: String)]]
        do {
            listed = try await list(databases.flatMap { [$0.live, $0.scratch] })
        } catch {
            throw await failing(error)
        }
        var script: [String] = []
        var renamed = 0, dropped: [String] = [], scrubbedAway: [String] = [], replacedViews: [String] = []
        let recorded = Self.namespaces(of: artifact).map(\.name)
        for db in databases {
            let scratch = listed[db.scratch] ?? []
            // What the scratch must still hold: the backup restored there and counted, then scrubbed. A scrub may
            // delete documents or drop a collection it does not want in staging, but a scratch database left with
            // none of the backup's collections (dropped by the scrub, or never there) would empty the live one: refused.
            let held = Set(recorded.filter { $0.hasPrefix(db.live + ".") }.map { String($0.dropFirst(db.live.count + 1)) }.filter { !$0.hasPrefix("system.") })
            if !held.isEmpty, !scratch.contains(where: { held.contains($0.name) }) {
                throw await failing(BackupFailure("the scratch database \(db.scratch) holds none of the backup's \(held.count) collections of \(db.live) after the scrub (dropped by it?): swapping would empty \(db.live)",
                                                  exitStatus: .failed, hint: "a scrub may change or delete documents and drop some collections, not the database"))
            }
            if let odd = scratch.first(where: { $0.type != "collection" || $0.name.hasPrefix("system.") }) {
                throw await failing(BackupFailure("the scratch database \(db.scratch) holds \(odd.name) (\(odd.type)), which renameCollection cannot move",
                                                  exitStatus: .usage, hint: "restore this source by hand (kaleem-backup restore --drop)"))
            }
            let keep = Set(scratch.map(\.name))
            // A live view named as one of the backup's collections: renameCollection refuses a view as its target
            // (even with dropTarget), which would stop the swap part way. The backup holds a collection there, so
            // the view goes first.
            for c in listed[db.live] ?? [] where keep.contains(c.name) && c.type != "collection" {
                script.append("kb.getSiblingDB(\(MongoshScript.jsString(db.live))).runCommand({\"drop\": \(MongoshScript.jsString(c.name))});")
                replacedViews.append(db.live + "." + c.name)
            }
            for c in scratch {
                let command = "{\"renameCollection\": \(MongoshScript.jsString(db.scratch + "." + c.name)), \"to\": \(MongoshScript.jsString(db.live + "." + c.name)), \"dropTarget\": true}"
                script.append("kb.adminCommand(\(command));")
                renamed += 1
            }
            for c in listed[db.live] ?? [] where !keep.contains(c.name) && !c.name.hasPrefix("system.") {
                script.append("kb.getSiblingDB(\(MongoshScript.jsString(db.live))).runCommand({\"drop\": \(MongoshScript.jsString(c.name))});")
                if held.contains(c.name) { scrubbedAway.append(db.live + "." + c.name) } else { dropped.append(db.live + "." + c.name) }
            }
            script.append(Self.dropDatabasesScript([db.scratch]))
        }
        do {
            _ = try await tools.shell(command: mongosh, script: script.joined(separator: "\n"))
        } catch {
            // Some collections may be swapped and others not: the next refresh starts again from step 2 and redoes it all.
            throw PartiallyApplied("the swap into the live databases stopped part way: \(context.describe(error))",
                                hint: "the live databases may hold some collections of the backup and some of before: run the refresh again (it drops the scratch databases left and swaps every collection again)")
        }
        lines.append("swapped \(renamed) collections into \(databases.map(\.live).joined(separator: ", ")) (renameCollection, dropTarget)"
                     + (dropped.isEmpty ? "" : "; dropped \(dropped.count) live collections the backup does not hold (\(dropped.prefix(5).joined(separator: ", "))\(dropped.count > 5 ? ", …" : ""))")
                     + (scrubbedAway.isEmpty ? "" : "; dropped \(scrubbedAway.count) live collections the scrub dropped from the scratch copy (\(scrubbedAway.prefix(5).joined(separator: ", "))\(scrubbedAway.count > 5 ? ", …" : ""))")
                     + (replacedViews.isEmpty ? "" : "; dropped \(replacedViews.count) live views named as the backup's collections (\(replacedViews.prefix(5).joined(separator: ", "))\(replacedViews.count > 5 ? ", …" : ""))")
                     + "; scratch databases dropped")
        return lines
    }
}
