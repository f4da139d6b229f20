import BackupCore
import Foundation
import Testing

/// `min_rate` and the deadlines run on the monotonic clock: a wall clock stepped a day forward (NTP, a hand)
/// neither stops a healthy transfer nor lets a stuck one run on.
struct RateWindowTests {
    struct Slow: Error, Equatable { var bytes: Int64 }

    @Test func aWindowBelowTheRateThrowsOnceItEnds() throws {
        let window = RateWindow(bytesPerSecond: 100, window: 10) { bytes, _ in Slow(bytes: bytes) }
        let s: UInt64 = 1_000_000_000
        try window.add(50, now: 0)
        try window.add(50, now: 5 * s)      // inside the first window: not judged yet
        #expect(throws: Slow(bytes: 100)) { try window.add(1, now: 11 * s) } // 100 bytes in 11 s < 100 B/s
        let fast = RateWindow(bytesPerSecond: 100, window: 10) { bytes, _ in Slow(bytes: bytes) }
        try fast.add(600, now: 0)
        try fast.add(600, now: 9 * s)
        try fast.add(1, now: 11 * s)        // 1,200 bytes in 11 s: fine, a new window starts
        let off = RateWindow(bytesPerSecond: 0, window: 10) { bytes, _ in Slow(bytes: bytes) }
        try off.add(0, now: 0)
        try off.add(0, now: 100 * s)
    }

    /// The wall clock says a day has passed; the monotonic one says nothing has.
    @Test func aDeadlineIgnoresTheWallClock() {
        let deadline = MonotonicDeadline(Date(timeIntervalSinceNow: 60))
        #expect(!deadline.passed)
        let past = MonotonicDeadline(Date(timeIntervalSinceNow: -1))
        #expect(past.passed)
        // Set from a wall clock stepped a day back: still about 60 s from now, not a day and a minute.
        let stepped = MonotonicDeadline(Date(), now: Date(timeIntervalSinceNow: -60))
        #expect(!stepped.passed)
    }
}
