// BackupCore: the models, the policy and its validation, and the error contract shared by every target.
// Pure: nothing here reads a file, the clock or the environment; callers pass them in.

/// Exit codes of every command, mapped in one place (BackupCLI's `ExitCodeMapping`).
public enum ExitStatus: Int32, Sendable, Codable {
    case ok = 0
    case failed = 1
    case usage = 2
    case partial = 3
    case integrity = 4
    case locked = 11
}

/// An error meant for a person: it says what happened, to which object, and what to try.
///
/// `description` is one plain sentence (no secret ever reaches it); `hint` is printed as `Try: …`.
public protocol UserFacingError: Error, CustomStringConvertible {
    var exitStatus: ExitStatus { get }
    var hint: String? { get }
}

extension UserFacingError {
    public var hint: String? { nil }
}

/// A generic user-facing error for the cases that need no type of their own.
public struct BackupFailure: UserFacingError, Equatable {
    public var message: String
    public var exitStatus: ExitStatus
    public var hint: String?

    public init(_ message: String, exitStatus: ExitStatus = .failed, hint: String? = nil) {
        self.message = message
        self.exitStatus = exitStatus
        self.hint = hint
    }

    public var description: String { message }
}

/// A backup that ran past its source's `deadline:`. Exit 1.
/// A backup stream that stored less than its `min_rate:` over a whole window: a peer trickling bytes.
public struct TooSlow: UserFacingError, Equatable {
    public var source: String
    public var bytes: Int64
    public var windowSeconds: Double
    public var minimumRate: Int64

    public init(source: String, bytes: Int64, windowSeconds: Double, minimumRate: Int64) {
        self.source = source
        self.bytes = bytes
        self.windowSeconds = windowSeconds
        self.minimumRate = minimumRate
    }

    public var exitStatus: ExitStatus { .failed }
    public var description: String {
        "the backup of source \"\(source)\" received \(bytes) bytes in \(Int(windowSeconds)) s, less than its min_rate of \(minimumRate) bytes/s, and was stopped"
    }
    public var hint: String? {
        "check the server and the network (a peer sending a byte at a time); lower sources.\(source).min_rate, or 0 to turn the check off"
    }
}

public struct DeadlineExceeded: UserFacingError, Equatable {
    public var source: String
    public var seconds: Double

    public init(source: String, seconds: Double) {
        self.source = source
        self.seconds = seconds
    }

    public var exitStatus: ExitStatus { .failed }
    public var description: String {
        "the backup of source \"\(source)\" did not finish within its deadline of \(Int(seconds)) s and was stopped"
    }
    public var hint: String? {
        "a source that sends slowly keeps each silence under its timeout; check the server and the network, or raise sources.\(source).deadline (without it, the deadline is 5 × the previous backup's duration, 30 min to 6 h)"
    }
}
