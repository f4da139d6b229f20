import Foundation

/// A minimum transfer rate over a window (`min_rate:` / `min_rate_window:` of a source), checked wherever bytes
/// arrive: a peer that trickles a byte at a time keeps every silence under the idle timeout and would otherwise
/// run until the deadline. The first window starts with the first bytes counted; each window that ends having
/// seen fewer than `bytesPerSecond × its length` bytes throws `onSlow`'s error. Used from one thread at a time.
public final class RateWindow: @unchecked Sendable {
    public let bytesPerSecond: Int64
    public let window: Double
    private let onSlow: @Sendable (_ bytes: Int64, _ seconds: Double) -> Error
    /// On the monotonic clock (nanoseconds of uptime): a wall clock stepped forward would otherwise make one
    /// window last a day and stop a healthy transfer.
    private var start: UInt64?
    private var bytes: Int64 = 0

    public init(bytesPerSecond: Int64, window: Double, onSlow: @escaping @Sendable (_ bytes: Int64, _ seconds: Double) -> Error) {
        self.bytesPerSecond = bytesPerSecond
        self.window = window
        self.onSlow = onSlow
    }

    /// Counts `n` bytes that just arrived; throws when the window that just ended was too slow.
    public func add(_ n: Int, now: UInt64 = DispatchTime.now().uptimeNanoseconds) throws {
        guard bytesPerSecond > 0 else { return }
        guard let begun = start else {
            start = now
            bytes = Int64(n)
            return
        }
        let elapsed = Double(now &- begun) / 1e9
        if elapsed >= window {
            if Double(bytes) < Double(bytesPerSecond) * elapsed { throw onSlow(bytes, elapsed) }
            start = now
            bytes = 0
        }
        bytes += Int64(n)
    }
}

/// A deadline given as a wall-clock time, kept on the monotonic clock from the moment it is set: a clock stepped
/// by NTP or by hand (a day forward, an hour back) neither stops a transfer early nor lets it run on.
public struct MonotonicDeadline: Sendable {
    private let uptime: UInt64

    public init(_ date: Date, now: Date = Date()) {
        let seconds = min(max(0, date.timeIntervalSince(now)), 1e9)
        uptime = DispatchTime.now().uptimeNanoseconds &+ UInt64(seconds * 1e9)
    }

    public var passed: Bool { DispatchTime.now().uptimeNanoseconds > uptime }
}
