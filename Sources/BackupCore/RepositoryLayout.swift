import Foundation

/// The repository's layout, as rules that anything read back (a manifest, a catalog copy, an off-site listing)
/// must satisfy before it names a file: what is read from storage is untrusted input.
public enum RepositoryLayout {
    /// Top-level directories the repository itself uses: no source may be named so (a rebuild would take its
    /// files for backups, or skip the source's own).
    public static let reservedNames: Set<String> = ["catalog-copy", "catalog", "packages", "blobs", "tmp", "lost+found", "refreshes"]

    /// `20261129T023000Z-3fa9c1`
    public static func isValidID(_ id: String) -> Bool {
        let u = Array(id.utf8)
        guard u.count == 23, u[8] == UInt8(ascii: "T"), u[15] == UInt8(ascii: "Z"), u[16] == UInt8(ascii: "-") else { return false }
        let digits = u[0..<8] + u[9..<15]
        return digits.allSatisfy { (0x30...0x39).contains($0) } && u[17...].allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The time an id was made at (to the second), or nil.
    public static func date(ofID id: String) -> Date? {
        guard isValidID(id) else { return nil }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.date(from: String(id.prefix(16)))
    }

    /// `YYYY-MM-DD`
    static func isDay(_ s: Substring) -> Bool {
        let u = Array(s.utf8)
        return u.count == 10 && u[4] == UInt8(ascii: "-") && u[7] == UInt8(ascii: "-")
            && (u[0..<4] + u[5..<7] + u[8..<10]).allSatisfy { (0x30...0x39).contains($0) }
    }

    /// What is wrong with an artifact record read back from storage, or nil: its id is of our format, its
    /// source a valid, unreserved name, its path `<source>/<day>/<id>.<ext>` with the day of its id, and its
    /// creation time that of its id (to the second). A record that fails is never adopted, and its path never
    /// names a file to read or delete.
    public static func problem(id: String, source: String, path: String, createdAt: Date?) -> String? {
        guard isValidID(id) else { return "the id \(String(reflecting: id)) is not of the form 20261129T023000Z-3fa9c1" }
        guard isValidSourceName(source) else { return "the source name \(String(reflecting: source)) is not valid or is reserved" }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == source, isDay(parts[1]), parts[2].hasPrefix(id + "."),
              !parts[2].hasSuffix(".manifest.json"), parts[2].count <= 255, !path.utf8.contains(0) else {
            return "the path \(String(reflecting: path)) is not <source>/<day>/<id>.<ext> for \(source)/\(id)"
        }
        if let idDate = date(ofID: id) {
            guard parts[1] == Substring(Timestamps.day(idDate)) else { return "the path's day \(parts[1]) is not the day of its id \(id)" }
            if let createdAt, abs(createdAt.timeIntervalSince(idDate)) >= 1.5 {
                return "created_at \(Timestamps.iso8601(createdAt)) is not the time of its id \(id)"
            }
        }
        return nil
    }

    /// 1-64 letters, digits, `-`, `_`, not starting with `-`, not reserved.
    public static func isValidSourceName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.first != "-" && !reservedNames.contains(name)
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }
}
