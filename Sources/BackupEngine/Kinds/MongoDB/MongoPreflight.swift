// `policy check --connect` for a MongoDB source: mongodump and mongorestore (or their docker wrapper) here, and
// a ping through the mongo shell with the source's connection string (fed on stdin, as every tool run is); and,
// once for the policy, the Compose project of every Compose command of its sources and of drill:/restore:.
import BackupCore
import Foundation
import MongoBackup

extension MongoAdapter {
    func preflight(_ source: TypedSource<MongoSourcePolicy>, context: SourceContext) async -> [PreflightCheck] {
        let name = "source \(source.name)"
        let mongo = source.settings
        let wrapperHint = "install the MongoDB Database Tools, or set the command to a wrapper such as [docker, exec, -i, mongo, …]"
        var checks = [
            Executables.check("\(name): mongodump", command: mongo.mongodump, hint: wrapperHint),
            Executables.check("\(name): mongorestore", command: mongo.mongorestore, hint: wrapperHint),
        ]
        let mongosh = context.policy.drill.mongosh
        let shell = Executables.check("\(name): mongosh (ping, drills)", command: mongosh, hint: "install mongosh, or set drill.mongosh")
        guard shell.ok else {
            checks.append(shell)
            checks.append(PreflightCheck(check: "\(name): connects and authenticates", ok: false, detail: "not checked: no mongosh to ping with"))
            return checks
        }
        checks.append(shell)
        do {
            let tools = try tools(mongo, source: source.name, context: context)
            _ = try await tools.shell(command: mongosh, script: "const kb_ping = kb.adminCommand({ ping: 1 }); if (kb_ping.ok !== 1) { throw new Error('ping answered ' + JSON.stringify(kb_ping)); }")
            checks.append(PreflightCheck(check: "\(name): connects and authenticates", ok: true, detail: "ping answered (through \(mongosh.joined(separator: " ")))"))
        } catch {
            checks.append(PreflightCheck(check: "\(name): connects and authenticates", ok: false, detail: context.describe(error), hint: PreflightCheck.hint(error)))
        }
        return checks
    }

    /// Every Compose command of the policy's MongoDB sources and of this kind's keys in drill: and restore: finds its
    /// project from the working directory this runs in, and the project has the service: cron runs jobs in $HOME,
    /// systemd in /. Each project and service is asked once.
    func preflightPolicy(context: SourceContext) async -> [PreflightCheck] {
        let policy = context.policy
        var commands: [(key: String, command: [String])] = []
        for source in policy.sources where source.kind == kind {
            guard let settings = source.settings as? any ComposeCommands else { continue }
            commands += settings.commands.map { ("sources.\(source.name).\($0.key)", $0.command) }
        }
        for (block, settings) in [(PolicyBlock.drill, policy.drill), (.restore, policy.restore)] {
            commands += (settings[kind]?.commands ?? []).map { ("\(block.rawValue).\($0.key)", $0.command) }
        }
        var checks: [PreflightCheck] = []
        var asked: [[String]: String?] = [:]
        for (key, command) in commands {
            guard let split = ComposeProbe.split(command) else { continue }
            let probeKey = split.global + [split.service ?? ""]
            let problem: String?
            if let known = asked[probeKey] {
                problem = known
            } else {
                problem = await ComposeProbe.problem(command)
                asked[probeKey] = problem
            }
            let project = policy.compose.map { "compose: \($0.description)" } ?? "no compose: in the policy; COMPOSE_FILE=\(ProcessInfo.processInfo.environment["COMPOSE_FILE"] ?? "(unset)")"
            if let problem {
                checks.append(PreflightCheck(check: "\(key): Compose project", ok: false,
                                             detail: "\(problem) (\(project)); set compose: { project_directory: …, files: […] } in the policy, or COMPOSE_FILE in the job's environment (cron/kaleem-backup.env)"))
            } else {
                checks.append(PreflightCheck(check: "\(key): Compose project", ok: true, detail: "found, with service \(split.service ?? "?") (\(project))"))
            }
        }
        return checks
    }
}
