// `policy check --connect` for a bucket source: each bucket listed (ListBucket) and its first object read
// (HEAD: the GetObject permission), with the source's credentials.
import BackupCore
import Foundation
import S3Client

extension BucketAdapter {
    func preflight(_ source: TypedSource<S3SourcePolicy>, context: SourceContext) async -> [PreflightCheck] {
        let name = "source \(source.name)"
        let s3 = source.settings
        let client: S3Client
        do {
            client = try s3Client(s3, source: source.name, context: context)
        } catch {
            return [PreflightCheck(check: "\(name): connects", ok: false, detail: context.describe(error), hint: PreflightCheck.hint(error))]
        }
        defer { client.shutdown() }
        var checks: [PreflightCheck] = []
        var buckets = s3.buckets
        if buckets.isEmpty {
            do {
                buckets = try await client.listBuckets()
                checks.append(PreflightCheck(check: "\(name): lists the buckets", ok: true, detail: "\(buckets.count) bucket(s) at \(s3.endpoint)"))
            } catch {
                return [PreflightCheck(check: "\(name): lists the buckets", ok: false, detail: context.describe(error), hint: PreflightCheck.hint(error))]
            }
        }
        for bucket in buckets {
            let what = "\(name): bucket \(bucket) readable"
            do {
                guard let first = try await client.firstObject(bucket: bucket, prefix: s3.prefix) else {
                    checks.append(PreflightCheck(check: what, ok: true, detail: "listed (empty\(s3.prefix.isEmpty ? "" : " under \(s3.prefix)"))"))
                    continue
                }
                guard try await client.headObject(bucket: bucket, key: first.key) != nil else {
                    checks.append(PreflightCheck(check: what, ok: false, detail: "listed, but \(first.key) cannot be read"))
                    continue
                }
                checks.append(PreflightCheck(check: what, ok: true, detail: "listed, and \(first.key) readable"))
            } catch {
                checks.append(PreflightCheck(check: what, ok: false, detail: context.describe(error), hint: PreflightCheck.hint(error)))
            }
        }
        return checks
    }
}
