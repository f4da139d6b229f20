/// Where a Redis server is and how to log in: parsed from `redis://[[user]:password@]host[:port][/db]`.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: Secret?
    public var database: Int?

    public init(host: String, port: Int = Defaults.redisPort, username: String? = nil, password: Secret? = nil,
                database: Int? = nil) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// The address with the password hidden, for messages.
    public var description: String {
        var s = "redis://"
        if let username { s += username + (password != nil ? ":***@" : "@") }
        else if password != nil { s += ":***@" }
        s += host.contains(":") ? "[\(host)]" : host
        s += ":\(port)"
        if let database { s += "/\(database)" }
        return s
    }

    public enum ParseError: Error, Equatable {
        case notRedisURL
        case badPort
        case badDatabase
        case missingHost
        case tlsUnsupported
    }

    /// Parses a `redis://` URL; percent-escapes in the user info are decoded.
    public static func parse(_ text: String) throws(ParseError) -> RedisEndpoint {
        if text.hasPrefix("rediss://") { throw .tlsUnsupported }
        guard text.hasPrefix("redis://") else { throw .notRedisURL }
        var rest = Substring(text.dropFirst("redis://".count))
        var database: Int?
        if let slash = rest.firstIndex(of: "/") {
            let dbText = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !dbText.isEmpty {
                guard let db = Int(dbText), db >= 0 else { throw .badDatabase }
                database = db
            }
        }
        var username: String?
        var password: Secret?
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                let user = percentDecode(userInfo[..<colon])
                username = user.isEmpty ? nil : user
                password = Secret(percentDecode(userInfo[userInfo.index(after: colon)...]))
            } else if !userInfo.isEmpty {
                // `redis://secret@host`: like redis-cli, a lone user info is the password.
                password = Secret(percentDecode(userInfo))
            }
        }
        var host: String
        var port = Defaults.redisPort
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw .missingHost }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw .badPort }
                port = p
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else { throw .badPort }
            port = p
        } else {
            host = String(rest)
        }
        if host.isEmpty { throw .missingHost }
        return RedisEndpoint(host: host, port: port, username: username, password: password, database: database)
    }

    private static func percentDecode(_ s: Substring) -> String {
        s.removingPercentEncoding ?? String(s)
    }
}

import Foundation
