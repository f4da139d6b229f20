// A throwaway MongoDB for restore drills (§8.4 of the operations document: test the database restore): `docker
// run -d --rm` of the backup's own server version, published on a free 127.0.0.1 port, removed after the drill
// whatever happened. Containers are named `kb-drill-…`; one left by a killed drill is removed by the next.
import BackupCore
import Foundation
import Subprocess
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

public struct ThrowawayMongo: Sendable {
    public static let namePrefix = "kb-drill-"

    public let docker: String
    public let name: String
    public let image: String
    public let port: Int

    /// The connection string of the container (no auth: it holds only the drill's copy, on 127.0.0.1).
    public var uri: String { "mongodb://127.0.0.1:\(port)/" }

    /// `mongo:<major>.<minor>` of the server a backup was taken from (the archive's prelude); `mongo:7.0` when
    /// the archive does not say.
    public static func image(forServerVersion version: String?) -> String {
        let parts = (version ?? "").split(separator: ".").prefix(2)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) && $0.count <= 3 }) else { return "mongo:7.0" }
        return "mongo:\(parts[0]).\(parts[1])"
    }

    /// Starts the container. Throws with docker's own message when it cannot (no such image, no daemon).
    public static func start(docker: String, image: String, label: String) async throws -> ThrowawayMongo {
        await removeStale(docker: docker)
        let port = try FreePort.pick()
        // The owner's pid in the name: the next drill removes only containers whose drill is gone. A drill
        // running beside (a manual `drill` while the daemon's runs) keeps its container.
        let name = namePrefix + "\(getpid())-" + label
        active.withLock { _ = $0.insert(name) }
        let result = try await run(docker, ["run", "-d", "--rm", "--name", name, "-p", "127.0.0.1:\(port):27017", image])
        guard result.status == 0 else {
            throw BackupFailure("docker run \(image) failed (exit \(result.status)): \(result.stderr.suffix(400))",
                                hint: "check that docker runs here and can pull \(image), or set drill.mongo_image (off: archive-only drills) or drill.mongo_uri")
        }
        return ThrowawayMongo(docker: docker, name: name, image: image, port: port)
    }

    /// Removes the container; nil when it is gone, else what docker said.
    public func remove() async -> String? {
        defer { Self.active.withLock { _ = $0.remove(name) } }
        guard let result = try? await Self.run(docker, ["rm", "-f", name]) else { return "docker rm -f \(name) could not run" }
        return result.status == 0 ? nil : "docker rm -f \(name) failed: \(result.stderr.suffix(300))"
    }

    /// Containers of drills that died before removing theirs.
    static func removeStale(docker: String) async {
        guard let listed = try? await run(docker, ["ps", "-a", "--filter", "name=\(namePrefix)", "--format", "{{.Names}}"]),
              listed.status == 0 else { return }
        let names = listed.stdout.split(whereSeparator: \.isNewline).map(String.init).filter { $0.hasPrefix(namePrefix) && isStale($0) }
        if !names.isEmpty { _ = try? await run(docker, ["rm", "-f"] + names) }
    }

    /// The names of the containers this process's drills are using.
    static let active = LockedSet()

    /// A `kb-drill-<pid>-…` container whose drill has ended (its process is gone, or it is this process and no
    /// drill of it uses the container); one without a pid (an older release's) is stale.
    static func isStale(_ name: String) -> Bool {
        let rest = name.dropFirst(namePrefix.count)
        guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0 else { return true }
        if pid == getpid() { return !active.withLock { $0.contains(name) } }
        return kill(pid, 0) != 0 && errno == ESRCH
    }

    final class LockedSet: @unchecked Sendable {
        private let lock = NSLock()
        private var names = Set<String>()
        func withLock<T>(_ body: (inout Set<String>) -> T) -> T {
            lock.lock()
            defer { lock.unlock() }
            return body(&names)
        }
    }

    static func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let result = try await Subprocess.run(.path(FilePath(executable)), arguments: Arguments(arguments), input: .none,
                                              output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
        let status: Int32
        switch result.terminationStatus {
        case .exited(let code): status = code
        case .signaled(let signal): status = 128 + Int32(signal)
        }
        return (status, result.standardOutput ?? "", result.standardError ?? "")
    }
}
