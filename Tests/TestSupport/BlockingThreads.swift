import BackupEngine
import Testing

/// Runs a suite's tests (and every suite inside it) on the engine executor (`EngineExecutor`), whose pool grows
/// when every thread is busy, instead of Swift's cooperative pool.
///
/// Most tests here wait synchronously: for a `kaleem-backup` child (`runCLI`), a server to start, a poll to see a
/// file. Swift Testing runs test bodies on the global concurrent executor, which on Linux is one thread per core:
/// on the 2-core build machine two tests waiting for their children held both threads, so two tests made
/// progress at a time whatever Swift Testing's parallelism, and a test sleeping in a poll left a core idle (the
/// suite ran at ~120% CPU of 200%). Measured: 8 tasks that each block for 1 s take 4 s on the global executor and
/// 1 s on a growing pool; the whole suite went from 350 s to 266 s on the same machine.
///
/// Each suite of the targets that use TestSupport carries it (`everySuiteRunsOnBlockingThreads` checks). A test
/// that calls the engine directly runs where the CLI runs it.
public struct BlockingThreadsTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        try await EngineExecutor.run { try await function() }
    }
}

extension Trait where Self == BlockingThreadsTrait {
    /// Run on threads that may block (see `BlockingThreadsTrait`).
    public static var blockingThreads: Self { Self() }
}
