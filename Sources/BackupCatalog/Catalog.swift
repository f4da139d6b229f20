// BackupCatalog: the SQLite catalog of runs and artifacts. The only target that imports GRDB; the rest of
// kaleem-backup sees BackupCore models (`RunInfo`, `ArtifactInfo`).
//
// Migrations are frozen once shipped: never edit one, add the next.
import BackupCore
import Foundation
import GRDB
import GRDBSQLite

/// The catalog database. It owns its writer and migrates when opened.
public final class Catalog: Sendable {
    private let dbQueue: DatabaseQueue
    public let path: String

    /// Opens (creating if needed) the catalog at `path` and brings its schema up to date.
    public init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            // Large catalogs (a million artifacts) are read by scans: map the file rather than pread each page.
            try db.execute(sql: "PRAGMA mmap_size = 1073741824")
            try db.execute(sql: "PRAGMA cache_size = -32768")
        }
        do {
            dbQueue = try DatabaseQueue(path: path, configuration: config)
            try Self.migrator.migrate(dbQueue)
        } catch {
            throw CatalogError(path: path, operation: "open", underlying: error)
        }
    }

    /// Opens an existing catalog for reading only (the daemon's status page): nothing is created or migrated, and
    /// a missing file is an error. A catalog of an older schema is read as it is (a query it cannot answer fails).
    public init(readingOnly path: String) throws {
        self.path = path
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(5)
        do {
            guard access(path, F_OK) == 0 else { throw UnknownCatalogValue(problem: "no catalog file yet (the first backup creates it)") }
            dbQueue = try DatabaseQueue(path: path, configuration: config)
        } catch {
            throw CatalogError(path: path, operation: "open for reading", underlying: error)
        }
    }

    /// Closes the database (every write is committed; the file can then be renamed).
    public func close() throws {
        do { try dbQueue.close() } catch { throw CatalogError(path: path, operation: "close", underlying: error) }
    }

    /// An in-memory catalog, for tests.
    public init() throws {
        path = ":memory:"
        var config = Configuration()
        config.foreignKeysEnabled = true
        dbQueue = try DatabaseQueue(configuration: config)
        try Self.migrator.migrate(dbQueue)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-runs-artifacts") { db in
            try db.create(table: "runs") { t in
                t.column("id", .text).primaryKey()
                t.column("tag", .text).notNull()
                t.column("release", .text)
                t.column("started_at", .datetime).notNull()
                t.column("finished_at", .datetime)
                t.column("status", .text).notNull()
                    .check(sql: "status IN ('running', 'ok', 'failed', 'partial')")
                t.column("host", .text).notNull()
            }
            try db.create(table: "artifacts") { t in
                t.column("id", .text).primaryKey()
                t.column("run_id", .text).notNull().references("runs", onDelete: .restrict)
                t.column("source", .text).notNull()
                t.column("kind", .text).notNull()
                t.column("path", .text).notNull()
                t.column("bytes_raw", .integer).notNull().defaults(to: 0)
                t.column("bytes_stored", .integer).notNull().defaults(to: 0)
                t.column("sha256", .text).notNull().defaults(to: "")
                t.column("compression", .text).notNull()
                t.column("status", .text).notNull()
                    .check(sql: "status IN ('running', 'ok', 'failed')")
                t.column("created_at", .datetime).notNull()
                t.column("pinned", .boolean).notNull().defaults(to: false)
                t.column("pin_reason", .text)
                t.column("deleted_at", .datetime)
                t.column("stats", .text).notNull().defaults(to: "{}")
                t.column("detail", .text)
            }
            try db.create(index: "artifacts_by_source_time", on: "artifacts", columns: ["source", "created_at"])
            try db.create(index: "artifacts_by_time", on: "artifacts", columns: ["created_at"])
            try db.create(index: "artifacts_by_run", on: "artifacts", columns: ["run_id"])
        }
        migrator.registerMigration("v2-drills-restores") { db in
            try db.create(table: "drills") { t in
                t.column("id", .text).primaryKey()
                t.column("artifact_id", .text).notNull().references("artifacts", onDelete: .restrict)
                t.column("source", .text).notNull()
                t.column("started_at", .datetime).notNull()
                t.column("duration_seconds", .double).notNull()
                t.column("result", .text).notNull().check(sql: "result IN ('passed', 'failed', 'archive-only', 'error')")
                t.column("detail", .text).notNull()
                t.column("host", .text).notNull()
            }
            try db.create(index: "drills_by_artifact", on: "drills", columns: ["artifact_id", "started_at"])
            try db.create(index: "drills_by_source", on: "drills", columns: ["source", "started_at"])
            try db.create(table: "restores") { t in
                t.column("id", .text).primaryKey()
                t.column("artifact_id", .text).notNull().references("artifacts", onDelete: .restrict)
                t.column("source", .text).notNull()
                t.column("started_at", .datetime).notNull()
                t.column("duration_seconds", .double).notNull()
                t.column("mode", .text).notNull()
                t.column("target", .text).notNull()
                t.column("outcome", .text).notNull().check(sql: "outcome IN ('ok', 'failed', 'dry-run')")
                t.column("user", .text).notNull()
                t.column("host", .text).notNull()
                t.column("detail", .text).notNull()
            }
            try db.create(table: "deployments") { t in
                t.column("id", .text).primaryKey()
                t.column("release", .text).notNull()
                t.column("environment", .text).notNull()
                t.column("service", .text).notNull()
                t.column("event", .text).notNull().check(sql: "event IN ('success', 'failed', 'rollback')")
                t.column("duration_seconds", .double)
                t.column("reason", .text)
                t.column("recorded_at", .datetime).notNull()
                t.column("host", .text).notNull()
            }
            try db.create(index: "deployments_by_release", on: "deployments", columns: ["release", "recorded_at"])
        }
        migrator.registerMigration("v3-offsite") { db in
            // The off-site copy of each artifact: ok, or failed with why (retried by the next run).
            try db.create(table: "offsite") { t in
                t.column("artifact_id", .text).primaryKey().references("artifacts", onDelete: .cascade)
                t.column("status", .text).notNull().check(sql: "status IN ('ok', 'failed')")
                t.column("detail", .text)
                t.column("updated_at", .datetime).notNull()
            }
        }
        migrator.registerMigration("v4-removals") { db in
            // Rotation's intent: an artifact is listed here (and marked deleted) in one transaction before any
            // of its files is touched; the row goes when its files are gone. A crash in between leaves the row,
            // and the next locked command finishes the removal.
            try db.create(table: "removals") { t in
                t.column("artifact_id", .text).primaryKey().references("artifacts", onDelete: .cascade)
                t.column("started_at", .datetime).notNull()
            }
        }
        migrator.registerMigration("v5-verify") { db in
            // `corrupt` joins the artifact states: SQLite cannot change a CHECK in place, so the table is rebuilt
            // (the documented 12-step way: new table, copy, drop, rename, indexes; foreign keys are checked when
            // the migration commits). Then the newest verify of each artifact.
            try db.create(table: "artifacts_v5") { t in
                t.column("id", .text).primaryKey()
                t.column("run_id", .text).notNull().references("runs", onDelete: .restrict)
                t.column("source", .text).notNull()
                t.column("kind", .text).notNull()
                t.column("path", .text).notNull()
                t.column("bytes_raw", .integer).notNull().defaults(to: 0)
                t.column("bytes_stored", .integer).notNull().defaults(to: 0)
                t.column("sha256", .text).notNull().defaults(to: "")
                t.column("compression", .text).notNull()
                t.column("status", .text).notNull()
                    .check(sql: "status IN ('running', 'ok', 'failed', 'corrupt')")
                t.column("created_at", .datetime).notNull()
                t.column("pinned", .boolean).notNull().defaults(to: false)
                t.column("pin_reason", .text)
                t.column("deleted_at", .datetime)
                t.column("stats", .text).notNull().defaults(to: "{}")
                t.column("detail", .text)
            }
            try db.execute(sql: """
                INSERT INTO artifacts_v5 (id, run_id, source, kind, path, bytes_raw, bytes_stored, sha256, compression, status,
                                          created_at, pinned, pin_reason, deleted_at, stats, detail)
                SELECT id, run_id, source, kind, path, bytes_raw, bytes_stored, sha256, compression, status,
                       created_at, pinned, pin_reason, deleted_at, stats, detail FROM artifacts
                """)
            try db.drop(table: "artifacts")
            try db.rename(table: "artifacts_v5", to: "artifacts")
            try db.create(index: "artifacts_by_source_time", on: "artifacts", columns: ["source", "created_at"])
            try db.create(index: "artifacts_by_time", on: "artifacts", columns: ["created_at"])
            try db.create(index: "artifacts_by_run", on: "artifacts", columns: ["run_id"])
            try db.create(table: "verifications") { t in
                t.column("artifact_id", .text).primaryKey().references("artifacts", onDelete: .cascade)
                t.column("verified_at", .datetime).notNull()
                t.column("ok", .boolean).notNull()
                t.column("detail", .text).notNull()
            }
        }
        migrator.registerMigration("v6-retention-index") { db in
            // Rotation reads every live artifact of a source, newest first: this partial index holds exactly
            // the columns the planner needs, so the plan is read from the index alone, in order, without
            // touching the wide rows (sha256, stats, paths). 10^6 artifacts: see scripts/bench-catalog.sh.
            try db.execute(sql: """
                CREATE INDEX artifacts_live_for_retention ON artifacts (source, created_at DESC, id DESC, status, pinned, run_id, pin_reason)
                WHERE deleted_at IS NULL
                """)
        }
        migrator.registerMigration("v7-prune-removed-entries") { db in
            // The per-file list of a files backup (one JSON object per file: 4.7 MB for 20,000 files) stayed in
            // the row after the backup was removed, so the catalog, and its copy after every run, grew by that
            // much every night. Removed backups keep their counts; their lists go (step 1 of a removal does it
            // from now on).
            try db.execute(sql: "UPDATE artifacts SET stats = \(Self.statsWithoutEntries) WHERE deleted_at IS NOT NULL")
        }
        migrator.registerMigration("v8-unverified-restores") { db in
            // A restore the target could not count (MongoDB with w=0) is neither ok nor failed: `unverified`.
            // SQLite cannot alter a CHECK: the table is rebuilt (its rows kept, same columns and order).
            try db.create(table: "restores_v8") { t in
                t.column("id", .text).primaryKey()
                t.column("artifact_id", .text).notNull().references("artifacts", onDelete: .restrict)
                t.column("source", .text).notNull()
                t.column("started_at", .datetime).notNull()
                t.column("duration_seconds", .double).notNull()
                t.column("mode", .text).notNull()
                t.column("target", .text).notNull()
                t.column("outcome", .text).notNull().check(sql: "outcome IN ('ok', 'failed', 'dry-run', 'unverified')")
                t.column("user", .text).notNull()
                t.column("host", .text).notNull()
                t.column("detail", .text).notNull()
            }
            try db.execute(sql: "INSERT INTO restores_v8 SELECT id, artifact_id, source, started_at, duration_seconds, mode, target, outcome, user, host, detail FROM restores")
            try db.drop(table: "restores")
            try db.rename(table: "restores_v8", to: "restores")
        }
        migrator.registerMigration("v9-deployment-attempts") { db in
            // Each deploy attempt is one event (#35): the deploy script's id for it, so a retry and a redeploy of
            // the same tag are counted, and the same attempt reported twice is counted once. NULL for the events
            // recorded before (they were told apart by release).
            try db.alter(table: "deployments") { t in t.add(column: "deploy_id", .text) }
        }
        migrator.registerMigration("v10-from-host-records") { db in
            // Restores and drills of ANOTHER host's backups (`--from-host`, a staging refresh, #38): their artifact
            // is in that host's catalog, not in this one, so they cannot be rows of `drills` / `restores` (whose
            // artifact_id references `artifacts`), and must not be: this host's status, metrics and alerts read
            // those tables as its own backups' drills. Tables of their own, naming the other host.
            try db.create(table: "from_host_drills") { t in
                t.column("id", .text).primaryKey()
                t.column("from_host", .text).notNull()
                t.column("artifact_id", .text).notNull()
                t.column("source", .text).notNull()
                t.column("started_at", .datetime).notNull()
                t.column("duration_seconds", .double).notNull()
                t.column("result", .text).notNull().check(sql: "result IN ('passed', 'failed', 'archive-only', 'error')")
                t.column("detail", .text).notNull()
                t.column("host", .text).notNull()
                t.column("purpose", .text).notNull().check(sql: "purpose IN ('drill', 'refresh')")
            }
            try db.create(index: "from_host_drills_by_host", on: "from_host_drills", columns: ["from_host", "source", "started_at"])
            try db.create(table: "from_host_restores") { t in
                t.column("id", .text).primaryKey()
                t.column("from_host", .text).notNull()
                t.column("artifact_id", .text).notNull()
                t.column("source", .text).notNull()
                t.column("started_at", .datetime).notNull()
                t.column("duration_seconds", .double).notNull()
                t.column("mode", .text).notNull()
                t.column("target", .text).notNull()
                t.column("outcome", .text).notNull().check(sql: "outcome IN ('ok', 'failed', 'dry-run', 'unverified')")
                t.column("user", .text).notNull()
                t.column("host", .text).notNull()
                t.column("detail", .text).notNull()
            }
        }
        migrator.registerMigration("v11-refreshes-by-other-hosts") { db in
            // The other side of a refresh (#38): another host (staging) restored one of THIS host's backups into its
            // live stores and checked it, and left a receipt under its own directory. This host reads the receipts
            // addressed to it and records them here, so its own catalog (status, the copy) shows that its backup
            // was restored elsewhere. Not rows of `drills`: another host's word is not a drill this host ran, and
            // must not satisfy this host's drill alerts. One row per source of a receipt.
            try db.create(table: "refreshes_by_other_hosts") { t in
                t.column("by_host", .text).notNull()
                t.column("drill_id", .text).notNull()
                t.column("receipt", .text).notNull()
                t.column("artifact_id", .text).notNull()
                t.column("source", .text).notNull()
                t.column("refreshed_at", .datetime).notNull()
                t.column("duration_seconds", .double).notNull()
                t.column("result", .text).notNull().check(sql: "result IN ('passed', 'failed', 'archive-only', 'error')")
                t.column("detail", .text).notNull()
                t.column("collected_at", .datetime).notNull()
                t.primaryKey(["by_host", "drill_id"])
            }
            try db.create(index: "refreshes_by_other_hosts_by_source", on: "refreshes_by_other_hosts", columns: ["source", "refreshed_at"])
        }
        return migrator
    }

    /// `stats` without its `entries` list (a files backup's per-file list); stats that are not valid JSON stay.
    static let statsWithoutEntries = "CASE WHEN json_valid(stats) AND json_type(stats, '$.entries') IS NOT NULL THEN json_remove(stats, '$.entries') ELSE stats END"

    // MARK: Verifications

    /// Records the newest verify of an artifact. A failure that shows damage (`damaged`: bytes changed, the
    /// format does not walk, the file is gone) marks a good artifact `corrupt`; a pass makes a corrupt one `ok`
    /// again. Both in one transaction. Returns the artifact's status afterwards.
    @discardableResult
    public func recordVerification(id: String, ok: Bool, damaged: Bool, detail: String, at date: Date) throws -> ArtifactStatus? {
        try write("record the verify of \(id)") { db in
            try db.execute(sql: """
                INSERT INTO verifications (artifact_id, verified_at, ok, detail) VALUES (?, ?, ?, ?)
                ON CONFLICT(artifact_id) DO UPDATE SET verified_at = excluded.verified_at, ok = excluded.ok, detail = excluded.detail
                """, arguments: [id, date, ok, detail])
            if ok {
                try db.execute(sql: "UPDATE artifacts SET status = 'ok' WHERE id = ? AND status = 'corrupt'", arguments: [id])
            } else if damaged {
                try db.execute(sql: "UPDATE artifacts SET status = 'corrupt' WHERE id = ? AND status = 'ok'", arguments: [id])
            }
            return try String.fetchOne(db, sql: "SELECT status FROM artifacts WHERE id = ?", arguments: [id]).flatMap(ArtifactStatus.init(rawValue:))
        }
    }

    // MARK: Removals (rotation)

    /// Step 1 of a removal: the artifacts are marked deleted and their removal recorded, in one transaction,
    /// before any file is touched. From here on nothing lists them as good backups.
    public func beginRemoval(ids: [String], at date: Date) throws {
        guard !ids.isEmpty else { return }
        try write("record the removal of \(ids.count) artifacts") { db in
            for id in ids {
                try db.execute(sql: "UPDATE artifacts SET deleted_at = ?, stats = \(Self.statsWithoutEntries) WHERE id = ? AND deleted_at IS NULL",
                               arguments: [date, id])
                try db.execute(sql: "INSERT OR IGNORE INTO removals (artifact_id, started_at) VALUES (?, ?)", arguments: [id, date])
            }
        }
    }

    /// Step 3: the files are gone.
    public func finishRemoval(ids: [String]) throws {
        guard !ids.isEmpty else { return }
        try write("finish the removal of \(ids.count) artifacts") { db in
            for id in ids { try db.execute(sql: "DELETE FROM removals WHERE artifact_id = ?", arguments: [id]) }
        }
    }

    /// Removals a crashed process began and did not finish: (id, source, path).
    public func pendingRemovals() throws -> [(id: String, source: String, path: String)] {
        try read("read pending removals") { db in
            try Row.fetchAll(db, sql: "SELECT a.id, a.source, a.path FROM removals r JOIN artifacts a ON a.id = r.artifact_id ORDER BY a.id")
                .map { ($0[0], $0[1], $0[2]) }
        }
    }

    // MARK: Off-site copies

    public func setOffsite(id: String, state: OffsiteState, detail: String?, at date: Date) throws {
        try write("record the off-site copy of \(id)") { db in
            try db.execute(sql: """
                INSERT INTO offsite (artifact_id, status, detail, updated_at) VALUES (?, ?, ?, ?)
                ON CONFLICT(artifact_id) DO UPDATE SET status = excluded.status, detail = excluded.detail, updated_at = excluded.updated_at
                """, arguments: [id, state.rawValue, detail, date])
        }
    }

    /// Good artifacts still on this host whose off-site copy is missing or failed, oldest first.
    public func artifactsNeedingOffsite() throws -> [ArtifactInfo] {
        try read("list artifacts to copy off-site") { db in
            try ArtifactRecord.fetchAll(db, sql: ArtifactRecord.selectWithRun
                + " WHERE a.status = 'ok' AND a.deleted_at IS NULL AND (o.status IS NULL OR o.status != 'ok') ORDER BY a.created_at")
                .map(\.model)
        }
    }

    /// The newest good artifact of `source` created before `date`, still on this host, whose off-site copy is
    /// whole: what an off-site copy of a later artifact can be made incremental to.
    public func lastOffsiteCopy(source: String, before date: Date) throws -> ArtifactInfo? {
        try read("find the last off-site copy of \(source)") { db in
            try ArtifactRecord.fetchOne(db, sql: ArtifactRecord.selectWithRun
                + " WHERE a.source = ? AND a.status = 'ok' AND a.deleted_at IS NULL AND o.status = 'ok' AND a.created_at < ? ORDER BY a.created_at DESC LIMIT 1",
                arguments: [source, date])?.model
        }
    }

    /// Copies the whole catalog, consistently, into a new SQLite file (the online backup API).
    public func backup(to path: String) throws {
        do {
            let target = try DatabaseQueue(path: path)
            try dbQueue.backup(to: target)
            try target.close()
        } catch {
            throw CatalogError(path: path, operation: "copy the catalog to", underlying: error)
        }
    }

    /// SQLite's own check of the file (`PRAGMA integrity_check`): nil when sound, else what it found.
    public func integrityProblem() -> String? {
        do {
            let rows = try read("check the catalog") { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
            return rows == ["ok"] ? nil : rows.prefix(3).joined(separator: "; ")
        } catch {
            return "\(error)"
        }
    }

    /// Why this catalog, a copy found in a repository (`catalog-copy/`, or the off-site one), is not to be started
    /// from by a catalog rebuild, or nil: SQLite finds it damaged ("damaged (…)"), or a row does not describe a
    /// file of the repository's layout. A copy is untrusted (the off-site one above all): every row must be of our
    /// layout, its time its id's, or the whole copy is refused (a re-dated row would let rotation remove a real
    /// backup; a `../` path would be read by verify). Throws when its rows cannot be read.
    public func copyRefusal() throws -> String? {
        if let problem = integrityProblem() { return "damaged (\(problem))" }
        let outside = try artifacts(includeDeleted: true).compactMap { a -> String? in
            if a.path.isEmpty && a.status != .ok { return nil } // a backup that failed before it had a file
            return RepositoryLayout.problem(id: a.id, source: a.source, path: a.path, createdAt: a.createdAt).map { "\(a.id): \($0)" }
        }
        if !outside.isEmpty {
            return "\(outside.count) row(s) do not describe files of the repository's layout (\(outside[0]))"
        }
        return nil
    }

    /// Why an untrusted catalog file (another host's copy, a copy to rebuild from) must not even be opened as a
    /// catalog, or nil: it holds views or triggers (our schema has none: a view can answer a different row at each
    /// read, a trigger runs code on our writes, the migration's included). Read with a read-only connection before
    /// anything migrates it.
    public static func schemaRefusal(path: String) -> String? {
        var config = Configuration()
        config.readonly = true
        do {
            let queue = try DatabaseQueue(path: path, configuration: config)
            defer { try? queue.close() }
            let odd = try queue.read { db in
                try String.fetchAll(db, sql: "SELECT type || ' ' || name FROM sqlite_master WHERE type IN ('view', 'trigger') ORDER BY name LIMIT 5")
            }
            return odd.isEmpty ? nil : "it holds what no catalog of ours does (\(odd.joined(separator: ", ")))"
        } catch {
            return "it cannot be read as SQLite (\(error))"
        }
    }

    /// The start of the newest run recorded: how recent what this catalog knows is.
    public func newestRunStart() throws -> Date? {
        try read("find the newest run") { db in try Date.fetchOne(db, sql: "SELECT MAX(started_at) FROM runs") }
    }

    public func runCount() throws -> Int {
        try read("count runs") { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM runs") ?? 0 }
    }

    /// Every artifact id, removed ones included.
    public func artifactIDs() throws -> Set<String> {
        try read("list artifact ids") { db in Set(try String.fetchAll(db, sql: "SELECT id FROM artifacts")) }
    }

    // MARK: Runs

    public func insertRun(_ run: RunInfo) throws {
        try write("record run \(run.id)") { db in try RunRecord(run).insert(db) }
    }

    public func finishRun(id: String, status: RunStatus, at date: Date) throws {
        try write("finish run \(id)") { db in
            try db.execute(sql: "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                           arguments: [status.rawValue, date, id])
        }
    }

    /// The newest runs, newest first.
    public func runs(limit: Int) throws -> [RunInfo] {
        try read("list runs") { db in
            try RunRecord.fetchAll(db, sql: "SELECT * FROM runs ORDER BY started_at DESC, id DESC LIMIT ?", arguments: [limit]).map(\.model)
        }
    }

    public func run(id: String) throws -> RunInfo? {
        try read("read run \(id)") { db in try RunRecord.fetchOne(db, key: id)?.model }
    }

    // MARK: Artifacts

    public func insertArtifact(_ artifact: ArtifactInfo) throws {
        try write("record artifact \(artifact.id)") { db in try ArtifactRecord(artifact).insert(db) }
    }

    /// Rewrites every stored column of the artifact (status, sizes, checksum, stats, ...).
    public func updateArtifact(_ artifact: ArtifactInfo) throws {
        try write("update artifact \(artifact.id)") { db in try ArtifactRecord(artifact).update(db) }
    }

    /// Artifacts newest first, with their run's tag and release.
    public func artifacts(source: String? = nil, status: ArtifactStatus? = nil, includeDeleted: Bool = false,
                          limit: Int? = nil) throws -> [ArtifactInfo] {
        try read("list artifacts") { db in
            var sql = ArtifactRecord.selectWithRun + " WHERE 1=1"
            var args: StatementArguments = []
            if let source { sql += " AND a.source = ?"; args += [source] }
            if let status { sql += " AND a.status = ?"; args += [status.rawValue] }
            if !includeDeleted { sql += " AND a.deleted_at IS NULL" }
            sql += " ORDER BY a.created_at DESC, a.id DESC"
            if let limit { sql += " LIMIT ?"; args += [limit] }
            return try ArtifactRecord.fetchAll(db, sql: sql, arguments: args).map(\.model)
        }
    }

    public func artifacts(runID: String) throws -> [ArtifactInfo] {
        try read("list artifacts of run \(runID)") { db in
            try ArtifactRecord.fetchAll(db, sql: ArtifactRecord.selectWithRun + " WHERE a.run_id = ? ORDER BY a.source",
                                        arguments: [runID]).map(\.model)
        }
    }

    /// The artifact whose id is `idOrPrefix`, or the only one whose id starts with it.
    public func artifact(matching idOrPrefix: String) throws -> ArtifactInfo? {
        // Ids are short; anything longer is no id (and would make a LIKE pattern too complex for SQLite).
        guard !idOrPrefix.isEmpty, idOrPrefix.utf8.count <= 80 else { return nil }
        let rows = try read("find artifact \(idOrPrefix)") { db in
            try ArtifactRecord.fetchAll(db, sql: ArtifactRecord.selectWithRun + " WHERE a.id = ? OR a.id LIKE ? ESCAPE '\\' ORDER BY a.id LIMIT 3",
                                        arguments: [idOrPrefix, Self.likePrefix(idOrPrefix)]).map(\.model)
        }
        if let exact = rows.first(where: { $0.id == idOrPrefix }) { return exact }
        if rows.count > 1 {
            throw BackupFailure("artifact id \"\(idOrPrefix)\" is ambiguous: it starts \(rows.map(\.id).joined(separator: ", "))…",
                                exitStatus: .usage, hint: "give more characters of the id (kaleem-backup list)")
        }
        return rows.first
    }

    /// What the retention planner needs of every artifact of the given sources that is not deleted, with its
    /// path, grouped by source, newest first. A catalog can hold a million artifacts, so this is lean: one
    /// query per source answered from the covering index `artifacts_live_for_retention` (no wide rows, no
    /// join: the few runs that are not plain nightly ones are looked up in a small dictionary), dates converted
    /// by SQLite, and the rows stepped with SQLite's own API rather than decoded column by column.
    /// - Parameter withPaths: false for a plan that will not be carried out (paths are left empty, and the
    ///   table itself is never read).
    public func retentionCandidates(sources: [String], withPaths: Bool = true) throws -> [String: RetentionRows] {
        try read("read artifacts for retention") { db in
            // Runs whose tag or release matters to the planner; every other artifact's run is a nightly one.
            var special: [String: (tag: RunTag, release: String?)] = [:]
            let runRows = try Row.fetchCursor(db, sql: "SELECT id, tag, release FROM runs WHERE tag <> 'nightly' OR release IS NOT NULL")
            while let row = try runRows.next() {
                special[row[0]] = (RunTag(rawValue: row[1]) ?? .manual, row[2])
            }
            let sql = """
                SELECT id, CAST(round((julianday(created_at) - 2440587.5) * 86400000.0) AS INTEGER), status, pinned,
                       pin_reason, \(withPaths ? "path" : "NULL"), run_id
                FROM artifacts INDEXED BY artifacts_live_for_retention
                WHERE source = ? AND deleted_at IS NULL
                ORDER BY created_at DESC, id DESC
                """
            let statement = try db.makeStatement(sql: sql)
            var out: [String: RetentionRows] = [:]
            for source in sources where out[source] == nil {
                try statement.setArguments([source])
                let handle = statement.sqliteStatement
                var rows = RetentionRows()
                while true {
                    let step = sqlite3_step(handle)
                    if step == SQLITE_DONE { break }
                    guard step == SQLITE_ROW else {
                        throw DatabaseError(resultCode: ResultCode(rawValue: step), message: String(cString: sqlite3_errmsg(db.sqliteConnection)), sql: sql)
                    }
                    func text(_ column: Int32) -> String? {
                        guard let bytes = sqlite3_column_text(handle, column) else { return nil }
                        return String(cString: bytes)
                    }
                    let runID = special.isEmpty ? nil : text(6)
                    let run = runID.flatMap { special[$0] }
                    let candidate = RetentionCandidate(
                        id: text(0) ?? "", createdAt: Date(timeIntervalSince1970: Double(sqlite3_column_int64(handle, 1)) / 1000),
                        status: Self.status(sqlite3_column_text(handle, 2)), tag: run?.tag ?? .nightly, release: run?.release,
                        pinned: sqlite3_column_int64(handle, 3) != 0, pinReason: text(4))
                    rows.candidates.append(candidate)
                    if withPaths { rows.paths.append(text(5) ?? "") }
                }
                sqlite3_reset(handle)
                out[source] = rows
            }
            return out
        }
    }

    /// An artifact status from its text in the catalog, without making a string (a rotation reads a million).
    private static func status(_ text: UnsafePointer<UInt8>?) -> ArtifactStatus {
        guard let text else { return .failed }
        switch (text[0], text[0] == 0 ? 0 : text[1]) {
        case (UInt8(ascii: "o"), UInt8(ascii: "k")) where text[2] == 0: return .ok
        default: return ArtifactStatus(rawValue: String(cString: text)) ?? .failed
        }
    }

    /// What the metrics of one source are made of, read from the catalog so that a command that touched one
    /// source still reports every source's last values.
    public func sourceSummaries() throws -> [SourceSummary] {
        try read("summarize sources for metrics") { db in
            let sources = try String.fetchAll(db, sql: "SELECT DISTINCT source FROM artifacts ORDER BY source")
            return try sources.map { source in
                var s = SourceSummary(source: source)
                let last = "SELECT created_at, bytes_stored, json_extract(stats, '$.duration_seconds'), bytes_raw, kind FROM artifacts WHERE source = ? AND status = ? ORDER BY created_at DESC LIMIT 1"
                if let row = try Row.fetchOne(db, sql: last, arguments: [source, "ok"]) {
                    s.lastSuccess = row[0]
                    s.lastSuccessBytes = row[1]
                    s.lastSuccessDuration = row[2]
                    s.lastSuccessRawBytes = row[3]
                    s.lastSuccessKind = row[4]
                }
                if let row = try Row.fetchOne(db, sql: "SELECT created_at, status, bytes_stored, json_extract(stats, '$.duration_seconds') FROM artifacts WHERE source = ? AND status != 'running' ORDER BY created_at DESC LIMIT 1", arguments: [source]) {
                    s.lastRun = row[0]
                    // A backup later found corrupt was a run that succeeded: that is BackupCorrupt's to say.
                    s.lastRunOK = ["ok", "corrupt"].contains(row[1] as String)
                }
                for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) FROM artifacts WHERE source = ? GROUP BY status", arguments: [source]) {
                    s.runsByStatus[row[0]] = row[1]
                }
                s.removedByRotation = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM artifacts WHERE source = ? AND deleted_at IS NOT NULL", arguments: [source]) ?? 0
                if let row = try Row.fetchOne(db, sql: "SELECT started_at, duration_seconds, result FROM drills WHERE source = ? ORDER BY started_at DESC LIMIT 1", arguments: [source]) {
                    s.lastDrill = row[0]
                    s.lastDrillPassed = ["passed", "archive-only"].contains(row[2] as String)
                    s.lastDrillDuration = row[1]
                }
                if let row = try Row.fetchOne(db, sql: "SELECT started_at, duration_seconds FROM drills WHERE source = ? AND result IN ('passed', 'archive-only') ORDER BY started_at DESC LIMIT 1", arguments: [source]) {
                    s.lastDrillSuccess = row[0]
                    s.lastDrillSuccessDuration = row[1]
                }
                // The newest good backup with a good off-site copy (its time, not the upload's): the off-site lag
                // is the newest good backup's time minus this one.
                if let row = try Row.fetchOne(db, sql: "SELECT a.created_at FROM artifacts a JOIN offsite o ON o.artifact_id = a.id WHERE a.source = ? AND a.status = 'ok' AND o.status = 'ok' ORDER BY a.created_at DESC LIMIT 1", arguments: [source]) {
                    s.lastOffsiteSuccess = row[0]
                }
                // The newest good pre-deploy restore point still kept (hook pre-deploy's backups).
                if let row = try Row.fetchOne(db, sql: "SELECT a.created_at FROM artifacts a JOIN runs r ON r.id = a.run_id WHERE a.source = ? AND a.status = 'ok' AND a.deleted_at IS NULL AND r.tag = 'pre-deploy' ORDER BY a.created_at DESC LIMIT 1", arguments: [source]) {
                    s.lastPreDeploy = row[0]
                }
                s.offsiteFailed = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM artifacts a JOIN offsite o ON o.artifact_id = a.id WHERE a.source = ? AND a.status = 'ok' AND a.deleted_at IS NULL AND o.status = 'failed'", arguments: [source]) ?? 0
                if let row = try Row.fetchOne(db, sql: "SELECT v.verified_at, v.ok FROM verifications v JOIN artifacts a ON a.id = v.artifact_id WHERE a.source = ? ORDER BY v.verified_at DESC LIMIT 1", arguments: [source]) {
                    s.lastVerify = row[0]
                    s.lastVerifyOK = row[1]
                }
                s.corrupt = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM artifacts WHERE source = ? AND status = 'corrupt' AND deleted_at IS NULL", arguments: [source]) ?? 0
                return s
            }
        }
    }

    public func setPinned(id: String, pinned: Bool, reason: String?) throws {
        try write("pin artifact \(id)") { db in
            try db.execute(sql: "UPDATE artifacts SET pinned = ?, pin_reason = ? WHERE id = ?",
                           arguments: [pinned, pinned ? reason : nil, id])
        }
    }

    /// Marks every run and artifact left `running` by a process that died as `failed`, and returns those
    /// artifacts. Call only while holding the repository's run lock (so no live run is touched).
    @discardableResult
    public func markInterrupted(at date: Date) throws -> [ArtifactInfo] {
        try write("mark interrupted runs") { db in
            let stale = try ArtifactRecord.fetchAll(db, sql: ArtifactRecord.selectWithRun + " WHERE a.status = 'running'").map(\.model)
            try db.execute(sql: "UPDATE artifacts SET status = 'failed', detail = ? WHERE status = 'running'",
                           arguments: ["interrupted: the backup process stopped before it finished"])
            try db.execute(sql: "UPDATE runs SET status = 'failed', finished_at = ? WHERE status = 'running'", arguments: [date])
            return stale
        }
    }

    // MARK: Drills

    public func insertDrill(_ drill: DrillRecord) throws {
        try write("record drill \(drill.id)") { db in
            try db.execute(sql: "INSERT INTO drills (id, artifact_id, source, started_at, duration_seconds, result, detail, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           arguments: [drill.id, drill.artifactID, drill.source, drill.startedAt, drill.durationSeconds,
                                       drill.result.rawValue, drill.detail, drill.host])
        }
    }

    /// Drills newest first (of one source, or one artifact).
    public func drills(source: String? = nil, artifactID: String? = nil, limit: Int? = nil) throws -> [DrillRecord] {
        try read("list drills") { db in
            var sql = "SELECT id, artifact_id, source, started_at, duration_seconds, result, detail, host FROM drills WHERE 1=1"
            var args: StatementArguments = []
            if let source { sql += " AND source = ?"; args += [source] }
            if let artifactID { sql += " AND artifact_id = ?"; args += [artifactID] }
            sql += " ORDER BY started_at DESC"
            if let limit { sql += " LIMIT ?"; args += [limit] }
            return try Row.fetchAll(db, sql: sql, arguments: args).map { row in
                DrillRecord(id: row[0], artifactID: row[1], source: row[2], startedAt: row[3], durationSeconds: row[4],
                            result: DrillResult(rawValue: row[5]) ?? .error, detail: row[6], host: row[7])
            }
        }
    }

    // MARK: Restores

    /// Records a restore: who, when, what, into what (secrets hidden by the caller), outcome, duration.
    public func insertRestore(id: String, artifactID: String, source: String, startedAt: Date, durationSeconds: Double,
                              mode: String, target: String, outcome: String, user: String, host: String, detail: String) throws {
        try write("record restore \(id)") { db in
            try db.execute(sql: "INSERT INTO restores (id, artifact_id, source, started_at, duration_seconds, mode, target, outcome, user, host, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           arguments: [id, artifactID, source, startedAt, durationSeconds, mode, target, outcome, user, host, detail])
        }
    }

    /// Restores newest first: (id, artifact, mode, target, outcome, detail).
    public func restores(source: String) throws -> [(id: String, artifactID: String, mode: String, target: String, outcome: String, detail: String)] {
        try read("list restores") { db in
            try Row.fetchAll(db, sql: "SELECT id, artifact_id, mode, target, outcome, detail FROM restores WHERE source = ? ORDER BY started_at DESC",
                             arguments: [source]).map { ($0[0], $0[1], $0[2], $0[3], $0[4], $0[5]) }
        }
    }

    // MARK: Restores and drills of another host's backups (#38)

    /// A drill (or a refresh, which is recorded as a drill) of host `fromHost`'s backup `drill.artifactID`.
    public func insertFromHostDrill(_ drill: DrillRecord, fromHost: String, purpose: String) throws {
        try write("record drill \(drill.id) of host \(fromHost)") { db in
            try db.execute(sql: "INSERT INTO from_host_drills (id, from_host, artifact_id, source, started_at, duration_seconds, result, detail, host, purpose) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           arguments: [drill.id, fromHost, drill.artifactID, drill.source, drill.startedAt, drill.durationSeconds,
                                       drill.result.rawValue, drill.detail, drill.host, purpose])
        }
    }

    /// Drills of other hosts' backups, newest first: (the other host, why: drill or refresh, the drill).
    public func fromHostDrills(fromHost: String? = nil, limit: Int? = nil) throws -> [(fromHost: String, purpose: String, drill: DrillRecord)] {
        try read("list drills of other hosts") { db in
            var sql = "SELECT id, artifact_id, source, started_at, duration_seconds, result, detail, host, from_host, purpose FROM from_host_drills"
            var args: StatementArguments = []
            if let fromHost { sql += " WHERE from_host = ?"; args += [fromHost] }
            sql += " ORDER BY started_at DESC, id DESC"
            if let limit { sql += " LIMIT ?"; args += [limit] }
            return try Row.fetchAll(db, sql: sql, arguments: args).map { row -> (fromHost: String, purpose: String, drill: DrillRecord) in
                let fromHost: String = row[8]
                let purpose: String = row[9]
                let drill = DrillRecord(id: row[0], artifactID: row[1], source: row[2], startedAt: row[3], durationSeconds: row[4],
                                        result: DrillResult(rawValue: row[5]) ?? .error, detail: row[6], host: row[7])
                return (fromHost, purpose, drill)
            }
        }
    }

    /// A refresh of one of this host's backups done by another host (its receipt, read by `ReceiptCollector`).
    public struct RefreshByOtherHost: Sendable, Equatable {
        public var byHost: String
        public var drillID: String
        public var receipt: String
        public var artifactID: String
        public var source: String
        public var refreshedAt: Date
        public var durationSeconds: Double
        public var result: DrillResult
        public var detail: String
        public var collectedAt: Date

        public init(byHost: String, drillID: String, receipt: String, artifactID: String, source: String, refreshedAt: Date,
                    durationSeconds: Double, result: DrillResult, detail: String, collectedAt: Date) {
            self.byHost = byHost
            self.drillID = drillID
            self.receipt = receipt
            self.artifactID = artifactID
            self.source = source
            self.refreshedAt = refreshedAt
            self.durationSeconds = durationSeconds
            self.result = result
            self.detail = detail
            self.collectedAt = collectedAt
        }
    }

    /// Records refreshes by other hosts; one already recorded (the same host and drill id) is left as it was.
    /// Returns how many were new.
    @discardableResult
    public func insertRefreshesByOtherHosts(_ rows: [RefreshByOtherHost]) throws -> Int {
        guard !rows.isEmpty else { return 0 }
        return try write("record \(rows.count) refresh(es) by other hosts") { db in
            var added = 0
            for r in rows {
                try db.execute(sql: "INSERT OR IGNORE INTO refreshes_by_other_hosts (by_host, drill_id, receipt, artifact_id, source, refreshed_at, duration_seconds, result, detail, collected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               arguments: [r.byHost, r.drillID, r.receipt, r.artifactID, r.source, r.refreshedAt, r.durationSeconds, r.result.rawValue, r.detail, r.collectedAt])
                added += db.changesCount
            }
            return added
        }
    }

    /// The receipts already read from `byHost` (their keys).
    public func collectedReceipts(byHost: String) throws -> Set<String> {
        try read("list collected receipts") { db in
            Set(try String.fetchAll(db, sql: "SELECT DISTINCT receipt FROM refreshes_by_other_hosts WHERE by_host = ?", arguments: [byHost]))
        }
    }

    /// Refreshes of this host's backups by other hosts, newest first (of one source when given).
    public func refreshesByOtherHosts(source: String? = nil, limit: Int? = nil) throws -> [RefreshByOtherHost] {
        try read("list refreshes by other hosts") { db in
            var sql = "SELECT by_host, drill_id, receipt, artifact_id, source, refreshed_at, duration_seconds, result, detail, collected_at FROM refreshes_by_other_hosts"
            var args: StatementArguments = []
            if let source { sql += " WHERE source = ?"; args += [source] }
            sql += " ORDER BY refreshed_at DESC, by_host, drill_id"
            if let limit { sql += " LIMIT ?"; args += [limit] }
            return try Row.fetchAll(db, sql: sql, arguments: args).map { row in
                RefreshByOtherHost(byHost: row[0], drillID: row[1], receipt: row[2], artifactID: row[3], source: row[4], refreshedAt: row[5],
                                   durationSeconds: row[6], result: DrillResult(rawValue: row[7]) ?? .error, detail: row[8], collectedAt: row[9])
            }
        }
    }

    /// Every restore of this catalog, newest first (a scratch catalog's, to be carried over to this host's).
    public func allRestores() throws -> [RestoreRow] {
        try read("list restores") { db in
            try Row.fetchAll(db, sql: "SELECT id, artifact_id, source, started_at, duration_seconds, mode, target, outcome, user, host, detail FROM restores ORDER BY started_at DESC").map { row -> RestoreRow in
                RestoreRow(id: row[0], artifactID: row[1], source: row[2], startedAt: row[3], durationSeconds: row[4], mode: row[5], target: row[6],
                           outcome: row[7], user: row[8], host: row[9], detail: row[10])
            }
        }
    }

    /// A restore of host `fromHost`'s backup into this host's targets.
    public func insertFromHostRestore(_ r: RestoreRow, fromHost: String) throws {
        try write("record restore \(r.id) of host \(fromHost)") { db in
            try db.execute(sql: "INSERT INTO from_host_restores (id, from_host, artifact_id, source, started_at, duration_seconds, mode, target, outcome, user, host, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           arguments: [r.id, fromHost, r.artifactID, r.source, r.startedAt, r.durationSeconds, r.mode, r.target, r.outcome, r.user, r.host, r.detail])
        }
    }

    /// Restores of other hosts' backups, newest first: (the other host, the restore).
    public func fromHostRestores(fromHost: String? = nil) throws -> [(fromHost: String, restore: RestoreRow)] {
        try read("list restores of other hosts") { db in
            var sql = "SELECT id, artifact_id, source, started_at, duration_seconds, mode, target, outcome, user, host, detail, from_host FROM from_host_restores"
            var args: StatementArguments = []
            if let fromHost { sql += " WHERE from_host = ?"; args += [fromHost] }
            sql += " ORDER BY started_at DESC, id DESC"
            return try Row.fetchAll(db, sql: sql, arguments: args).map { row -> (fromHost: String, restore: RestoreRow) in
                let fromHost: String = row[11]
                let restore = RestoreRow(id: row[0], artifactID: row[1], source: row[2], startedAt: row[3], durationSeconds: row[4], mode: row[5],
                                         target: row[6], outcome: row[7], user: row[8], host: row[9], detail: row[10])
                return (fromHost, restore)
            }
        }
    }

    // MARK: Deployments

    public func insertDeployment(_ d: DeploymentEvent) throws {
        try write("record deployment of \(d.release)") { db in
            try db.execute(sql: "INSERT INTO deployments (id, release, environment, service, event, duration_seconds, reason, recorded_at, host, deploy_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           arguments: [d.id, d.release, d.environment, d.service, d.event.rawValue, d.durationSeconds, d.reason, d.recordedAt, d.host, d.deployID])
        }
    }

    public func deployments() throws -> [DeploymentEvent] {
        try read("list deployments") { db in
            try Row.fetchAll(db, sql: "SELECT id, release, environment, service, event, duration_seconds, reason, recorded_at, host, deploy_id FROM deployments ORDER BY recorded_at").map {
                let raw: String = $0[4]
                guard let event = DeploymentOutcome(rawValue: raw) else {
                    throw UnknownCatalogValue(problem: "deployment \(String(reflecting: $0[1] as String)) has the event \(String(reflecting: raw)), not one of \(DeploymentOutcome.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return DeploymentEvent(id: $0[0], release: $0[1], environment: $0[2], service: $0[3], event: event, durationSeconds: $0[5],
                                       reason: $0[6], recordedAt: $0[7], host: $0[8], deployID: $0[9])
            }
        }
    }

    /// Runs tagged pre-deploy for a release, newest first.
    public func preDeployRuns(release: String) throws -> [RunInfo] {
        try read("find pre-deploy runs of \(release)") { db in
            try RunRecord.fetchAll(db, sql: "SELECT * FROM runs WHERE tag = 'pre-deploy' AND release = ? ORDER BY started_at DESC",
                                   arguments: [release]).map(\.model)
        }
    }

    // MARK: Plumbing

    static func likePrefix(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_") + "%"
    }

    private func read<T>(_ operation: String, _ body: (Database) throws -> T) throws -> T {
        do { return try dbQueue.read(body) }
        catch let e as UserFacingError { throw e }
        catch { throw CatalogError(path: path, operation: operation, underlying: error) }
    }

    private func write<T>(_ operation: String, _ body: (Database) throws -> T) throws -> T {
        do { return try dbQueue.write(body) }
        catch let e as UserFacingError { throw e }
        catch { throw CatalogError(path: path, operation: operation, underlying: error) }
    }
}

/// A value in the catalog this build does not know (a newer build wrote it, or the file was edited).
struct UnknownCatalogValue: Error, CustomStringConvertible {
    var problem: String
    var description: String { problem }
}

/// A catalog operation that failed (unreadable file, full disk, schema from a newer version, ...).
public struct CatalogError: UserFacingError {
    public var path: String
    public var operation: String
    public var underlying: Error

    public var exitStatus: ExitStatus { .failed }
    public var description: String {
        let detail: String
        if let db = underlying as? DatabaseError {
            detail = db.message ?? "SQLite error \(db.resultCode)"
        } else {
            detail = "\(underlying)"
        }
        return "catalog \(path): cannot \(operation): \(detail)"
    }
    public var hint: String? {
        if let db = underlying as? DatabaseError {
            switch db.resultCode {
            case .SQLITE_FULL:
                return "the disk holding the catalog is full: free space (kaleem-backup rotate removes what retention no longer keeps, as soon as the catalog can be written)"
            case .SQLITE_CORRUPT, .SQLITE_NOTADB:
                let dir = (path as NSString).deletingLastPathComponent
                return "the catalog is damaged: move it aside, then either copy \(dir)/catalog-copy/catalog.sqlite (the copy made after every run) in its place, or run `kaleem-backup catalog rebuild` (from the manifests)"
            default:
                break
            }
        }
        return "check that the catalog's directory exists, is writable and has free space; a lost catalog can be rebuilt from the repository's manifests (kaleem-backup catalog rebuild) or copied back from catalog-copy/"
    }
}

/// The catalog's view of one source, for metrics.
public struct SourceSummary: Sendable, Equatable {
    public var source: String
    public var lastSuccess: Date?
    public var lastSuccessBytes: Int64?
    /// The newest good backup's raw (logical) size and its kind: a snapshot's metric size is its logical size.
    public var lastSuccessRawBytes: Int64?
    public var lastSuccessKind: String?
    public var lastSuccessDuration: Double?
    public var lastRun: Date?
    public var lastRunOK: Bool?
    public var runsByStatus: [String: Int] = [:]
    public var removedByRotation = 0
    public var lastDrill: Date?
    public var lastDrillPassed: Bool?
    public var lastDrillDuration: Double?
    public var lastDrillSuccess: Date?
    public var lastDrillSuccessDuration: Double?
    /// Good artifacts (not removed) whose off-site copy failed.
    public var offsiteFailed = 0
    /// The creation time of the newest good artifact whose off-site copy is good (nil: none copied yet).
    public var lastOffsiteSuccess: Date?
    /// The creation time of the newest good pre-deploy restore point (not removed) of the source.
    public var lastPreDeploy: Date?
    /// The newest `verify` of any artifact of the source, and whether it passed.
    public var lastVerify: Date?
    public var lastVerifyOK: Bool?
    /// Artifacts (not removed) that a verify found damaged.
    public var corrupt = 0

    public init(source: String) { self.source = source }
}

/// What happened to a release: stored as its raw value in `deployments.event` and used as the `status` label
/// of the deployment metrics.
public enum DeploymentOutcome: String, Sendable, Codable, CaseIterable {
    case success, failed, rollback
}

/// One deployment event of the deploy script: a release went out (success or failed) or was rolled back.
public struct DeploymentEvent: Sendable, Equatable {
    public var id: String
    public var release: String
    public var environment: String
    public var service: String
    public var event: DeploymentOutcome
    public var durationSeconds: Double?
    public var reason: String?
    public var recordedAt: Date
    public var host: String
    /// The deploy attempt it belongs to (the deploy script's id, else the attempt's pre-deploy set); nil for
    /// events recorded before attempts were told apart.
    public var deployID: String?

    public init(id: String, release: String, environment: String, service: String, event: DeploymentOutcome, durationSeconds: Double?,
                reason: String?, recordedAt: Date, host: String, deployID: String? = nil) {
        self.deployID = deployID
        self.id = id
        self.release = release
        self.environment = environment
        self.service = service
        self.event = event
        self.durationSeconds = durationSeconds
        self.reason = reason
        self.recordedAt = recordedAt
        self.host = host
    }
}
