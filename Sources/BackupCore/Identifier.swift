import Foundation

/// Identifiers that sort by time and read well in file names: `20261129T023000Z-3fa9c1`.
public enum Identifier {
    public static func make<G: RandomNumberGenerator>(at date: Date, using generator: inout G) -> String {
        let suffix = String(format: "%06x", Int.random(in: 0..<0x100_0000, using: &generator))
        return Timestamps.compact(date) + "-" + suffix
    }
}

/// Time formats used in file names, JSON and text output (always UTC).
public enum Timestamps {
    /// `20261129T023000Z`
    public static func compact(_ date: Date) -> String {
        let c = utcComponents(date)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    /// `2026-11-29`, the UTC day, used for the repository's day folders.
    public static func day(_ date: Date) -> String {
        let c = utcComponents(date)
        return String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
    }

    /// ISO 8601 with fractional seconds, UTC: `2026-11-29T02:30:00.123Z`.
    /// Milliseconds, truncated (not rounded) as the catalog stores them, so that a time printed for an artifact
    /// and given back (`--before`) compares as the artifact's own time.
    public static func iso8601(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded(.down) / 1000))
    }

    public static func parseISO8601(_ text: String) -> Date? {
        // ICU's parser is handed only the shape we write: fuzz-manifest found it dying (SIGFPE in
        // SimpleDateFormat::subParse) on a manifest whose created_at had a fraction of a hundred digits.
        guard hasISO8601Shape(text) else { return nil }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: text) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: text)
    }

    /// `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1 to 9 digits, then `Z` or an offset (`+03:00`, `-0500`).
    static func hasISO8601Shape(_ text: String) -> Bool {
        let b = Array(text.utf8)
        let head = Array("0000-00-00T00:00:00".utf8)
        guard b.count >= head.count + 1, b.count <= 40 else { return false }
        func digit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        for (i, c) in head.enumerated() where c == 0x30 ? !digit(b[i]) : b[i] != c { return false }
        var i = head.count
        if b[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            while i < b.count && digit(b[i]) { i += 1 }
            guard (1...9).contains(i - start) else { return false }
        }
        let zone = Array(b[i...])
        if zone == [UInt8(ascii: "Z")] { return true }
        guard let sign = zone.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") else { return false }
        let rest = Array(zone.dropFirst())
        if rest.count == 5 { return digit(rest[0]) && digit(rest[1]) && rest[2] == UInt8(ascii: ":") && digit(rest[3]) && digit(rest[4]) }
        return rest.count == 4 && rest.allSatisfy(digit)
    }

    private static func utcComponents(_ date: Date) -> DateComponents {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        return cal.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    }
}
