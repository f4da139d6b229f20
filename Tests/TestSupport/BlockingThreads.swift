import Foundation
import Testing

/// Threads a test may block: the tests run on these instead of Swift's cooperative pool.
///
/// Most tests here wait synchronously: for a `kaleem-backup` child (`runCLI`), a server to start, a poll to see a
/// file. Swift Testing runs test bodies on the global concurrent executor, which on Linux is a pool of one thread
/// per core: on the 2-core build machine two blocked tests held every thread, so two tests made progress at a
/// time whatever Swift Testing's parallelism, and a test sleeping in a poll left a core idle (the suite ran at
/// ~120% CPU of 200%). Measured with a probe: 8 tasks that each block for 1 s take 4 s on the global executor
/// and 1 s here; the whole suite went from 350 s to 266 s on the same machine.
///
/// A job waits for an idle thread, or a thread is started for it: a job never waits behind a blocked one, so
/// a test that blocks waiting for another job (a task it started) cannot deadlock the pool. Threads are kept
/// for the next job; their number is the peak of jobs at once (a few dozen in a full run).
public final class BlockingThreads: TaskExecutor, @unchecked Sendable {
    public static let shared = BlockingThreads()

    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var waiting = 0
    private var threads = 0

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        // Every queued job has a thread that will take it: one of those waiting (signalled), or a new one.
        if jobs.count > waiting {
            threads += 1
            let thread = Thread { [unowned self] in self.work() }
            thread.stackSize = 8 << 20
            thread.name = "test-\(threads)"
            thread.start()
        } else {
            condition.signal()
        }
        condition.unlock()
    }

    private func work() {
        condition.lock()
        while true {
            while jobs.isEmpty {
                waiting += 1
                condition.wait()
                waiting -= 1
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
            condition.lock()
        }
    }

    /// How many threads were started.
    public var threadCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return threads
    }
}

/// Runs a suite's tests (and every suite inside it) on `BlockingThreads`: each suite of this package carries
/// it (`DependencyDeclarationTests.everySuiteRunsOnBlockingThreads` checks). A test body that blocks then holds one of those
/// threads, not one of the cooperative pool's.
public struct BlockingThreadsTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        try await withTaskExecutorPreference(BlockingThreads.shared) {
            try await function()
        }
    }
}

extension Trait where Self == BlockingThreadsTrait {
    /// Run on threads that may block (see `BlockingThreads`).
    public static var blockingThreads: Self { Self() }
}
