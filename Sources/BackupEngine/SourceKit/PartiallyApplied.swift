import BackupCore

/// A kind's step that stopped after it had changed the live target in part (a MongoDB refresh's swap that stopped
/// between two renames): the caller keeps its restore marker, so that `status` reports the target as an
/// interrupted restore (half replaced) once this process is gone, as it does for one that was killed.
public struct PartiallyApplied: UserFacingError {
    public var message: String
    public var hintText: String?
    public var description: String { message }
    public var exitStatus: ExitStatus { .failed }
    public var hint: String? { hintText }

    public init(_ message: String, hint: String? = nil) {
        self.message = message
        hintText = hint
    }
}
