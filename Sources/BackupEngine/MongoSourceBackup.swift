import ArtifactStore
import BackupCore
import Foundation
import MongoBackup

/// Wires mongodump to the artifact pipeline: the archive goes to the writer and, through a bounded channel,
/// to the archive verifier on its own thread. A dump that fails, hangs past its timeout, writes nothing or
/// writes an archive that does not verify is a failed backup.
struct MongoSourceBackup {
    var policy: MongoSourcePolicy
    var secrets: SecretResolver

    func tools() throws -> MongoTools {
        guard let uri = try secrets.resolve(policy.uri, key: "uri") else { throw BackupFailure("no MongoDB uri") }
        return MongoTools(uri: uri, timeoutSeconds: policy.timeoutSeconds, source: secrets.source)
    }

    func run(into writer: ArtifactWriter) throws -> [String: JSONValue] {
        let tools = try tools()
        let verification = VerifierThread { source in try MongoArchiveCheck.verify(source) }
        let outcome: MongoToolOutcome
        do {
            outcome = try tools.dump(command: policy.mongodump, databases: policy.databases, exclude: policy.exclude,
                                     oplog: policy.oplog) { chunk in
                try verification.feed(chunk, alongside: writer)
            }
        } catch {
            verification.channel.fail(error)
            // The verifier's own finding explains garbage better than "killed".
            if case .failure(let found) = Result(catching: { try verification.wait() }), found is MongoArchiveError {
                throw found
            }
            throw error
        }
        verification.channel.finish()
        let (report, gzipped) = try verification.wait()
        var stats = report.stats
        stats["gzip_inside"] = .bool(gzipped)
        if let last = outcome.stderrTail.last { stats["mongodump_last_line"] = .string(last) }
        return stats
    }
}

/// Verifies an archive stream, inflating it first when it is gzipped (`mongodump --gzip`).
enum MongoArchiveCheck {
    static func verify<S: ByteSource>(_ source: S) throws -> (MongoArchiveReport, gzipped: Bool) {
        var upstream = source
        guard let first = try upstream.nextChunk() else { return (try MongoArchiveVerifier.verify(upstream), false) }
        var prefix = [first]
        if first.count < 2, let second = try upstream.nextChunk() { prefix.append(second) }
        let head = Array(prefix.joined().prefix(2))
        let replay = PrefixedSource(prefix: prefix, then: upstream)
        if MongoArchiveVerifier.isGzip(head) {
            return (try MongoArchiveVerifier.verify(try InflatingSource(replay)), true)
        }
        return (try MongoArchiveVerifier.verify(replay), false)
    }
}
