// The restore lifecycle's data (issue #37): what a kind plans and what its apply step did, and the outcome
// the restorer (Services/Restorer.swift) records and prints. The kind decides *what* a restore does; the
// restorer owns *how* every restore goes: verify, print the plan, dry run, --yes, run, record, outcome.
import BackupCore
import Foundation

/// How a restore ended: `restores.outcome` in the catalog (the raw value) and, in `restore --json`, `dry_run`
/// (and, where the kind reports it, its own `verified`).
public enum RestoreStatus: String, Codable, Sendable, Equatable {
    case ok
    case dryRun = "dry-run"
    /// Sent, but the target counted nothing (MongoDB under w=0): neither ok nor failed.
    case unverified
    case failed
}

/// What `restore` did: the lines printed after the plan, and the `restore --json` document. The document is
/// the common keys (`source`, `artifact`, `dry_run`, `duration_seconds`) beside the kind's own (`details`: the
/// target, counts, …), one JSON object; `Output.json` sorts its keys.
public struct RestoreOutcome: Codable, Sendable, Equatable {
    public var source: String
    public var artifact: String
    public var status: RestoreStatus
    public var durationSeconds: Double
    /// The kind's own keys of the document.
    public var details: [String: JSONValue]
    /// For a person, after the plan (not part of the document).
    public var lines: [String]

    public init(source: String, artifact: String, status: RestoreStatus, durationSeconds: Double, details: [String: JSONValue], lines: [String] = []) {
        self.source = source
        self.artifact = artifact
        self.status = status
        self.durationSeconds = durationSeconds
        self.details = details
        self.lines = lines
    }

    /// The common keys; every other key of the document is the kind's.
    enum CommonKey: String, CaseIterable {
        case source, artifact
        case dryRun = "dry_run"
        case durationSeconds = "duration_seconds"
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
        init(_ common: CommonKey) { stringValue = common.rawValue }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(source, forKey: Key(.source))
        try c.encode(artifact, forKey: Key(.artifact))
        try c.encode(status == .dryRun, forKey: Key(.dryRun))
        try c.encode(durationSeconds, forKey: Key(.durationSeconds))
        let common = Set(CommonKey.allCases.map(\.rawValue))
        for (name, value) in details where !common.contains(name) {
            try c.encode(value, forKey: Key(name))
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        source = try c.decode(String.self, forKey: Key(.source))
        artifact = try c.decode(String.self, forKey: Key(.artifact))
        durationSeconds = try c.decode(Double.self, forKey: Key(.durationSeconds))
        let common = Set(CommonKey.allCases.map(\.rawValue))
        var details: [String: JSONValue] = [:]
        for key in c.allKeys where !common.contains(key.stringValue) {
            details[key.stringValue] = try c.decode(JSONValue.self, forKey: key)
        }
        self.details = details
        if try c.decode(Bool.self, forKey: Key(.dryRun)) {
            status = .dryRun
        } else {
            status = details["verified"] == .bool(false) ? .unverified : .ok
        }
        lines = []
    }
}

/// What a kind's apply step did (or, for a dry run, would do).
struct RestoreResult {
    /// `.ok`, or `.unverified` when the target could not say what it took. (Dry runs and failures are the
    /// restorer's to call.)
    var status: RestoreStatus = .ok
    /// For a person, after the plan.
    var lines: [String]
    /// `restores.detail` in the catalog.
    var detail: String
    /// The kind's own keys of the `restore --json` document.
    var details: [String: JSONValue]
}

/// What a restore will do, decided by the kind before anything is written, from the verified backup.
struct RestorePlan {
    /// `restores.mode` in the catalog (`file`, `online`, `keys`, `mongorestore`, `bucket`, `files`, …).
    var mode: String
    /// `restores.target`: where it goes, secrets hidden.
    var target: String
    /// The plan, for a person: printed before anything is written.
    var lines: [String]
    /// Refused whatever the flags, once the plan is printed (e.g. a collection of another shape).
    var refused: Error? = nil
    /// Why writing needs --yes (the target holds data that would be replaced), or nil: without --yes (and not
    /// in a dry run) the restore stops here with this error (exit 2).
    var needsConfirmation: BackupFailure? = nil
    /// What a dry run says, the plan being all of it; nil when the kind rehearses (`apply(true)`: mongorestore
    /// --dryRun, Redis EXISTS for each key).
    var dryRun: RestoreResult? = nil
    /// Runs the restore (`false`) or rehearses it (`true`, only when `dryRun` is nil).
    var apply: (_ rehearse: Bool) async throws -> RestoreResult
    /// The catalog's detail for a failure, from the error's description (default: the description).
    var failureDetail: ((String) -> String)? = nil
    /// Releases what the plan holds (clients), whatever happened after it was made.
    var close: () -> Void = {}
}

extension JSONValue {
    /// A list of strings as a JSON array (the kinds' `details`).
    static func strings(_ list: [String]) -> JSONValue { .array(list.map { .string($0) }) }
}
