import Foundation

/// The differential mode (`scripts/fuzz-coverage.sh --differential`): with KALEEM_FUZZ_VERDICT=1 in the
/// environment, a target run over files prints one line per input on stderr, `kaleem-verdict accept <detail>` or
/// `kaleem-verdict reject <why>`, for the script to compare with a reference tool. Off while fuzzing.
public enum Verdict {
    public static let enabled = ProcessInfo.processInfo.environment["KALEEM_FUZZ_VERDICT"] == "1"

    public static func report(_ accepted: Bool, _ detail: String) {
        guard enabled else { return }
        let line = "kaleem-verdict \(accepted ? "accept" : "reject") " + detail.replacingOccurrences(of: "\n", with: " ") + "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
