// `policy check --connect` for a Qdrant source: GET /collections with the source's API key, and each named
// collection present.
import BackupCore
import Foundation
import QdrantClient

extension QdrantAdapter {
    func preflight(_ source: TypedSource<QdrantSourcePolicy>, context: SourceContext) async -> [PreflightCheck] {
        let name = "source \(source.name)"
        do {
            let (client, q) = try client(source, context: context)
            defer { client.shutdown() }
            let names = try await client.listCollections()
            var checks = [PreflightCheck(check: "\(name): connects and authenticates", ok: true, detail: "\(names.count) collection(s) at \(q.url)")]
            for wanted in q.collections {
                checks.append(PreflightCheck(check: "\(name): collection \(wanted)", ok: names.contains(wanted),
                                             detail: names.contains(wanted) ? "present" : "not on the server (it has: \(names.sorted().prefix(10).joined(separator: ", ")))"))
            }
            return checks
        } catch {
            return [PreflightCheck(check: "\(name): connects and authenticates", ok: false, detail: context.describe(error), hint: PreflightCheck.hint(error))]
        }
    }
}
