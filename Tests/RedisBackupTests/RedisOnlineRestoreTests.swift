import BackupCore
import Foundation
import RedisBackup
import TestSupport
import Testing

/// The online restore refuses a target that is not a master before touching anything; when the target looks like
/// what a killed restore or refresh leaves (a replica of the restore's own listen address whose master does not
/// answer), the refusal says so and names the repair. A real redis-server.
@Suite(.blockingThreads) struct RedisOnlineRestoreTests {
    @Test func aTargetLeftAsAReplicaOfADeadScratchServerIsNamedAsSuch() throws {
        let redis = try RedisTestServer()
        let c = try redis.connect()
        defer { c.close() }
        _ = try c.command("SET", "kept", "yes")
        // What a restore killed between REPLICAOF and REPLICAOF NO ONE leaves: a replica of a port nobody listens on.
        let dead = try FreePort.pick()
        _ = try c.command("REPLICAOF", "127.0.0.1", String(dead))
        let dir = TemporaryDirectory()
        func refusal(listen: String) -> String {
            do {
                _ = try RedisOnlineRestore.run(target: redis.server.endpoint, password: nil, rdbDirectory: dir.path, listen: listen, timeout: 5)
                return "no refusal"
            } catch {
                return "\(error) | \((error as? RedisError)?.hintText ?? "")"
            }
        }
        let ours = refusal(listen: "127.0.0.1")
        #expect(ours.contains("127.0.0.1:\(dead), which does not answer") && ours.contains("REPLICAOF NO ONE"), "\(ours)")
        // A replica of some other address is a replica set up on purpose: the plain refusal.
        let theirs = refusal(listen: "127.0.0.2")
        #expect(theirs.contains("not a master") && !theirs.contains("killed midway"), "\(theirs)")
        // Nothing was touched: still the replica of the dead port (no scratch server was started).
        let info = try c.info("replication")
        #expect(info["role"] == "slave" && info["master_port"] == String(dead), "\(info)")
    }
}
