// Progress on a terminal: one line on stderr, redrawn in place five times a second from the engine's
// ProgressMeter (bytes and rate; done/total, percent and ETA when the total is known). Only when stderr is a
// terminal, and never with --quiet or --json (cron, systemd and pipes get nothing of it). Log lines clear it
// first (ProgressAwareLogHandler), so the two never share a line.
import BackupCore
import Foundation
import Logging

final class ProgressRenderer: @unchecked Sendable {
    static let shared = ProgressRenderer()

    let meter = ProgressMeter()
    private let lock = NSLock()
    private var task: Task<Void, Never>?
    private var drawn = false
    private var generation = -1
    private var started = DispatchTime.now()

    /// Starts drawing (once). Call only when stderr is a terminal.
    func start() {
        meter.onEnd = { [self] in clearLine() }
        lock.withLock {
            guard task == nil else { return }
            task = Task.detached { [self] in
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: 200_000_000)
                    draw()
                }
            }
        }
    }

    /// Clears the line, for good (before the process exits).
    func stop() {
        lock.withLock {
            task?.cancel()
            task = nil
        }
        clearLine()
    }

    /// Removes the progress line, if one is drawn (before a log line, or when the work ended).
    func clearLine() {
        lock.withLock {
            guard drawn else { return }
            Self.write("\r\u{1B}[K")
            drawn = false
        }
    }

    private func draw() {
        lock.withLock {
            guard let state = meter.current else {
                if drawn { Self.write("\r\u{1B}[K"); drawn = false }
                return
            }
            if state.generation != generation {
                generation = state.generation
                started = DispatchTime.now()
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
            var line = Self.line(state, seconds: seconds)
            let width = Self.terminalWidth()
            if line.count >= width { line = String(line.prefix(max(10, width - 2))) + "…" }
            Self.write("\r\u{1B}[K" + line)
            drawn = true
        }
    }

    /// `backup redis  45.2 MiB  38.1 MiB/s`, `verify ID  45.2 / 120.0 MiB  37%  38.1 MiB/s  ETA 0:02`,
    /// `backup minio  1,200 / 2,000 objects  45.2 MiB  ETA 0:07`.
    static func line(_ s: ProgressMeter.State, seconds: Double) -> String {
        var parts = [s.label]
        let rate = seconds > 0.05 ? Double(s.bytes) / seconds : 0
        if let total = s.totalItems, total > 0 || s.items > 0 {
            parts.append("\(s.items) / \(total) \(s.itemUnit)")
            if s.bytes > 0 { parts.append(mebibytes(s.bytes)) }
            if s.items > 0, total > s.items, seconds > 0.5 { parts.append("ETA " + clock(seconds / Double(s.items) * Double(total - s.items))) }
        } else if let total = s.totalBytes, total > 0 {
            // An estimate (the previous backup's size) is said as one: `~`, and at most 99 % while running.
            let mark = s.estimated ? "~" : ""
            parts.append("\(mebibytes(s.bytes)) / \(mark)\(mebibytes(total))")
            parts.append("\(mark)\(min(s.estimated ? 99 : 100, Int(Double(s.bytes) * 100 / Double(total))))%")
            if rate > 0 { parts.append(mebibytes(Int64(rate)) + "/s") }
            if rate > 0, total > s.bytes { parts.append("ETA " + mark + clock(Double(total - s.bytes) / rate)) }
        } else {
            parts.append(mebibytes(s.bytes))
            if rate > 0 { parts.append(mebibytes(Int64(rate)) + "/s") }
            if s.items > 0 { parts.append("\(s.items) \(s.itemUnit)") }
        }
        return parts.joined(separator: "  ")
    }

    static func mebibytes(_ n: Int64) -> String {
        n < 1024 ? "\(n) B" : n < 1 << 20 ? String(format: "%.1f KiB", Double(n) / 1024) : String(format: "%.1f MiB", Double(n) / 1_048_576)
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded(.up))
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    static func terminalWidth() -> Int {
        var size = winsize()
        return ioctl(2, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 20 ? Int(size.ws_col) : 100
    }

    private static func write(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

/// The standard stderr handler, after clearing the progress line.
struct ProgressAwareLogHandler: LogHandler {
    var inner: StreamLogHandler

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }
    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    /// The line is cleared first; a peer's text in the message or the fields (an error reply quoted in `error=`)
    /// gets its control characters made visible (TerminalText): one event, one line, nothing sent to the terminal.
    func log(event: LogEvent) {
        ProgressRenderer.shared.clearLine()
        var event = event
        event.message = Logger.Message(stringLiteral: TerminalText.safe(event.message.description, keepNewlines: false))
        event.metadata = event.metadata.map(Self.safe)
        inner.log(event: event)
    }

    static func safe(_ metadata: Logger.Metadata) -> Logger.Metadata {
        metadata.mapValues(safe)
    }

    static func safe(_ value: Logger.MetadataValue) -> Logger.MetadataValue {
        switch value {
        case .string(let s): return .string(TerminalText.safe(s, keepNewlines: false))
        case .stringConvertible(let c): return .string(TerminalText.safe(c.description, keepNewlines: false))
        case .array(let a): return .array(a.map(safe))
        case .dictionary(let d): return .dictionary(safe(d))
        }
    }
}
