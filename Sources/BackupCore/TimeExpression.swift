import Foundation

/// The times people type for `--before`, `--now` and `--after`: an ISO 8601 time (`2026-12-01T03:00:00Z`), a date
/// alone (`2026-12-01`: that day's midnight in the policy's time zone, `retention.timezone`), or an age
/// (`90m`, `12h`, `3d`, `2w`, optionally followed by ` ago`: that long before now). Pure: `now` is passed in.
public enum TimeExpression {
    public static func parse(_ text: String, now: Date, timeZone: TimeZone) -> Date? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if let iso = Timestamps.parseISO8601(t) { return iso }
        if let day = date(t, timeZone: timeZone) { return day }
        var amount = t.hasSuffix(" ago") ? String(t.dropLast(4)).trimmingCharacters(in: .whitespaces) : t
        guard let unit = amount.last, let seconds: Double = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800][unit] else { return nil }
        amount.removeLast()
        guard !amount.isEmpty, amount.count <= 6, amount.allSatisfy(\.isASCII), let n = Int(amount), n >= 0 else { return nil }
        return now.addingTimeInterval(-Double(n) * seconds)
    }

    /// `YYYY-MM-DD` as the start of that day in `timeZone`.
    static func date(_ text: String, timeZone: TimeZone) -> Date? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]), (1...12).contains(m), (1...31).contains(d) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let components = DateComponents(year: y, month: m, day: d)
        guard let date = calendar.date(from: components),
              calendar.component(.day, from: date) == d, calendar.component(.month, from: date) == m else { return nil } // no 2026-02-30
        return date
    }

    /// What the options say they accept.
    public static let help = "an ISO 8601 time, a date (YYYY-MM-DD: its midnight in retention.timezone), or an age such as 90m, 12h, 3d, 2w"
}
