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
