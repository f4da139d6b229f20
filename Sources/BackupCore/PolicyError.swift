/// A policy that cannot be used: names the file, the key path and what was expected. Exit 2.
public struct PolicyError: UserFacingError, Equatable {
    public var origin: String
    /// Dotted key path, e.g. `sources.redis.url`; empty for the whole file.
    public var keyPath: String
    public var line: Int?
    public var problem: String

    public init(origin: String, keyPath: String, line: Int? = nil, problem: String) {
        self.origin = origin
        self.keyPath = keyPath
        self.line = line
        self.problem = problem
    }

    public var exitStatus: ExitStatus { .usage }

    public var description: String {
        var where_ = origin
        if let line { where_ += ":\(line)" }
        if !keyPath.isEmpty { where_ += ": \(keyPath)" }
        return "policy \(where_): \(problem)"
    }

    public var hint: String? {
        "fix the policy, then check it with: kaleem-backup policy check --policy \(origin)"
    }
}
