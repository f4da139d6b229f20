// Restoring a files backup: into a directory (`--to-dir`) or over the source's root (`--in-place`), each file
// written to a temporary name, fsynced, given its mode, owner (as root) and mtime, then renamed into place.
// Nothing is ever written outside the target: absolute names, `..` and symlinked parent directories are refused.
import ArtifactStore
import BackupCore
import Crypto
import Foundation
import TarFormat
#if canImport(Glibc)
import Glibc
#endif

extension FilesAdapter {
    var restoreOptions: [RestoreOptionSpec] {
        [
            RestoreOptionSpec("to-dir", value: "DIR", help: "write the files under this directory (created if missing)"),
            RestoreOptionSpec("in-place", help: "write them over the source's root; each replaced file is kept as <name>.kb-<id>"),
            RestoreOptionSpec("file", value: "PATH", help: "only this file, or everything under this directory (repeatable)", repeatable: true),
        ]
    }

    func restoreTarget(_ source: TypedSource<FilesSourcePolicy>, _ o: RestoreOptions) throws -> FilesRestoreTarget {
        let files = source.settings
        let inPlace = o.flag("in-place")
        guard inPlace != (o.value("to-dir") != nil) else {
            throw BackupFailure("name the target: --to-dir DIR, or --in-place (over \(files.root))", exitStatus: .usage,
                                hint: "restore into a side directory first and compare, unless you are rebuilding the host")
        }
        let target = inPlace ? files.root : o.value("to-dir")!
        guard !target.isEmpty else {
            throw BackupFailure("--to-dir is empty: it would write under /", exitStatus: .usage, hint: "give the directory to restore the files into")
        }
        return FilesRestoreTarget(path: target, inPlace: inPlace, only: o.values("file"))
    }

    /// Each selected entry compared with what the target holds (added, changed, unchanged); files there that
    /// differ need --yes; what is already there, identical, is left alone (and so never kept aside).
    func planRestore(_ artifact: ArtifactInfo, into target: FilesRestoreTarget, source: TypedSource<FilesSourcePolicy>, request: RestoreRequest,
                     context: SourceContext) async throws -> RestorePlan {
        let planned = try planExtraction(artifact, into: target.path, only: target.only)
        var lines = ["restore \(source.name) backup \(artifact.id) (taken \(Timestamps.iso8601(artifact.createdAt))) into \(target.path)\(target.inPlace ? " (in place: replaced files are kept as <name>.kb-\(artifact.id))" : "")"]
        lines += planned.map { "  \($0.status) \($0.path)" }
        let paths = { (s: String) in planned.filter { $0.status == s }.map(\.path) }
        let added = paths("added"), changed = paths("changed"), unchanged = paths("unchanged")
        func details(kept: [String], written: Int) -> [String: JSONValue] {
            ["target": .string(target.path), "in_place": .bool(target.inPlace), "added": .strings(added), "changed": .strings(changed),
             "unchanged": .strings(unchanged), "kept": .strings(kept), "written": .int(written)]
        }
        let dry = "dry run: \(added.count) added, \(changed.count) changed, \(unchanged.count) unchanged; nothing was written"
        return RestorePlan(
            mode: target.inPlace ? "files-in-place" : "files", target: target.path, lines: lines,
            needsConfirmation: changed.isEmpty ? nil
                : BackupFailure("\(changed.count) file(s) exist in \(target.path) and differ from the backup; refusing to overwrite them without --yes",
                                exitStatus: .usage, hint: "read the plan above (--dry-run shows it), then run the same command with --yes"),
            dryRun: RestoreResult(lines: [dry], detail: dry, details: details(kept: [], written: 0)),
            apply: { _ in
                let outcome = try await extract(artifact, into: target.path, only: target.only, inPlace: target.inPlace, confirmed: true, dryRun: false,
                                                skip: Set(unchanged), context: context)
                let summary = "\(outcome.written) entries written (\(added.count) added, \(changed.count) changed, \(unchanged.count) unchanged)"
                    + (outcome.kept.isEmpty ? "" : "; \(outcome.kept.count) replaced file(s) kept as *.kb-\(artifact.id)")
                return RestoreResult(lines: [summary], detail: summary, details: details(kept: outcome.kept, written: outcome.written))
            })
    }

    /// Per entry of the manifest (those selected): added, changed or unchanged against what the target holds.
    func planExtraction(_ artifact: ArtifactInfo, into target: String, only: [String]) throws -> [(path: String, status: String)] {
        var out: [(String, String)] = []
        for (path, e) in Self.entries(of: artifact).sorted(by: { $0.key < $1.key }) where Self.selected(path, only) {
            try Self.checkSafe(path)
            let live = target + "/" + path
            var info = stat()
            guard lstat(live, &info) == 0 else { out.append((path, "added")); continue }
            let same: Bool
            switch e["type"] {
            case .string("file")?: same = (info.st_mode & S_IFMT) == S_IFREG && e["sha256"] == (try? sha256OfFile(live)).map { .string($0) }
            case .string("symlink")?: same = (info.st_mode & S_IFMT) == S_IFLNK && e["link"] == (try? Self.readLink(live)).map { .string($0) }
            default: same = (info.st_mode & S_IFMT) == S_IFDIR
            }
            out.append((path, same ? "unchanged" : "changed"))
        }
        if out.isEmpty && !only.isEmpty {
            throw BackupFailure("no file of backup \(artifact.id) matches \(only.joined(separator: ", "))", exitStatus: .usage,
                                hint: "list what it holds: kaleem-backup show \(artifact.id)")
        }
        return out
    }

    static func selected(_ path: String, _ only: [String]) -> Bool {
        only.isEmpty || only.contains { f in
            let f = f.hasSuffix("/") ? String(f.dropLast()) : f
            return path == f || path.hasPrefix(f + "/")
        }
    }

    /// A name is a relative path: not absolute, no `..`, no empty or `.` component, no NUL.
    static func checkSafe(_ path: String) throws {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.hasPrefix("/"), !path.contains("\0"), !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw TarError(offset: 0, problem: "unsafe name \"\(path)\" (absolute, or with .. or empty components): refusing to write it")
        }
    }

    struct ExtractOutcome {
        var written = 0
        var kept: [String] = []
    }

    /// Writes the selected entries under `target`. A file's content is kept only when it hashes to what the
    /// manifest recorded (an earlier copy of a file that changed during the backup is skipped); every
    /// selected file must be written by the end, or the restore fails (exit 4).
    func extract(_ artifact: ArtifactInfo, into target: String, only: [String], inPlace: Bool, confirmed: Bool, dryRun: Bool,
                 skip: Set<String> = [], context: SourceContext) async throws -> ExtractOutcome {
        let expected = Self.entries(of: artifact)
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let isRoot = geteuid() == 0
        var outcome = ExtractOutcome()
        var done = Set<String>()
        var directories: [TarEntry] = []
        let reader = try await context.reader(artifact, progress: "restore")
        var tar = TarReader(GzipChunkSource(reader: reader))
        while let entry = try tar.next() {
            guard Self.selected(entry.path, only), expected[entry.path] != nil else { continue }
            try Self.checkSafe(entry.path)
            if skip.contains(entry.path) && entry.type != .directory {
                done.insert(entry.path)
                continue
            }
            let destination = target + "/" + entry.path
            try Self.ensureParents(of: entry.path, under: target)
            switch entry.type {
            case .directory:
                var info = stat()
                if lstat(destination, &info) == 0 {
                    guard (info.st_mode & S_IFMT) == S_IFDIR else {
                        throw BackupFailure("\(destination) exists and is not a directory; refusing to replace it", exitStatus: .usage)
                    }
                } else if mkdir(destination, 0o700) != 0 {
                    throw FileSystemError("create the directory", path: destination)
                }
                directories.append(entry)
                done.insert(entry.path)
            case .symlink:
                let temporary = try Self.temporaryName(for: destination)
                guard symlink(entry.linkTarget ?? "", temporary) == 0 else { throw FileSystemError("create the link", path: destination) }
                if isRoot, let uid = uid_t(exactly: entry.uid), let gid = gid_t(exactly: entry.gid) { _ = lchown(temporary, uid, gid) }
                Self.setTimes(temporary, entry.mtime, follow: false)
                try Self.replace(destination, with: temporary, keep: inPlace ? "\(destination).kb-\(artifact.id)" : nil, outcome: &outcome)
                done.insert(entry.path)
            case .file:
                let temporary = try Self.temporaryName(for: destination)
                let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw FileSystemError("create", path: temporary) }
                var hasher = SHA256()
                do {
                    try tar.content { slice in
                        hasher.update(data: slice)
                        try slice.withUnsafeBytes { b in
                            var off = 0
                            while off < b.count {
                                let n = write(fd, b.baseAddress! + off, b.count - off)
                                if n < 0 { if errno == EINTR { continue }; throw FileSystemError("write", path: temporary) }
                                off += n
                            }
                        }
                    }
                    let sha = hasher.finalize().hexString
                    guard expected[entry.path]?["sha256"] == .string(sha) else {
                        close(fd)
                        unlink(temporary)
                        continue // an earlier copy of a file that changed while it was backed up; the later one follows
                    }
                    if isRoot, let uid = uid_t(exactly: entry.uid), let gid = gid_t(exactly: entry.gid) { _ = fchown(fd, uid, gid) }
                    _ = fchmod(fd, mode_t(truncatingIfNeeded: entry.mode & 0o7777))
                    guard fsync(fd) == 0 else { throw FileSystemError("sync", path: temporary) }
                    close(fd)
                } catch {
                    close(fd)
                    unlink(temporary)
                    throw error
                }
                Self.setTimes(temporary, entry.mtime, follow: false)
                try Self.replace(destination, with: temporary, keep: inPlace ? "\(destination).kb-\(artifact.id)" : nil, outcome: &outcome)
                done.insert(entry.path)
            }
            outcome.written += 1
        }
        // Directories last, deepest first: their modes and times after their contents.
        // Each through a descriptor opened O_NOFOLLOW: a directory swapped for a symlink since it was written is
        // not followed (chmod by name would change whatever the link points at).
        for d in directories.sorted(by: { $0.path.count > $1.path.count }) {
            let path = target + "/" + d.path
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                context.logger.warning("directory not given its mode and owner (it is no longer a directory)", metadata: ["path": "\(path)"])
                continue
            }
            _ = fchmod(fd, mode_t(d.mode & 0o7777))
            if isRoot, let uid = uid_t(exactly: d.uid), let gid = gid_t(exactly: d.gid) { _ = fchown(fd, uid, gid) }
            if let times = Self.timespecs(d.mtime) { var t = times; _ = futimens(fd, &t) }
            close(fd)
        }
        let missing = expected.keys.filter { Self.selected($0, only) && !done.contains($0) }
        if !missing.isEmpty {
            throw IntegrityError(object: context.absolute(artifact.path), problem: "the archive lacks \(missing.count) entr(y/ies) of its manifest: \(missing.sorted().prefix(5).joined(separator: ", "))")
        }
        try FileIO.syncDirectory(target)
        return outcome
    }

    /// Every parent of `path` under `target` is a real directory (created 0700 when missing), never a symlink.
    static func ensureParents(of path: String, under target: String) throws {
        var current = target
        for part in path.split(separator: "/").dropLast() {
            current += "/" + part
            var info = stat()
            if lstat(current, &info) != 0 {
                guard mkdir(current, 0o700) == 0 || errno == EEXIST else { throw FileSystemError("create the directory", path: current) }
                continue
            }
            if (info.st_mode & S_IFMT) == S_IFLNK {
                throw TarError(offset: 0, problem: "\(current) is a symlink: refusing to write \(path) through it (it could lead outside \(target))")
            }
            guard (info.st_mode & S_IFMT) == S_IFDIR else {
                throw BackupFailure("\(current) exists and is not a directory; refusing to write \(path) under it", exitStatus: .usage)
            }
        }
    }

    static func temporaryName(for destination: String) throws -> String {
        let dir = (destination as NSString).deletingLastPathComponent
        var rng = SystemRandomNumberGenerator()
        return dir + "/.kb-restore-\(UInt64.random(in: 0...UInt64.max, using: &rng))" + AtomicFileWriter.partialSuffix
    }

    /// Renames `temporary` over `destination`, keeping what was there as `keep` when asked.
    static func replace(_ destination: String, with temporary: String, keep: String?, outcome: inout ExtractOutcome) throws {
        var info = stat()
        if lstat(destination, &info) == 0 {
            if (info.st_mode & S_IFMT) == S_IFDIR {
                unlink(temporary)
                throw BackupFailure("\(destination) is a directory; refusing to replace it with a file", exitStatus: .usage)
            }
            if let keep {
                guard rename(destination, keep) == 0 else { unlink(temporary); throw FileSystemError("keep the replaced file as", path: keep) }
                outcome.kept.append(keep)
            }
        }
        guard rename(temporary, destination) == 0 else { unlink(temporary); throw FileSystemError("rename into place", path: destination) }
    }

    /// A time read from an archive as two timespecs, or nil when it is not a time (NaN, out of time_t's range):
    /// the archive is untrusted, and a conversion of such a value traps.
    static func timespecs(_ mtime: Double) -> [timespec]? {
        guard mtime.isFinite, mtime >= -1e15, mtime <= 1e15 else { return nil }
        let seconds = time_t(mtime.rounded(.down))
        let nanos = max(0, min(999_999_999, Int((mtime - Double(seconds)) * 1e9)))
        return [timespec(tv_sec: seconds, tv_nsec: nanos), timespec(tv_sec: seconds, tv_nsec: nanos)]
    }

    static func setTimes(_ path: String, _ mtime: Double, follow: Bool) {
        guard var times = timespecs(mtime) else { return }
        _ = utimensat(AT_FDCWD, path, &times, follow ? 0 : AT_SYMLINK_NOFOLLOW)
    }
}

/// Where a files restore writes: a directory (`--to-dir`) or the source's root (`--in-place`), the entries
/// selected by `--file`.
struct FilesRestoreTarget {
    var path: String
    var inPlace: Bool
    var only: [String]
}
