@testable import BackupCLI
@testable import BackupEngine
import ArtifactStore
import BackupCore
import Foundation
import TarFormat
import Testing
import TestSupport

// #37 item 3: a kind's knowledge lives in its folder, declared by its adapter. A sixth kind written here, in the
// test target only (what would be `Sources/BackupEngine/Kinds/Directory/`), and registered in a registry the test
// builds, shows up in `policy check` (its source keys and its `drill:` key), `list`/`show` (its DETAIL), `ls` (its
// own filter), `diff`, `restore --help`, backup → verify → a flipped byte → restore → drill → rotation (the
// contract suite's steps, in process: the shipped binary cannot hold a test's kind), policy check --connect, import
// (refused: not an importing kind), hook rollback and the temporary-directory sweeper, with no edit anywhere else.

/// `kind: directory`: the regular files of one directory (not its subdirectories) as one tar stream.
struct DirectorySourcePolicy: SourceSettings, Equatable {
    var path: String
    var location: String { path }
}

/// `drill: { directory_scratch: DIR }`: where drills of directory sources extract (default: the temp directory).
struct DirectoryDrillPolicy: PolicyBlockSettings, Equatable {
    var scratch: String?
}

struct DirectoryAdapter: StreamKind {
    typealias Settings = DirectorySourcePolicy
    let kind = SourceKind("directory")
    let fileExtension = "tar"
    let summary = "the regular files of one directory as one stream (a kind of the tests)"

    // MARK: policy

    func parseSettings(_ node: PolicyNode) throws(PolicyError) -> any SourceSettings {
        let map = try node.mapping(allowed: SourcePolicy.commonKeys.union(["path"]))
        guard let path = map["path"] else { throw node.error("missing key \"path\" (the directory)") }
        return DirectorySourcePolicy(path: try path.nonEmptyString())
    }

    var drillKeys: Set<String> { ["directory_scratch"] }

    func parseBlock(_ block: PolicyBlock, _ map: [String: PolicyNode]) throws(PolicyError) -> (any PolicyBlockSettings)? {
        guard block == .drill else { return nil }
        return DirectoryDrillPolicy(scratch: try map["directory_scratch"]?.nonEmptyString())
    }

    func check(_ source: TypedSource<DirectorySourcePolicy>, policy: Policy) throws -> [String] {
        var isDirectory: ObjCBool = false
        let path = source.settings.path
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue ? [] : ["\(path) is not a directory"]
    }

    // MARK: backup, verify

    func backupStream(_ source: TypedSource<DirectorySourcePolicy>, into writer: ArtifactWriter, context: SourceContext) throws -> [String: JSONValue] {
        let root = source.settings.path
        var tar = TarWriter { try writer.write($0) }
        var entries: [String: JSONValue] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: root).sorted() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root + "/" + name, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: root + "/" + name)))
            try tar.begin(TarEntry(path: name, type: .file, size: Int64(bytes.count), mode: 0o600, mtime: 0))
            try bytes.withUnsafeBytes { try tar.write($0) }
            _ = try tar.end()
            entries[name] = .object(["size": .int(bytes.count), "sha256": .string(Self.sha256(bytes))])
        }
        try tar.finish()
        return ["files": .int(entries.count), "entries": .object(entries)]
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        var h = StreamingSHA256()
        bytes.withUnsafeBytes { h.update($0) }
        return h.finalize()
    }

    static func recorded(_ artifact: ArtifactInfo) -> [String: JSONValue] {
        guard case .object(let entries)? = artifact.stats["entries"] else { return [:] }
        return entries
    }

    /// The files of the stream, by name, each checked against what the backup recorded.
    static func read<S: ByteSource>(_ source: S, artifact: ArtifactInfo, object: String) throws -> [String: [UInt8]] {
        var reader = TarReader(source)
        var files: [String: [UInt8]] = [:]
        while let entry = try reader.next() {
            var bytes: [UInt8] = []
            try reader.content { bytes += $0 }
            files[entry.path] = bytes
        }
        let expected = recorded(artifact)
        guard Set(files.keys) == Set(expected.keys),
              files.allSatisfy({ expected[$0.key]?["sha256"] == .string(sha256($0.value)) }) else {
            throw IntegrityError(object: object, problem: "the stream disagrees with the recorded files")
        }
        return files
    }

    func verifyContents(_ artifact: ArtifactInfo, _ contents: GzipChunkSource, path: String) throws -> String {
        let files = try Self.read(contents, artifact: artifact, object: path)
        var rest = contents
        rest.drain()
        try rest.finishError()
        return "sha256 ok, gzip ok, tar ok: \(files.count) files match"
    }

    // MARK: restore, drill, rollback

    var restoreOptions: [RestoreOptionSpec] { [RestoreOptionSpec("to-dir", value: "DIR", help: "write the files into this directory")] }

    func extract(_ artifact: ArtifactInfo, into target: String, context: SourceContext) async throws -> Int {
        let files = try Self.read(await GzipChunkSource(reader: try context.reader(artifact)), artifact: artifact, object: artifact.path)
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for (name, bytes) in files {
            guard FileManager.default.createFile(atPath: target + "/" + name, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
                throw FileSystemError("write", path: target + "/" + name)
            }
        }
        return files.count
    }

    func restoreTarget(_ source: TypedSource<DirectorySourcePolicy>, _ options: RestoreOptions) throws -> String {
        guard let target = options.value("to-dir") else { throw BackupFailure("name the target with --to-dir DIR", exitStatus: .usage) }
        return target
    }

    /// The plan and its apply step; the restorer verifies, prints, handles --dry-run and --yes, records.
    func planRestore(_ artifact: ArtifactInfo, into target: String, source: TypedSource<DirectorySourcePolicy>, request: RestoreRequest,
                     context: SourceContext) async throws -> RestorePlan {
        RestorePlan(
            mode: "to-dir", target: target, lines: ["restore \(source.name) backup \(artifact.id) into \(target)"], needsConfirmation: nil,
            dryRun: RestoreResult(lines: ["dry run: nothing written"], detail: "plan only", details: ["target": .string(target)]),
            apply: { _ in
                let written = try await extract(artifact, into: target, context: context)
                return RestoreResult(lines: ["restored \(written) files into \(target)"], detail: "\(written) files",
                                     details: ["target": .string(target), "written": .int(written)])
            })
    }

    func drill(_ artifact: ArtifactInfo, source: TypedSource<DirectorySourcePolicy>, context: SourceContext) async -> (DrillResult, String) {
        do {
            let parent = context.policy.drill.settings(kind, as: DirectoryDrillPolicy.self)?.scratch
            let scratch = try parent.map { $0 + "/drill-\(artifact.id)" } ?? context.temporaryDirectory(prefix: "kaleem-directory")
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            let written = try await extract(artifact, into: scratch, context: context)
            return (.passed, "extracted \(written) files into a scratch directory, every sha256 matches; scratch directory removed")
        } catch {
            return (.failed, context.describe(error))
        }
    }

    func rollback(_ artifact: ArtifactInfo, source: TypedSource<DirectorySourcePolicy>, restoreData: Bool, context: SourceContext) async throws -> [String] {
        ["kaleem-backup restore \(artifact.source) --backup \(artifact.id) --to-dir DIR --yes"]
    }

    // MARK: look

    func contents(_ artifact: ArtifactInfo, filter: ContentFilter, context: SourceContext, emit: (ContentEntry) throws -> Void) async throws {
        let larger = filter.options["larger-than"].flatMap(Int.init)
        for (name, e) in Self.recorded(artifact).sorted(by: { $0.key < $1.key }) where filter.accepts(name) {
            let size = e["size"]?.intValue ?? 0
            if let larger, size <= larger { continue }
            guard case .string(let sha)? = e["sha256"] else { continue }
            try emit(ContentEntry(path: name, type: "file", size: Int64(size), digest: sha))
        }
    }

    // MARK: what the engine and the CLI show of it

    func detailSummary(stats: [String: JSONValue]) -> String { "\(stats["files"]?.intValue ?? 0) files in a directory" }
    var contentFilters: [ContentFilterOption] { [ContentFilterOption("larger-than", value: "BYTES", help: "directory: only files larger than this")] }
    /// File names compared without case (a rename `A.txt` → `a.txt` is a change, not a removal and an addition).
    func diffKey(_ entry: ContentEntry) -> String { entry.path.lowercased() }
    var temporaryDirectoryPrefixes: [TemporaryDirectoryPrefix] {
        [TemporaryDirectoryPrefix(prefix: "kaleem-directory-", carriesPID: true), TemporaryDirectoryPrefix(prefix: "kaleem-dirkind-old-", carriesPID: false)]
    }
}

@Suite(.blockingThreads) struct SixthKindTests {
    /// The standard kinds and the sixth: the registry this test runs under.
    static let registry = SourceRegistry(SourceRegistry.standard.kinds.map { SourceRegistry.standard.adapters[$0]! } + [DirectoryAdapter()])

    func write(_ path: String, _ text: String) {
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
    }

    @Test func aKindAddedInItsFolderAndTheRegistryShowsUpEverywhere() async throws {
        try await SourceRegistry.$current.withValue(Self.registry) {
            try await EngineExecutor.run { try await everywhere() }
        }
        // Outside, the shipped registry: the five kinds only.
        #expect(!SourceKinds.names.contains("directory"))
        #expect(!RestoreCommand.kindOptionsHelp().contains("DIRECTORY SOURCE OPTIONS"))
        #expect(!ContentFilterOptions.kindFiltersHelp().contains("--larger-than"))
    }

    func everywhere() async throws {
        let dir = TemporaryDirectory("kb-sixth")
        let data = dir.file("data")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        write(data + "/a.txt", "alpha")
        write(data + "/B.txt", "bravo bravo")
        let yaml = """
        repository: { path: \(dir.file("repo")) }
        sources:
          docs: { kind: directory, path: \(data) }
        retention: { keep_last: 2, daily: 0 }
        drill: { directory_scratch: \(dir.file("scratch")), redis_server: [redis-server] }
        """

        // policy check: the kind's source keys and its drill: key are the kind's, beside the other kinds'
        #expect(SourceKinds.names.contains("directory"))
        let policy = try PolicyParser.parse(yaml, origin: "t.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
        #expect(policy.drill.settings(SourceKind("directory"), as: DirectoryDrillPolicy.self)?.scratch == dir.file("scratch"))
        #expect(policy.drill.redisServers == ["redis-server"])
        #expect(throws: PolicyError.self) {
            try PolicyParser.parse(yaml.replacingOccurrences(of: "directory_scratch", with: "scratch_dir"), origin: "t.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
        }
        do {
            _ = try PolicyParser.parse(yaml.replacingOccurrences(of: "directory_scratch", with: "scratch_dir"), origin: "t.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
        } catch {
            #expect("\(error)".contains("unknown key \"scratch_dir\"; expected one of: directory_scratch, endpoint, mongo_image, mongo_uri, mongo_uri_file, mongosh, redis_server"), "\(error)")
        }
        let engine = BackupEngine(policy: policy, environment: EngineEnvironment(variables: [:]))
        #expect(await engine.preflight(connect: false).allSatisfy(\.ok))
        let missing = try PolicyParser.parse(yaml.replacingOccurrences(of: "path: \(data)", with: "path: \(dir.file("nowhere"))"),
                                             origin: "t.yml", environment: [:], sourceKinds: SourceKinds.policyTable)
        let refused = await BackupEngine(policy: missing, environment: EngineEnvironment(variables: [:])).preflight(connect: false)
        #expect(refused.contains { !$0.ok && $0.check == "source docs" && $0.detail == "\(dir.file("nowhere")) is not a directory" }, "\(refused)")

        // backup, list, show
        let first = try #require(try await engine.backup().artifacts.first)
        #expect(first.kind == SourceKind("directory") && first.status == .ok, "\(first)")
        let listed = try engine.list(source: nil, limit: nil)
        #expect(listed.map(\.id) == [first.id])
        #expect(Output.summary(listed[0]) == "2 files in a directory")
        #expect(try engine.show(id: first.id).stats["files"]?.intValue == 2)
        #expect(!SourceKinds.storesSnapshots(first.kind))

        // verify; one flipped byte fails it; flipped back, it verifies again
        #expect(try await engine.verify(ids: [first.id], all: false).allSatisfy(\.ok))
        let path = dir.file("repo/" + first.path)
        var bytes = try #require(FileManager.default.contents(atPath: path))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(try await engine.verify(ids: [first.id], all: false).allSatisfy { !$0.ok })
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(try await engine.verify(ids: [first.id], all: false).allSatisfy(\.ok))

        // ls: all, --match, --prefix, and the kind's own filter
        func ls(_ filter: ContentFilter) async throws -> [String] {
            var paths: [String] = []
            try await engine.contents(of: first.id, filter: filter) { paths.append($0.path) }
            return paths
        }
        #expect(try await ls(ContentFilter()) == ["B.txt", "a.txt"])
        #expect(try await ls(ContentFilter(match: "a*")) == ["a.txt"])
        #expect(try await ls(ContentFilter(prefix: "B")) == ["B.txt"])
        #expect(try await ls(ContentFilter(options: ["larger-than": "5"])) == ["B.txt"])
        #expect(SourceKinds.contentFilters.contains { $0.kind == "directory" && $0.filters.map(\.name) == ["larger-than"] })
        // `ls`/`diff` take the kind's filter from the registry, and list it in their help
        #expect(try SourceKinds.contentFilterOptions(["--larger-than", "5"]) == ["larger-than": "5"])
        #expect(try SourceKinds.contentFilterOptions(["--larger-than=5", "--db", "0"]) == ["larger-than": "5", "db": "0"])
        #expect(throws: BackupFailure.self) { try SourceKinds.contentFilterOptions(["--smaller-than", "5"]) }
        #expect(ContentFilterOptions.kindFiltersHelp().contains("\n  --larger-than BYTES     directory: only files larger than this\n"),
                "\(ContentFilterOptions.kindFiltersHelp())")

        // restore --help lists the kind; a restore into a side directory
        let help = RestoreCommand.kindOptionsHelp()
        #expect(help.contains("\nDIRECTORY SOURCE OPTIONS:\n  the regular files of one directory") && help.contains("  --to-dir DIR"), "\(help)")
        let target = dir.file("restored")
        let outcome = try await engine.restore(RestoreRequest(source: "docs", backup: .id(first.id), confirmed: true),
                                               kindArguments: ["--to-dir", target], plan: { _ in })
        #expect(outcome.lines == ["restored 2 files into \(target)"])
        #expect(FileManager.default.contents(atPath: target + "/B.txt") == Data("bravo bravo".utf8))

        // drill (into the kind's drill: directory)
        let drills = try await engine.drill()
        #expect(drills.map(\.result) == [.passed], "\(drills)")

        // diff: the kind's diff key (names without case) makes a rename by case a change
        try FileManager.default.removeItem(atPath: data + "/B.txt")
        write(data + "/b.txt", "bravo")
        write(data + "/c.txt", "charlie")
        let second = try #require(try await engine.backup().artifacts.first)
        let diff = try await engine.diff(first.id, second.id, filter: ContentFilter())
        #expect(diff.added.map(\.path) == ["c.txt"] && diff.changed.map(\.to.path) == ["b.txt"] && diff.removed.isEmpty && diff.unchanged == 1,
                "\(diff.added.map(\.path)) \(diff.changed.map(\.to.path)) \(diff.removed.map(\.path))")
        #expect(Output.summary(second) == "3 files in a directory")

        // a third backup rotates the first away (keep_last: 2), and what stays verifies
        _ = try await engine.backup()
        let kept = try engine.list(source: nil, limit: nil).filter { $0.deletedAt == nil && $0.status == .ok }
        #expect(kept.count == 2 && !kept.contains { $0.id == first.id }, "\(kept.map(\.id))")
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try await engine.verify(ids: [], all: true).allSatisfy(\.ok))

        // policy check --connect (its preflight and preflightPolicy: the defaults, nothing to try), import (not an
        // importing kind: its bytes are no kind's, refused), hook rollback (restored by default; the commands)
        #expect(await engine.preflight(connect: true).allSatisfy(\.ok))
        await #expect(throws: BackupFailure.self) { _ = try await engine.importBackups([dir.file("repo/" + second.path)], source: "docs", takenAt: nil, dryRun: false) }
        _ = try await engine.preDeploy(release: "sixth:1", sources: [])
        let rehearsed = try await engine.rollback(release: "sixth:1", reason: "test", restoreData: false, dryRun: true, environmentName: "production", service: "api")
        #expect(rehearsed.lines.count == 1 && rehearsed.lines[0].hasPrefix("would restore docs from "), "\(rehearsed.lines)")
        let commands = try await engine.rollback(release: "sixth:1", reason: "test", restoreData: false, environmentName: "production", service: "api")
        #expect(commands.lines.count == 1 && commands.lines[0].hasPrefix("kaleem-backup restore docs --backup "), "\(commands.lines)")

        // the sweeper removes the kind's temporary directories whose process is gone, and its old ones
        let tmp = NSTemporaryDirectory()
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let dead = (tmp as NSString).appendingPathComponent("kaleem-directory-\(finished.processIdentifier)-ab12cd")
        let old = (tmp as NSString).appendingPathComponent("kaleem-dirkind-old-\(UUID().uuidString)")
        let alive = (tmp as NSString).appendingPathComponent("kaleem-directory-\(getppid())-ef34gh")
        for d in [dead, old, alive] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        defer { try? FileManager.default.removeItem(atPath: alive) }
        _ = try BackupEngine(policy: policy, environment: EngineEnvironment(variables: [:])).catalog()
        #expect(!FileManager.default.fileExists(atPath: dead) && !FileManager.default.fileExists(atPath: old))
        #expect(FileManager.default.fileExists(atPath: alive))
    }
}
