import Foundation

/// A minimum transfer rate over a window (`min_rate:` / `min_rate_window:` of a source), checked wherever bytes
/// arrive: a peer that trickles a byte at a time keeps every silence under the idle timeout and would otherwise
/// run until the deadline. The first window starts with the first bytes counted; each window that ends having
/// seen fewer than `bytesPerSecond × its length` bytes throws `onSlow`'s error. Used from one thread at a time.
public final class RateWindow: @unchecked Sendable {
    public let bytesPerSecond: Int64
    public let window: Double
    private let onSlow: @Sendable (_ bytes: Int64, _ seconds: Double) -> Error
    private var start: Date?
    private var bytes: Int64 = 0

    public init(bytesPerSecond: Int64, window: Double, onSlow: @escaping @Sendable (_ bytes: Int64, _ seconds: Double) -> Error) {
        self.bytesPerSecond = bytesPerSecond
        self.window = window
        self.onSlow = onSlow
    }

    /// Counts `n` bytes that just arrived; throws when the window that just ended was too slow.
    public func add(_ n: Int, now: Date = Date()) throws {
        guard bytesPerSecond > 0 else { return }
        guard let begun = start else {
            start = now
            bytes = Int64(n)
            return
        }
        let elapsed = now.timeIntervalSince(begun)
        if elapsed >= window {
            if Double(bytes) < Double(bytesPerSecond) * elapsed { throw onSlow(bytes, elapsed) }
            start = now
            bytes = 0
        }
        bytes += Int64(n)
    }
}
