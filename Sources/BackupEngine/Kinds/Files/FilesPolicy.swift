// The `kind: files` entry of a policy: configuration files of the stack (.env, Compose files, nginx, TLS).
import BackupCore
import Foundation

public struct FilesSourcePolicy: SourceSettings, Equatable {
    /// Absolute directory the paths are relative to.
    public var root: String
    /// Relative paths or globs (`docker-compose*.yml`); a trailing `/` or a directory takes its whole tree.
    /// `a|b` are alternatives (`nginx.conf|nginx/`): each that exists is taken, and at least one must (unless one
    /// is a glob).
    public var paths: [String]
    /// Globs left out: a name (`*.log`, anywhere), a relative path (`nginx/cache/`, a directory and below).
    public var exclude: [String] = []
    /// Files larger than this fail the backup (name them in `exclude`, or raise it).
    public var maxFileSize: Int64 = 50 * 1024 * 1024
    /// Paths (globs) holding secrets, beside `.env*`, `*.key` and `*.pem`.
    public var secretPaths: [String] = []
    /// Store secrets without encryption anyway (the policy must say so; the default refuses).
    public var allowPlaintextSecrets = false

    public init(root: String, paths: [String]) {
        self.root = root
        self.paths = paths
    }

    public var location: String { "\(root) (\(paths.joined(separator: ", ")))" }

    /// Names that hold secrets whatever the policy says.
    static let builtInSecretPatterns = [".env*", "*.key", "*.pem"]
}

extension FilesAdapter {
    func parseSettings(_ node: PolicyNode) throws(PolicyError) -> any SourceSettings {
        let map = try node.mapping(allowed: SourcePolicy.commonKeys.union(["root", "paths", "exclude", "max_file_size", "secret_paths",
                                                                           "allow_plaintext_secrets"]))
        guard let r = map["root"] else { throw node.error("missing key \"root\" (the directory the paths are relative to, e.g. /opt/kaleem)") }
        let root = try r.nonEmptyString()
        guard root.hasPrefix("/") else { throw r.error("root must be an absolute directory, found \"\(root)\"") }
        guard let p = map["paths"] else { throw node.error("missing key \"paths\" (e.g. [.env, \"docker-compose*.yml\", nginx/])") }
        let paths = try p.stringList()
        guard !paths.isEmpty else { throw p.error("expected at least one path") }
        func relative(_ list: [String], _ n: PolicyNode) throws(PolicyError) {
            for path in list where path.hasPrefix("/") || path.split(separator: "/").contains("..") {
                throw n.error("\"\(path)\" must be relative to root, without \"..\"")
            }
        }
        try relative(paths, p)
        for path in paths where path.contains("|") {
            let alternatives = path.split(separator: "|", omittingEmptySubsequences: false)
            if alternatives.contains(where: { $0.isEmpty || $0 == "/" }) {
                throw p.error("\"\(path)\": an empty alternative; write alternatives as a|b, e.g. \"nginx.conf|nginx/\"")
            }
            for alternative in alternatives where alternative.hasPrefix("/") || alternative.split(separator: "/").contains("..") {
                throw p.error("\"\(alternative)\" (in \"\(path)\") must be relative to root, without \"..\"")
            }
        }
        var policy = FilesSourcePolicy(root: root, paths: paths)
        if let e = map["exclude"] { policy.exclude = try e.stringList(); try relative(policy.exclude, e) }
        if let s = map["secret_paths"] { policy.secretPaths = try s.stringList(); try relative(policy.secretPaths, s) }
        if let a = map["allow_plaintext_secrets"] { policy.allowPlaintextSecrets = try a.bool() }
        if let m = map["max_file_size"] {
            let text = try m.nonEmptyString()
            let units: [(String, Int64)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1)]
            var value: Int64?
            for (suffix, factor) in units where text.hasSuffix(suffix) {
                if let n = Int64(text.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), n > 0, n <= (1 << 40) / factor { value = n * factor }
                break
            }
            if value == nil, let n = Int64(text), n > 0, n <= 1 << 40 { value = n }
            guard let value else { throw m.error("expected a size such as 50MiB, 512KiB or 1048576, found \"\(text)\"") }
            policy.maxFileSize = value
        }
        return policy
    }
}
