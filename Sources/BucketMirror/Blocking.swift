import Foundation

/// Runs async work from synchronous code (the engine runs on its own threads, never on the cooperative pool)
/// and waits for it.
public enum Blocking {
    public static func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = ResultBox<T>()
        Task {
            let result: Result<T, Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            box.set(result)
        }
        return try box.wait()
    }
}

private final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<T, Error>?

    func set(_ r: Result<T, Error>) {
        lock.withLock { result = r }
        done.signal()
    }

    func wait() throws -> T {
        done.wait()
        return try lock.withLock { result! }.get()
    }
}

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
