// The source seam: one protocol that every kind of source implements. The engine's services (backup runner,
// verifier, restorer, drill runner, rotator, off-site replicator, deploy hooks) never ask "which kind is
// this?": they ask the kind's adapter, found in the registry (SourceRegistry.swift, the only list of kinds).
// Adding a kind = one folder under Kinds/ with a type conforming to SourceAdapter + one registration line.
import ArtifactStore
import BackupCore
import Foundation

/// How a kind stores one backup.
public enum ArtifactLayout: Sendable, Equatable {
    /// One stream of bytes, stored as `<id>.<extension>.gz` (gzip, then age when encryption is on): the adapter
    /// writes the bytes, the pipeline compresses, hashes and makes them durable.
    case stream(extension: String)
    /// A manifest `<id>.snapshot.json` naming content-addressed files the adapter stores itself (bucket blobs).
    case snapshot
}

/// A source of the policy with its settings as its kind's own type. The seam opens `SourcePolicy.settings`
/// once (`SourceAdapter.typed`), so an adapter never casts; `source.name`, `source.kind`, `source.location`, …
/// read the policy's entry.
@dynamicMemberLookup
struct TypedSource<Settings: SourceSettings>: Sendable {
    let policy: SourcePolicy
    let settings: Settings

    subscript<T>(dynamicMember path: KeyPath<SourcePolicy, T>) -> T { policy[keyPath: path] }
}

/// One kind of source. Adapters are stateless values; everything they need from the engine comes through the
/// `SourceContext` they are given (catalog, repository, secrets, clock, logger, verification, off-site fetch).
/// A kind adopts `StreamKind` (one compressed stream, optionally `ImportingKind`) or `SnapshotKind`
/// (content-addressed files of its own): its layout is which one.
protocol SourceAdapter: SourceSettingsParser {
    /// The kind's own settings (`sources.<name>` as `parseSettings` reads it): what its methods are handed.
    associatedtype Settings: SourceSettings
    /// Where and how a restore of this kind goes, read from its `restore` options (`restoreTarget`).
    associatedtype RestoreTarget

    /// `kind:` in the policy.
    var kind: SourceKind { get }
    /// One line for `restore --help` and `policy check`.
    var summary: String { get }

    // MARK: checks
    /// Problems `policy check` reports and that refuse a backup before it starts (exit 2): files a source must
    /// not store (secrets in clear), things that must exist. Empty when all is well.
    func check(_ source: TypedSource<Settings>, policy: Policy) throws -> [String]

    // MARK: restore, drill, rollback
    /// The kind's own `restore` options (beside the common --backup/--latest/--before/--dry-run/--yes).
    var restoreOptions: [RestoreOptionSpec] { get }
    /// Where and how this kind restores, read from its options (`restoreOptions`, parsed) and checked: no I/O
    /// beyond a password file, so that a usage error (exit 2) comes before the backup is read.
    func restoreTarget(_ source: TypedSource<Settings>, _ options: RestoreOptions) throws -> RestoreTarget
    /// What restoring `artifact` (verified by the restorer) into `target` will do, as data: the lines for a
    /// person, the catalog's mode and target, whether the target needs --yes, what a dry run says, and the
    /// apply step. Reads only (what it opens, `RestorePlan.close` releases); the restorer prints, asks, runs
    /// and records (Services/Restorer.swift).
    func planRestore(_ artifact: ArtifactInfo, into target: RestoreTarget, source: TypedSource<Settings>, request: RestoreRequest,
                     context: SourceContext) async throws -> RestorePlan
    /// Restores into a scratch target the adapter creates (never the source), checks it, removes it.
    func drill(_ artifact: ArtifactInfo, source: TypedSource<Settings>, context: SourceContext) async -> (DrillResult, String)
    /// Whether `hook rollback --restore-data` restores this kind without being named (Redis, MongoDB: yes;
    /// buckets: only with --include-buckets or --include SOURCE, uploads after a deploy are users' data).
    var restoresOnRollbackByDefault: Bool { get }
    /// `hook rollback`: restores the pre-deploy artifact into the live source (`restoreData`, through
    /// `context.restore`: the restorer's lifecycle), or returns the exact commands that would.
    func rollback(_ artifact: ArtifactInfo, source: TypedSource<Settings>, restoreData: Bool, context: SourceContext) async throws -> [String]

    // MARK: preflight
    /// `policy check --connect`: connects as a backup would and says what works, one check per line (reachable,
    /// authorized, the tools its backup, restore and drill run). Reads only; never throws (a failure is a check).
    func preflight(_ source: TypedSource<Settings>, context: SourceContext) async -> [PreflightCheck]
    /// `policy check --connect`, once for the kind when the policy has sources of it, before the sources'
    /// `preflight`: what concerns the policy as a whole (MongoDB: the Compose project of each Compose command of
    /// its sources and of its `drill:`/`restore:` keys). Reads only; never throws.
    func preflightPolicy(context: SourceContext) async -> [PreflightCheck]

    // MARK: look
    /// `ls`: hands every entry of the backup that `filter` accepts to `emit`, in the backup's own order, holding
    /// no more than one entry (and the kind's small index) in memory.
    func contents(_ artifact: ArtifactInfo, filter: ContentFilter, context: SourceContext, emit: (ContentEntry) throws -> Void) async throws
    /// `diff`, when the kind can do better than the generic one (which keeps the older backup's paths and
    /// digests): both backups' entries merged in their order. Nil: use the generic one.
    func diff(_ from: ArtifactInfo, _ to: ArtifactInfo, filter: ContentFilter, context: SourceContext) async throws -> ContentDiff?

    // MARK: repository
    /// Files beside the artifact and its manifest that belong to it (relative paths, sha256 when known), for
    /// the off-site copy, handed to `emit` one at a time. With `since` (an earlier artifact of the source whose
    /// off-site copy is whole), the kind may leave out the files that one holds too: an unchanged night copies
    /// almost nothing. Files a file depends on come before it.
    func forEachExtraFile(of artifact: ArtifactInfo, since base: ArtifactInfo?, context: SourceContext,
                          _ emit: (_ relative: String, _ sha256: String?) async throws -> Void) async throws
    /// A directory of files shared by several artifacts of a source (relative, ending in `/`), or nil.
    func sharedDirectory(source: String) -> String?
    /// After rotation removed artifacts of the source: removes shared files no remaining artifact references.
    func collectGarbage(source: String, context: SourceContext) async
    /// Deletes the remote shared files of the source that no remaining artifact references; returns how many.
    func removeUnusedRemoteFiles(source: String, remote: any Repository, context: SourceContext) async throws -> Int

    // MARK: what the engine and the CLI show of the kind (#37 item 3); defaults in the extension below
    /// The DETAIL column of `list` and `show` for a good backup of this kind, from the stats it recorded
    /// (`3 keys, RDB v11`); empty: nothing to say.
    func detailSummary(stats: [String: JSONValue]) -> String
    /// The kind's own `ls`/`diff` filters beside --prefix and --match (Redis: --db, MongoDB: --deep), read from
    /// `ContentFilter.options` by its `contents`.
    var contentFilters: [ContentFilterOption] { get }
    /// The generic `diff`'s identity of an entry (default: its path): the same key in another Redis database or
    /// another bucket is another entry.
    func diffKey(_ entry: ContentEntry) -> String
    /// Temporary directories (in the system's temporary directory) this kind's code makes or once made, which the
    /// engine removes when the process that made them is gone.
    var temporaryDirectoryPrefixes: [TemporaryDirectoryPrefix] { get }
}

extension SourceAdapter {
    func detailSummary(stats: [String: JSONValue]) -> String { "" }
    var contentFilters: [ContentFilterOption] { [] }
    func diffKey(_ entry: ContentEntry) -> String { entry.path }
    var temporaryDirectoryPrefixes: [TemporaryDirectoryPrefix] { [] }
}

/// A name prefix of temporary directories a kind makes (`<prefix><pid>-XXXXXX`, removed once that process is
/// gone: `carriesPID`) or made in older versions without a pid (removed whenever found).
struct TemporaryDirectoryPrefix: Sendable, Equatable {
    var prefix: String
    var carriesPID: Bool
}

/// A kind whose backup is one stream of bytes, stored as `<id>.<fileExtension>.gz` (gzip, then age when
/// encryption is on): the adapter writes the bytes, the pipeline compresses, hashes and makes them durable.
protocol StreamKind: SourceAdapter {
    /// `rdb`, `archive`, `tar`: the stored file is `<id>.<fileExtension>.gz`.
    var fileExtension: String { get }
    /// Reads the source, writing its bytes to `writer`; returns the stats recorded with the artifact. Throws
    /// (and the engine aborts the writer) when the source fails or what it sent does not verify.
    func backupStream(_ source: TypedSource<Settings>, into writer: ArtifactWriter, context: SourceContext) async throws -> [String: JSONValue]
    /// Walks the decompressed contents natively and compares them with the recorded stats. The engine checks
    /// the stored file's sha256 and size around it. Returns the detail line.
    func verifyContents(_ artifact: ArtifactInfo, _ contents: GzipChunkSource, path: String) throws -> String
}

/// A stream kind that also takes in backups made by other means (`import`: the operations document's own
/// scripts), verified as its own backups are.
protocol ImportingKind: StreamKind {
    /// Streams the backup at `path` into `writer`; returns the stats recorded with it.
    func importStream(format: ImportFormat, from path: String, digest: String, into writer: ArtifactWriter, context: SourceContext) throws -> [String: JSONValue]
    /// The format of the file (`head`: its first bytes) or directory at `path` when this kind imports it; nil
    /// otherwise. `import` asks each importing kind and takes the first that answers.
    func importFormat(of path: String, isDirectory: Bool, head: [UInt8]) -> ImportFormat?
    /// What this kind imports, for `import`'s message when no kind recognises a path: a file (`an RDB file
    /// (REDIS…)`), a directory (`a mongodump --out dump (no <db>/*.bson)`); nil: none.
    var importedFile: String? { get }
    var importedDirectory: String? { get }
    /// The bytes an import of `path` stores (default: the file as it is; MongoDB: the archive of a `--out`
    /// directory).
    func importBytes(_ path: String, format: ImportFormat, emit: ([UInt8]) throws -> Void) throws
}

extension ImportingKind {
    var importedDirectory: String? { nil }
    func importBytes(_ path: String, format: ImportFormat, emit: ([UInt8]) throws -> Void) throws {
        try Importer.readFile(path, emit: emit)
    }
}

/// A kind whose backup is a manifest `<id>.snapshot.json` naming content-addressed files the adapter stores
/// itself (bucket blobs).
protocol SnapshotKind: SourceAdapter {
    /// Takes the snapshot and writes its manifest at `artifact.path`.
    func backupSnapshot(_ source: TypedSource<Settings>, artifact: ArtifactInfo, context: SourceContext) async throws -> (stats: [String: JSONValue], stored: StoredFile)
    /// The whole verification (manifest, every referenced file). Returns the detail line.
    func verifySnapshot(_ artifact: ArtifactInfo, context: SourceContext) async throws -> String
}

extension SourceAdapter {
    func check(_ source: TypedSource<Settings>, policy: Policy) throws -> [String] { [] }
    var restoresOnRollbackByDefault: Bool { true }
    func preflight(_ source: TypedSource<Settings>, context: SourceContext) async -> [PreflightCheck] { [] }
    func preflightPolicy(context: SourceContext) async -> [PreflightCheck] { [] }
    func diff(_ from: ArtifactInfo, _ to: ArtifactInfo, filter: ContentFilter, context: SourceContext) async throws -> ContentDiff? { nil }
    func forEachExtraFile(of artifact: ArtifactInfo, since base: ArtifactInfo?, context: SourceContext,
                          _ emit: (_ relative: String, _ sha256: String?) async throws -> Void) async throws {}
    func sharedDirectory(source: String) -> String? { nil }
    func collectGarbage(source: String, context: SourceContext) async {}
    func removeUnusedRemoteFiles(source: String, remote: any Repository, context: SourceContext) async throws -> Int { 0 }
}

// MARK: - what the services call: the policy's source opened once, the layout from the protocol adopted

extension SourceAdapter {
    /// The source's settings as this kind's type: the one place they are cast (the registry only hands an
    /// adapter its own sources; a mismatch is an error naming both kinds).
    func typed(_ source: SourcePolicy) throws -> TypedSource<Settings> {
        guard let settings = source.settings as? Settings else {
            throw BackupFailure("source \"\(source.name)\" is of kind \(source.kind.rawValue), not \(kind.rawValue)", exitStatus: .usage)
        }
        return TypedSource(policy: source, settings: settings)
    }

    /// Stream or snapshot: which of `StreamKind` / `SnapshotKind` the adapter adopts.
    var layout: ArtifactLayout {
        if let stream = self as? any StreamKind { return .stream(extension: stream.fileExtension) }
        return .snapshot
    }
    var asStream: (any StreamKind)? { self as? any StreamKind }
    var asSnapshot: (any SnapshotKind)? { self as? any SnapshotKind }
    var asImporting: (any ImportingKind)? { self as? any ImportingKind }

    func check(_ source: SourcePolicy, policy: Policy) throws -> [String] {
        try check(typed(source), policy: policy)
    }
    func drill(_ artifact: ArtifactInfo, source: SourcePolicy, context: SourceContext) async -> (DrillResult, String) {
        let typed: TypedSource<Settings>
        do { typed = try self.typed(source) } catch { return (.error, "the drill could not run: \(context.describe(error))") }
        return await drill(artifact, source: typed, context: context)
    }
    func rollback(_ artifact: ArtifactInfo, source: SourcePolicy, restoreData: Bool, context: SourceContext) async throws -> [String] {
        try await rollback(artifact, source: typed(source), restoreData: restoreData, context: context)
    }
    func preflight(_ source: SourcePolicy, context: SourceContext) async -> [PreflightCheck] {
        guard let typed = try? self.typed(source) else { return [] }
        return await preflight(typed, context: context)
    }
}

extension StreamKind {
    func backupStream(_ source: SourcePolicy, into writer: ArtifactWriter, context: SourceContext) async throws -> [String: JSONValue] {
        try await backupStream(typed(source), into: writer, context: context)
    }
}

extension SnapshotKind {
    func backupSnapshot(_ source: SourcePolicy, artifact: ArtifactInfo, context: SourceContext) async throws -> (stats: [String: JSONValue], stored: StoredFile) {
        try await backupSnapshot(typed(source), artifact: artifact, context: context)
    }
}
