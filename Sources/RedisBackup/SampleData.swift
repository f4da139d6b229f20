/// Fills a Redis server with a bit of everything: several databases, every value type (strings, lists, sets,
/// hashes, sorted sets, a stream with a consumer group), keys with expiries, small and large values (so both
/// compact and plain encodings appear). Used by the demo and the tests.
public enum SampleData {
    /// Returns the number of keys written per database.
    @discardableResult
    public static func fill(_ c: RESPConnection, databases: [Int] = [0, 1, 3], keysPerType: Int = 20) throws -> [Int: Int] {
        var counts: [Int: Int] = [:]
        for db in databases {
            try ok(c.command("SELECT", String(db)))
            var n = 0
            for i in 0..<keysPerType {
                try ok(c.command("SET", "str:\(db):\(i)", "value-\(i)-" + String(repeating: "x", count: i * 7)))
                try ok(c.command("SET", "int:\(db):\(i)", String(i * 1000)))
                try ok(c.command(["RPUSH", "list:\(db):\(i)"] + (0...i).map { "item\($0)" }))
                try ok(c.command(["SADD", "set:\(db):\(i)"] + (0...i).map { "member\($0)" }))
                try ok(c.command(["SADD", "intset:\(db):\(i)"] + (0...i).map { String($0 * 3) }))
                try ok(c.command(["HSET", "hash:\(db):\(i)"] + (0...i).flatMap { ["f\($0)", "v\($0)"] }))
                try ok(c.command(["ZADD", "zset:\(db):\(i)"] + (0...i).flatMap { [String(Double($0) * 1.5), "m\($0)"] }))
                try ok(c.command("SET", "ttl:\(db):\(i)", "expiring", "EX", String(3600 + i)))
                n += 8
            }
            // Values big enough for the plain (non-listpack) encodings.
            let big = String(repeating: "payload-", count: 2000)
            try ok(c.command(["RPUSH", "biglist:\(db)"] + (0..<300).map { "\($0)-\(big.prefix(100))" }))
            try ok(c.command(["HSET", "bighash:\(db)"] + (0..<300).flatMap { ["field\($0)", big] }))
            try ok(c.command(["ZADD", "bigzset:\(db)"] + (0..<300).flatMap { [String($0), "member-\($0)-\(big.prefix(80))"] }))
            try ok(c.command(["SADD", "bigset:\(db)"] + (0..<600).map { "member-\($0)" }))
            try ok(c.command("SET", "bigstring:\(db)", big))
            n += 5
            // A stream with a consumer group and a pending entry.
            for i in 0..<10 { try ok(c.command("XADD", "stream:\(db)", "*", "event", "e\(i)", "n", String(i))) }
            try ok(c.command("XGROUP", "CREATE", "stream:\(db)", "workers", "0"))
            try ok(c.command("XREADGROUP", "GROUP", "workers", "alice", "COUNT", "2", "STREAMS", "stream:\(db)", ">"))
            n += 1
            counts[db] = n
        }
        try ok(c.command("SELECT", "0"))
        return counts
    }

    private static func ok(_ reply: RESPValue) throws {
        if case .error(let message) = reply { throw RedisError(endpoint: "sample data", problem: message) }
    }
}
