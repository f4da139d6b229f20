import BackupCore
import Foundation

/// Brings a live Redis server to the exact content of an RDB file without touching its files: a scratch
/// `redis-server` loads the RDB, the target replicates from it (a full sync replaces all its data, keys,
/// values and TTLs), then is made a master again. For servers in containers whose files cannot be reached.
///
/// online restore:
///   check the target is a master (a replica would lose its own replication)
///   start a scratch redis-server on `listen` with a random password, loaded with the RDB
///   target: CONFIG SET masterauth <random>; REPLICAOF <listen> <port>
///   wait for master_link_status:up and master_sync_in_progress:0
///   target: REPLICAOF NO ONE; masterauth back to what it was
///   stop the scratch server
/// Whatever fails midway, the target is made a master again (and that is said).
public enum RedisOnlineRestore {
    public struct Outcome: Sendable {
        public var keys: [Int: Int]
        public var seconds: Double
    }

    public static func run(target: RedisEndpoint, password: Secret?, rdbDirectory: String, listen: String,
                           timeout: Double, redisServer: String = "redis-server",
                           beforeReplication: ((_ host: String, _ port: Int, _ password: Secret) throws -> Void)? = nil) throws -> Outcome {
        let started = Date()
        let connection = try RESPConnection(endpoint: target, ioTimeout: 30)
        defer { connection.close() }
        try RedisSnapshot.authenticate(connection, endpoint: target, password: password)
        // Before anything is touched: the target must be able to load what the scratch server will send
        // (a full sync makes the replica flush its data first; one that cannot load the RDB stays empty).
        let targetVersion = try connection.info("server")["redis_version"] ?? "unknown"
        let scratchVersion = RedisVersions.serverVersion(executable: redisServer)
        if let targetRDB = RedisVersions.rdbVersion(forRedis: targetVersion), let scratchVersion,
           let scratchRDB = RedisVersions.rdbVersion(forRedis: scratchVersion), scratchRDB > targetRDB {
            throw RedisError(endpoint: target.description,
                             problem: "the target runs Redis \(targetVersion), which loads RDB up to version \(targetRDB); the scratch redis-server (\(redisServer), \(scratchVersion)) would send RDB \(scratchRDB). Refused before anything was touched: the target keeps all its data",
                             hint: "give a redis-server \(RedisVersions.series(targetVersion)) as restore.redis_server in the policy, or restore in file mode (--to-dir)")
        }
        let replication = try connection.info("replication")
        let role = replication["role"]
        guard role == "master" else {
            // A restore killed between REPLICAOF and REPLICAOF NO ONE leaves the target a replica of a scratch server
            // that died with it: on the restore's own listen address, its link down. Not repaired behind the
            // operator's back (a replica set up on purpose looks alike): said, with the one command that repairs it.
            if replication["master_host"] == listen, replication["master_link_status"] != "up" {
                throw RedisError(endpoint: target.description,
                                 problem: "the target is a replica of \(listen):\(replication["master_port"] ?? "?"), which does not answer: most likely the scratch server of an earlier restore or refresh that was killed midway (its data may be partial)",
                                 hint: "make it a master again (redis-cli -h HOST -p PORT REPLICAOF NO ONE; CONFIG SET masterauth back to its value, if it had one), then run the restore again")
            }
            throw RedisError(endpoint: target.description, problem: "the target is a \(role ?? "server of unknown role"), not a master",
                             hint: "restore into the master of the set; its replicas follow it")
        }
        let previousAuth = try configGet(connection, "masterauth")
        let scratchPassword = Secret(randomToken())
        let scratch = try ScratchRedisServer.start(executable: redisServer, directory: rdbDirectory, password: scratchPassword,
                                                   startTimeout: timeout, bind: listen, dieWithParent: true)
        defer { scratch.stop() }
        // The scratch server holds the backup and the target is untouched: a caller's step on the data (a refresh's
        // scrub, #38) runs now; its failure leaves the target as it was.
        try beforeReplication?(listen, scratch.port, scratchPassword)

        func backToMaster() {
            _ = try? connection.command("REPLICAOF", "NO", "ONE")
            _ = try? connection.command("CONFIG", "SET", "masterauth", previousAuth ?? "")
        }
        do {
            try expectOK(connection.command("CONFIG", "SET", "masterauth", scratchPassword.value), target, "CONFIG SET masterauth")
            try expectOK(connection.command("REPLICAOF", listen, String(scratch.port)), target, "REPLICAOF")
            let deadline = Date().addingTimeInterval(timeout)
            while true {
                let replication = try connection.info("replication")
                if replication["master_link_status"] == "up" && replication["master_sync_in_progress"] == "0" { break }
                if Date() > deadline {
                    throw RedisError(endpoint: target.description, problem: "the sync from the scratch server did not finish within \(Int(timeout)) s")
                }
                usleep(50_000)
            }
            backToMaster()
        } catch {
            backToMaster()
            let role = (try? connection.info("replication")["role"]) ?? "unknown"
            throw RedisError(endpoint: target.description,
                             problem: "online restore failed midway (\(error)); the target is \(role == "master" ? "a master again" : "in role \(role)"), its data may be partial",
                             hint: "check the target's log; run the restore again, or restore in file mode")
        }
        return Outcome(keys: try connection.keyspace(), seconds: Date().timeIntervalSince(started))
    }

    /// `CONFIG GET name` → value (nil when the server does not know it).
    public static func configGet(_ c: RESPConnection, _ name: String) throws -> String? {
        guard case .array(let items?) = try c.command("CONFIG", "GET", name), items.count >= 2 else { return nil }
        return items[1].text
    }

    static func expectOK(_ reply: RESPValue, _ target: RedisEndpoint, _ what: String) throws {
        if case .error(let message) = reply {
            throw RedisError(endpoint: target.description, problem: "\(what) refused: \(message)",
                             hint: "the user needs REPLICAOF and CONFIG (ACL @admin) for an online restore; use file mode otherwise")
        }
    }

    static func randomToken() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
    }
}
