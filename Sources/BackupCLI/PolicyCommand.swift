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
        abstract: "Validate a policy and say every problem at once; with --connect, try everything a backup would touch. Exit 2 when anything fails.",
        discussion: """
        Without --connect: syntax and keys, every unset ${VAR}, secret files readable, what each kind refuses \
        (secrets a files source would store in clear), the age identity matching a recipient. With --connect: \
        the repository and metrics directory writable, each source reached and authorized as a backup connects \
        (Redis AUTH and SYNC, S3 ListBucket and GetObject per bucket, a MongoDB ping through mongosh, Qdrant \
        GET /collections), the tools (mongodump, mongorestore, docker wrappers, redis-server for drills), the \
        off-site bucket writable (a probe put and deleted), the webhook answering (a GET; no event is sent).
        """
    )

    @OptionGroup var options: GlobalOptions

    @Flag(help: "Also connect: sources, tools, repository, off-site bucket, webhook (reads only, except probe files).")
    var connect = false

    func run() async throws {
        let policy: Policy
        do {
            policy = try options.loadPolicy()
        } catch {
            // Every unset variable, not only the first the parser met.
            let missing = PolicyLoader.missingVariables(path: options.policy, environment: ProcessInfo.processInfo.environment)
            var checks = [PreflightCheck(check: "policy", ok: false, detail: "\(error)")]
            checks += missing.map { PreflightCheck(check: "policy variables", ok: false, detail: $0) }
            if options.json { try Output.json(PreflightJSON(ok: false, valid: false, summary: nil, checks: checks)) }
            guard missing.count > 1 else { throw error }
            throw BackupFailure("\(error); and: " + missing.joined(separator: "; "), exitStatus: .usage,
                                hint: "export the variables (or write ${VAR:-default} in the policy), then run policy check again")
        }
        let engine = try options.makeEngine(policy: policy)
        let checks = await engine.preflight(connect: connect)
        let failed = checks.filter { !$0.ok }
        if options.json {
            try Output.json(PreflightJSON(ok: failed.isEmpty, valid: true, summary: PolicySummaryJSON(policy), checks: checks))
        } else if connect || !failed.isEmpty {
            var table = [["RESULT", "CHECK", "DETAIL"]]
            for c in checks { table.append([c.ok ? "ok" : "FAIL", c.check, c.detail]) }
            Output.table(table, wrap: [1, 2])
        }
        if !failed.isEmpty {
            // The failures' own hints (a refused connection: the server and the url), else the general one.
            let specific = failed.compactMap(\.hint)
            let hint = specific.isEmpty
                ? "fix what is listed (secret files: create them 0600 for the backup user; secrets in a files source: set encryption or exclude them), then run policy check again"
                : Array(NSOrderedSet(array: specific)).map { "\($0)" }.joined(separator: "; ") + "; then run policy check again"
            throw BackupFailure("policy \(policy.origin): \(failed.count) check(s) failed: " + failed.map { "\($0.check): \($0.detail)" }.joined(separator: "; "),
                                exitStatus: .usage, hint: hint)
        }
        guard !options.json, !connect else { return }
        print("policy \(policy.origin): ok")
        print("repository: \(policy.repository.path)")
        if let offsite = policy.repository.offsite {
            // This host's directory in the shared bucket (#38); the machine's host name unless the policy says host:.
            print("off-site copy: \(offsite.location)\(policy.host ?? ProcessInfo.processInfo.hostName)/ (host: \(policy.host ?? "the machine's host name"))")
        }
        if let encryption = policy.encryption {
            print("encryption: age, \(encryption.recipients.count) recipient(s)\(encryption.identityFile == nil ? ", no identity_file (backups cannot be read back here)" : "")")
        }
        for source in policy.sources {
            print("source \(source.name): \(source.kind.rawValue) \(source.location)")
        }
        for entry in policy.schedules {
            guard let refresh = entry.refresh else { continue }
            print("schedule \(entry.name): refresh \(refresh.sources.joined(separator: ", ")) from host \(refresh.fromHost) at \"\(entry.cron.expression)\" (\(entry.timeZone)): REPLACES this host's live data of those sources")
        }
        if let compose = policy.compose { print("compose project: \(compose.description) (given to every docker compose command)") }
        print("pre-deploy set: \((policy.preDeploySources ?? policy.sources.map(\.name)).joined(separator: ", "))")
    }
}

/// `policy check --json`: `{"ok", "valid", …the summary…, "checks": [{"check", "ok", "detail"}]}`.
struct PreflightJSON: Encodable {
    var ok: Bool
    var valid: Bool
    var summary: PolicySummaryJSON?
    var checks: [PreflightCheck]

    enum CodingKeys: String, CodingKey { case ok, valid, origin, repository, offsite, encrypted, sources, checks }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(ok, forKey: .ok)
        try c.encode(valid, forKey: .valid)
        if let summary {
            try c.encode(summary.origin, forKey: .origin)
            try c.encode(summary.repository, forKey: .repository)
            try c.encode(summary.offsite, forKey: .offsite)
            try c.encode(summary.encrypted, forKey: .encrypted)
            try c.encode(summary.sources, forKey: .sources)
        }
        try c.encode(checks, forKey: .checks)
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
