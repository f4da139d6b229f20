import Foundation

/// Runs `body` on every element, at most `limit` at a time; the first error cancels the rest and is thrown.
/// Results come in completion order.
func concurrentMap<T: Sendable, R: Sendable>(_ items: [T], limit: Int,
                                             _ body: @escaping @Sendable (T) async throws -> R) async throws -> [R] {
    try await withThrowingTaskGroup(of: R.self) { group in
        var results: [R] = []
        results.reserveCapacity(items.count)
        var next = items.makeIterator()
        for _ in 0..<max(1, limit) {
            guard let item = next.next() else { break }
            group.addTask { try await body(item) }
        }
        while let result = try await group.next() {
            results.append(result)
            if let item = next.next() { group.addTask { try await body(item) } }
        }
        return results
    }
}
