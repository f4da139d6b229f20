import ArgumentParser
import Foundation
import BackupCore
import BackupEngine

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Work with policy files.",
        subcommands: [PolicyCheckCommand.self]
    )
}

struct PolicyCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a policy (syntax, keys, ${VAR} expansion) without running anything. Exit 2 when it is not valid."
    )

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let policy = try options.loadPolicy()
        // Every secret file the policy names must be readable now, not at 3 a.m.
        var unreadable: [String] = []
        for source in policy.sources {
            for (key, path) in source.settings.secretFiles where !FileManager.default.isReadableFile(atPath: path) {
                unreadable.append("sources.\(source.name).\(key): \(path) is missing or not readable by this user")
            }
        }
        if let offsite = policy.repository.offsite, let path = offsite.secretKey.filePath, !FileManager.default.isReadableFile(atPath: path) {
            unreadable.append("repository.offsite.secret_key_file: \(path) is missing or not readable by this user")
        }
        if let path = policy.encryption?.identityFile, !FileManager.default.isReadableFile(atPath: path) {
            unreadable.append("encryption.identity_file: \(path) is missing or not readable by this user")
        }
        // What each kind checks (a files source: secrets that would be stored in clear, paths that are missing).
        unreadable += try options.makeEngine(policy: policy).checkSources()
        if !unreadable.isEmpty {
            throw BackupFailure("policy \(policy.origin): " + unreadable.joined(separator: "; "), exitStatus: .usage,
                                hint: "fix what is listed (secret files: create them 0600 for the backup user; secrets in a files source: set encryption or exclude them), then run policy check again")
        }
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
