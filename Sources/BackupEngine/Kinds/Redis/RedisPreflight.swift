// `policy check --connect` for a Redis source: AUTH as the backup does, the SYNC permission (ACL DRYRUN, Redis
// 7+), the snapshot delay the server adds, and a redis-server for drills and restores.
import BackupCore
import Foundation
import RedisBackup

extension RedisAdapter {
    func preflight(_ source: TypedSource<RedisSourcePolicy>, context: SourceContext) async -> [PreflightCheck] {
        let name = "source \(source.name)"
        let policy = source.settings
        var checks: [PreflightCheck] = []
        do {
            let password = try context.secrets(for: source.name).resolve(policy.password, key: "password") ?? policy.endpoint.password
            let c = try RESPConnection(endpoint: policy.endpoint, ioTimeout: min(policy.timeoutSeconds, 10))
            defer { c.close() }
            try RedisSnapshot.authenticate(c, endpoint: policy.endpoint, password: password)
            let version = try c.info("server")["redis_version"] ?? "unknown"
            checks.append(PreflightCheck(check: "\(name): connects and authenticates", ok: true, detail: "Redis \(version) at \(policy.endpoint.description)"))
            checks.append(Self.syncPermission(c, name: name))
            if let delay = (try? RedisOnlineRestore.configGet(c, "repl-diskless-sync-delay")).flatMap({ $0 }).flatMap(Int.init), delay > 0,
               (try? RedisOnlineRestore.configGet(c, "repl-diskless-sync")).flatMap({ $0 }) == "yes" {
                checks.append(PreflightCheck(check: "\(name): snapshot delay", ok: true,
                                             detail: "the server waits \(delay) s before each snapshot (repl-diskless-sync-delay; CONFIG SET repl-diskless-sync-delay 0 removes the wait)"))
            }
        } catch {
            checks.append(PreflightCheck(check: "\(name): connects and authenticates", ok: false, detail: context.describe(error), hint: PreflightCheck.hint(error)))
        }
        let servers = context.policy.restore.redisServers + ["redis-server"]
        if let found = servers.lazy.compactMap({ Executables.find($0) }).first {
            checks.append(PreflightCheck(check: "\(name): redis-server for drills and restores", ok: true, detail: found))
        } else {
            checks.append(PreflightCheck(check: "\(name): redis-server for drills and restores", ok: false,
                                         detail: "none of \(servers.joined(separator: ", ")) is installed: install redis-server (apt install redis-server) or set restore.redis_servers"))
        }
        return checks
    }

    /// Whether this user may run SYNC: `ACL DRYRUN` (Redis 7+). Where it cannot be asked, says so and passes.
    private static func syncPermission(_ c: RESPConnection, name: String) -> PreflightCheck {
        let what = "\(name): may run SYNC (the snapshot)"
        do {
            guard let user = try c.command("ACL", "WHOAMI").text else {
                return PreflightCheck(check: what, ok: true, detail: "not checked: ACL WHOAMI is not permitted to this user")
            }
            switch try c.command("ACL", "DRYRUN", user, "SYNC") {
            case .simple("OK"):
                return PreflightCheck(check: what, ok: true, detail: "user \(user) may run SYNC")
            case .error(let message) where message.contains("unknown subcommand") || message.contains("Unknown subcommand"):
                return PreflightCheck(check: what, ok: true, detail: "not checked: ACL DRYRUN needs Redis 7 (a failed backup would say so)")
            case .error(let message) where message.hasPrefix("NOPERM"):
                return PreflightCheck(check: what, ok: true, detail: "not checked: this user may not run ACL DRYRUN")
            case .error(let message):
                return PreflightCheck(check: what, ok: false, detail: message)
            case let reply:
                return PreflightCheck(check: what, ok: false, detail: (reply.text ?? "refused") + " (grant +sync, or +@admin, to user \(user))")
            }
        } catch {
            return PreflightCheck(check: what, ok: true, detail: "not checked: \(error)")
        }
    }
}
