// The cron expression parser (a policy's schedules), and the next fire times of what it accepts.
import BackupCore
import Foundation

private let zones = [TimeZone(identifier: "UTC")!, TimeZone(identifier: "America/New_York")!]
private let start = Date(timeIntervalSince1970: 1_790_000_000)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let cron = try? CronSchedule(text) else { return 0 }
    for zone in zones { _ = cron.upcoming(after: start, in: zone, count: 3) }
    return 0
}
