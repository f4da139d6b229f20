import BackupCore
import Foundation

/// How the server framed the snapshot it sent.
public enum SnapshotFraming: String, Sendable {
    /// `$EOF:<40-byte mark>` … mark (diskless replication).
    case eofMark = "eof-mark"
    /// `$<length>` followed by exactly that many bytes (disk-based replication).
    case length
}

/// Takes an RDB snapshot over the network, as `redis-cli --rdb` does, and streams it to a handler.
///
/// Sequence (what redis-cli --rdb does): AUTH, `REPLCONF capa eof`, `REPLCONF rdb-only 1` (errors of those two are
/// ignored: older servers do not know them), raw `SYNC`; skip keepalive newlines; then either read exactly
/// `$<len>` bytes, or read until the 40-byte `$EOF:` mark, looked for at every offset and dropped with
/// anything after it.
public enum RedisSnapshot {
    public static let eofMarkLength = 40

    /// Streams the RDB to `chunk` and returns the framing the server used and the RDB's size.
    /// - Parameters:
    ///   - timeout: longest silence on the connection.
    ///   - startTimeout: longest wait for the server to start sending (it sends keepalives meanwhile, while
    ///     its BGSAVE runs or waits for an earlier one, which can hang in the server).
    public static func take(endpoint: RedisEndpoint, password: Secret?, timeout: Double,
                            startTimeout: Double = Defaults.snapshotStartTimeoutSeconds,
                            deadline: Date? = nil, deadlineError: Error? = nil, rate: RateWindow? = nil,
                            chunk: ([UInt8]) throws -> Void) throws -> (framing: SnapshotFraming, bytes: Int64) {
        let connection = try RESPConnection(endpoint: endpoint, ioTimeout: timeout)
        connection.deadline = deadline
        connection.deadlineError = deadlineError
        defer { connection.close() }
        try authenticate(connection, endpoint: endpoint, password: password)
        _ = try connection.command("REPLCONF", "capa", "eof")
        _ = try connection.command("REPLCONF", "rdb-only", "1")
        try connection.writeRaw(Array("SYNC\r\n".utf8))
        return try receive(connection, endpoint: endpoint, startTimeout: startTimeout, rate: rate, chunk: chunk)
    }

    /// Reads the reply to a `SYNC` already sent: keepalives, the framing line, then the payload.
    public static func receive(_ connection: RESPConnection, endpoint: RedisEndpoint, startTimeout: Double, rate: RateWindow? = nil,
                               chunk: ([UInt8]) throws -> Void) throws -> (framing: SnapshotFraming, bytes: Int64) {
        let deadline = DispatchTime.now() + startTimeout
        let stuck = {
            RedisError(endpoint: endpoint.description,
                       problem: "the server did not start sending the snapshot within \(Int(startTimeout)) s (it only sent keepalives)",
                       hint: "a BGSAVE is still running or stuck on the server: check INFO persistence (rdb_bgsave_in_progress) and its log; raise the source's start_timeout for very large datasets")
        }
        var header = try preamble(connection, deadline: deadline, onTimeout: stuck)
        if header.hasPrefix("+FULLRESYNC") { header = try preamble(connection, deadline: deadline, onTimeout: stuck) }
        if header.hasPrefix("-") {
            let message = String(header.dropFirst())
            let hint = message.contains("NOPERM")
                ? "the user needs the SYNC and REPLCONF commands (ACL: +sync +replconf, or @admin)"
                : "check the server's log; a replica-serving limit or a failed fork (memory) can refuse a SYNC"
            throw RedisError(endpoint: endpoint.description, problem: "SYNC refused: \(message)", hint: hint)
        }
        guard header.hasPrefix("$") else {
            throw RedisError(endpoint: endpoint.description, problem: "unexpected reply to SYNC: \(header.prefix(60))")
        }
        connection.rate = rate // the payload starts here
        if header.hasPrefix("$EOF:") {
            let mark = Array(header.utf8.dropFirst(5))
            guard mark.count == eofMarkLength else {
                throw RedisError(endpoint: endpoint.description, problem: "EOF mark of \(mark.count) bytes, expected \(eofMarkLength)")
            }
            let bytes = try readUntilMark(connection, mark: mark, endpoint: endpoint, chunk: chunk)
            return (.eofMark, bytes)
        }
        guard let length = Int64(header.dropFirst()), length >= 0 else {
            throw RedisError(endpoint: endpoint.description, problem: "bad payload length in \(header.prefix(60))")
        }
        var pending: [UInt8] = []
        pending.reserveCapacity(Defaults.readChunkSize)
        try connection.readExactly(Int(length)) { slice in
            pending.append(contentsOf: slice)
            if pending.count >= Defaults.readChunkSize / 2 {
                try chunk(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
        if !pending.isEmpty { try chunk(pending) }
        return (.length, length)
    }

    public static func authenticate(_ connection: RESPConnection, endpoint: RedisEndpoint, password: Secret?) throws {
        guard let password else { return }
        var args = ["AUTH"]
        if let user = endpoint.username { args.append(user) }
        args.append(password.value)
        if case .error(let message) = try connection.command(args) {
            let clean = Redaction.scrub(message, secrets: [password])
            throw RedisError(endpoint: endpoint.description, problem: "authentication failed: \(clean)",
                             hint: "check the password (the source's url, password or password_file) and the user's ACL")
        }
    }

    private static func preamble(_ connection: RESPConnection, deadline: DispatchTime,
                                 onTimeout: () -> RedisError) throws -> String {
        try connection.skipNewlines(deadline: deadline, onTimeout: onTimeout)
        return String(decoding: try connection.readLine(), as: UTF8.self)
    }

    /// Emits the payload up to (not including) the first occurrence of `mark`, holding back the last
    /// `mark.count - 1` bytes until more arrive so that a mark split across reads is found too.
    private static func readUntilMark(_ connection: RESPConnection, mark: [UInt8], endpoint: RedisEndpoint,
                                      chunk: ([UInt8]) throws -> Void) throws -> Int64 {
        var window: [UInt8] = []
        window.reserveCapacity(Defaults.readChunkSize * 2)
        var emitted: Int64 = 0
        var found = false
        try connection.readUntilClosed { slice in
            let searchFrom = max(0, window.count - (mark.count - 1))
            window.append(contentsOf: slice)
            if let at = find(mark, in: window, from: searchFrom) {
                if at > 0 { try chunk(Array(window[..<at])) }
                emitted += Int64(at)
                found = true
                return false
            }
            let keep = mark.count - 1
            if window.count > keep && window.count >= Defaults.readChunkSize / 2 {
                let cut = window.count - keep
                try chunk(Array(window[..<cut]))
                emitted += Int64(cut)
                window.removeFirst(cut)
            }
            return true
        }
        guard found else {
            throw RedisError(endpoint: endpoint.description,
                             problem: "the server closed the connection before the end-of-snapshot mark (after \(emitted + Int64(window.count)) bytes)",
                             hint: "check the server's log (a failed fork or a killed child ends the transfer early)")
        }
        return emitted
    }

    /// First offset at or after `from` where `needle` starts in `haystack`.
    static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int = 0) -> Int? {
        guard let first = needle.first, haystack.count - from >= needle.count else { return nil }
        return haystack.withUnsafeBytes { h -> Int? in
            needle.withUnsafeBytes { n -> Int? in
                var i = from
                let last = h.count - n.count
                while i <= last {
                    guard let p = memchr(h.baseAddress! + i, Int32(first), last - i + 1) else { return nil }
                    let at = h.baseAddress!.distance(to: UnsafeRawPointer(p))
                    if memcmp(h.baseAddress! + at, n.baseAddress!, n.count) == 0 { return at }
                    i = at + 1
                }
                return nil
            }
        }
    }
}
