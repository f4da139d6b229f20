// The source contract suite: every requirement of the source seam (Sources/BackupEngine/SourceKit/SourceAdapter.swift:
// SourceAdapter, StreamKind, ImportingKind, SnapshotKind; and SourceSettingsParser in BackupCore/Policy.swift, which
// SourceAdapter refines), and where it is exercised for every registered kind (`contract` runs every kind of the
// registry in turn, through the binary, with one S3 server for all; the in-process tests run over the registry with
// the sixth kind of SixthKindTests added). `everyRequirementHasARow` fails when a requirement is declared without a row here, or a row names a
// requirement or a test that does not exist: add the row (and the test) with the requirement.
//
// | requirement | exercised by |
// |---|---|
// | SourceSettingsParser.kind | `contract` (the artifact's kind), `aKindAddedInItsFolderAndTheRegistryShowsUpEverywhere` |
// | SourceSettingsParser.parseSettings | `contract` (the harness's source entry), `kindKeysOfDrillAndRestoreAreEveryKinds` |
// | SourceSettingsParser.drillKeys | `kindKeysOfDrillAndRestoreAreEveryKinds` |
// | SourceSettingsParser.restoreKeys | `kindKeysOfDrillAndRestoreAreEveryKinds` |
// | SourceSettingsParser.parseBlock | `kindKeysOfDrillAndRestoreAreEveryKinds` |
// | SourceAdapter.Settings | `contract` (every typed requirement), `aKindAddedInItsFolderAndTheRegistryShowsUpEverywhere` |
// | SourceAdapter.RestoreTarget | `contract` (restore into a side target) |
// | SourceAdapter.kind | `contract`, `everyKindAdoptsOneLayout` |
// | SourceAdapter.summary | `restoreHelpListsEveryKind` |
// | SourceAdapter.check | `contract` (policy check, backup) |
// | SourceAdapter.restoreOptions | `contract` (restore), `restoreHelpListsEveryKind`, `anotherKindsOptionIsRefused` |
// | SourceAdapter.restoreTarget | `contract` (restore) |
// | SourceAdapter.planRestore | `contract` (restore, hook rollback --restore-data) |
// | SourceAdapter.drill | `contract` (drill) |
// | SourceAdapter.restoresOnRollbackByDefault | `contract` (hook rollback --dry-run: would restore / would leave) |
// | SourceAdapter.rollback | `contract` (hook rollback, with and without --restore-data) |
// | SourceAdapter.preflight | `contract` (policy check --connect) |
// | SourceAdapter.preflightPolicy | `contract` (policy check --connect) |
// | SourceAdapter.contents | `contract` (ls: all, --match, --prefix) |
// | SourceAdapter.diff | `contract` (diff of a backup with itself) |
// | SourceAdapter.forEachExtraFile | `contract` (the off-site copy holds every extra file) |
// | SourceAdapter.sharedDirectory | `contract` (a stray shared file is collected, here and off-site) |
// | SourceAdapter.collectGarbage | `contract` (rotation removes the stray shared file here) |
// | SourceAdapter.removeUnusedRemoteFiles | `contract` (rotation removes the stray shared file off-site) |
// | SourceAdapter.detailSummary | `contract` (list's DETAIL) |
// | SourceAdapter.contentFilters | `kindFiltersAreInLsAndDiffHelp` |
// | SourceAdapter.diffKey | `contract` (diff of a backup with itself: every entry unchanged) |
// | SourceAdapter.temporaryDirectoryPrefixes | `everyKindsTemporaryDirectoriesAreSwept` |
// | StreamKind.fileExtension | `contract` (the stored path), `everyKindAdoptsOneLayout` |
// | StreamKind.backupStream | `contract` (backup) |
// | StreamKind.verifyContents | `contract` (verify, a flipped byte) |
// | ImportingKind.importStream | `contract` (import of its own backup's bytes) |
// | ImportingKind.importFormat | `contract` (import; other kinds' bytes refused, exit 2) |
// | ImportingKind.importedFile | `contract` (import of another kind's bytes names what it takes) |
// | ImportingKind.importedDirectory | `importOfAnUnknownDirectoryNamesWhatKindsTake` |
// | ImportingKind.importBytes | `contract` (import) |
// | SnapshotKind.backupSnapshot | `contract` (backup) |
// | SnapshotKind.verifySnapshot | `contract` (verify, a flipped byte) |
@testable import BackupCLI
@testable import BackupEngine
import BackupCore
import Foundation
import NIOCore
import S3Client
import ArtifactStore
import TestSupport
import Testing

/// What the source contract suite needs to run one kind: its server or stand-in, the policy entry of a source
/// named `src`, and the kind's restore options into a side target. Add one for every registered kind.
protocol SourceContractHarness: Sendable {
    /// The `sources.src` mapping (flow style), pointing at the running server.
    var sourceEntry: String { get }
    /// Environment for the CLI (stand-ins on PATH, …).
    var environment: [String: String] { get }
    /// The kind's options for a restore into a side target (never the source itself); `--yes` is added.
    func restoreArguments(scratch: TemporaryDirectory) -> [String]
    /// Checks the side target after the restore.
    func checkRestored(scratch: TemporaryDirectory) async throws
    /// Paths `ls` must show (keys, object keys, files, namespaces, collections), and the type of the first.
    var listed: (paths: [String], type: String) { get }
    /// A file of the kind's shared directory (`sharedDirectory`) that no backup references, or nil when the kind
    /// has none: planted here and off-site, rotation's garbage collection must remove it from both.
    var straySharedFile: String? { get }
    func stop()
}

extension SourceContractHarness {
    var straySharedFile: String? { nil }
}

/// How to start each kind's harness (given the suite's one S3 server): the registry's kinds, each must have one.
let contractHarnesses: [String: @Sendable (S3TestServer) async throws -> any SourceContractHarness] = [
    "redis": { _ in try RedisHarness() },
    "mongodb": { _ in try MongoHarness() },
    "s3": { try await BucketHarness.start(server: $0) },
    "files": { _ in try FilesHarness() },
    "qdrant": { _ in try QdrantHarness() },
]

/// Every registered kind through every requirement of the seam (the table above): policy check [--connect] →
/// backup (copied off-site with its extra files) → list → verify → one flipped byte makes verify fail with exit 4 →
/// ls → diff → restore into a side target → drill → a second backup rotates the first away (a stray shared file
/// collected here and off-site) → verify --offsite → import → hook pre-deploy and rollback. A kind added to the
/// registry is tested here by giving it a harness, not by writing new tests.
@Suite(.serialized, .blockingThreads) struct SourceContractTests {
    /// Every registered kind in turn, with one S3 server (moto) for the suite: the bucket kind's source and each
    /// kind's off-site copy (a bucket of its own).
    @Test func contract() async throws {
        let offsite = try S3TestServer()
        for kind in SourceKinds.names {
            guard let start = contractHarnesses[kind] else {
                Issue.record("the registered kind \(kind) has no contract harness: add one to contractHarnesses")
                continue
            }
            do {
                try await contract(kind: kind, harness: try await start(offsite), offsite: offsite)
            } catch {
                Issue.record("\(kind): \(error)")
            }
        }
    }

    func contract(kind: String, harness: any SourceContractHarness, offsite: S3TestServer) async throws {
        defer { harness.stop() }
        let adapter = try SourceRegistry.standard.adapter(for: SourceKind(kind))
        let dir = TemporaryDirectory("kb-contract")
        let scratch = TemporaryDirectory("kb-contract-target")
        let s3 = try offsite.client()
        defer { s3.shutdown() }
        let bucket = "offsite-\(kind)"
        try await s3.createBucket(bucket)
        func remoteKeys() async throws -> Set<String> {
            Set(try await s3.listObjects(bucket: bucket).map(\.key).filter { $0.hasPrefix("kb/prod/") }.map { String($0.dropFirst("kb/prod/".count)) })
        }
        FileManager.default.createFile(atPath: dir.file("offsite-secret"), contents: Data(offsite.secretKey.utf8), attributes: [.posixPermissions: 0o600])
        let policy = dir.file("policy.yml")
        let policyText = """
        host: prod
        repository:
          path: \(dir.file("repo"))
          offsite: { endpoint: "\(offsite.endpoint)", bucket: \(bucket), prefix: kb, access_key: \(offsite.accessKey), secret_key_file: \(dir.file("offsite-secret")) }
        sources:
          src: \(harness.sourceEntry)
        retention: { keep_last: 1, daily: 0 }
        """
        FileManager.default.createFile(atPath: policy, contents: Data(policyText.utf8))
        let environment = harness.environment.merging(["KALEEM_BACKUP_S3_ATTEMPTS": "2", "KALEEM_BACKUP_S3_BACKOFF": "0.05"]) { a, _ in a }
        func run(_ args: [String]) throws -> ProcessResult {
            try runCLI(args + ["--policy", policy], environment: environment)
        }
        // The same policy in process, for what the binary does not show (the kind's extra files).
        let engine = BackupEngine(policy: try PolicyParser.parse(policyText, origin: policy, environment: [:], sourceKinds: SourceKinds.policyTable),
                                  environment: EngineEnvironment(variables: ProcessInfo.processInfo.environment.merging(environment) { _, b in b }))

        // policy check: the kind's check passes for the harness's source; with --connect, its preflight and
        // preflightPolicy connect (and the repository and the off-site bucket answer)
        let check = try run(["policy", "check", "--json"])
        #expect(check.status == 0 && (try? object(check.stdout)["ok"] as? Bool) == true, "\(kind) policy check: \(check.stdout) \(check.stderr)")
        let connect = try run(["policy", "check", "--connect", "--json"])
        let checks = (try? object(connect.stdout)["checks"] as? [[String: Any]]) ?? []
        #expect(connect.status == 0, "\(kind) policy check --connect: \(connect.stdout) \(connect.stderr)")
        #expect(checks.allSatisfy { $0["ok"] as? Bool == true }, "\(kind) policy check --connect: \(checks.filter { $0["ok"] as? Bool != true })")

        // backup
        let backup = try run(["backup", "--json"])
        #expect(backup.status == 0, "\(kind) backup: \(backup.stdout) \(backup.stderr)")
        let artifact = try #require((try object(backup.stdout)["artifacts"] as? [[String: Any]])?.first)
        #expect(artifact["kind"] as? String == kind)
        #expect(artifact["status"] as? String == "ok")
        #expect(artifact["offsite"] as? String == "ok", "\(kind) off-site copy: \(artifact["offsite_detail"] ?? "")")
        let id = try #require(artifact["id"] as? String)
        let relative = try #require(artifact["path"] as? String)
        let path = dir.file("repo/" + relative)
        if case .stream(let ext) = adapter.layout { #expect(relative.hasSuffix("/\(id).\(ext).gz"), "\(relative)") }

        // list: the kind's DETAIL
        let info = try engine.show(id: id)
        let detail = SourceKinds.detailSummary(info)
        #expect(detail == adapter.detailSummary(stats: info.stats))
        if !detail.isEmpty {
            let list = try run(["list"])
            #expect(list.stdout.contains(detail), "\(kind) list: \(list.stdout)")
        }

        // the off-site copy: the artifact, its manifest, and every extra file of the kind
        var extras: [String] = []
        try await adapter.forEachExtraFile(of: info, since: nil, context: engine.core.context) { file, _ in extras.append(file) }
        let copied = try await remoteKeys()
        #expect(copied.contains(relative) && copied.contains((relative as NSString).deletingLastPathComponent + "/\(id).manifest.json"), "\(kind) off-site: \(copied.sorted())")
        #expect(Set(extras).isSubset(of: copied), "\(kind) extra files not off-site: \(Set(extras).subtracting(copied).sorted())")
        if let shared = adapter.sharedDirectory(source: "src") { #expect(extras.allSatisfy { $0.hasPrefix(shared) }, "\(kind): \(extras)") }

        // verify
        let verify = try run(["verify", id, "--json"])
        #expect(verify.status == 0, "\(kind) verify: \(verify.stdout) \(verify.stderr)")

        // one flipped byte: exit 4; flipped back: ok again
        var bytes = try #require(FileManager.default.contents(atPath: path))
        let at = bytes.count / 2
        bytes[at] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        let tampered = try run(["verify", id, "--json"])
        #expect(tampered.status == 4, "\(kind) verify of a flipped byte: \(tampered.status) \(tampered.stdout) \(tampered.stderr)")
        bytes[at] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(try run(["verify", id]).status == 0)

        // ls: what the backup holds, all of it, then one entry by --match and by --prefix
        let ls = try run(["ls", id, "--json"])
        #expect(ls.status == 0, "\(kind) ls: \(ls.stderr)")
        let entries = try array(ls.stdout)
        let paths = Set(entries.compactMap { $0["path"] as? String })
        #expect(Set(harness.listed.paths).isSubset(of: paths), "\(kind) ls: \(paths.sorted().prefix(20))")
        #expect(entries.allSatisfy { $0["type"] is String && $0.keys.contains("size") })
        let first = harness.listed.paths[0]
        let one = try array(try run(["ls", id, "--json", "--match", first]).stdout)
        #expect(one.map { $0["path"] as? String } == [first] && one.first?["type"] as? String == harness.listed.type, "\(kind) ls --match \(first): \(one)")
        let byPrefix = try array(try run(["ls", id, "--json", "--prefix", first]).stdout).compactMap { $0["path"] as? String }
        #expect(byPrefix.contains(first) && byPrefix.allSatisfy { $0.hasPrefix(first) })

        // diff of the backup with itself: the kind's diff (or the generic one by its diffKey) finds every entry unchanged
        let diff = try run(["diff", id, id, "--json"])
        #expect(diff.status == 0, "\(kind) diff: \(diff.stdout) \(diff.stderr)")
        let d = try object(diff.stdout)
        #expect((d["added"] as? [Any])?.isEmpty == true && (d["changed"] as? [Any])?.isEmpty == true && (d["removed"] as? [Any])?.isEmpty == true
                && d["unchanged"] as? Int == entries.count, "\(kind) diff of a backup with itself: \(diff.stdout.prefix(2000))")

        // restore into a side target
        let restore = try run(["restore", "src", "--backup", id] + harness.restoreArguments(scratch: scratch) + ["--yes", "--json"])
        #expect(restore.status == 0, "\(kind) restore: \(restore.stdout) \(restore.stderr)")
        try await harness.checkRestored(scratch: scratch)

        // drill
        let drill = try run(["drill", "--json"])
        #expect(drill.status == 0, "\(kind) drill: \(drill.stdout) \(drill.stderr)")
        let result = (try? array(drill.stdout).first?["result"] as? String) ?? nil
        #expect(result == "passed" || result == "archive-only", "\(kind) drill: \(drill.stdout)")

        // a file of the kind's shared directory that nothing references, here and off-site: collected by rotation
        if let stray = harness.straySharedFile {
            try FileManager.default.createDirectory(atPath: (dir.file("repo/" + stray) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: dir.file("repo/" + stray), contents: Data("stray".utf8), attributes: [.posixPermissions: 0o600])
            try await s3.putObject(bucket: bucket, key: "kb/prod/" + stray, bytes: ByteBuffer(string: "stray"))
        }

        // a second backup rotates the first away (keep_last: 1), here and off-site, and what stays verifies
        let second = try run(["backup", "--json"])
        #expect(second.status == 0, "\(kind) second backup: \(second.stderr)")
        let listed = try array(try run(["list", "--json"]).stdout)
        #expect(listed.count == 1 && listed.first?["id"] as? String != id, "\(kind) rotation: \(listed.map { $0["id"] ?? "" })")
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try run(["verify", "--all"]).status == 0)
        let afterRotation = try await remoteKeys()
        #expect(!afterRotation.contains(relative), "\(kind): the rotated backup is still off-site")
        if let stray = harness.straySharedFile {
            #expect(!FileManager.default.fileExists(atPath: dir.file("repo/" + stray)), "\(kind): collectGarbage left \(stray)")
            #expect(!afterRotation.contains(stray), "\(kind): removeUnusedRemoteFiles left \(stray) off-site")
        }
        let offsiteVerify = try run(["verify", "--offsite", "--all", "--json"])
        #expect(offsiteVerify.status == 0, "\(kind) verify --offsite: \(offsiteVerify.stdout) \(offsiteVerify.stderr)")

        // import: an importing kind takes in its own backup's bytes (as a file its scripts would have written);
        // any other kind's are refused (exit 2), saying what the importing kinds take
        let kept = try #require(listed.first)
        let keptPath = dir.file("repo/" + (try #require(kept["path"] as? String)))
        let ext: String = if case .stream(let e) = adapter.layout { e } else { "json" }
        let plain = dir.file("src-20261201-000000.\(ext)")
        if adapter.layout == .snapshot {
            try FileManager.default.copyItem(atPath: keptPath, toPath: plain)
        } else {
            let unzip = try runProcess("/bin/sh", ["-c", "gzip -dc \"$0\" > \"$1\"", keptPath, plain])
            #expect(unzip.status == 0, "\(unzip.stderr)")
        }
        let imported = try run(["import", plain, "--source", "src", "--json"])
        if adapter.asImporting != nil {
            #expect(imported.status == 0 && (try? array(imported.stdout).first?["status"] as? String) == "ok", "\(kind) import: \(imported.stdout) \(imported.stderr)")
            let again = try run(["import", plain, "--source", "src", "--json"])
            #expect(again.status == 0 && again.stdout.contains("already imported"), "\(kind) import again: \(again.stdout) \(again.stderr)")
            #expect(try run(["verify", "--all"]).status == 0)
        } else {
            #expect(imported.status == 2, "\(kind) import: \(imported.stdout) \(imported.stderr)")
            for importer in SourceRegistry.standard.kinds.compactMap({ SourceRegistry.standard.adapters[$0]?.asImporting }) {
                if let what = importer.importedFile { #expect(imported.stderr.contains(what) || imported.stdout.contains(what), "\(kind) import: \(imported.stderr)") }
            }
        }

        // hook rollback: the pre-deploy set, said (--dry-run: restored or left by default), the commands, then restored
        let pre = try run(["hook", "pre-deploy", "--release", "contract:1", "--json"])
        #expect(pre.status == 0, "\(kind) pre-deploy: \(pre.stdout) \(pre.stderr)")
        let rehearsed = try run(["hook", "rollback", "--release", "contract:1", "--reason", "contract", "--dry-run", "--json"])
        #expect(rehearsed.status == 0 && rehearsed.stdout.contains(adapter.restoresOnRollbackByDefault ? "would restore src" : "would leave src"),
                "\(kind) rollback --dry-run: \(rehearsed.stdout) \(rehearsed.stderr)")
        let commands = try run(["hook", "rollback", "--release", "contract:1", "--reason", "contract", "--json"])
        #expect(commands.status == 0 && ((try? object(commands.stdout)["lines"] as? String) ?? "").isEmpty == false,
                "\(kind) rollback: \(commands.stdout) \(commands.stderr)")
        let restored = try run(["hook", "rollback", "--release", "contract:1", "--reason", "contract", "--restore-data", "--yes", "--include", "src", "--json"])
        #expect(restored.status == 0 && ((try? object(restored.stdout)["lines"] as? String) ?? "").isEmpty == false,
                "\(kind) rollback --restore-data: \(restored.stdout) \(restored.stderr)")
    }

    /// The registry is the one list of kinds; the CLI's help lists every kind's restore options from it.
    @Test func restoreHelpListsEveryKind() throws {
        let help = try runCLI(["restore", "--help"])
        // Laid out as the others (#36): OVERVIEW, USAGE, OPTIONS, then each kind's options as OPTIONS are (the
        // name from column 2, the help from column 26), every line within 80 columns.
        let options = try #require(help.stdout.range(of: "\nOPTIONS:\n"))
        for kind in SourceKinds.names {
            let section = try #require(help.stdout.range(of: "\n\(kind.uppercased()) SOURCE OPTIONS:\n"), "\(help.stdout)")
            #expect(section.lowerBound > options.upperBound)
            let summary = try SourceRegistry.standard.adapter(for: SourceKind(kind)).summary
            #expect(help.stdout.replacingOccurrences(of: "\n ", with: " ").split(separator: " ").joined(separator: " ")
                        .contains(summary.split(separator: " ").joined(separator: " ")), "\(kind): \(summary)")
        }
        #expect(help.stdout.contains("--to-dir") && help.stdout.contains("--to-bucket") && help.stdout.contains("--ns-from"))
        #expect(help.stdout.contains("\n  --in-place              write them over"), "\(help.stdout)")
        for line in help.stdout.split(separator: "\n") where !line.hasPrefix("USAGE:") { #expect(line.count <= 80, "\(line)") }
    }

    /// A kind option of another kind is refused with the options this kind takes (exit 2).
    @Test func anotherKindsOptionIsRefused() throws {
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:1")
        let r = try runCLI(["restore", "redis", "--latest", "--to-bucket", "x", "--policy", policy])
        #expect(r.status == 2)
        #expect(r.stderr.contains("--to-bucket is not an option of redis sources") && r.stderr.contains("--to-dir"), "\(r.stderr)")
    }

    /// An artifact of a kind this build does not know is an error naming the kind, never read as another kind.
    @Test func unknownKindInTheCatalogIsNamed() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(server.server.port)")
        let backup = try runCLI(["backup", "--json", "--policy", policy])
        #expect(backup.status == 0)
        let db = dir.file("repo/catalog.sqlite")
        let r = try runProcess("python3", ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"update artifacts set kind='tape'\"); c.commit()", db])
        #expect(r.status == 0, "\(r.stderr)")
        let verify = try runCLI(["verify", "--all", "--json", "--policy", policy])
        #expect(verify.status == 4)
        #expect(verify.stdout.contains("unknown source kind \\\"tape\\\""), "\(verify.stdout)")
    }

    /// The catalog's strings are read into types: a compression this build does not know is an error naming it
    /// (exit 4), never read as gzip. (A deployment event cannot be unknown: the schema's CHECK refuses it.)
    @Test func unknownCompressionIsNamed() throws {
        let server = try RedisTestServer()
        let dir = TemporaryDirectory()
        let policy = writeRedisPolicy(in: dir, url: "redis://127.0.0.1:\(server.server.port)")
        let backup = try runCLI(["backup", "--json", "--policy", policy])
        #expect(backup.status == 0, "\(backup.stderr)")
        let db = dir.file("repo/catalog.sqlite")
        let r = try runProcess("python3", ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"update artifacts set compression='zstd'\"); c.commit()", db])
        #expect(r.status == 0, "\(r.stderr)")
        let verify = try runCLI(["verify", "--all", "--json", "--policy", policy])
        #expect(verify.status == 4)
        #expect(verify.stdout.contains("compression \\\"zstd\\\""), "\(verify.stdout)")
        let list = try runCLI(["list", "--json", "--policy", policy])
        #expect(list.stdout.contains("\"compression\" : \"zstd\""), "\(list.stdout)")
    }

    // MARK: in process, over the registry with the sixth kind (SixthKindTests) added

    static var registries: [SourceRegistry] { [SourceRegistry.standard, SixthKindTests.registry] }

    /// Every kind adopts exactly one layout, registered under its own `kind`.
    @Test func everyKindAdoptsOneLayout() throws {
        for registry in Self.registries {
            for kind in registry.kinds {
                let adapter = try registry.adapter(for: kind)
                #expect(adapter.kind == kind)
                #expect((adapter.asStream != nil) != (adapter.asSnapshot != nil), "\(kind.rawValue)")
                if let stream = adapter.asStream { #expect(adapter.layout == .stream(extension: stream.fileExtension) && !stream.fileExtension.isEmpty) }
                if adapter.asImporting != nil { #expect(adapter.asStream != nil) }
            }
        }
    }

    /// `drill:` and `restore:` take every kind's keys (`drillKeys`, `restoreKeys`): an unknown key's message lists
    /// them all; each kind's `parseBlock` reads an empty block of its keys without complaint.
    @Test func kindKeysOfDrillAndRestoreAreEveryKinds() throws {
        for registry in Self.registries {
            try SourceRegistry.$current.withValue(registry) {
                for block in [PolicyBlock.drill, .restore] {
                    let yaml = """
                    repository: { path: /nonexistent/kb-contract }
                    sources:
                      d: { kind: files, root: /etc, paths: [hostname] }
                    \(block.rawValue): { no_such_key: 1 }
                    """
                    var message = ""
                    do {
                        _ = try PolicyParser.parse(yaml, origin: "t.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
                    } catch {
                        message = "\(error)"
                    }
                    #expect(message.contains("unknown key \"no_such_key\""), "\(message)")
                    for kind in registry.kinds {
                        let adapter = try registry.adapter(for: kind)
                        for key in adapter.keys(of: block) { #expect(message.contains(key), "\(block.rawValue).\(key) of \(kind.rawValue): \(message)") }
                        #expect(throws: Never.self) { _ = try adapter.parseBlock(block, [:]) }
                    }
                }
            }
        }
    }

    /// Each kind's own `ls`/`diff` filters (`contentFilters`) are in their help, and accepted by name.
    @Test func kindFiltersAreInLsAndDiffHelp() throws {
        for registry in Self.registries {
            try SourceRegistry.$current.withValue(registry) {
                let help = ContentFilterOptions.kindFiltersHelp()
                for kind in registry.kinds {
                    for filter in try registry.adapter(for: kind).contentFilters {
                        #expect(help.contains("--\(filter.name)"), "\(kind.rawValue) --\(filter.name): \(help)")
                        let words = ["--\(filter.name)"] + (filter.valueName == nil ? [] : ["1"])
                        #expect(try SourceKinds.contentFilterOptions(words)[filter.name] != nil)
                    }
                }
            }
        }
        let ls = try runCLI(["ls", "--help"])
        for (_, filters) in SourceKinds.contentFilters { for f in filters { #expect(ls.stdout.contains("--\(f.name)"), "\(ls.stdout)") } }
    }

    /// The sweep when a catalog is opened removes every kind's temporary directories (`temporaryDirectoryPrefixes`):
    /// those of a process that is gone, and the old ones without a pid; never those of a live process.
    @Test func everyKindsTemporaryDirectoriesAreSwept() throws {
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let tmp = NSTemporaryDirectory()
        let registry = SixthKindTests.registry
        var gone: [String] = [], alive: [String] = []
        for kind in registry.kinds {
            for p in try registry.adapter(for: kind).temporaryDirectoryPrefixes {
                #expect(p.prefix.hasPrefix("kaleem-"), "\(kind.rawValue): \(p.prefix)")
                if p.carriesPID {
                    gone.append((tmp as NSString).appendingPathComponent("\(p.prefix)\(finished.processIdentifier)-kbc\(UInt32.random(in: 0...UInt32.max))"))
                    alive.append((tmp as NSString).appendingPathComponent("\(p.prefix)\(getpid())-kbc\(UInt32.random(in: 0...UInt32.max))"))
                } else {
                    gone.append((tmp as NSString).appendingPathComponent("\(p.prefix)\(UUID().uuidString)"))
                }
            }
        }
        for d in gone + alive { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        defer { for d in alive { try? FileManager.default.removeItem(atPath: d) } }
        let dir = TemporaryDirectory("kb-contract-sweep")
        try SourceRegistry.$current.withValue(registry) {
            let policy = try PolicyParser.parse("repository: { path: \(dir.file("repo")) }\nsources:\n  d: { kind: files, root: \(dir.path), paths: [x] }\n",
                                                origin: "t.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
            _ = try BackupEngine(policy: policy, environment: EngineEnvironment(variables: [:])).catalog()
        }
        for d in gone { #expect(!FileManager.default.fileExists(atPath: d), "\(d) was not swept") }
        for d in alive { #expect(FileManager.default.fileExists(atPath: d), "\(d) of a live process was swept") }
    }

    /// `import` of a directory no kind recognises names what the importing kinds take (`importedDirectory`).
    @Test func importOfAnUnknownDirectoryNamesWhatKindsTake() throws {
        let dir = TemporaryDirectory("kb-contract-import")
        try FileManager.default.createDirectory(atPath: dir.file("mongodb-20261201"), withIntermediateDirectories: true)
        #expect {
            _ = try Importer.detect(dir.file("mongodb-20261201"), registry: .standard)
        } throws: { error in
            SourceRegistry.standard.kinds.compactMap { SourceRegistry.standard.adapters[$0]?.asImporting?.importedDirectory }
                .allSatisfy { "\(error)".contains($0) }
        }
    }

    /// The table at the top of this file has a row for every requirement of the seam's protocols (parsed from their
    /// declarations), and names only requirements and tests that exist.
    @Test func everyRequirementHasARow() throws {
        func read(_ relative: String) throws -> String { try String(contentsOfFile: packageRoot + "/" + relative, encoding: .utf8) }
        var declared: Set<String> = []
        for file in ["Sources/BackupEngine/SourceKit/SourceAdapter.swift", "Sources/BackupCore/Policy.swift"] {
            var current: String?
            for line in try read(file).split(separator: "\n", omittingEmptySubsequences: false) {
                if current == nil, let m = line.firstMatch(of: /^(?:public )?protocol (SourceAdapter|StreamKind|ImportingKind|SnapshotKind|SourceSettingsParser)\b/) {
                    current = String(m.1)
                } else if let protocolName = current {
                    if line.hasPrefix("}") { current = nil; continue }
                    if let m = line.firstMatch(of: /^    (?:func|var|associatedtype) ([A-Za-z_][A-Za-z0-9_]*)/) { declared.insert("\(protocolName).\(m.1)") }
                }
            }
        }
        #expect(declared.count > 30, "\(declared.sorted())")
        let me = try read("Tests/BackupEngineTests/SourceContractTests.swift")
        var rows: [String: [String]] = [:]
        for line in me.split(separator: "\n") {
            guard let m = line.firstMatch(of: /^\/\/ \| ([A-Za-z]+\.[A-Za-z_]+) \| (.*) \|$/) else { continue }
            rows[String(m.1)] = String(m.2).matches(of: /`([A-Za-z_][A-Za-z0-9_]*)`/).map { String($0.1) }
        }
        for missing in declared.subtracting(rows.keys).sorted() {
            Issue.record("\(missing) is a requirement of the source seam with no row in SourceContractTests' table: say which test exercises it for every kind")
        }
        for stale in Set(rows.keys).subtracting(declared).sorted() {
            Issue.record("SourceContractTests' table has a row for \(stale), which is no requirement of the source seam (any more)")
        }
        let tests = try FileManager.default.contentsOfDirectory(atPath: packageRoot + "/Tests/BackupEngineTests").filter { $0.hasSuffix(".swift") }
            .map { try read("Tests/BackupEngineTests/" + $0) }.joined(separator: "\n")
        for (requirement, names) in rows {
            #expect(!names.isEmpty, "\(requirement): its row names no test")
            for name in names where !tests.contains("func \(name)(") { Issue.record("\(requirement): its row names \(name), which is no test of Tests/BackupEngineTests") }
        }
    }
}

// MARK: harnesses

struct RedisHarness: SourceContractHarness {
    let server: RedisTestServer

    init() throws {
        server = try RedisTestServer()
        let c = try server.connect()
        defer { c.close() }
        for i in 0..<200 { _ = try c.command(["SET", "key:\(i)", "value \(i)"]) }
        _ = try c.command(["HSET", "h", "a", "1", "b", "2"])
    }

    var sourceEntry: String { "{ kind: redis, url: \"redis://127.0.0.1:\(server.server.port)\", timeout: 20s }" }
    var listed: (paths: [String], type: String) { (["key:7", "key:199", "h"], "string") }
    var environment: [String: String] { [:] }
    func restoreArguments(scratch: TemporaryDirectory) -> [String] { ["--to-dir", scratch.path] }
    func checkRestored(scratch: TemporaryDirectory) async throws {
        let rdb = try #require(FileManager.default.contents(atPath: scratch.file("dump.rdb")))
        #expect(rdb.starts(with: Data("REDIS".utf8)))
    }
    func stop() {}
}

struct MongoHarness: SourceContractHarness {
    let tmp = TemporaryDirectory("kb-contract-mongo")

    init() throws {}

    var sourceEntry: String { "{ kind: mongodb, uri: \"mongodb://backup:pw@db.internal:27017/?authSource=admin\", timeout: 10s }" }
    var listed: (paths: [String], type: String) { (["test.foo"], "namespace") }
    var environment: [String: String] {
        ["PATH": packageRoot + "/Tests/StandIns:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
         "STANDIN_LOG": tmp.file("standin.jsonl"), "TMPDIR": tmp.path]
    }
    func restoreArguments(scratch: TemporaryDirectory) -> [String] { ["--to-uri", "mongodb://127.0.0.1:27018/"] }
    func checkRestored(scratch: TemporaryDirectory) async throws {
        let log = (try? String(contentsOfFile: tmp.file("standin.jsonl"), encoding: .utf8)) ?? ""
        #expect(log.contains("mongorestore"), "the stand-in mongorestore was not run: \(log)")
    }
    func stop() {}
}

struct BucketHarness: SourceContractHarness {
    let server: S3TestServer
    let secretFile: TemporaryDirectory

    static func start(server: S3TestServer) async throws -> BucketHarness {
        let client = try server.client()
        do {
            try await client.createBucket("contract-src")
            for i in 0..<20 {
                try await client.putObject(bucket: "contract-src", key: "obj/\(i).txt", bytes: ByteBuffer(string: "object \(i) " + String(repeating: "x", count: i * 100)))
            }
        } catch {
            client.shutdown()
            throw error
        }
        client.shutdown()
        let dir = TemporaryDirectory("kb-contract-s3")
        FileManager.default.createFile(atPath: dir.file("secret"), contents: Data(server.secretKey.utf8), attributes: [.posixPermissions: 0o600])
        return BucketHarness(server: server, secretFile: dir)
    }

    var listed: (paths: [String], type: String) { (["obj/3.txt", "obj/19.txt"], "object") }
    var straySharedFile: String? { "src/blobs/ee/" + String(repeating: "e", count: 64) }
    var sourceEntry: String {
        "{ kind: s3, endpoint: \"\(server.endpoint)\", buckets: [contract-src], access_key: \(server.accessKey), secret_key_file: \(secretFile.file("secret")), timeout: 10s }"
    }
    var environment: [String: String] { ["KALEEM_BACKUP_S3_ATTEMPTS": "2", "KALEEM_BACKUP_S3_BACKOFF": "0.05"] }
    func restoreArguments(scratch: TemporaryDirectory) -> [String] { ["--to-bucket", "contract-restored"] }
    func checkRestored(scratch: TemporaryDirectory) async throws {
        let client = try server.client()
        let keys = try await client.listObjects(bucket: "contract-restored").map(\.key)
        client.shutdown()
        #expect(keys.count == 20)
    }
    func stop() {}
}

struct FilesHarness: SourceContractHarness {
    let root = TemporaryDirectory("kb-contract-files")

    init() throws {
        try FileManager.default.createDirectory(atPath: root.file("nginx"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: root.file("docker-compose.yml"), contents: Data(String(repeating: "services: {}\n", count: 400).utf8))
        FileManager.default.createFile(atPath: root.file("nginx/nginx.conf"), contents: Data("events {}\n".utf8))
    }

    var sourceEntry: String { "{ kind: files, root: \(root.path), paths: [\"docker-compose*.yml\", nginx/] }" }
    var listed: (paths: [String], type: String) { (["nginx/nginx.conf", "docker-compose.yml"], "file") }
    var environment: [String: String] { [:] }
    func restoreArguments(scratch: TemporaryDirectory) -> [String] { ["--to-dir", scratch.file("restored")] }
    func checkRestored(scratch: TemporaryDirectory) async throws {
        #expect(FileManager.default.contents(atPath: scratch.file("restored/nginx/nginx.conf")) == Data("events {}\n".utf8))
    }
    func stop() {}
}

struct QdrantHarness: SourceContractHarness {
    let server: QdrantStandIn

    init() throws { server = try QdrantStandIn(collections: ["documents": (points: 40, dim: 8)]) }

    var sourceEntry: String { "{ kind: qdrant, url: \"\(server.url)\", timeout: 20s }" }
    var listed: (paths: [String], type: String) { (["documents"], "collection") }
    var environment: [String: String] { [:] }
    func restoreArguments(scratch: TemporaryDirectory) -> [String] { ["--to-collection", "documents_restored"] }
    func checkRestored(scratch: TemporaryDirectory) async throws {
        #expect(server.count("documents_restored") == 40) // exact: collection info's points_count is approximate
    }
    func stop() {}
}
