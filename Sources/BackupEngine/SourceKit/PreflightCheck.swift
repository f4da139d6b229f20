// What `policy check` checks, one line each: the policy's own checks (secret files, variables, what each kind
// refuses), and with `--connect` everything a backup would touch: each source reachable and authorized as a
// backup would connect, the tools a backup, restore or drill runs, the repository and metrics directory
// writable, the off-site bucket writable, the age identity matching a recipient, the webhook answering.
import BackupCore
import Foundation

/// One check of `policy check`: what was checked, whether it passed, what was found, and, for a failure that
/// knows it, what to try (`hint`: null otherwise).
public struct PreflightCheck: Sendable, Equatable, Codable {
    public var check: String
    public var ok: Bool
    public var detail: String
    @JSONNullable public var hint: String?

    public init(check: String, ok: Bool, detail: String, hint: String? = nil) {
        self.check = check
        self.ok = ok
        self.detail = detail
        self.hint = hint
    }

    /// The hint an error carries (a refused connection says to check the server and the url), scrubbed.
    public static func hint(_ error: Error) -> String? {
        (error as? UserFacingError)?.hint.map(KnownSecrets.scrub)
    }

    enum CodingKeys: String, CodingKey { case check, ok, detail, hint }
}

/// Executables as a shell finds them (the first word of a configured command).
enum Executables {
    /// The path: as given when it contains `/`, else the first executable match on PATH; nil when none.
    static func find(_ program: String, path: String? = ProcessInfo.processInfo.environment["PATH"]) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        for dir in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":", omittingEmptySubsequences: true) {
            let candidate = "\(dir)/\(program)"
            var info = stat()
            if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// A check that the command's first word exists here.
    static func check(_ what: String, command: [String], hint: String) -> PreflightCheck {
        guard let program = command.first else { return PreflightCheck(check: what, ok: false, detail: "no command configured") }
        if let found = find(program) { return PreflightCheck(check: what, ok: true, detail: found + (command.count > 1 ? " (" + command.joined(separator: " ") + ")" : "")) }
        return PreflightCheck(check: what, ok: false, detail: "\(program) is not installed or not on PATH: \(hint)")
    }
}
