// `import`: backups the operations document's own scripts made before kaleem-backup (`redis-YYYYMMDD.rdb`,
// `mongo-YYYYMMDD-HHMMSS.archive.gz` of the deploy script, `mongodb-YYYYMMDD/` of mongodump --out) adopted into
// the repository: streamed through the same pipeline as a backup (zlib, sha256, the kind's own verifier on its
// own thread, atomic rename), recorded with the time they were taken, so they list, verify, restore, drill,
// copy off-site and rotate like the rest. The originals are read, never changed or removed.
//
// import, for each path:
//   detect the kind (directory dump, RDB, mongodump archive) and the source (the only one of that kind, or --source)
//   the time it was taken: --taken, else the name's YYYYMMDD[-HHMMSS] (policy time zone), else the file's mtime
//   hash the input: already imported (same sha256 in a good backup of the source) → skipped
//   lock; record a run (tag imported) and the artifact (running); stream → [verifier] and → gzip → .partial
//   verified → rename, manifest, artifact ok; else → partial removed, artifact failed (with why)
import ArtifactStore
import BackupCatalog
import BackupCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What `import` did with one path.
public struct ImportItem: Sendable {
    public var path: String
    public var source: String?
    public var takenAt: Date?
    /// The artifact recorded (ok or failed); nil when skipped or refused before anything was written.
    public var artifact: ArtifactInfo?
    /// Why nothing was written: already imported (its id), or a dry run.
    public var skipped: String?
    /// Why the import of this path failed.
    public var error: String?
    public var failure: FailureKind?
}

/// A format `import` takes in, declared by the kind that imports it (`ImportingKind.importFormat`: Kinds/Redis
/// `.rdb`, Kinds/MongoDB `.mongoArchive` and `.mongoDirectory`).
struct ImportFormat: Sendable, Equatable {
    /// For messages: `rdb`, `mongodump archive`.
    let rawValue: String
    /// The kind whose sources it is imported into.
    let kind: SourceKind
}

struct Importer: EngineService {
    let core: EngineCore

    static let tag = RunTag(rawValue: "imported")!

    func importPaths(_ paths: [String], source named: String?, takenAt: Date?, dryRun: Bool) async throws -> [ImportItem] {
        // Everything that can be said before anything is written is said first, for every path (exit 2).
        var planned: [(path: String, format: ImportFormat, source: SourcePolicy, taken: Date, digest: String)] = []
        var problems: [String] = []
        let zone = TimeZone(identifier: policy.retention.timeZone) ?? .current
        let now = environment.clock()
        for path in paths {
            do {
                let format = try Self.detect(path, registry: registry)
                let source = try chooseSource(for: format, named: named, path: path)
                let taken = try takenAt ?? Self.takenAt(path: path, zone: zone)
                if taken > now.addingTimeInterval(300) {
                    throw BackupFailure("\(path) would be dated \(Timestamps.iso8601(taken)), in the future", exitStatus: .usage,
                                        hint: "give the time it was taken with --taken")
                }
                planned.append((path, format, source, taken, try Self.digest(path, format: format)))
            } catch {
                problems.append(describe(error))
            }
        }
        if !problems.isEmpty {
            throw BackupFailure("nothing was imported: " + problems.joined(separator: "; "), exitStatus: .usage,
                                hint: "import knows redis-*.rdb (an RDB file), mongo-*.archive[.gz] (mongodump --archive [--gzip]) and mongodb-*/ (mongodump --out)")
        }
        try repository.prepare()
        let lock = try RunLock(path: repository.lockPath, purpose: "import")
        defer { lock.release() }
        let catalog = try catalog()
        try await core.recovery.recover(catalog)

        var items: [ImportItem] = []
        var run: RunInfo?
        for p in planned {
            var item = ImportItem(path: p.path, source: p.source.name, takenAt: p.taken)
            if let earlier = try catalog.artifacts(source: p.source.name, status: .ok).first(where: { $0.stats["imported_sha256"] == .string(p.digest) }) {
                item.skipped = "already imported as \(earlier.id)"
                items.append(item)
                continue
            }
            if dryRun {
                item.skipped = "dry run: would import as a \(p.format.rawValue) backup of \(p.source.name) taken \(Timestamps.iso8601(p.taken))"
                items.append(item)
                continue
            }
            if run == nil {
                let started = environment.clock()
                let made = RunInfo(id: "run-" + core.newIdentifier(at: started), tag: Self.tag, release: nil,
                                   startedAt: started, status: .running, host: environment.host)
                try catalog.insertRun(made)
                run = made
            }
            let (artifact, failure) = await importOne(p.path, format: p.format, source: p.source, taken: p.taken, digest: p.digest,
                                                      run: run!, catalog: catalog)
            item.artifact = artifact
            if artifact.status != .ok { item.error = artifact.detail; item.failure = failure }
            items.append(item)
        }
        if var run {
            let written = items.compactMap(\.artifact)
            let good = written.filter { $0.status == .ok }.count
            run.status = good == written.count ? .ok : (good == 0 ? .failed : .partial)
            try? catalog.finishRun(id: run.id, status: run.status, at: environment.clock())
            core.statusReport.writeMetricsTextfile()
        }
        return items
    }

    private func importOne(_ path: String, format: ImportFormat, source: SourcePolicy, taken: Date, digest: String,
                           run: RunInfo, catalog: Catalog) async -> (ArtifactInfo, FailureKind?) {
        let created = Date(timeIntervalSince1970: taken.timeIntervalSince1970.rounded(.down)) // the id's second
        let id = core.newIdentifier(at: created)
        var artifact = ArtifactInfo(id: id, runID: run.id, source: source.name, kind: source.kind, path: "",
                                    status: .running, createdAt: created, tag: Self.tag, release: nil)
        do {
            let adapter = try registry.adapter(for: source.kind)
            guard adapter.asStream != nil else { throw BackupFailure("source kind \(source.kind.rawValue) cannot import") }
            guard let importer = adapter.asImporting else {
                throw BackupFailure("source kind \(source.kind.rawValue) cannot import a \(format.rawValue)", exitStatus: .usage)
            }
            let ext = importer.fileExtension
            artifact.path = repository.relativeArtifactPath(source: source.name, id: id, createdAt: artifact.createdAt, extension: ext)
            try catalog.insertArtifact(artifact)
            try repository.prepareDirectory(forArtifact: artifact.path)
            let recipients = try core.encryptionRecipients()
            if !recipients.isEmpty { artifact.compression = .gzipAge }
            let writer = try ArtifactWriter(path: repository.absolute(artifact.path), compression: policy.compression, recipients: recipients)
            let started = DispatchTime.now()
            var stats: [String: JSONValue]
            let stored: StoredFile
            do {
                stats = try importer.importStream(format: format, from: path, digest: digest, into: writer, context: context)
                stored = try writer.commit()
            } catch {
                writer.abort()
                throw error
            }
            stats["imported_from"] = .string((path as NSString).lastPathComponent)
            stats["imported_sha256"] = .string(digest)
            stats["duration_seconds"] = .double((Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e6).rounded() / 1000)
            artifact.bytesRaw = stored.bytesRaw
            artifact.bytesStored = stored.bytesStored
            artifact.sha256 = stored.sha256
            artifact.stats = stats
            artifact.status = .ok
            artifact.detail = "imported from \((path as NSString).lastPathComponent)"
            try repository.writeManifest(Manifest(artifact: artifact, run: run))
            try catalog.updateArtifact(artifact)
            logger.info("import ok", metadata: ["source": "\(source.name)", "artifact": "\(id)", "from": "\(path)"])
            return (artifact, nil)
        } catch {
            artifact.status = .failed
            artifact.detail = "import of \((path as NSString).lastPathComponent): \(describe(error))"
            if !artifact.path.isEmpty { unlink(repository.manifestPath(forArtifact: artifact.path, id: id)) }
            try? catalog.updateArtifact(artifact)
            logger.error("import failed", metadata: ["source": "\(source.name)", "path": "\(path)", "error": "\(artifact.detail!)"])
            return (artifact, error is IntegrityFailure ? .integrity : .failed)
        }
    }

    private func chooseSource(for format: ImportFormat, named: String?, path: String) throws -> SourcePolicy {
        let candidates = policy.sources.filter { $0.kind == format.kind }
        if let named {
            guard let source = policy.sources.first(where: { $0.name == named }) else {
                throw BackupFailure("no source named \(named) in the policy", exitStatus: .usage)
            }
            guard source.kind == format.kind else {
                throw BackupFailure("\(path) is a \(format.rawValue), and source \(named) is of kind \(source.kind.rawValue)", exitStatus: .usage)
            }
            return source
        }
        guard candidates.count == 1 else {
            throw BackupFailure(candidates.isEmpty ? "\(path) is a \(format.rawValue), and the policy has no \(format.kind.rawValue) source"
                                : "\(path) is a \(format.rawValue), and the policy has \(candidates.count) \(format.kind.rawValue) sources (\(candidates.map(\.name).joined(separator: ", "))): say which with --source",
                                exitStatus: .usage)
        }
        return candidates[0]
    }

    // MARK: formats

    /// The format of `path`, asked of each importing kind of `registry` (in its order).
    static func detect(_ path: String, registry: SourceRegistry) throws -> ImportFormat {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            throw BackupFailure("\(path): \(String(cString: strerror(errno)))", exitStatus: .usage)
        }
        let importers = registry.kinds.compactMap { registry.adapters[$0]?.asImporting }
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            if let format = importers.lazy.compactMap({ $0.importFormat(of: path, isDirectory: true, head: []) }).first { return format }
            let known = importers.compactMap(\.importedDirectory)
            throw BackupFailure(known.isEmpty ? "\(path) is a directory, and no kind of source imports directories"
                                : "\(path) is a directory but not \(known.joined(separator: " nor "))", exitStatus: .usage)
        case S_IFREG:
            break
        default:
            throw BackupFailure("\(path) is not a regular file or a directory (a symlink is not followed)", exitStatus: .usage)
        }
        let head = Self.head(path, count: 5)
        if let format = importers.lazy.compactMap({ $0.importFormat(of: path, isDirectory: false, head: head) }).first { return format }
        throw BackupFailure("\(path) is neither \(importers.compactMap(\.importedFile).joined(separator: " nor "))", exitStatus: .usage)
    }

    static func head(_ path: String, count: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, count) }
        return n > 0 ? Array(buffer.prefix(n)) : []
    }

    /// The time in the name (`YYYYMMDD` with an optional `-HHMMSS`, in `zone`), refined by the file's mtime when
    /// the name has only the day and the mtime falls on it; the mtime alone when the name has no date.
    static func takenAt(path: String, zone: TimeZone) throws -> Date {
        var info = stat()
        let mtime: Date? = lstat(path, &info) == 0 ? Date(timeIntervalSince1970: TimeInterval(info.st_mtim.tv_sec)) : nil
        let name = (path as NSString).lastPathComponent
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        if let match = name.range(of: #"(?<![0-9])[0-9]{8}(-[0-9]{6})?(?![0-9])"#, options: .regularExpression) {
            let digits = name[match].filter(\.isNumber).map { Int(String($0))! }
            func number(_ r: Range<Int>) -> Int { r.reduce(0) { $0 * 10 + digits[$1] } }
            var parts = DateComponents(year: number(0..<4), month: number(4..<6), day: number(6..<8))
            if digits.count == 14 {
                parts.hour = number(8..<10); parts.minute = number(10..<12); parts.second = number(12..<14)
            }
            // Every field in its range: a calendar would carry 12:61:39 or 25:00 over silently.
            guard let year = parts.year, year >= 1970, let month = parts.month, (1...12).contains(month), let day = parts.day, (1...31).contains(day),
                  (0...23).contains(parts.hour ?? 0), (0...59).contains(parts.minute ?? 0), (0...59).contains(parts.second ?? 0),
                  let date = calendar.date(from: parts), calendar.component(.day, from: date) == day else {
                throw BackupFailure("\(name) holds \(name[match]), which is not a date", exitStatus: .usage, hint: "give the time it was taken with --taken")
            }
            if digits.count == 8, let mtime, calendar.isDate(mtime, inSameDayAs: date) { return mtime }
            return date
        }
        guard let mtime else { throw BackupFailure("cannot read the modification time of \(path)", exitStatus: .usage) }
        return mtime
    }

    /// The sha256 of what an import of `path` streams: a re-import of the same backup is recognised.
    static func digest(_ path: String, format: ImportFormat) throws -> String {
        var hasher = StreamingSHA256()
        try stream(path, format: format) { chunk in chunk.withUnsafeBytes { hasher.update($0) } }
        return hasher.finalize()
    }

    /// The bytes an import of `path` stores: the file as it is, or the archive of a directory dump.
    /// With `expecting` (the digest of the first pass), the bytes are hashed again as they go: a file that changed
    /// in between (a dump still being written, a file replaced) fails the import instead of being recorded under
    /// the digest of other bytes (a later import of those would be skipped as already imported).
    static func stream(_ path: String, format: ImportFormat, expecting digest: String? = nil, emit: ([UInt8]) throws -> Void) throws {
        guard let digest else { return try stream(path, format: format, emit: emit) }
        var hasher = StreamingSHA256()
        try stream(path, format: format) { chunk in
            chunk.withUnsafeBytes { hasher.update($0) }
            try emit(chunk)
        }
        let read = hasher.finalize()
        guard read == digest else {
            throw BackupFailure("\(path) changed while it was imported (sha256 \(digest.prefix(12))… when checked, \(read.prefix(12))… when read again): nothing was stored",
                                hint: "import it again once nothing writes to it (a mongodump still running, a copy in progress)")
        }
    }

    /// The bytes of `path` as the kind of `format` imports them (`ImportingKind.importBytes`).
    static func stream(_ path: String, format: ImportFormat, emit: ([UInt8]) throws -> Void) throws {
        guard let importer = SourceRegistry.current.adapters[format.kind]?.asImporting else {
            throw BackupFailure("source kind \(format.kind.rawValue) cannot import a \(format.rawValue)", exitStatus: .usage)
        }
        try importer.importBytes(path, format: format, emit: emit)
    }

    /// The file at `path` as it is (never through a symlink).
    static func readFile(_ path: String, emit: ([UInt8]) throws -> Void) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw FileSystemError("open", path: path) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError("read", path: path)
            }
            if n == 0 { return }
            try emit(Array(buffer.prefix(n)))
        }
    }
}
