import Foundation

/// How far long work has got: the engine counts (bytes, items), the CLI draws it on a terminal (BackupCLI's
/// ProgressRenderer) and nothing else reads it. Thread-safe: writers feed it from the engine's threads while the
/// renderer polls. One task at a time (a backup, then its verify, then an upload, …): `begin` replaces.
/// `observer`, when set, is told every state as it changes (tests read what a run reported through it).
public final class ProgressMeter: @unchecked Sendable {
    public struct State: Sendable, Equatable {
        public var label: String
        public var bytes: Int64 = 0
        /// Known for re-reads (verify, drill, restore, ls: the recorded raw size); for a backup, estimated from the
        /// previous backup of the source (`estimated`).
        public var totalBytes: Int64?
        /// `totalBytes` is a guess (the previous backup's size): drawn with `~`, and never past 99 % until done.
        public var estimated = false
        public var items = 0
        public var totalItems: Int?
        /// What the items are ("objects", "files", "collections").
        public var itemUnit: String
        /// Bumped by `begin`, so the renderer knows a new task started (and restarts its rate).
        public var generation: Int

        public init(label: String, bytes: Int64 = 0, totalBytes: Int64? = nil, items: Int = 0, totalItems: Int? = nil,
                    itemUnit: String, generation: Int) {
            self.label = label
            self.bytes = bytes
            self.totalBytes = totalBytes
            self.items = items
            self.totalItems = totalItems
            self.itemUnit = itemUnit
            self.generation = generation
        }
    }

    private let lock = NSLock()
    private var state: State?
    private var generation = 0

    public init(observer: (@Sendable (State?) -> Void)? = nil) {
        self.observer = observer
    }

    private let observer: (@Sendable (State?) -> Void)?

    /// Applies a change under the lock, then tells the observer.
    private func change(_ body: (inout State?) -> Void) {
        let after = lock.withLock { () -> State? in
            body(&state)
            return state
        }
        observer?(after)
    }

    public func begin(_ label: String, totalBytes: Int64? = nil, estimated: Bool = false, totalItems: Int? = nil, itemUnit: String = "objects") {
        let next = lock.withLock { () -> Int in
            generation += 1
            return generation
        }
        change {
            $0 = State(label: label, totalBytes: totalBytes, totalItems: totalItems, itemUnit: itemUnit, generation: next)
            $0?.estimated = estimated
        }
    }

    /// The task counts items too, `total` of them (collections of a Qdrant backup, files of a files backup).
    public func counting(_ itemUnit: String, total: Int) {
        change { state in
            state?.itemUnit = itemUnit
            state?.totalItems = total
        }
    }

    /// Adds what was done (and, as work is discovered, to the total of items).
    public func add(bytes: Int64 = 0, items: Int = 0, totalItems: Int = 0) {
        change { state in
            guard var s = state else { return }
            s.bytes += bytes
            s.items += items
            if totalItems != 0 { s.totalItems = (s.totalItems ?? 0) + totalItems }
            state = s
        }
    }

    /// Called when a task ends (the renderer clears its line at once, before anything is printed after it).
    public var onEnd: (@Sendable () -> Void)? {
        get { lock.withLock { endHandler } }
        set { lock.withLock { endHandler = newValue } }
    }
    private var endHandler: (@Sendable () -> Void)?

    public func end() {
        let handler = lock.withLock { () -> (@Sendable () -> Void)? in
            state = nil
            return endHandler
        }
        observer?(nil)
        handler?()
    }

    public var current: State? { lock.withLock { state } }
}
