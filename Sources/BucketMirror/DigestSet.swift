// A set of sha256 addresses held as 32 bytes each (a `Set<String>` of hex spends ~110 bytes on every one):
// what garbage collection marks, for every blob of every kept snapshot, so its memory is a third of what it was.
import Foundation

/// A sha256 digest as four words.
public struct Digest256: Hashable, Sendable {
    let a, b, c, d: UInt64

    /// From 64 lowercase hex digits; nil for anything else.
    public init?(hex: String) {
        guard BlobStore.isDigest(hex) else { return nil }
        var words = [UInt64](repeating: 0, count: 4)
        for (i, byte) in hex.utf8.enumerated() {
            let nibble = UInt64(byte <= 57 ? byte - 48 : byte - 87)
            words[i / 16] = words[i / 16] << 4 | nibble
        }
        (a, b, c, d) = (words[0], words[1], words[2], words[3])
    }
}

public struct DigestSet: Sendable, ExpressibleByArrayLiteral {
    private var members = Set<Digest256>()

    public init() {}
    public init(_ digests: some Sequence<String>) { for d in digests { insert(d) } }
    public init(arrayLiteral digests: String...) { self.init(digests) }

    /// Adds a digest (a string that is not one is ignored: it names no blob); true when it was not there.
    @discardableResult
    public mutating func insert(_ hex: String) -> Bool {
        guard let digest = Digest256(hex: hex) else { return false }
        return members.insert(digest).inserted
    }

    public func contains(_ hex: String) -> Bool { Digest256(hex: hex).map { members.contains($0) } ?? false }
    public var count: Int { members.count }
    public mutating func formUnion(_ other: some Sequence<String>) { for d in other { insert(d) } }
}
