// Which files a files source takes: the policy's paths and globs under its root, minus its excludes, walked
// with lstat (symlinks are links, never followed), in a stable order.
import ArtifactStore
import BackupCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct FileSet {
    struct Item {
        var relative: String
        var absolute: String
        var info: stat
        var isDirectory: Bool { (info.st_mode & S_IFMT) == S_IFDIR }
        var isSymlink: Bool { (info.st_mode & S_IFMT) == S_IFLNK }
        var isRegular: Bool { (info.st_mode & S_IFMT) == S_IFREG }
    }

    var items: [Item] = []
    var warnings: [String] = []

    /// Walks the policy's paths. A named path (no glob) that matches nothing is an error: a renamed file must
    /// not silently drop out of the backups; a glob that matches nothing is a warning; of alternatives
    /// (`nginx.conf|nginx/`) at least one must exist.
    static func collect(_ policy: FilesSourcePolicy, source: String) throws -> FileSet {
        var set = FileSet()
        var seen = Set<String>()
        let root = policy.root.hasSuffix("/") ? String(policy.root.dropLast()) : policy.root
        var rootInfo = stat()
        guard lstat(root, &rootInfo) == 0, (rootInfo.st_mode & S_IFMT) == S_IFDIR else {
            throw BackupFailure("the root \(root) of source \"\(source)\" is not a directory", exitStatus: .failed,
                                hint: "check sources.\(source).root in the policy")
        }
        func add(_ relative: String) throws {
            guard !seen.contains(relative), !excluded(relative, policy.exclude) else { return }
            let absolute = root + "/" + relative
            var info = stat()
            guard lstat(absolute, &info) == 0 else { throw FileSystemError("read", path: absolute) }
            seen.insert(relative)
            let item = Item(relative: relative, absolute: absolute, info: info)
            switch info.st_mode & S_IFMT {
            case S_IFREG, S_IFLNK:
                set.items.append(item)
            case S_IFDIR:
                set.items.append(item)
                let children = try FileManager.default.contentsOfDirectory(atPath: absolute).sorted()
                for child in children { try add(relative + "/" + child) }
            default:
                let what = [S_IFIFO: "a FIFO", S_IFSOCK: "a socket", S_IFCHR: "a character device", S_IFBLK: "a block device"][info.st_mode & S_IFMT] ?? "a special file"
                throw BackupFailure("\(absolute) is \(what): a files source stores regular files, directories and symlinks only",
                                    exitStatus: .usage, hint: "leave it out with sources.\(source).exclude")
            }
        }
        for pattern in policy.paths {
            // `nginx.conf|nginx/`: alternatives, each one a path or glob; every one that exists is taken. The
            // entry fails when none exists and none is a glob (one of the forms must be there).
            let alternatives = pattern.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            var matches: [String] = []
            for alternative in alternatives {
                let trimmed = alternative.hasSuffix("/") ? String(alternative.dropLast()) : alternative
                let components = trimmed.split(separator: "/").map(String.init).filter { $0 != "." }
                matches += try expand(root: root, components)
            }
            if matches.isEmpty {
                if alternatives.contains(where: isGlob) {
                    set.warnings.append("\(pattern) matches nothing under \(root)")
                    continue
                }
                if alternatives.count > 1 {
                    throw BackupFailure("none of \(alternatives.joined(separator: ", ")) exists under \(root) (source \"\(source)\", entry \"\(pattern)\")",
                                        exitStatus: .failed,
                                        hint: "one of them must exist: was it renamed or removed? Fix sources.\(source).paths")
                }
                throw BackupFailure("\(pattern) does not exist under \(root) (source \"\(source)\")", exitStatus: .failed,
                                    hint: "a named path must exist: was it renamed or removed? Fix sources.\(source).paths, write it as a glob if it is optional, or as alternatives (a|b) if it has two forms")
            }
            for m in matches { try add(m) }
        }
        set.items.sort { $0.relative < $1.relative }
        return set
    }

    static func isGlob(_ s: String) -> Bool { s.contains { "*?[".contains($0) } }

    /// Relative paths matching the pattern's components, one directory level per component; only real
    /// directories (not symlinks) are entered on the way.
    static func expand(root: String, _ components: [String]) throws -> [String] {
        var current = [""]
        for (index, component) in components.enumerated() {
            var next: [String] = []
            for base in current {
                let dir = base.isEmpty ? root : root + "/" + base
                if index > 0 {
                    var info = stat()
                    guard lstat(dir, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { continue }
                }
                if isGlob(component) {
                    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
                    for name in names.sorted() where fnmatch(component, name, 0) == 0 && (component.hasPrefix(".") || !name.hasPrefix(".")) {
                        next.append(base.isEmpty ? name : base + "/" + name)
                    }
                } else {
                    var info = stat()
                    let candidate = base.isEmpty ? component : base + "/" + component
                    if lstat(root + "/" + candidate, &info) == 0 { next.append(candidate) }
                }
            }
            current = next
        }
        return current
    }

    /// `*.log`: a name anywhere; `nginx/cache/`: that directory and below; `ssl/*.pem`: a relative path.
    static func excluded(_ relative: String, _ patterns: [String]) -> Bool {
        patterns.contains { matches($0, relative) }
    }

    static func matches(_ pattern: String, _ relative: String) -> Bool {
        if pattern.hasSuffix("/") {
            let dir = String(pattern.dropLast())
            let parts = relative.split(separator: "/").map(String.init)
            let depth = dir.split(separator: "/").count
            guard parts.count >= depth else { return false }
            return fnmatch(dir, parts.prefix(depth).joined(separator: "/"), FNM_PATHNAME) == 0
        }
        if pattern.contains("/") { return fnmatch(pattern, relative, FNM_PATHNAME) == 0 }
        let name = relative.split(separator: "/").last.map(String.init) ?? relative
        return fnmatch(pattern, name, 0) == 0
    }

    /// Whether a path holds a secret: `.env*`, `*.key`, `*.pem`, or the policy's `secret_paths`.
    static func isSecret(_ relative: String, _ policy: FilesSourcePolicy) -> Bool {
        FilesSourcePolicy.builtInSecretPatterns.contains { matches($0, relative) } || policy.secretPaths.contains { matches($0, relative) }
    }
}
