import BackupCore
import Foundation
import Logging

/// `daemon --log-format json`: one JSON object per line on stderr, for journald, Loki or any log shipper:
/// `{"time": ISO 8601 UTC, "level", "message", "label", ...metadata}` (metadata values as strings; a metadata key
/// named like a fixed field gets a `meta.` prefix). Each line goes out in one write(2), so lines from
/// concurrent jobs never interleave.
struct JSONLogHandler: LogHandler {
    var label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    private let fd: Int32

    init(label: String, fd: Int32 = 2) {
        self.label = label
        self.fd = fd
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?,
             source: String, file: String, function: String, line: UInt) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let explicit { merged.merge(explicit) { $1 } }
        write(Self.line(time: Date(), level: level, label: label, message: message.description, metadata: merged))
    }

    static let fixed: Set<String> = ["time", "level", "message", "label"]

    static func line(time: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        var out = "{\"time\":\(JSONText.quote(Timestamps.iso8601(time))),\"level\":\(JSONText.quote(level.rawValue)),"
            + "\"message\":\(JSONText.quote(message)),\"label\":\(JSONText.quote(label))"
        for key in metadata.keys.sorted() {
            let name = fixed.contains(key) ? "meta." + key : key
            let value = String(describing: metadata[key]!)
            // exit_code is a number, as in the `--json` error object on stdout.
            if key == "exit_code", let code = Int32(value) {
                out += ",\(JSONText.quote(name)):\(code)"
            } else {
                out += ",\(JSONText.quote(name)):\(JSONText.quote(value))"
            }
        }
        return out + "}\n"
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 { if errno == EINTR { continue } else { return } }
                offset += n
            }
        }
    }
}
