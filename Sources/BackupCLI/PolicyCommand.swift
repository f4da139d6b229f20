import ArgumentParser
import BackupCore
import BackupEngine

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Work with policy files.",
        subcommands: [PolicyCheckCommand.self]
    )
}

struct PolicyCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a policy (syntax, keys, ${VAR} expansion) without running anything. Exit 2 when it is not valid."
    )

    @OptionGroup var options: GlobalOptions

    func run() throws {
        let policy = try options.loadPolicy()
        if options.json {
            try Output.json(PolicySummaryJSON(policy))
            return
        }
        print("policy \(policy.origin): ok")
        print("repository: \(policy.repository.path)")
        for source in policy.sources {
            var where_ = ""
            switch source.settings {
            case .redis(let r): where_ = r.endpoint.description
            }
            print("source \(source.name): \(source.kind.rawValue) \(where_)")
        }
    }
}

struct PolicySummaryJSON: Encodable {
    struct Source: Encodable {
        var name: String
        var kind: String
        var endpoint: String
    }
    var origin: String
    var valid = true
    var repository: String
    var sources: [Source]

    init(_ p: Policy) {
        origin = p.origin
        repository = p.repository.path
        sources = p.sources.map { s in
            switch s.settings {
            case .redis(let r): return Source(name: s.name, kind: s.kind.rawValue, endpoint: r.endpoint.description)
            }
        }
    }
}
