import Foundation

/// A 5-field cron expression (minute hour day-of-month month day-of-week) and its next fire times in an IANA
/// time zone. Pure: the moment to search after and the zone are passed in.
///
/// Fields take `*`, numbers, ranges `a-b`, steps `*/n` `a-b/n` `a/n`, lists `a,b`, names `JAN`…`DEC` and
/// `SUN`…`SAT` (0 and 7 are Sunday); macros `@yearly` `@annually` `@monthly` `@weekly` `@daily` `@midnight`
/// `@hourly`. As in Vixie cron, when both day-of-month and day-of-week are restricted a day matching either
/// fires.
///
/// Daylight saving, the way Vixie cron behaves for fixed times: a local time skipped by a spring-forward
/// fires once, at the end of the gap (02:30 on a 02:00→03:00 night fires at 03:00); a local time that occurs
/// twice (fall back) fires once, at its first occurrence.
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    public let expression: String
    let minutes: [Int]
    let hours: [Int]
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>
    let domRestricted: Bool
    let dowRestricted: Bool

    public var description: String { expression }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var problem: String
        public var description: String { problem }
    }

    static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    static let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
    static let macros = ["@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                         "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"]

    public init(_ expression: String) throws(ParseError) {
        self.expression = expression
        let text = expression.trimmingCharacters(in: .whitespaces)
        let expanded = Self.macros[text.lowercased()] ?? text
        if expanded.hasPrefix("@") { throw ParseError(problem: "unknown macro \(text) (expected @hourly, @daily, @weekly, @monthly or @yearly)") }
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw ParseError(problem: "expected 5 fields (minute hour day-of-month month day-of-week), found \(fields.count)")
        }
        minutes = try Self.field(fields[0], name: "minute", range: 0...59, names: []).sorted()
        hours = try Self.field(fields[1], name: "hour", range: 0...23, names: []).sorted()
        daysOfMonth = Set(try Self.field(fields[2], name: "day of month", range: 1...31, names: []))
        months = Set(try Self.field(fields[3], name: "month", range: 1...12, names: Self.monthNames, nameBase: 1))
        var dow = Set(try Self.field(fields[4], name: "day of week", range: 0...7, names: Self.dayNames))
        if dow.remove(7) != nil { dow.insert(0) }
        daysOfWeek = dow
        domRestricted = !fields[2].hasPrefix("*")
        dowRestricted = !fields[4].hasPrefix("*")
    }

    private static func field(_ text: String, name: String, range: ClosedRange<Int>, names: [String], nameBase: Int = 0) throws(ParseError) -> [Int] {
        func value(_ s: Substring) throws(ParseError) -> Int {
            if let v = Int(s) {
                guard range.contains(v) else { throw ParseError(problem: "\(name) \(v) is out of range \(range.lowerBound)-\(range.upperBound)") }
                return v
            }
            if let i = names.firstIndex(of: s.uppercased()) { return i + nameBase }
            throw ParseError(problem: "\(name): \"\(s)\" is not a number\(names.isEmpty ? "" : " or a name such as \(names[0])")")
        }
        var out = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw ParseError(problem: "\(name): empty item in \"\(text)\"") }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw ParseError(problem: "\(name): \"\(item)\" has more than one /") }
            var step = 1
            if parts.count == 2 {
                guard let s = Int(parts[1]), s > 0 else { throw ParseError(problem: "\(name): step \"\(parts[1])\" must be a positive number") }
                step = s
            }
            let base = parts[0]
            let low: Int, high: Int
            if base == "*" {
                (low, high) = (range.lowerBound, range.upperBound)
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw ParseError(problem: "\(name): range \(base) runs backwards") }
            } else {
                low = try value(base)
                high = parts.count == 2 ? range.upperBound : low
            }
            for v in stride(from: low, through: high, by: step) { out.insert(v) }
        }
        return Array(out)
    }

    private func dayMatches(day: Int, month: Int, weekday: Int) -> Bool {
        guard months.contains(month) else { return false }
        switch (domRestricted, dowRestricted) {
        case (true, true): return daysOfMonth.contains(day) || daysOfWeek.contains(weekday)
        case (true, false): return daysOfMonth.contains(day)
        case (false, true): return daysOfWeek.contains(weekday)
        case (false, false): return true
        }
    }

    /// The first fire time strictly after `instant`, or nil if none within 8 years (e.g. `0 0 30 2 *`).
    public func next(after instant: Date, in zone: TimeZone) -> Date? {
        let afterSeconds = Int(instant.timeIntervalSince1970.rounded(.down))
        let startWall = Self.wall(of: afterSeconds, zone) / 60 * 60 + 60 // the next whole local minute
        var day = Self.floorDiv(startWall, 86400)
        let lastDay = day + 8 * 366
        while day <= lastDay {
            let (y, m, d) = Self.civil(fromDays: day)
            _ = y
            let weekday = ((day % 7) + 11) % 7 // 1970-01-01 was a Thursday (4)
            if dayMatches(day: d, month: m, weekday: weekday) {
                for h in hours {
                    for minute in minutes {
                        let w = day * 86400 + h * 3600 + minute * 60
                        guard w >= startWall else { continue }
                        let t = Self.instant(forWall: w, zone)
                        if t > afterSeconds { return Date(timeIntervalSince1970: TimeInterval(t)) }
                    }
                }
            }
            day += 1
        }
        return nil
    }

    /// The next `count` fire times after `instant`.
    public func upcoming(after instant: Date, in zone: TimeZone, count: Int) -> [Date] {
        var out: [Date] = []
        var cursor = instant
        while out.count < count, let n = next(after: cursor, in: zone) {
            out.append(n)
            cursor = n
        }
        return out
    }

    // MARK: Wall-clock arithmetic

    /// Local wall time (seconds since 1970-01-01T00:00 local) of a UTC instant.
    static func wall(of t: Int, _ zone: TimeZone) -> Int {
        t + zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(t)))
    }

    /// The instant at which the local wall time `w` happens: the first of two in an overlap, the end of the
    /// gap when `w` falls into one.
    static func instant(forWall w: Int, _ zone: TimeZone) -> Int {
        let before = zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(w - 86400)))
        let after = zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(w + 86400)))
        let candidates = Set([w - before, w - after]).filter { wall(of: $0, zone) == w }.sorted()
        if let first = candidates.first { return first }
        // In a gap: the wall time never happens; fire when the clocks jump.
        let search = Date(timeIntervalSince1970: TimeInterval(min(w - before, w - after) - 1))
        if let transition = zone.nextDaylightSavingTimeTransition(after: search) {
            return Int(transition.timeIntervalSince1970.rounded())
        }
        return w - after
    }

    static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }

    /// (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's civil_from_days).
    static func civil(fromDays z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
