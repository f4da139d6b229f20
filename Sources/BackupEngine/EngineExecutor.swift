// The engine's one concurrency model: everything is async, and everything that blocks a thread (gzip, file I/O,
// SQLite through GRDB, waiting on a child process's pipe, the RDB and archive walks) runs on this executor's
// threads, never on Swift's cooperative pool, which has one thread per core (two on the CI machine) and must
// stay free for the networking (async-http-client, NIO) and the daemon's HTTP server.
//
// How: the CLI's entry point and the daemon's jobs run under `withTaskExecutorPreference(EngineExecutor.shared)`.
// Every nonisolated async function below them, and every child task (`async let`, task groups), then runs here;
// an `await` on the network suspends without holding a thread. Unstructured `Task {}` does not inherit the
// preference, so the engine has none.
import Foundation

public final class EngineExecutor: TaskExecutor, @unchecked Sendable {
    /// The process's one engine executor.
    public static let shared = EngineExecutor()

    // A pool that grows when every thread is busy and shrinks when threads idle: jobs here block (that is their
    // point), so a fixed pool of N threads would deadlock the day N jobs wait on an N+1st (a tool's stdin feeder
    // and its stdout consumer are two jobs that need each other), and the cooperative pool does not grow at all.
    // Not a GCD queue: on Linux, libdispatch adds a thread for blocked workers only when a monitor thread polls
    // and notices; growth here is immediate and its rule is the few lines below.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var head = 0
    private var idle = 0
    private var threads = 0
    private let maximumThreads = 256
    private let idleSeconds = 30.0

    private init() {}

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        if jobs.count - head > idle && threads < maximumThreads {
            threads += 1
            let thread = Thread { [unowned self] in self.work() }
            thread.name = "kaleem-engine"
            thread.stackSize = 8 << 20
            thread.start()
        } else {
            condition.signal()
        }
        condition.unlock()
    }

    private func work() {
        let executor = asUnownedTaskExecutor()
        while true {
            condition.lock()
            while head == jobs.count {
                idle += 1
                let woken = condition.wait(until: Date(timeIntervalSinceNow: idleSeconds))
                idle -= 1
                if !woken && head == jobs.count {
                    threads -= 1
                    condition.unlock()
                    return
                }
            }
            let job = jobs[head]
            head += 1
            if head > 1024 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            condition.unlock()
            job.runSynchronously(on: executor)
        }
    }

    /// Runs `body` (and everything it awaits that is not isolated elsewhere) on the engine executor.
    public static func run<T>(isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async throws -> T {
        try await withTaskExecutorPreference(shared, isolation: isolation, operation: body)
    }
}
