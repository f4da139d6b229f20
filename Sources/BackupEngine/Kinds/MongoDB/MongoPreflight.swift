// `policy check --connect` for a MongoDB source: mongodump and mongorestore (or their docker wrapper) here, and
// a ping through the mongo shell with the source's connection string (fed on stdin, as every tool run is).
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
}
