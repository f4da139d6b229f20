import BackupCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A reply in the Redis serialization protocol (RESP2).
public enum RESPValue: Equatable, Sendable {
    case simple(String)
    case error(String)
    case integer(Int)
    case bulk([UInt8]?)
    case array([RESPValue]?)

    /// The reply as text (simple string or bulk), if it is one.
    public var text: String? {
        switch self {
        case .simple(let s): return s
        case .bulk(let b?): return String(decoding: b, as: UTF8.self)
        default: return nil
        }
    }
}

/// A Redis server could not be reached, refused us, or stopped answering. Exit 1.
public struct RedisError: UserFacingError, Equatable {
    public var endpoint: String
    public var problem: String
    public var hintText: String?

    public init(endpoint: String, problem: String, hint: String? = nil) {
        self.endpoint = endpoint
        self.problem = problem
        self.hintText = hint
    }

    public var exitStatus: ExitStatus { .failed }
    public var description: String { "Redis \(endpoint): \(PeerText.clean(problem))" }
    public var hint: String? { hintText }
}

/// A blocking RESP connection over TCP with connect and I/O timeouts. One thread at a time.
///
/// Contract: `command` sends one request and returns its reply (a server error is returned as `.error`, not
/// thrown); network failures and timeouts throw `RedisError` naming the endpoint (never the password).
public final class RESPConnection {
    public let endpointDescription: String
    /// When set, reading after this moment throws `deadlineError`: the whole exchange is bounded, not only each
    /// silence (a server that trickles a byte every few seconds never trips the idle timeout).
    public var deadline: Date? { didSet { monotonicDeadline = deadline.map { MonotonicDeadline($0) } } }
    private var monotonicDeadline: MonotonicDeadline?
    public var deadlineError: Error?
    /// When set, every byte received is counted against a minimum rate (set once a snapshot's payload starts:
    /// the keepalives before it are the server's BGSAVE, bounded by the start timeout instead).
    public var rate: RateWindow?
    private var fd: Int32 = -1
    private var buffer = [UInt8](repeating: 0, count: Defaults.readChunkSize)
    private var start = 0
    private var end = 0
    private let ioTimeout: Double

    public init(host: String, port: Int, endpointDescription: String,
                connectTimeout: Double = Defaults.connectTimeoutSeconds, ioTimeout: Double) throws {
        self.endpointDescription = endpointDescription
        self.ioTimeout = ioTimeout
        fd = try Self.connect(host: host, port: port, timeout: connectTimeout, endpoint: endpointDescription)
        var tv = timeval(tv_sec: Int(ioTimeout), tv_usec: Int((ioTimeout - floor(ioTimeout)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// A connection over an already connected socket (e.g. one end of a socketpair, in tests).
    public init(fileDescriptor: Int32, endpointDescription: String, ioTimeout: Double) {
        self.endpointDescription = endpointDescription
        self.ioTimeout = ioTimeout
        fd = fileDescriptor
        var tv = timeval(tv_sec: Int(ioTimeout), tv_usec: Int((ioTimeout - floor(ioTimeout)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    public convenience init(endpoint: RedisEndpoint, ioTimeout: Double = Defaults.sourceIdleTimeoutSeconds) throws {
        try self.init(host: endpoint.host, port: endpoint.port, endpointDescription: endpoint.description, ioTimeout: ioTimeout)
    }

    deinit { close() }

    public func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }

    private func failure(_ problem: String, hint: String? = nil) -> RedisError {
        RedisError(endpoint: endpointDescription, problem: problem, hint: hint)
    }

    private static func connect(host: String, port: Int, timeout: Double, endpoint: String) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw RedisError(endpoint: endpoint, problem: "cannot resolve host \"\(host)\": \(String(cString: gai_strerror(rc)))",
                             hint: "check the host name in the source's url")
        }
        defer { freeaddrinfo(result) }
        var lastError: Int32 = ECONNREFUSED
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), a.pointee.ai_protocol)
            if fd < 0 { lastError = errno; continue }
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            var r = Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen)
            if r != 0 && errno == EINPROGRESS {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let ready = poll(&pfd, 1, Int32(timeout * 1000))
                if ready == 1 {
                    var err: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                    r = err == 0 ? 0 : -1
                    if err != 0 { errno = err }
                } else {
                    r = -1
                    errno = ETIMEDOUT
                }
            }
            if r == 0 {
                _ = fcntl(fd, F_SETFL, flags)
                return fd
            }
            lastError = errno
            Glibc.close(fd)
        }
        throw RedisError(endpoint: endpoint, problem: "cannot connect: \(String(cString: strerror(lastError)))",
                         hint: "check that the Redis server is running and that the source's url (host and port) is right")
    }

    // MARK: Writing

    public func send(_ args: [String]) throws {
        try send(args.map { Array($0.utf8) })
    }

    public func send(_ args: [[UInt8]]) throws {
        var out = Array("*\(args.count)\r\n".utf8)
        for a in args {
            out += Array("$\(a.count)\r\n".utf8)
            out += a
            out += [13, 10]
        }
        try writeRaw(out)
    }

    public func writeRaw(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = Glibc.send(fd, buf.baseAddress! + off, buf.count - off, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw failure("cannot send: \(String(cString: strerror(errno)))")
                }
                off += n
            }
        }
    }

    /// Sends one command and reads its reply.
    public func command(_ args: String...) throws -> RESPValue {
        try command(args)
    }

    public func command(_ args: [String]) throws -> RESPValue {
        try send(args)
        return try readReply()
    }

    // MARK: Reading

    /// Reads more bytes from the socket into the buffer; false at end of stream.
    private func fill() throws -> Bool {
        if monotonicDeadline?.passed == true {
            throw deadlineError ?? failure("the exchange did not finish in time")
        }
        if start == end { start = 0; end = 0 }
        if end == buffer.count {
            if start > 0 {
                buffer.withUnsafeMutableBytes { b in
                    _ = memmove(b.baseAddress!, b.baseAddress! + start, end - start)
                }
                end -= start
                start = 0
            } else {
                buffer += [UInt8](repeating: 0, count: buffer.count)
            }
        }
        while true {
            let n = buffer.withUnsafeMutableBytes { b in recv(fd, b.baseAddress! + end, b.count - end, 0) }
            if n > 0 {
                end += n
                try rate?.add(n)
                return true
            }
            if n == 0 { return false }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                throw failure("no data for \(Int(ioTimeout)) seconds (timed out)",
                              hint: "the server may be busy or stuck; raise the source's timeout if it is just slow")
            }
            throw failure("connection failed: \(String(cString: strerror(errno)))")
        }
    }

    /// The longest reply line accepted (a type byte and a number, a status, an error message): a peer that never
    /// ends its line is refused instead of growing memory.
    public static let maxLineBytes = 64 * 1024
    /// The longest bulk string accepted in a command reply: Redis's own `proto-max-bulk-len` default.
    public static let maxBulkBytes = 512 * 1024 * 1024
    /// The most elements of one array reply, and the deepest nesting (the replies we read are flat or one level).
    public static let maxArrayElements = 1 << 20
    public static let maxDepth = 32

    /// One line without its CRLF (or LF), at most `maxLineBytes`.
    public func readLine() throws -> [UInt8] {
        var scanFrom = start
        while true {
            if let nl = buffer[scanFrom..<end].firstIndex(of: 10) {
                var lineEnd = nl
                if lineEnd > start && buffer[lineEnd - 1] == 13 { lineEnd -= 1 }
                guard lineEnd - start <= Self.maxLineBytes else {
                    throw failure("protocol error: a reply line of more than \(Self.maxLineBytes) bytes", hint: "is this a Redis server?")
                }
                let line = Array(buffer[start..<lineEnd])
                start = nl + 1
                return line
            }
            scanFrom = end
            guard end - start <= Self.maxLineBytes else {
                throw failure("protocol error: a reply line of more than \(Self.maxLineBytes) bytes without an end", hint: "is this a Redis server?")
            }
            let offsetFromStart = scanFrom - start
            guard try fill() else { throw failure("the server closed the connection") }
            scanFrom = start + offsetFromStart
        }
    }

    /// Skips bare `\n` keepalives that a master sends before the payload of a SYNC. Keepalives keep the
    /// connection from timing out, so the wait has its own `deadline`.
    public func skipNewlines(deadline: DispatchTime, onTimeout: () -> RedisError) throws {
        while true {
            while start < end && buffer[start] == 10 { start += 1 }
            if start < end { return }
            if DispatchTime.now() > deadline { throw onTimeout() }
            guard try fill() else { throw failure("the server closed the connection") }
        }
    }

    public func readReply() throws -> RESPValue { try readReply(depth: 0) }

    private func readReply(depth: Int) throws -> RESPValue {
        guard depth <= Self.maxDepth else { throw failure("protocol error: replies nested more than \(Self.maxDepth) deep") }
        let line = try readLine()
        guard let type = line.first else { throw failure("protocol error: empty reply line") }
        let rest = String(decoding: line.dropFirst(), as: UTF8.self)
        switch type {
        case UInt8(ascii: "+"): return .simple(rest)
        case UInt8(ascii: "-"): return .error(rest)
        case UInt8(ascii: ":"):
            guard let v = Int(rest) else { throw failure("protocol error: bad integer \(rest)") }
            return .integer(v)
        case UInt8(ascii: "$"):
            guard let n = Int(rest) else { throw failure("protocol error: bad bulk length \(rest.prefix(40))") }
            if n < 0 { return .bulk(nil) }
            guard n <= Self.maxBulkBytes else { throw failure("protocol error: a bulk reply of \(n) bytes (more than \(Self.maxBulkBytes))") }
            var out: [UInt8] = []
            out.reserveCapacity(min(n, 1 << 20) + 2)
            try readExactly(n + 2) { out.append(contentsOf: $0) }
            guard out.suffix(2) == [13, 10] else { throw failure("protocol error: a bulk reply not ended by CRLF") }
            return .bulk(Array(out.dropLast(2)))
        case UInt8(ascii: "*"):
            guard let n = Int(rest) else { throw failure("protocol error: bad array length \(rest.prefix(40))") }
            if n < 0 { return .array(nil) }
            guard n <= Self.maxArrayElements else { throw failure("protocol error: an array reply of \(n) elements (more than \(Self.maxArrayElements))") }
            var items: [RESPValue] = []
            for _ in 0..<n { items.append(try readReply(depth: depth + 1)) }
            return .array(items)
        default:
            throw failure("protocol error: unexpected reply \(String(decoding: line.prefix(40), as: UTF8.self))")
        }
    }

    /// Hands exactly `count` bytes to `body`, in chunks as they arrive.
    public func readExactly(_ count: Int, _ body: (ArraySlice<UInt8>) throws -> Void) throws {
        var left = count
        while left > 0 {
            if start == end {
                guard try fill() else { throw failure("the server closed the connection after \(count - left) of \(count) bytes") }
            }
            let take = min(left, end - start)
            try body(buffer[start..<start + take])
            start += take
            left -= take
        }
    }

    /// Hands whatever bytes arrive to `body` until the server closes the connection or `body` returns false.
    public func readUntilClosed(_ body: (ArraySlice<UInt8>) throws -> Bool) throws {
        while true {
            if start == end {
                guard try fill() else { return }
            }
            let slice = buffer[start..<end]
            start = end
            if try !body(slice) { return }
        }
    }
}

extension RESPConnection {
    /// `INFO section` as `field → value`.
    public func info(_ section: String) throws -> [String: String] {
        guard case .bulk(let data?) = try command("INFO", section) else { return [:] }
        var out: [String: String] = [:]
        for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            out[String(line[..<colon])] = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        }
        return out
    }

    /// Keys per database, from `INFO keyspace` (`db0:keys=5,expires=1,...`).
    public func keyspace() throws -> [Int: Int] {
        var out: [Int: Int] = [:]
        for (field, value) in try info("keyspace") where field.hasPrefix("db") {
            if let db = Int(field.dropFirst(2)), let keys = value.split(separator: ",").first?.split(separator: "=").last.flatMap({ Int($0) }) {
                out[db] = keys
            }
        }
        return out
    }
}
