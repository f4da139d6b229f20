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
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: text) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: text)
    }

    private static func utcComponents(_ date: Date) -> DateComponents {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        return cal.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    }
}
