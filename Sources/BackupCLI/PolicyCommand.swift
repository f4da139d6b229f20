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
        if let offsite = policy.repository.offsite { print("off-site copy: \(offsite.location)") }
        if let encryption = policy.encryption {
            print("encryption: age, \(encryption.recipients.count) recipient(s)\(encryption.identityFile == nil ? ", no identity_file (backups cannot be read back here)" : "")")
        }
        for source in policy.sources {
            print("source \(source.name): \(source.kind.rawValue) \(source.location)")
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
    var offsite: String?
    var encrypted: Bool
    var sources: [Source]

    init(_ p: Policy) {
        origin = p.origin
        repository = p.repository.path
        offsite = p.repository.offsite?.location
        encrypted = p.encryption != nil
        sources = p.sources.map { Source(name: $0.name, kind: $0.kind.rawValue, endpoint: $0.location) }
    }
}
