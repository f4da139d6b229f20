// The S3 replies the client reads (S3Client/S3XML.swift): the XML tree (Foundation's XMLParser, a depth bound)
// and what the operations take from it: a ListObjectsV2 page (keys url-decoded, sizes, ETags), ListBuckets,
// CreateMultipartUpload's upload id, CompleteMultipartUpload's ETag or <Error>, an <Error> body, DeleteObjects'
// per-key errors.
import FuzzSupport
import Foundation
import S3Client

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = Data(bytes: data, count: size)
    if let page = S3Replies.listPage(body) {
        // What listObjects checks next: the keys' byte order.
        for (a, b) in zip(page.objects, page.objects.dropFirst()) { _ = Array(a.key.utf8).lexicographicallyPrecedes(Array(b.key.utf8)) }
    }
    _ = S3Replies.bucketNames(body)
    _ = S3Replies.uploadID(body)
    _ = S3Replies.completion(body)
    _ = S3Replies.error(body)
    _ = S3Replies.firstDeleteError(body)
    return 0
}
