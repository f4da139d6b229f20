import BackupCore
import Foundation
import Testing

struct TimestampTests {
    /// Printed times are truncated to the millisecond, as the catalog stores them: an artifact's printed
    /// created_at given back as `--before` never selects the artifact itself.
    @Test func iso8601TruncatesToTheMillisecond() {
        #expect(Timestamps.iso8601(Date(timeIntervalSince1970: 1.9996)) == "1970-01-01T00:00:01.999Z")
        let t = Date(timeIntervalSince1970: 1_796_000_000.4567)
        let back = Timestamps.parseISO8601(Timestamps.iso8601(t))!
        #expect(back <= t && t.timeIntervalSince(back) < 0.001)
    }
}

/// fuzz-manifest's find (#40): ICU's ISO 8601 parser died (SIGFPE) on a time with a fraction of a hundred digits, in
/// a manifest (which may come from the off-site bucket): `catalog rebuild` or `verify` would have crashed. Such a
/// text is now refused before ICU sees it; the times we write and people type read as before.
struct ISO8601ShapeTests {
    @Test func aLongFractionIsRefusedNotACrash() {
        #expect(Timestamps.parseISO8601("2026-12-04T22:56:04." + String(repeating: "2", count: 100) + "Z") == nil)
        #expect(Timestamps.parseISO8601("2026-12-04T22:56:04.1234567890Z") == nil)
        for text in ["20260-12-04T22:56:04Z", "2026-12-04 22:56:04Z", "2026-12-04T22:56:04", "2026-12-04T22:56:04.Z", "2026-12-04T22:56:04Z ", "2026-12-04T22:56:04+5"] {
            #expect(Timestamps.parseISO8601(text) == nil, "\(text)")
        }
    }

    @Test func theTimesWeWriteAndPeopleTypeStillRead() {
        let withFraction = Timestamps.parseISO8601("2026-12-04T22:56:04.123Z")
        #expect(abs((withFraction?.timeIntervalSince1970 ?? 0) - 1_796_424_964.123) < 0.001)
        #expect(Timestamps.parseISO8601("2026-12-04T22:56:04Z") == Date(timeIntervalSince1970: 1_796_424_964))
        #expect(Timestamps.parseISO8601("2026-12-05T01:56:04+03:00") == Date(timeIntervalSince1970: 1_796_424_964))
        #expect(Timestamps.parseISO8601("2026-12-04T22:56:04.123456789Z") != nil)
    }
}

struct TimeExpressionTests {
    let now = Date(timeIntervalSince1970: 1_796_000_000) // 2026-11-30T02:13:20Z
    let berlin = TimeZone(identifier: "Europe/Berlin")!

    @Test func isoTimesPassThrough() {
        #expect(TimeExpression.parse("2026-12-01T03:00:00Z", now: now, timeZone: berlin) == Timestamps.parseISO8601("2026-12-01T03:00:00Z"))
    }

    /// A date alone is that day's midnight in the given zone, not UTC's.
    @Test func aDateIsLocalMidnight() {
        #expect(TimeExpression.parse("2026-12-01", now: now, timeZone: berlin) == Timestamps.parseISO8601("2026-11-30T23:00:00Z"))
        #expect(TimeExpression.parse("2026-07-01", now: now, timeZone: berlin) == Timestamps.parseISO8601("2026-06-30T22:00:00Z"))
        #expect(TimeExpression.parse("2026-12-01", now: now, timeZone: TimeZone(identifier: "UTC")!) == Timestamps.parseISO8601("2026-12-01T00:00:00Z"))
    }

    @Test func agesCountBackFromNow() {
        #expect(TimeExpression.parse("90m", now: now, timeZone: berlin) == now.addingTimeInterval(-5400))
        #expect(TimeExpression.parse("12h", now: now, timeZone: berlin) == now.addingTimeInterval(-43_200))
        #expect(TimeExpression.parse("3d", now: now, timeZone: berlin) == now.addingTimeInterval(-259_200))
        #expect(TimeExpression.parse("2w ago", now: now, timeZone: berlin) == now.addingTimeInterval(-1_209_600))
        #expect(TimeExpression.parse("0d", now: now, timeZone: berlin) == now)
    }

    @Test func nonsenseIsRejected() {
        for text in ["", "d", "3", "3y", "-3d", "3.5d", "2026-02-30", "2026-13-01", "2026-1-01", "yesterday", "9999999999d", "٣d"] {
            #expect(TimeExpression.parse(text, now: now, timeZone: berlin) == nil, "\(text) should not parse")
        }
    }
}

/// JSONValue decodes every JSON kind as its own case (the order of its trial decodes is a speed choice only).
@Suite struct JSONValueDecodingTests {
    @Test func everyKindDecodesAsItself() throws {
        let text = #"{"t":true,"f":false,"i":1,"n":-7,"d":1.5,"s":"x","z":null,"a":[1,"y",false,null,2.25,{"k":[]}],"o":{"g":2,"e":{}}}"#
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        let expected: JSONValue = .object([
            "t": .bool(true), "f": .bool(false), "i": .int(1), "n": .int(-7), "d": .double(1.5), "s": .string("x"), "z": .null,
            "a": .array([.int(1), .string("y"), .bool(false), .null, .double(2.25), .object(["k": .array([])])]),
            "o": .object(["g": .int(2), "e": .object([:])]),
        ])
        #expect(value == expected)
        let again = try JSONDecoder().decode(JSONValue.self, from: try JSONEncoder().encode(value))
        #expect(again == expected)
    }
}
