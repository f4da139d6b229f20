import BackupCore
import Foundation
import RedisBackup

/// A scratch `redis-server` holding sample data, for `kaleem-backup demo` on a machine with no Redis of its own.
public final class DemoRedis {
    private let server: ScratchRedisServer
    public let keys: Int

    /// Starts `redis-server` on a free 127.0.0.1 port in a temporary directory and fills it.
    public init() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kaleem-demo-\(getpid())").path
        server = try ScratchRedisServer.start(directory: dir)
        let connection = try server.connect()
        defer { connection.close() }
        keys = try SampleData.fill(connection).values.reduce(0, +)
    }

    public var url: String { server.url }
    public var port: Int { server.port }

    /// Stops the server and removes its directory.
    public func stop() {
        server.stop()
        try? FileManager.default.removeItem(atPath: server.directory)
    }
}
