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

/// Runs the work `produce` hands to `submit`, at most `limit` at a time, while `produce` goes on: `submit`
/// waits when `limit` are running and returns the result of the task it waited for; the results of the tasks
/// still running when `produce` returns are returned. The first error cancels the rest and is thrown. Memory
/// holds the tasks in flight, never the whole list.
func withBoundedTasks<T: Sendable>(limit: Int, of _: T.Type,
                                   _ produce: (_ submit: (@escaping @Sendable () async throws -> T) async throws -> T?) async throws -> Void) async throws -> [T] {
    try await withThrowingTaskGroup(of: T.self) { group in
        var running = 0
        func submit(_ work: @escaping @Sendable () async throws -> T) async throws -> T? {
            var finished: T?
            if running >= max(1, limit) {
                finished = try await group.next()
                running -= 1
            }
            group.addTask(operation: work)
            running += 1
            return finished
        }
        try await produce(submit)
        var rest: [T] = []
        while let result = try await group.next() { rest.append(result) }
        return rest
    }
}
