import BackupEngine
import Foundation
import Testing

/// Runs a suite's tests (and every suite inside it) on the engine executor (`EngineExecutor`), whose pool grows
/// when every thread is busy, instead of Swift's cooperative pool, at most `TestSlots.limit` test cases at once.
///
/// Most tests here wait synchronously: for a `kaleem-backup` child (`runCLI`), a server to start, a poll to see a
/// file. Swift Testing runs test bodies on the global concurrent executor, which on Linux is one thread per core:
/// on the 2-core build machine two tests waiting for their children held both threads, so two tests made
/// progress at a time, and a test sleeping in a poll left a core idle (the suite ran at ~120% CPU of 200%).
/// Measured: 8 tasks that each block for 1 s take 4 s on the global executor and 1 s on a growing pool.
///
/// Off that pool nothing limited how many tests ran at once: Swift Testing started nearly all of them together,
/// 50–150 threads were runnable on 2 cores (load average 88), and a redis-server starved of CPU took over 30 s to
/// answer one command. `TestSlots` keeps it to a few test cases at a time.
///
/// Each suite of the targets that use TestSupport carries it (`everySuiteRunsOnBlockingThreads` checks). A test
/// that calls the engine directly runs where the CLI runs it.
public struct BlockingThreadsTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // A suite's scope wraps its tests, each of which comes here with its test case: only those take a slot.
        // One holding a slot already (the trait given twice, on a suite and on a test in it) does not take a
        // second: tests each holding one and waiting for another would wait for ever.
        guard testCase != nil, !TestSlots.holding else {
            try await function()
            return
        }
        await TestSlots.shared.acquire()
        do {
            try await TestSlots.$holding.withValue(true) {
                try await EngineExecutor.run { try await function() }
            }
        } catch {
            await TestSlots.shared.release()
            throw error
        }
        await TestSlots.shared.release()
    }
}

extension Trait where Self == BlockingThreadsTrait {
    /// Run on threads that may block, a few test cases at a time (see `BlockingThreadsTrait`).
    public static var blockingThreads: Self { Self() }
}

/// How many test cases run at once: `KB_TEST_PARALLEL` if set (1–64), else four a core (8 on the 2-core build
/// machine: each mostly waits for a child, a server or a poll, and 4 left the cores idle a third of the time).
/// Waiters are served in arrival order.
public actor TestSlots {
    public static let shared = TestSlots(limit: TestSlots.limit)

    /// Whether the running test holds a slot.
    @TaskLocal static var holding = false

    public static var limit: Int {
        if let text = ProcessInfo.processInfo.environment["KB_TEST_PARALLEL"], let n = Int(text), (1...64).contains(n) { return n }
        return max(4, 4 * ProcessInfo.processInfo.activeProcessorCount)
    }

    private var free: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { free = limit }

    func acquire() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            free += 1
        } else {
            waiters.removeFirst().resume()
        }
    }
}
