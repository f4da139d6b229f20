import ArtifactStore
import BackupCore
import Foundation
import RedisBackup

/// Wires the Redis snapshot to the artifact pipeline: the snapshot's bytes go to the writer and, through a
/// bounded channel, to the RDB verifier running on its own thread. A snapshot that does not verify fails.
struct RedisSourceBackup {
    var policy: RedisSourcePolicy
    var secrets: SecretResolver

    func run(into writer: ArtifactWriter) throws -> [String: JSONValue] {
        let password = try secrets.resolve(policy.password, key: "password") ?? policy.endpoint.password
        let verification = VerifierThread { source in try RDBVerifier.verify(source) }
        let taken: (framing: SnapshotFraming, bytes: Int64)
        do {
            taken = try RedisSnapshot.take(endpoint: policy.endpoint, password: password, timeout: policy.timeoutSeconds,
                                          startTimeout: policy.startTimeoutSeconds) { chunk in
                try verification.feed(chunk, alongside: writer)
            }
        } catch {
            verification.channel.fail(error)
            _ = try? verification.wait()
            throw error
        }
        verification.channel.finish()
        let report = try verification.wait()
        var stats = report.stats
        stats["framing"] = .string(taken.framing.rawValue)
        return stats
    }
}

/// Runs a verifier over a `ByteChannel` on a thread of its own and hands back its result.
final class VerifierThread<Report: Sendable>: @unchecked Sendable {
    let channel = ByteChannel(capacity: 16)
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var result: Result<Report, Error>?

    init(_ body: @escaping @Sendable (ChannelSource) throws -> Report) {
        let channel = self.channel
        let thread = Thread { [self] in
            let r = Result { try body(ChannelSource(channel)) }
            channel.abandon() // drop whatever follows the end (or a failure)
            lock.withLock { result = r }
            done.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Hands a chunk of the source to the artifact writer and to the verifier; throws the verifier's error as
    /// soon as it has one, so that the source stops early.
    func feed(_ chunk: [UInt8], alongside writer: ArtifactWriter) throws {
        if let failure = earlyFailure { throw failure }
        try chunk.withUnsafeBytes { try writer.write($0) }
        channel.send(chunk)
    }

    /// The verifier's error, if it has already failed (the producer can stop early).
    var earlyFailure: Error? {
        lock.withLock {
            if case .failure(let e)? = result { return e }
            return nil
        }
    }

    func wait() throws -> Report {
        done.wait()
        done.signal()
        return try lock.withLock { result! }.get()
    }
}
