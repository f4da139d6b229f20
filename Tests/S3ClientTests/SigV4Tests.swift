import BackupCore
import Foundation
import S3Client
import Testing
import TestSupport

/// The examples of the AWS Signature Version 4 documentation (and the path-style MinIO ones computed with botocore).
@Suite(.blockingThreads) struct SigV4Tests {
    let signer = SigV4Signer(credentials: S3Credentials(accessKey: "AKIAIOSFODNN7EXAMPLE",
                                                        secretKey: Secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")))
    let date = Date(timeIntervalSince1970: 1_369_353_600) // 20130524T000000Z
    let empty = SigV4Signer.emptyPayloadHash

    func check(_ request: SigV4Signer.Request, hash: String, signature: String) {
        let (canonical, _) = signer.canonicalRequest(request)
        let toSign = signer.stringToSign(canonicalRequest: canonical, date: date)
        #expect(toSign.split(separator: "\n").last.map(String.init) == hash)
        #expect(signer.signature(stringToSign: toSign, date: date) == signature)
    }

    @Test func signingKey() {
        let key = signer.signingKey(date: date).withUnsafeBytes { Array($0) }
        #expect(key.map { String(format: "%02x", $0) }.joined() == "dbb893acc010964918f1fd433add87c70e8b0db6be30c1fbeafefa5ec6ba8378")
    }

    @Test func getObject() {
        let request = SigV4Signer.Request(method: "GET", encodedPath: "/test.txt", headers: [
            ("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", empty), ("x-amz-date", "20130524T000000Z"),
        ], payloadHash: empty)
        let (canonical, signed) = signer.canonicalRequest(request)
        #expect(canonical == """
        GET
        /test.txt

        host:examplebucket.s3.amazonaws.com
        range:bytes=0-9
        x-amz-content-sha256:\(empty)
        x-amz-date:20130524T000000Z

        host;range;x-amz-content-sha256;x-amz-date
        \(empty)
        """)
        #expect(signed == "host;range;x-amz-content-sha256;x-amz-date")
        check(request, hash: "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
              signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test func putObject() {
        let body = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        #expect(S3Encoding.path("test$file.text") == "test%24file.text")
        let request = SigV4Signer.Request(method: "PUT", encodedPath: "/" + S3Encoding.path("test$file.text"), headers: [
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("Host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", body), ("x-amz-date", "20130524T000000Z"), ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ], payloadHash: body)
        check(request, hash: "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
              signature: "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test func lifecycleAndList() {
        let headers = [("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-content-sha256", empty), ("x-amz-date", "20130524T000000Z")]
        check(SigV4Signer.Request(method: "GET", encodedPath: "/", query: [("lifecycle", "")], headers: headers, payloadHash: empty),
              hash: "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
              signature: "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
        // Query parameters are sorted whatever order they come in.
        check(SigV4Signer.Request(method: "GET", encodedPath: "/", query: [("prefix", "J"), ("max-keys", "2")], headers: headers, payloadHash: empty),
              hash: "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
              signature: "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func pathStyleMinIO() {
        for (payload, signature) in [(SigV4Signer.unsignedPayload, "b26e4d4f48158f67a69c85c69f60f9fb3d3bfbac6d7e0b6eb7f2fa753b0dabc1"),
                                     (empty, "b1032f5d81dee2d5d97baa5106cebbd8df4d0e5636e346e59317a3cb866ad78a")] {
            let request = SigV4Signer.Request(method: "GET", encodedPath: "/mybucket", query: [("list-type", "2"), ("max-keys", "2"), ("prefix", "J")],
                                              headers: [("Host", "localhost:9000")], payloadHash: payload)
            let headers = signer.sign(request, date: date)
            let authorization = headers.first { $0.0 == "Authorization" }!.1
            #expect(authorization == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=\(signature)")
        }
    }

    @Test func encoding() {
        #expect(S3Encoding.strict("a b/c~d_e.f-g") == "a%20b%2Fc~d_e.f-g")
        #expect(S3Encoding.path("dir/ü + x") == "dir/%C3%BC%20%2B%20x")
        #expect(S3Encoding.decode("dir/%C3%BC%20%2B%20x") == "dir/ü + x")
        #expect(S3Encoding.decode("a+b") == "a b")
        for key in ["../../etc/passwd", "/leading", "ü/🎉", String(repeating: "k", count: 900), "100%", "a%2Fb"] {
            #expect(S3Encoding.decode(S3Encoding.strict(key)) == key)
        }
    }
}
