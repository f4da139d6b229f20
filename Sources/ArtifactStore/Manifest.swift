import BackupCore
import Foundation

/// The JSON file beside each artifact, repeating what the catalog holds, so a lost catalog can be rebuilt
/// from the repository alone. `format` is bumped when fields change meaning.
public struct Manifest: Codable, Equatable, Sendable {
    public static let currentFormat = 1

    public var format: Int
    public var artifact: ArtifactInfo
    public var run: RunInfo

    public init(artifact: ArtifactInfo, run: RunInfo) {
        format = Self.currentFormat
        self.artifact = artifact
        self.run = run
    }

    public func encoded() throws -> Data {
        try Self.encoder.encode(self)
    }

    public static func decode(_ data: Data) throws -> Manifest {
        try decoder.decode(Manifest.self, from: data)
    }

    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(Timestamps.iso8601(date))
        }
        return e
    }

    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            let s = try c.decode(String.self)
            guard let date = Timestamps.parseISO8601(s) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an ISO 8601 date: \(s)")
            }
            return date
        }
        return d
    }
}

extension Manifest {
    /// Why this manifest, found at `relative` (`<source>/<day>/<id>.manifest.json`), is not adopted by a catalog
    /// rebuild, or nil (what it says is untrusted: it may come from the off-site bucket).
    public func refusal(at relative: String) -> String? {
        let m = self
        let parts = relative.split(separator: "/")
        let a = m.artifact
        guard parts.count == 3, parts[2] == Substring(a.id + ".manifest.json") else { return "it describes \(a.id), not the file it is named after" }
        guard parts[0] == Substring(a.source), (a.path as NSString).deletingLastPathComponent == "\(parts[0])/\(parts[1])" else {
            return "it names \(a.path) of source \(a.source), outside \(parts[0])/\(parts[1])"
        }
        if let problem = RepositoryLayout.problem(id: a.id, source: a.source, path: a.path, createdAt: a.createdAt) { return problem }
        guard m.run.id == a.runID, m.run.id.hasPrefix("run-"), RepositoryLayout.isValidID(String(m.run.id.dropFirst(4))) else {
            return "its run \(String(reflecting: m.run.id)) is not a run id of ours"
        }
        guard a.sha256.count == 64, a.sha256.allSatisfy({ $0.isHexDigit && !$0.isUppercase }), a.bytesStored >= 0, a.bytesRaw >= 0 else {
            return "its sha256 or sizes are not well formed"
        }
        return nil
    }
}
