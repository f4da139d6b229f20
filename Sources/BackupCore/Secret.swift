import Foundation

/// A secret value (a password, a key). It prints as `<redacted>` wherever it is interpolated, so a log line,
/// an error or a JSON dump that reaches it by accident shows nothing.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String
    /// Every secret made is known to `KnownSecrets`, so that text from anywhere (a peer's error that quotes a
    /// password, say) is scrubbed of it before it is stored, sent or printed.
    public init(_ value: String) {
        self.value = value
        KnownSecrets.add(value)
    }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// Where a secret comes from: inline in the policy (after `${VAR}` expansion) or a `*_file` path, read by the
/// engine when the secret is needed (never stored in the catalog).
public enum SecretReference: Sendable, Equatable {
    case inline(Secret)
    case file(String)
}

/// Hides the secret parts of text that may hold them (URLs with user info, `key=value` pairs).
public enum Redaction {
    /// `redis://user:pass@host:6379/0` → `redis://user:***@host:6379/0`; `scheme://pass@host` → `scheme://***@host`.
    public static func url(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://") else { return text }
        let rest = text[schemeEnd.upperBound...]
        // The user info ends at the last `@` before any `?` or `#`: a password may hold a `/` that was not
        // percent-encoded (the URL is then malformed, and exactly then it is printed in an error), so the
        // authority is not cut at the first `/`.
        let authorityEnd = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@") else { return text }
        let userInfo = authority[..<at]
        let redactedUserInfo: String
        if let colon = userInfo.firstIndex(of: ":") {
            redactedUserInfo = String(userInfo[..<colon]) + ":***"
        } else {
            redactedUserInfo = "***"
        }
        return String(text[..<schemeEnd.upperBound]) + redactedUserInfo + String(rest[at...])
    }

    /// A webhook URL as it may be shown: scheme and host only (user info redacted); the path and query, where
    /// webhook tokens live (`/webhook/<uuid>`, `?token=…`), become `/…`.
    public static func webhook(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://") else { return "***" }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = String(rest[..<authorityEnd])
        let host = authority.split(separator: "@").last.map(String.init) ?? authority
        let shown = String(text[..<schemeEnd.upperBound]) + (authority.contains("@") ? "***@" : "") + host
        return authorityEnd == rest.endIndex ? shown : shown + "/…"
    }

    /// Replaces every occurrence of each secret in `text` with `***`, and redacts URLs.
    public static func scrub(_ text: String, secrets: [Secret]) -> String {
        var out = text
        for secret in secrets where !secret.value.isEmpty {
            out = out.replacingOccurrences(of: secret.value, with: "***")
        }
        // Any URL with user info left in the text.
        return out.split(separator: " ", omittingEmptySubsequences: false)
            .map { $0.contains("://") ? url(String($0)) : String($0) }
            .joined(separator: " ")
    }
}

/// The secrets this process holds (a password from the policy or a file, a key): the one redactor every error
/// text and stored detail passes through (`EngineCore.describe`). Values shorter than 4 characters are not
/// scrubbed (they would blank out ordinary words); at most 1,024 are kept.
public enum KnownSecrets {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var values: Set<String> = []

    static func add(_ value: String) {
        guard value.count >= 4 else { return }
        lock.lock()
        defer { lock.unlock() }
        if values.count < 1024 { values.insert(value) }
    }

    /// `text` with every known secret (longest first) replaced by `***`, and URLs' user info redacted.
    public static func scrub(_ text: String) -> String {
        lock.lock()
        let known = values.sorted { $0.count > $1.count }
        lock.unlock()
        return Redaction.scrub(text, secrets: known.map { Secret(unregistered: $0) })
    }
}

extension Secret {
    /// A value already known (no second registration).
    init(unregistered value: String) { self.value = value }
}
