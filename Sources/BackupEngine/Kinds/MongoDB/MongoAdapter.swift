// `kind: mongodb`: mongodump --archive streamed into the pipeline while the archive verifier walks it; restores
// through mongorestore; drills into scratch databases of drill.mongo_uri (or archive-only).
import ArtifactStore
import BackupCore
import Foundation
import MongoBackup

extension MongoArchiveError: IntegrityFailure {}

extension ImportFormat {
    /// `mongodump --archive [--gzip]` (the deploy script's `mongo-*.archive.gz`).
    static let mongoArchive = ImportFormat(rawValue: "mongodump archive", kind: SourceKind("mongodb"))
    /// A `mongodump --out` directory (`mongodb-YYYYMMDD/`), imported as the archive `mongodump --archive` writes.
    static let mongoDirectory = ImportFormat(rawValue: "mongodump directory", kind: SourceKind("mongodb"))
}

struct MongoAdapter: ImportingKind {
    typealias Settings = MongoSourcePolicy
    let kind = SourceKind("mongodb")
    let fileExtension = "archive"
    let summary = "mongodump --archive, restored through mongorestore (into the source, or --to-uri)"

    func tools(_ policy: MongoSourcePolicy, source: String, context: SourceContext) throws -> MongoTools {
        guard let uri = try context.secrets(for: source).resolve(policy.uri, key: "uri") else { throw BackupFailure("no MongoDB uri") }
        return MongoTools(uri: uri, timeoutSeconds: policy.timeoutSeconds, source: source)
    }

    // MARK: backup

    /// The archive goes to the writer and, through a bounded channel, to the archive verifier on its own
    /// thread. A dump that fails, hangs past its timeout, writes nothing or writes an archive that does not
    /// verify is a failed backup.
    func backupStream(_ source: TypedSource<MongoSourcePolicy>, into writer: ArtifactWriter, context: SourceContext) async throws -> [String: JSONValue] {
        let policy = source.settings
        var tools = try tools(policy, source: source.name, context: context)
        tools.timeoutSeconds = min(policy.timeoutSeconds, source.deadlineSeconds) // the tool's own timeout is the deadline too
        let verification = VerifierThread { source in try MongoArchiveCheck.verify(source) }
        let outcome: MongoToolOutcome
        do {
            outcome = try await tools.dump(command: policy.mongodump, databases: policy.databases, exclude: policy.exclude,
                                     oplog: policy.oplog) { chunk in
                try verification.feed(chunk, alongside: writer)
            }
        } catch {
            verification.channel.fail(error)
            // The verifier's own finding explains garbage better than "killed".
            if case .failure(let found) = Result(catching: { try verification.wait() }), found is MongoArchiveError {
                throw found
            }
            throw error
        }
        verification.channel.finish()
        let (report, gzipped) = try verification.wait()
        var stats = report.stats
        stats["gzip_inside"] = .bool(gzipped)
        if let last = outcome.stderrTail.last { stats["mongodump_last_line"] = .string(last) }
        return stats
    }

    /// `import` of a mongodump archive (`mongo-*.archive.gz` of the deploy script: `--archive --gzip`) or of a
    /// `mongodump --out` directory (`mongodb-YYYYMMDD/`, turned into the archive `mongodump --archive` writes).
    func importFormat(of path: String, isDirectory: Bool, head: [UInt8]) -> ImportFormat? {
        if isDirectory { return DumpDirectoryArchiver.looksLikeDump(path) ? .mongoDirectory : nil }
        if head.starts(with: MongoArchiveVerifier.magic) { return .mongoArchive }
        // gzip: the deploy script's `mongodump --archive --gzip` (the verifier inflates and checks what is inside).
        if head.starts(with: [0x1F, 0x8B]) && (path.hasSuffix(".archive.gz") || path.hasSuffix(".gz")) { return .mongoArchive }
        return nil
    }
    var importedFile: String? { "a mongodump archive (6de29981, or gzip of one)" }
    var importedDirectory: String? { "a mongodump --out dump (no <db>/*.bson)" }

    func importBytes(_ path: String, format: ImportFormat, emit: ([UInt8]) throws -> Void) throws {
        if format == .mongoDirectory { return try DumpDirectoryArchiver.archive(directory: path, emit: emit) }
        try Importer.readFile(path, emit: emit)
    }

    func importStream(format: ImportFormat, from path: String, digest: String, into writer: ArtifactWriter, context: SourceContext) throws -> [String: JSONValue] {
        guard format.kind == kind else { throw BackupFailure("a mongodb source imports mongodump archives and directories, not a \(format.rawValue)", exitStatus: .usage) }
        let verification = VerifierThread { source in try MongoArchiveCheck.verify(source) }
        let (_, (report, gzipped)) = try verification.around {
            try Importer.stream(path, format: format, expecting: digest) { chunk in try verification.feed(chunk, alongside: writer) }
        }
        var stats = report.stats
        stats["gzip_inside"] = .bool(gzipped)
        return stats
    }

    // MARK: verify

    func verifyContents(_ artifact: ArtifactInfo, _ contents: GzipChunkSource, path: String) throws -> String {
        let (report, _) = try MongoArchiveCheck.verify(contents)
        var rest = contents
        rest.drain()
        try rest.finishError()
        if let recorded = artifact.stats["documents"]?.intValue, recorded != report.documents {
            throw IntegrityError(object: path, problem: "archive holds \(report.documents) documents, the catalog recorded \(recorded)")
        }
        // The namespaces restores and drills act on are the catalog's: they must be the archive's own.
        if case .object(let recorded)? = artifact.stats["per_namespace"] {
            let catalog = recorded.mapValues { $0.intValue ?? -1 }
            if catalog != report.namespaces {
                let differ = Set(catalog.keys).symmetricDifference(report.namespaces.keys).union(catalog.keys.filter { report.namespaces[$0] != nil && report.namespaces[$0] != catalog[$0] })
                throw IntegrityError(object: path, problem: "the catalog's namespaces differ from the archive's: \(differ.sorted().prefix(5).map { String(reflecting: $0) }.joined(separator: ", "))")
            }
        }
        let oplog = report.oplogEntries > 0 ? " + \(report.oplogEntries) oplog entries" : ""
        return "sha256 ok, gzip ok, archive ok: \(report.namespaces.count) namespaces, \(report.restorableDocuments) documents\(oplog), CRCs ok"
    }

    // MARK: drill

    func drill(_ artifact: ArtifactInfo, source: TypedSource<MongoSourcePolicy>, context: SourceContext) async -> (DrillResult, String) {
        let check = await context.verify(artifact, copy: nil)
        guard check.ok else { return (.failed, "the backup does not verify: \(check.detail)") }
        if let scratch = context.policy.drill.mongoURI {
            do {
                let mongo = source.settings
                guard let uri = try context.secrets(for: artifact.source).resolve(scratch, key: "drill.mongo_uri") else {
                    return (.error, "no drill.mongo_uri")
                }
                return try await drillMongo(artifact, mongo, scratch: uri, context: context)
            } catch {
                return (.error, "the drill could not run: \(context.describe(error))")
            }
        }
        let docs = artifact.stats["documents"]?.intValue ?? 0
        let oplog = artifact.stats["oplog_entries"]?.intValue ?? artifact.stats["per_namespace"]?[MongoArchiveVerifier.oplogNamespace]?.intValue ?? 0
        let ns = artifact.stats["namespaces"]?.intValue ?? 0
        let entries = oplog > 0 ? " + \(oplog) oplog entries" : ""
        let verified = "archive verified (\(docs - oplog) documents\(entries) in \(ns) namespaces, every CRC)"
        let setting = context.policy.drill.mongoImage
        if setting == "off" {
            return (.archiveOnly, "\(verified); drill.mongo_image is off and no drill.mongo_uri is set, nothing restored")
        }
        guard let docker = MongoTools.locate(["docker"]) else {
            return (.archiveOnly, "\(verified); docker is not installed here (for a throwaway MongoDB) and no drill.mongo_uri is set, nothing restored")
        }
        let image = setting == "auto" ? ThrowawayMongo.image(forServerVersion: artifact.stats["server_version"].map { "\($0)" }) : setting
        return await drillInThrowaway(artifact, source: source, docker: docker, image: image, context: context)
    }

    /// §8.4: the backup restored into a throwaway MongoDB of its own server's version, counted, and the container
    /// removed whatever happened.
    private func drillInThrowaway(_ artifact: ArtifactInfo, source: TypedSource<MongoSourcePolicy>, docker: String, image: String,
                                  context: SourceContext) async -> (DrillResult, String) {
        let container: ThrowawayMongo
        do {
            container = try await ThrowawayMongo.start(docker: docker, image: image, label: "\(artifact.id.suffix(6))-\(UInt32.random(in: 0...UInt32.max))")
        } catch {
            return (.error, "the drill could not start a throwaway MongoDB (\(image)): \(context.describe(error))")
        }
        let outcome: (DrillResult, String)
        do {
            let mongo = source.settings
            let uri = Secret(container.uri)
            try await Self.waitUntilAnswers(uri: uri, mongosh: context.policy.drill.mongosh, source: artifact.source, timeout: 120)
            outcome = try await drillMongo(artifact, mongo, scratch: uri, context: context, dropAfter: false)
        } catch {
            outcome = (.error, "the drill into a throwaway MongoDB (\(image)) could not run: \(context.describe(error))")
        }
        let removed = await container.remove()
        if let removed { context.logger.warning("throwaway MongoDB not removed", metadata: ["container": "\(container.name)", "error": "\(removed)"]) }
        let place = "throwaway \(image) container on 127.0.0.1:\(container.port), " + (removed.map { "NOT removed (\($0)): docker rm -f \(container.name)" } ?? "removed")
        return (outcome.0, outcome.1 + "; " + place)
    }

    /// A fresh mongod takes a few seconds to accept connections (and docker's port proxy accepts before it does):
    /// pinged through the drill's mongosh until it answers.
    static func waitUntilAnswers(uri: Secret, mongosh: [String], source: String, timeout: Double) async throws {
        let tools = MongoTools(uri: uri, timeoutSeconds: 30, source: source)
        let until = Date(timeIntervalSinceNow: timeout)
        while true {
            do {
                _ = try await tools.shell(command: mongosh, script: "const kb_ping = kb.adminCommand({ ping: 1 }); if (kb_ping.ok !== 1) { throw new Error('ping answered ' + JSON.stringify(kb_ping)); }")
                return
            } catch {
                if Date() > until {
                    throw BackupFailure("the throwaway MongoDB did not answer a ping within \(Int(timeout)) s: \(error)")
                }
                try await Task.sleep(nanoseconds: 500_000_000)
            }
        }
    }

    /// MongoDB into the scratch server of `drill.mongo_uri`: each database `db` of the archive is restored as
    /// `kb_drill_<id>_db` (never under its own name, so even a scratch URI pointing at production writes
    /// nothing of production), per-namespace counts compared with the archive's, then the scratch databases
    /// are dropped.
    private func drillMongo(_ artifact: ArtifactInfo, _ mongo: MongoSourcePolicy, scratch uri: Secret,
                            context: SourceContext, dropAfter: Bool = true) async throws -> (DrillResult, String) {
        guard case .object(let perNamespace)? = artifact.stats["per_namespace"] else { return (.error, "the backup recorded no namespaces") }
        let databases = Self.applicationDatabases(of: artifact)
        // Database names come from the catalog (a rebuild may have taken them from a manifest): only names MongoDB
        // itself allows (no / \\ . space " $ or NUL, at most 63 bytes) are restored and dropped, and they reach
        // mongosh as string literals, never as script text.
        let unsafe = databases.filter { !Self.isValidDatabaseName($0) }
        if !unsafe.isEmpty {
            return (.error, "the backup records database names MongoDB does not allow: \(unsafe.sorted().map { String(reflecting: $0) }.joined(separator: ", ")); verify the backup and its manifest")
        }
        guard !databases.isEmpty else { return (.archiveOnly, "the archive holds no application database to restore") }
        if MongoURIOptions.unacknowledged(uri.value) {
            return (.error, "drill.mongo_uri asks for an unacknowledged write concern (w=0): mongorestore then counts nothing, so a drill could check nothing; remove w=0 from drill.mongo_uri")
        }
        let prefix = "kb_drill_\(artifact.id.suffix(6))_"
        var args: [String] = []
        for db in databases.sorted() { args += ["--nsInclude=\(db).*", "--nsFrom=\(db).*", "--nsTo=\(prefix)\(db).*"] }
        if artifact.stats["gzip_inside"] == .bool(true) { args.append("--gzip") }
        let tools = MongoTools(uri: uri, timeoutSeconds: mongo.timeoutSeconds, source: artifact.source)
        let reader = try await context.reader(artifact)
        let mongosh = context.policy.drill.mongosh
        /// Drops the scratch databases; says whether it could.
        func dropScratch() async -> String {
            guard dropAfter else { return "scratch databases go with the container" }
            do {
                _ = try await tools.shell(command: mongosh, script: Self.dropDatabasesScript(databases.sorted().map { prefix + $0 }))
                return "scratch databases dropped"
            } catch {
                context.logger.warning("scratch databases not dropped", metadata: ["prefix": "\(prefix)", "error": "\(context.describe(error))"])
                return "scratch databases \(prefix)* NOT dropped (\(context.describe(error))): drop them by hand"
            }
        }
        let outcome: MongoToolOutcome
        do {
            outcome = try await tools.restore(command: mongo.mongorestore, arguments: args) {
                var chunk: [UInt8]?
                _ = try reader.read { chunk = Array($0) }
                return chunk
            }
        } catch {
            _ = await dropScratch()
            throw error
        }
        let dropped = await dropScratch()
        // Every count line of the run, however long its output (not only the tail's).
        let restored = outcome.report.perNamespace
        var mismatches: [String] = []
        var compared = 0
        for (ns, value) in perNamespace {
            guard let dot = ns.firstIndex(of: "."), databases.contains(String(ns[..<dot])), let expected = value.intValue else { continue }
            var renamed = prefix + ns
            // A time-series collection is restored through its buckets namespace: either name may be reported.
            if restored[renamed] == nil, let buckets = artifact.stats["timeseries"]?[ns], case .string(let dataNS) = buckets {
                renamed = prefix + dataNS
            }
            compared += 1
            if restored[renamed] != expected { mismatches.append("\(renamed): \(restored[renamed].map(String.init) ?? "none") of \(expected)") }
        }
        if let summary = outcome.report.summary, summary.failed > 0 {
            mismatches.append("\(summary.failed) document(s) failed to restore")
        } else if outcome.report.summary == nil {
            mismatches.append("mongorestore printed no summary line")
        }
        let into = " into \(Redaction.url(uri.value)) as \(prefix)*"
        if mismatches.isEmpty {
            return (.passed, "restored \(compared) namespaces\(into); every document count matches the archive; \(dropped)")
        }
        return (.failed, "restored\(into), counts differ: " + mismatches.sorted().joined(separator: "; ") + "; \(dropped)")
    }

    /// MongoDB's rules for a database name (on Linux): not empty, at most 63 bytes, none of `/\\. "$` or NUL.
    static func isValidDatabaseName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 63 && !name.unicodeScalars.contains { "/\\. \"$\u{0}".unicodeScalars.contains($0) }
    }

    // MARK: rollback

    func rollback(_ artifact: ArtifactInfo, source: TypedSource<MongoSourcePolicy>, restoreData: Bool, context: SourceContext) async throws -> [String] {
        guard restoreData else { return ["kaleem-backup restore \(artifact.source) --backup \(artifact.id) --drop --yes"] }
        // A refresh (#38) goes through scratch databases, scrubbed, then swapped into place (MongoRefresh.swift).
        if context.refreshing { return try await refreshBySwap(artifact, source: source, context: context) }
        // A whole restore: the oplog replayed when there is one.
        let done = try await context.restore(self, source, into: MongoRestoreTarget(drop: true),
                                             RestoreRequest(source: source.name, backup: .id(artifact.id), confirmed: true))
        return ["restored \(artifact.source) from \(artifact.id): \(done.details["restored"]?.intValue ?? 0) documents"
                + (done.details["oplog_applied"]?.intValue.map { ", oplog replayed (\($0) entries)" } ?? "")]
    }

}

/// Verifies an archive stream, inflating it first when it is gzipped (`mongodump --gzip`).
enum MongoArchiveCheck {
    static func verify<S: ByteSource>(_ source: S) throws -> (MongoArchiveReport, gzipped: Bool) {
        var upstream = source
        guard let first = try upstream.nextChunk() else { return (try MongoArchiveVerifier.verify(upstream), false) }
        var prefix = [first]
        if first.count < 2, let second = try upstream.nextChunk() { prefix.append(second) }
        let head = Array(prefix.joined().prefix(2))
        let replay = PrefixedSource(prefix: prefix, then: upstream)
        if MongoArchiveVerifier.isGzip(head) {
            return (try MongoArchiveVerifier.verify(try InflatingSource(replay)), true)
        }
        return (try MongoArchiveVerifier.verify(replay), false)
    }
}
