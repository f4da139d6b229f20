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
