import BackupCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Finds and reads the policy: `--policy`, else `$KALEEM_BACKUP_POLICY`, else `policies/local.yml` in the
/// working directory (a checkout), else the installed package's `/etc/kaleem-backup/policy.yml`. With none of
/// them a command refuses (exit 2): it used to fall back to the embedded demo policy and create `./backups` in
/// whatever directory it ran from (cron's `$HOME`, systemd's `/`), a repository no one would look for. Only
/// `demo` (which is about the embedded defaults) still falls back to the copy built into the binary.
public enum PolicyLoader {
    public static let environmentVariable = "KALEEM_BACKUP_POLICY"
    public static let defaultPath = "policies/local.yml"
    /// Where the Debian package installs the stack's policy (scripts/package-deb.sh).
    public static let systemPath = "/etc/kaleem-backup/policy.yml"
    public static let embeddedOrigin = "<embedded policies/local.yml>"

    /// The error of a command that found no policy anywhere (exit 2).
    public struct NoPolicy: UserFacingError {
        public var directory: String
        public var exitStatus: ExitStatus { .usage }
        public var description: String {
            "no policy found: no --policy, no $\(environmentVariable), no \(defaultPath) in \(directory), no \(systemPath); nothing was run"
        }
        public var hint: String? {
            "pass --policy FILE or set \(environmentVariable) (cron/kaleem-backup.env does); `kaleem-backup demo` runs on the embedded defaults"
        }
    }

    static func noPolicy() -> NoPolicy { NoPolicy(directory: FileManager.default.currentDirectoryPath) }

    /// - Parameter embeddedFallback: `demo` only: with no file found, the embedded copy of `policies/local.yml`
    ///   (and `/etc/kaleem-backup/policy.yml` is not looked at: a demo never runs on the production policy).
    public static func load(path: String?, environment: [String: String], embeddedFallback: Bool = false) throws -> Policy {
        guard let chosen = chosenPath(path, environment: environment, systemWide: !embeddedFallback) else {
            guard embeddedFallback else { throw noPolicy() }
            return try PolicyParser.parse(EmbeddedPolicy.localYAML, origin: embeddedOrigin, environment: environment, sourceKinds: SourceKinds.policyTable)
        }
        guard let data = FileManager.default.contents(atPath: chosen) else {
            let reason = FileManager.default.fileExists(atPath: chosen) ? "cannot be read (permissions?)" : "does not exist"
            throw PolicyError(origin: chosen, keyPath: "", problem: "the policy file \(reason)")
        }
        return try PolicyParser.parse(String(decoding: data, as: UTF8.self), origin: chosen, environment: environment, sourceKinds: SourceKinds.policyTable)
    }

    /// A warning when the policy file holds a secret written in it (a password in a URL, a `password:`, a key)
    /// and people other than its owner can read it; nil otherwise. Secrets from `${VAR}` or `*_file` are not in
    /// the file.
    public static func exposureWarning(path: String?, environment: [String: String]) -> String? {
        guard let chosen = chosenPath(path, environment: environment) else { return nil }
        var info = stat()
        guard stat(chosen, &info) == 0, info.st_mode & 0o044 != 0,
              let data = FileManager.default.contents(atPath: chosen) else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        for line in text.split(separator: "\n") {
            let code = line.prefix { $0 != "#" }
            let inURL = code.range(of: #"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:"']*:[^\s@"'$][^\s@"']*@"#, options: .regularExpression) != nil
            let inKey = code.range(of: #"(^|[\s{,])(password|api_key|secret_access_key|secret_key|token)\s*:\s*["']?[^"'\s$}{,]"#,
                                   options: .regularExpression) != nil
            if inURL || inKey {
                let mode = String(info.st_mode & 0o777, radix: 8)
                return "the policy \(chosen) (mode \(mode)) holds a secret written in it and others can read it: chmod 600 it, or move the secret to ${VAR} or a *_file"
            }
        }
        return nil
    }

    /// Which file `load` reads (nil: the embedded copy).
    public static func chosenPath(_ path: String?, environment: [String: String], systemWide: Bool = true) -> String? {
        if let chosen = path ?? environment[environmentVariable].flatMap({ $0.isEmpty ? nil : $0 }) { return chosen }
        if FileManager.default.fileExists(atPath: defaultPath) { return defaultPath }
        return systemWide && FileManager.default.fileExists(atPath: systemPath) ? systemPath : nil
    }

    /// Every `${VAR}` (and `${VAR:?…}`, `${VAR?…}`) the policy's text needs and the environment lacks, with its
    /// line: `policy check` names them all at once, where loading stops at the first. Comment lines are skipped.
    public static func missingVariables(path: String?, environment: [String: String]) -> [String] {
        let text: String
        if let chosen = chosenPath(path, environment: environment) {
            guard let data = FileManager.default.contents(atPath: chosen) else { return [] }
            text = String(decoding: data, as: UTF8.self)
        } else {
            text = EmbeddedPolicy.localYAML
        }
        var out: [String] = []
        var seen = Set<String>()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.drop(while: { $0 == " " || $0 == "\t" }).hasPrefix("#") { continue }
            var rest = Substring(line)
            while let open = rest.range(of: "${") {
                guard let close = rest[open.upperBound...].firstIndex(of: "}") else { break }
                let body = rest[open.upperBound..<close]
                rest = rest[rest.index(after: close)...]
                let nameEnd = body.firstIndex(where: { !($0.isLetter || $0.isNumber || $0 == "_") }) ?? body.endIndex
                let name = String(body[..<nameEnd])
                let op = body[nameEnd...]
                guard !name.isEmpty, !seen.contains(name) else { continue }
                let value = environment[name]
                let missing = op.isEmpty ? value == nil
                    : op.hasPrefix(":?") ? (value?.isEmpty ?? true)
                    : op.hasPrefix("?") ? value == nil : false
                if missing {
                    seen.insert(name)
                    out.append("line \(number + 1): environment variable \(name) is not set")
                }
            }
        }
        return out
    }
}
