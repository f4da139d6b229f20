import BackupCore
import Foundation

/// A request to an S3 server that failed: what was asked of which endpoint, the HTTP status and the S3 error
/// code when the server sent one. Never holds a credential (requests are described without headers).
public struct S3Error: UserFacingError, Equatable {
    public var endpoint: String
    /// `ListObjectsV2 bucket "uploads"`, `GetObject uploads/a.png`, ...
    public var operation: String
    /// The HTTP status, or nil when no reply came (connection refused, timeout).
    public var status: Int?
    /// The S3 error code (`NoSuchBucket`, `InvalidAccessKeyId`, `SignatureDoesNotMatch`, ...), if any.
    public var code: String?
    public var message: String
    public var attempts: Int

    public init(endpoint: String, operation: String, status: Int?, code: String?, message: String, attempts: Int = 1) {
        self.endpoint = endpoint
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message
        self.attempts = attempts
    }

    public var exitStatus: ExitStatus { .failed }

    public var description: String {
        var s = "S3 \(operation) at \(endpoint) failed"
        if let status { s += ": HTTP \(status)" }
        if let code { s += " \(PeerText.clean(code, limit: 128))" }
        if !message.isEmpty { s += (status == nil && code == nil ? ": " : " — ") + PeerText.clean(message, limit: 1024) }
        if attempts > 1 { s += " (after \(attempts) attempts)" }
        return s
    }

    public var hint: String? {
        switch code {
        case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken":
            return "check access_key and secret_key (or secret_key_file) of this source, and the region"
        case "NoSuchBucket":
            return "create the bucket, or correct the bucket name in the policy"
        case "BadDigest", "XAmzContentSHA256Mismatch":
            return "the bytes sent did not match their checksum; retry, and check the disk and network"
        default:
            break
        }
        if status == nil { return "check that the S3 endpoint is up and reachable from this host" }
        if let status, status >= 500 { return "the server kept failing; look at its logs, then run again" }
        return nil
    }

    /// True when trying again may help (server errors, throttling, no reply).
    var retryable: Bool {
        guard let status else { return true }
        return status >= 500 || status == 429 || code == "SlowDown" || code == "RequestTimeout"
    }
}
