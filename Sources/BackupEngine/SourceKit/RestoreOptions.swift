// Each kind declares its own `restore` options; the CLI passes what it did not recognise, and they are parsed
// here against the options of the source's kind. `restore --help` lists every kind's options from the registry.
import BackupCore
import Foundation

/// One option of a kind's `restore`: `--name VALUE` (or a flag).
public struct RestoreOptionSpec: Sendable, Equatable {
    public var name: String
    /// `DIR`, `URL`, …; nil for a flag.
    public var valueName: String?
    public var help: String
    public var repeatable = false
    public var defaultValue: String?

    public init(_ name: String, value: String? = nil, help: String, repeatable: Bool = false, default defaultValue: String? = nil) {
        self.name = name
        self.valueName = value
        self.help = help
        self.repeatable = repeatable
        self.defaultValue = defaultValue
    }

    public var usage: String { "--\(name)" + (valueName.map { " \($0)" } ?? "") + (repeatable ? " (repeatable)" : "") }
}

/// The kind options given to one `restore`, parsed against the kind's specs.
public struct RestoreOptions: Sendable, Equatable {
    private(set) var values: [String: [String]] = [:]
    private(set) var flags: Set<String> = []
    private var defaults: [String: String] = [:]

    public init() {}

    /// Parses `--name value`, `--name=value` and `--flag` words; anything else is a usage error naming the
    /// options this kind takes.
    static func parse(_ words: [String], specs: [RestoreOptionSpec], kind: SourceKind, source: String) throws -> RestoreOptions {
        var out = RestoreOptions()
        for spec in specs { if let d = spec.defaultValue { out.defaults[spec.name] = d } }
        let known = specs.map(\.usage).joined(separator: ", ")
        func unknown(_ word: String) -> BackupFailure {
            BackupFailure("\(word) is not an option of \(kind.rawValue) sources (restoring \"\(source)\")", exitStatus: .usage,
                          hint: specs.isEmpty ? "\(kind.rawValue) sources take no options of their own" : "the options of \(kind.rawValue) sources are: \(known)")
        }
        var i = 0
        while i < words.count {
            let word = words[i]
            guard word.hasPrefix("--"), word.count > 2 else { throw unknown(word) }
            var name = String(word.dropFirst(2))
            var inline: String?
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard let spec = specs.first(where: { $0.name == name }) else { throw unknown("--" + name) }
            if spec.valueName == nil {
                guard inline == nil else { throw BackupFailure("--\(name) takes no value", exitStatus: .usage) }
                out.flags.insert(name)
            } else {
                let value: String
                if let inline { value = inline } else {
                    guard i + 1 < words.count else {
                        throw BackupFailure("--\(name) needs a value (\(spec.valueName!))", exitStatus: .usage)
                    }
                    i += 1
                    value = words[i]
                }
                if !spec.repeatable, out.values[name] != nil {
                    throw BackupFailure("--\(name) is given twice", exitStatus: .usage)
                }
                out.values[name, default: []].append(value)
            }
            i += 1
        }
        return out
    }

    /// The value of `--name` (or its default).
    public func value(_ name: String) -> String? { values[name]?.last ?? defaults[name] }
    public func values(_ name: String) -> [String] { values[name] ?? [] }
    public func flag(_ name: String) -> Bool { flags.contains(name) }
    /// The options as given, for a person to read (values of options about passwords left out).
    public var described: String {
        let shown = values.keys.sorted().flatMap { name in
            (values[name] ?? []).map { name.contains("password") ? "--\(name) …" : "--\(name) \($0)" }
        } + flags.sorted().map { "--\($0)" }
        return shown.isEmpty ? "its own server" : shown.joined(separator: " ")
    }

    /// Whether the option was given (not defaulted).
    public func given(_ name: String) -> Bool { values[name] != nil || flags.contains(name) }

    /// Builds options from values given in code (hooks, tests).
    public static func with(_ values: [String: String] = [:], flags: Set<String> = []) -> RestoreOptions {
        var o = RestoreOptions()
        for (k, v) in values { o.values[k] = [v] }
        o.flags = flags
        return o
    }
}

/// `restore SOURCE …` as asked.
public struct RestoreRequest: Sendable {
    public var source: String
    public var backup: BackupSelector
    public var dryRun: Bool
    public var confirmed: Bool
    public var options: RestoreOptions

    public init(source: String, backup: BackupSelector, dryRun: Bool = false, confirmed: Bool = false, options: RestoreOptions = RestoreOptions()) {
        self.source = source
        self.backup = backup
        self.dryRun = dryRun
        self.confirmed = confirmed
        self.options = options
    }
}
