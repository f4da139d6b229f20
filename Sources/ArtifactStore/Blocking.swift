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

