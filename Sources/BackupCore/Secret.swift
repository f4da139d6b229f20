/// A secret value (a password, a key). It prints as `<redacted>` wherever it is interpolated, so a log line,
/// an error or a JSON dump that reaches it by accident shows nothing.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String
    public init(_ value: String) { self.value = value }
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
