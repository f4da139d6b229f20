import Foundation

/// What the daemon should do next. The scheduler decides; a thin loop carries the actions out.
public enum SchedulerAction: Sendable, Equatable {
    /// Start this schedule's job now.
    case run(schedule: String)
    /// This schedule came due while its own job was still running: the occurrence is skipped.
    case skip(schedule: String, reason: String)
    /// Nothing to do before this moment (or before a running job finishes).
    case sleep(until: Date)
}

/// The scheduler as a pure state machine, driven by the times passed in (a manual clock in tests).
///
/// - One job at a time (one repository, one run lock): schedules that come due while another job runs wait in
///   a queue, in the order they came due; a schedule already waiting is not queued twice.
/// - A schedule that comes due while its own job still runs skips that occurrence (`.skip`).
/// - Catch-up: a schedule whose last run is known and whose next fire time after it has already passed when
///   the scheduler starts (the host was down at 02:30) runs once at start, not once per missed occurrence.
///   A schedule never run before waits for its first fire time.
public struct Scheduler: Sendable {
    public private(set) var entries: [ScheduleEntry]
    /// Next fire time per schedule.
    public private(set) var nextFire: [String: Date] = [:]
    /// Due schedules waiting for the running job to finish, oldest first.
    public private(set) var queue: [String] = []
    /// The schedule whose job is running.
    public private(set) var running: String?

    /// - Parameter lastRuns: when each schedule last ran (from the catalog or the daemon's state), if known.
    public init(entries: [ScheduleEntry], lastRuns: [String: Date], now: Date) {
        self.entries = entries
        for e in entries {
            if let last = lastRuns[e.name], let missed = e.nextFire(after: last), missed <= now {
                queue.append(e.name)
            }
            nextFire[e.name] = e.nextFire(after: now)
        }
    }

    /// The actions due at `now`: skips, at most one run, then a sleep until the next moment of interest.
    public mutating func tick(now: Date) -> [SchedulerAction] {
        var actions: [SchedulerAction] = []
        for e in entries {
            guard let due = nextFire[e.name], due <= now else { continue }
            nextFire[e.name] = e.nextFire(after: now)
            if running == e.name {
                actions.append(.skip(schedule: e.name, reason: "its previous run is still going"))
            } else if !queue.contains(e.name) {
                queue.append(e.name)
            }
        }
        if running == nil, !queue.isEmpty {
            let next = queue.removeFirst()
            running = next
            actions.append(.run(schedule: next))
        }
        if let wake = nextFire.values.min() { actions.append(.sleep(until: wake)) }
        return actions
    }

    /// The running job ended (whatever its outcome); the next queued one can start on the next tick.
    public mutating func finished(schedule: String) {
        if running == schedule { running = nil }
    }

    public func entry(named name: String) -> ScheduleEntry? { entries.first { $0.name == name } }
}
