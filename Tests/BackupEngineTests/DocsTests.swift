import Foundation
import Testing
import TestSupport

/// #37 item 7: the docs stay true (scripts/check-docs.py): every policy key the parsers accept is in
/// docs/policy.md and every key documented there is accepted; ARCHITECTURE.md's kinds, services, import rules,
/// after-run steps and kind-library imports match the sources and Package.swift; every relative link of README.md
/// and docs/ resolves; README.md is short and starts with its two commands.
@Suite(.blockingThreads) struct DocsTests {
    @Test func theDocsMatchTheCode() throws {
        let r = try runProcess("/usr/bin/python3", [packageRoot + "/scripts/check-docs.py"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    }
}
