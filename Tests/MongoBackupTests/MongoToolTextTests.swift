import Foundation
import MongoBackup
import TestSupport
import Testing

/// What we write to the MongoDB tools and read back from them, against the real tools' rules.
@Suite(.blockingThreads) struct MongoToolTextTests {
    /// yaml.v2's double-quoted escapes (scannerc.go, yaml_parser_scan_flow_scalar): anything else after `\`
    /// is "found unknown escape character".
    static let yamlV2Escapes: Set<Character> = ["0", "a", "b", "t", "\t", "n", "v", "f", "r", "e", " ", "\"", "'", "\\", "N", "_", "L", "P", "x", "u", "U"]

    func escapes(_ quoted: String) -> [Character] {
        var out: [Character] = []
        var chars = Array(quoted.dropFirst().dropLast())[...]
        while let c = chars.popFirst() {
            if c == "\\", let e = chars.popFirst() { out.append(e) }
        }
        return out
    }

    @Test(arguments: [
        "mongodb://backup:s3cr%2Ft@mongo:27017/?authSource=admin",
        "mongodb+srv://u:p\"w\\q@cluster0.example.net/kaleem?retryWrites=true&w=majority",
        "mongodb://u:tab\there\nnewline\u{7F}del\u{85}nel\u{2028}ls@h/",
        "mongodb://ü:ñ-密码@h/",
    ])
    func configLineUsesOnlyYAML11Escapes(uri: String) throws {
        let line = MongoConfigYAML.line(uri: uri)
        #expect(line.hasPrefix("uri: \"") && line.hasSuffix("\"\n"))
        #expect(line.filter(\.isNewline).count == 1, "one line: \(line)")
        let quoted = String(line.dropFirst(5).dropLast())
        for e in escapes(quoted) { #expect(Self.yamlV2Escapes.contains(e), "\\\(e) in \(quoted)") }
        #expect(!quoted.contains("\\/"))
        // No raw control character reaches the file (yaml.v2: "control characters are not allowed").
        #expect(!quoted.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || (0x80...0x9F).contains($0.value) })
    }

    /// The stand-in's yaml.v2 reader (Tests/StandIns) reads back exactly the URI.
    @Test func configLineReadsBackThroughTheStrictReader() throws {
        let uri = "mongodb://u:p\"w\\q/\u{7F}\u{2028}é@h:27017/db?w=majority"
        let script = """
        import sys; sys.path.insert(0, sys.argv[1]); sys.argv[0] = "mongodump"
        import mongo_standin as m
        print(m.yaml_v2_config(open(sys.argv[2], encoding="utf-8").read())["uri"] == sys.argv[3])
        """
        let dir = TemporaryDirectory()
        let good = dir.file("good.yml"), json = dir.file("json.yml")
        try MongoConfigYAML.line(uri: uri).write(toFile: good, atomically: true, encoding: .utf8)
        // JSON's `\/`, what Foundation wrote before, is refused the way yaml.v2 refuses it.
        try "uri: \"mongodb:\\/\\/h\\/\"\n".write(toFile: json, atomically: true, encoding: .utf8)
        let r = try runProcess("/usr/bin/env", ["python3", "-c", script, packageRoot + "/Tests/StandIns", good, uri])
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "True", "\(r.stdout) \(r.stderr)")
        let refused = try runProcess("/usr/bin/env", ["python3", "-c", script, packageRoot + "/Tests/StandIns", json, uri])
        #expect(refused.status != 0 && refused.stderr.contains("found unknown escape character"), "\(refused.stderr)")
    }

    func report(_ fixture: String) throws -> MongoRestoreReport {
        let text = try String(contentsOfFile: fixturesDirectory + "/mongo/" + fixture, encoding: .utf8)
        var report = MongoRestoreReport()
        for line in text.split(separator: "\n") { report.consume(line) }
        return report
    }

    /// Database Tools before 100.16: namespaces bare.
    @Test func countLinesOfOlderTools() throws {
        let r = try report("mongorestore-100.9.stderr")
        #expect(r.perNamespace == ["kaleem.users": 1200, "kaleem.sessions": 1])
        #expect(r.summary?.restored == 1201 && r.summary?.failed == 0)
        #expect(!r.unacknowledged)
    }

    /// 100.16 and later: `%#q`, backquoted, or double-quoted with Go escapes where a backquote cannot be used.
    @Test func countLinesOfCurrentTools() throws {
        let r = try report("mongorestore-100.16.stderr")
        #expect(r.perNamespace == ["kaleem.users": 120_000, "kaleem.odd`name": 2, "kaleem.events": 7])
        #expect(r.failuresPerNamespace == ["kaleem.events": 2])
        #expect(r.summary?.restored == 120_009 && r.summary?.failed == 2)
    }

    /// `replaying oplog` then `applied N oplog entries` (mongorestore/oplog.go); look-alikes are not believed.
    @Test func oplogReplayLine() {
        var r = MongoRestoreReport()
        r.consume("2026-12-04T10:00:00.000+0000\treplaying oplog")
        #expect(r.oplogApplied == nil)
        r.consume("2026-12-04T10:00:01.000+0000\tapplied 18 oplog entries")
        #expect(r.oplogApplied == 18)
        for line in ["applied  oplog entries", "applied -3 oplog entries", "applied 99999999999999999999999 oplog entries",
                     "x applied 3 oplog entries", "applied 3 oplog entries later"] {
            var other = MongoRestoreReport()
            other.consume(line)
            #expect(other.oplogApplied == nil, "\(line)")
        }
    }

    /// w=0: no summary, `done`.
    @Test func unacknowledgedWritesCountNothing() throws {
        let r = try report("mongorestore-w0.stderr")
        #expect(r.summary == nil && r.unacknowledged)
        #expect(r.perNamespace == ["kaleem.users": 0])
    }

    /// Lines that only look like count lines are not believed, and nothing traps on hostile numbers.
    @Test(arguments: [
        "finished restoring `a.b` (99999999999999999999999 documents, 0 failures)",
        "finished restoring `a.b (3 documents, 0 failures)",
        "finished restoring \"a.b\\q\" (3 documents, 0 failures)",
        "finished restoring `a.b` (-3 documents, 0 failures)",
        "finished restoring `a.b` (3 documents)",
        "finished restoring  (3 documents, 0 failures)",
        "x finished restoring `a.b` (3 documents, 0 failures)",
        "-1 document(s) restored successfully. 0 document(s) failed to restore.",
        "99999999999999999999 document(s) restored successfully. 0 document(s) failed to restore.",
    ])
    func malformedLinesAreIgnored(line: String) {
        var r = MongoRestoreReport()
        r.consume(line)
        #expect(r.perNamespace.isEmpty && r.summary == nil)
    }

    @Test func aReportIsBounded() {
        var r = MongoRestoreReport(limit: 3)
        for i in 0..<10 { r.consume("finished restoring `db.c\(i)` (1 document, 0 failures)") }
        r.consume("finished restoring `db.c0` (1 document, 0 failures)")
        #expect(r.perNamespace.count == 3 && r.ignoredLines == 7 && r.perNamespace["db.c0"] == 2)
    }

    @Test func writeConcernZeroIsRecognised() {
        #expect(MongoURIOptions.unacknowledged("mongodb://h/?w=0"))
        #expect(MongoURIOptions.unacknowledged("mongodb://u:p@h/db?authSource=admin&W=0"))
        #expect(!MongoURIOptions.unacknowledged("mongodb://h/?w=majority"))
        #expect(!MongoURIOptions.unacknowledged("mongodb://h/?w=01&x=w=0"))
        #expect(!MongoURIOptions.unacknowledged("mongodb://u:w=0@h/"))
    }

    /// The mongosh script is one `try`: its markers are how a failure is told from success, since the REPL exits 0.
    @Test func mongoshScriptsReportTheirOwnOutcome() {
        let s = MongoshScript(connect: "mongodb://u:p\"w@h/", body: "kb.getSiblingDB(\"x\").dropDatabase();\nprint(1);", nonce: "abc")
        #expect(s.text.hasPrefix("try { const kb = connect(\"mongodb://u:p\\\"w@h/\");"))
        #expect(s.text.filter(\.isNewline).count == 1)
        #expect(s.outcome("Current Mongosh Log ID: 1\n\(s.okMarker)\n")?.ok == true)
        #expect(s.outcome("\(s.failMarker): MongoServerError: not authorized\n")?.message == "MongoServerError: not authorized")
        #expect(s.outcome("MongoServerError: not authorized\n") == nil)
        #expect(s.outcome("kaleem-backup-ok-other\n") == nil)
    }

    /// A name inside a mongosh script stays that name: C1 controls (U+0085) and the JavaScript line terminators are
    /// escaped in string literals, and statements are joined at "\n" only (the attack on #38: U+0085 became a space).
    @Test func mongoshScriptsKeepNamesWithLineBreakingCharacters() {
        #expect(MongoshScript.jsString("u\u{85}x") == "\"u\\u0085x\"")
        #expect(MongoshScript.jsString("a\u{2028}b\u{9F}c") == "\"a\\u2028b\\u009Fc\"")
        let script = MongoshScript(connect: "mongodb://h", body: "print(1);\nprint(\"a\u{85}b\");\r\nprint(2);", nonce: "n")
        #expect(script.text.contains("print(1); print(\"a\u{85}b\"); print(2);"), "\(script.text)")
    }
}
