import BackupCore
import Testing

struct EnvironmentExpansionTests {
    static let env = ["HOST": "db.local", "EMPTY": "", "PORT": "6379"]

    @Test(arguments: [
        ("plain", "plain"),
        ("${HOST}", "db.local"),
        ("redis://${HOST}:${PORT}/0", "redis://db.local:6379/0"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${MISSING-fallback}", "fallback"),
        ("${HOST:-x}", "db.local"),
        ("${HOST:?needed}", "db.local"),
        ("$$HOST", "$HOST"),
        ("pa$word", "pa$word"),
        ("cost $5", "cost $5"),
        ("${MISSING:-}", ""),
    ])
    func expands(input: String, expected: String) throws {
        #expect(try EnvironmentExpansion.expand(input, environment: Self.env) == expected)
    }

    @Test(arguments: [
        ("${MISSING}", EnvironmentExpansion.Failure.unset(variable: "MISSING")),
        ("${MISSING:?set it}", .required(variable: "MISSING", message: "set it")),
        ("${EMPTY:?set it}", .required(variable: "EMPTY", message: "set it")),
        ("${MISSING?}", .required(variable: "MISSING", message: "")),
        ("${HOST", .malformed("no closing } after ${")),
    ])
    func fails(input: String, expected: EnvironmentExpansion.Failure) {
        #expect(throws: expected) { try EnvironmentExpansion.expand(input, environment: Self.env) }
    }

    @Test func badNames() {
        #expect(throws: EnvironmentExpansion.Failure.self) { try EnvironmentExpansion.expand("${}", environment: [:]) }
        #expect(throws: EnvironmentExpansion.Failure.self) { try EnvironmentExpansion.expand("${1X}", environment: [:]) }
        #expect(throws: EnvironmentExpansion.Failure.self) { try EnvironmentExpansion.expand("${X:=y}", environment: [:]) }
    }
}
