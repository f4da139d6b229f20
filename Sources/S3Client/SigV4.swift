// AWS Signature Version 4, header form, for S3 (as the AWS documentation specifies it). Pure: the date comes in as an argument,
// so the AWS documentation vectors can be checked exactly.
import BackupCore
import Crypto
import Foundation

public struct S3Credentials: Sendable {
    public var accessKey: String
    public var secretKey: Secret

    public init(accessKey: String, secretKey: Secret) {
        self.accessKey = accessKey
        self.secretKey = secretKey
    }
}

public struct SigV4Signer: Sendable {
    public var credentials: S3Credentials
    public var region: String
    public var service: String

    /// The SHA-256 of an empty body.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    public init(credentials: S3Credentials, region: String = "us-east-1", service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// A request to sign: the path already URI-encoded (each segment once, `/` kept), the query as decoded
    /// name/value pairs, headers by name (any case).
    public struct Request: Sendable {
        public var method: String
        public var encodedPath: String
        public var query: [(String, String)]
        public var headers: [(String, String)]
        public var payloadHash: String

        public init(method: String, encodedPath: String, query: [(String, String)] = [], headers: [(String, String)],
                    payloadHash: String) {
            self.method = method
            self.encodedPath = encodedPath
            self.query = query
            self.headers = headers
            self.payloadHash = payloadHash
        }
    }

    public func canonicalRequest(_ r: Request) -> (text: String, signedHeaders: String) {
        let encoded: [(name: String, value: String)] = r.query.map { (S3Encoding.strict($0.0), S3Encoding.strict($0.1)) }
        let sorted = encoded.sorted { (a, b) -> Bool in a.name == b.name ? a.value < b.value : a.name < b.name }
        let query = sorted.map { $0.name + "=" + $0.value }.joined(separator: "&")
        var byName: [String: String] = [:]
        for (name, value) in r.headers {
            let key = name.lowercased()
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            byName[key] = byName[key].map { $0 + "," + trimmed } ?? trimmed
        }
        let names = byName.keys.sorted()
        let headers = names.map { "\($0):\(byName[$0]!)\n" }.joined()
        let signed = names.joined(separator: ";")
        let text = [r.method, r.encodedPath, query, headers, signed, r.payloadHash].joined(separator: "\n")
        return (text, signed)
    }

    public func scope(date: Date) -> String {
        "\(Self.day(date))/\(region)/\(service)/aws4_request"
    }

    public func stringToSign(canonicalRequest: String, date: Date) -> String {
        let hash = SHA256.hash(data: Data(canonicalRequest.utf8)).hex
        return "AWS4-HMAC-SHA256\n\(Self.timestamp(date))\n\(scope(date: date))\n\(hash)"
    }

    public func signingKey(date: Date) -> SymmetricKey {
        func hmac(_ key: SymmetricKey, _ text: String) -> SymmetricKey {
            SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: key)))
        }
        let secret = SymmetricKey(data: Data(("AWS4" + credentials.secretKey.value).utf8))
        return hmac(hmac(hmac(hmac(secret, Self.day(date)), region), service), "aws4_request")
    }

    public func signature(stringToSign: String, date: Date) -> String {
        HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: signingKey(date: date)).hex
    }

    /// The headers to add to the request: `x-amz-date`, `x-amz-content-sha256` and `Authorization`. The
    /// request's own headers must already hold `host`.
    public func sign(_ request: Request, date: Date) -> [(String, String)] {
        var r = request
        r.headers.append(("x-amz-date", Self.timestamp(date)))
        r.headers.append(("x-amz-content-sha256", r.payloadHash))
        let (canonical, signed) = canonicalRequest(r)
        let signature = signature(stringToSign: stringToSign(canonicalRequest: canonical, date: date), date: date)
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKey)/\(scope(date: date)),SignedHeaders=\(signed),Signature=\(signature)"
        return [("x-amz-date", Self.timestamp(date)), ("x-amz-content-sha256", r.payloadHash), ("Authorization", authorization)]
    }

    static func timestamp(_ date: Date) -> String {
        let c = Calendar.utc.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    static func day(_ date: Date) -> String { String(timestamp(date).prefix(8)) }
}

/// URI encoding as S3 wants it.
public enum S3Encoding {
    private static let unreserved: Set<UInt8> = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8))

    /// Every byte but `A-Za-z0-9-._~` as `%XX` (uppercase): query names and values.
    public static func strict(_ s: String) -> String { encode(s, keepSlash: false) }

    /// An object key in a path: like `strict` but `/` is kept.
    public static func path(_ s: String) -> String { encode(s, keepSlash: true) }

    private static func encode(_ s: String, keepSlash: Bool) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            if unreserved.contains(b) || (keepSlash && b == UInt8(ascii: "/")) {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    /// Reverses `encoding-type=url` (`%XX`, and `+` for a space as some servers write it).
    public static func decode(_ s: String) -> String {
        guard s.contains("%") || s.contains("+") else { return s }
        var bytes: [UInt8] = []
        var utf8 = Array(s.utf8)[...]
        while let b = utf8.popFirst() {
            if b == UInt8(ascii: "%"), utf8.count >= 2,
               let v = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(v)
                utf8 = utf8.dropFirst(2)
            } else if b == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(b)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension Calendar {
    static let utc: Calendar = {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }()
}

extension Sequence where Element == UInt8 {
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}

extension Digest {
    var hex: String { Array(self).hex }
}

extension HashedAuthenticationCode {
    var hex: String { Array(self).hex }
}
