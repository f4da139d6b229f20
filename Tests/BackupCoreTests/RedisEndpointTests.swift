import BackupCore
import Testing

struct RedisEndpointTests {
    @Test(arguments: [
        ("redis://127.0.0.1:6379", "127.0.0.1", 6379, nil as String?, nil as String?, nil as Int?),
        ("redis://localhost", "localhost", 6379, nil, nil, nil),
        ("redis://:s3cret@redis:6380/2", "redis", 6380, nil, "s3cret", 2),
        ("redis://backup:p%40ss@redis:6379", "redis", 6379, "backup", "p@ss", nil),
        ("redis://onlypass@h:1", "h", 1, nil, "onlypass", nil),
        ("redis://[::1]:7000/", "::1", 7000, nil, nil, nil),
        ("redis://u:pa:ss@h:2", "h", 2, "u", "pa:ss", nil),
    ])
    func parses(url: String, host: String, port: Int, user: String?, password: String?, db: Int?) throws {
        let e = try RedisEndpoint.parse(url)
        #expect(e.host == host)
        #expect(e.port == port)
        #expect(e.username == user)
        #expect(e.password?.value == password)
        #expect(e.database == db)
        if let password { #expect(!e.description.contains(password)) }
    }

    @Test(arguments: [
        ("http://h:1", RedisEndpoint.ParseError.notRedisURL),
        ("rediss://h:1", .tlsUnsupported),
        ("redis://h:99999", .badPort),
        ("redis://h:abc", .badPort),
        ("redis://h:1/x", .badDatabase),
        ("redis://:pw@", .missingHost),
    ])
    func rejects(url: String, error: RedisEndpoint.ParseError) {
        #expect(throws: error) { try RedisEndpoint.parse(url) }
    }

    @Test func redaction() {
        #expect(Redaction.url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0")
        #expect(Redaction.url("redis://pw@h:1") == "redis://***@h:1")
        #expect(Redaction.url("redis://h:1") == "redis://h:1")
        // A password holding an unencoded `/` (a malformed URL, printed exactly in the error that says so).
        #expect(Redaction.url("redis://:pa/ss@h:1/0") == "redis://:***@h:1/0")
        #expect(Redaction.url("redis://user:a/b/c@h:1") == "redis://user:***@h:1")
        #expect(Redaction.url("mongodb://u:p@h/db?opt=a@b") == "mongodb://u:***@h/db?opt=a@b")
        #expect(Redaction.scrub("login pw failed at redis://:pw@h:1", secrets: [Secret("pw")]) == "login *** failed at redis://:***@h:1")
        #expect("\(Secret("hunter2"))" == "<redacted>")
    }
}
