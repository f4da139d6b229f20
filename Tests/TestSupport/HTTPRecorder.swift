import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP server on 127.0.0.1 that records the requests it receives (method, path, body) and answers
/// with the statuses it is given, in order (then 200), or with what `responder` says. For webhook tests and
/// scripted S3 replies.
public final class HTTPRecorder: @unchecked Sendable {
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var body: Data
    }

    public let port: Int
    private let fd: Int32
    private let lock = NSLock()
    private var received: [Request] = []
    private var statuses: [Int]
    private var stopped = false
    private let responder: (@Sendable (Request) -> (status: Int, headers: [String: String], body: String))?

    public init(statuses: [Int] = [], responder: (@Sendable (Request) -> (status: Int, headers: [String: String], body: String))? = nil) throws {
        self.statuses = statuses
        self.responder = responder
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0, listen(fd, 16) == 0 else { throw NSError(domain: "HTTPRecorder", code: Int(errno)) }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    public var url: String { "http://127.0.0.1:\(port)" }

    public var requests: [Request] { lock.withLock { received } }

    /// Stops serving; closes the socket once. (A second close — `stop()` then `deinit` — closed whatever
    /// descriptor had reused the number in between: NIO's epoll or eventfd in this process, which then died
    /// of an `epoll_ctl` EBADF assertion in a full test run.)
    public func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    deinit { stop() }

    private func serve() {
        // The socket's number is never used once stopped (closed, it may be another object's descriptor).
        while !lock.withLock({ stopped }) {
            let client = accept(fd, nil, nil)
            if client < 0 { if lock.withLock({ stopped }) { return } else { continue } }
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Range<Data.Index>?
        var contentLength = 0
        while true {
            let n = recv(client, &buffer, buffer.count, 0)
            if n <= 0 { return }
            data.append(contentsOf: buffer[0..<n])
            if headerEnd == nil, let r = data.range(of: Data("\r\n\r\n".utf8)) {
                headerEnd = r
                let head = String(decoding: data[..<r.lowerBound], as: UTF8.self)
                for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                    contentLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if let r = headerEnd, data.count - r.upperBound >= contentLength { break }
        }
        guard let r = headerEnd else { return }
        let requestLine = String(decoding: data[..<r.lowerBound], as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = requestLine.split(separator: " ")
        let request = Request(method: parts.count > 0 ? String(parts[0]) : "", path: parts.count > 1 ? String(parts[1]) : "",
                              body: Data(data[r.upperBound..<(r.upperBound + contentLength)]))
        let status: Int = lock.withLock {
            received.append(request)
            return statuses.isEmpty ? 200 : statuses.removeFirst()
        }
        var response = "HTTP/1.1 \(status) X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        if let responder {
            var (code, headers, body) = responder(request)
            // `X-Truncate-To: N`: announce the whole body but send only N bytes of it, then close (a broken transfer).
            let truncate = headers.removeValue(forKey: "X-Truncate-To").flatMap { Int($0) }
            response = "HTTP/1.1 \(code) X\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n"
                + headers.map { "\($0.key): \($0.value)\r\n" }.joined() + "\r\n"
                + (truncate.map { String(decoding: Array(body.utf8).prefix($0), as: UTF8.self) } ?? body)
        }
        _ = response.withCString { send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    }
}

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A GET on 127.0.0.1: (status, body), or nil when nothing answers.
public func httpGet(_ url: String, timeout: Double = 5) -> (Int, String)? {
    final class Box: @unchecked Sendable { var value: (Int, String)? }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    var request = URLRequest(url: URL(string: url)!, timeoutInterval: timeout)
    request.httpMethod = "GET"
    URLSession.shared.dataTask(with: request) { data, response, _ in
        if let http = response as? HTTPURLResponse {
            box.value = (http.statusCode, String(decoding: data ?? Data(), as: UTF8.self))
        }
        done.signal()
    }.resume()
    _ = done.wait(timeout: .now() + timeout + 2)
    return box.value
}
