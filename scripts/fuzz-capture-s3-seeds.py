#!/usr/bin/env python3
# Rewrites Tests/Fixtures/fuzz/s3xml/seeds/*.xml from a real moto server (issue #40):
#   python3 -m moto.server -H 127.0.0.1 -p PORT &   then   cd Tests/Fixtures/fuzz/s3xml/seeds && python3 ../../../../../scripts/fuzz-capture-s3-seeds.py http://127.0.0.1:PORT
# It makes the S3 calls kaleem-backup makes (boto3, path style) and saves each reply body as the server wrote it.
import sys, boto3, botocore
from botocore.config import Config
endpoint = sys.argv[1]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test",
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
captured = {}
name = [None]
def keep(http_response, **kw):
    if name[0] and http_response.content:
        captured[name[0]] = http_response.content
s3.meta.events.register("after-call.s3", keep)
def call(n, fn, *a, **k):
    name[0] = n
    try: return fn(*a, **k)
    except botocore.exceptions.ClientError as e: return e
    finally: name[0] = None
s3.create_bucket(Bucket="kaleem")
s3.create_bucket(Bucket="empty")
for k in ["redis/2026-12-04/20261204T000000Z-a1b2.rdb.gz", "redis/2026-12-04/20261204T000000Z-a1b2.manifest.json",
          "mongo/a b+c/\u00fc%.archive", "qdrant/x&y<z>.snapshot", "files/\u0645\u0644\u0641.tar"]:
    s3.put_object(Bucket="kaleem", Key=k, Body=b"data-" + k.encode())
call("list-buckets", s3.list_buckets)
r = call("list-objects-v2-truncated", s3.list_objects_v2, Bucket="kaleem", EncodingType="url", MaxKeys=2)
call("list-objects-v2-page2", s3.list_objects_v2, Bucket="kaleem", EncodingType="url", MaxKeys=2, ContinuationToken=r["NextContinuationToken"])
call("list-objects-v2-url", s3.list_objects_v2, Bucket="kaleem", EncodingType="url", MaxKeys=1000)
call("list-objects-v2-plain", s3.list_objects_v2, Bucket="kaleem", MaxKeys=1000)
call("list-objects-v2-prefix-delimiter", s3.list_objects_v2, Bucket="kaleem", Prefix="redis/", Delimiter="/")
call("list-objects-v2-empty", s3.list_objects_v2, Bucket="empty", EncodingType="url", MaxKeys=1)
up = call("create-multipart-upload", s3.create_multipart_upload, Bucket="kaleem", Key="big.rdb.gz", Metadata={"sha256": "ab" * 32})
uid = up["UploadId"]
p1 = s3.upload_part(Bucket="kaleem", Key="big.rdb.gz", UploadId=uid, PartNumber=1, Body=b"\0" * (5 << 20))
p2 = s3.upload_part(Bucket="kaleem", Key="big.rdb.gz", UploadId=uid, PartNumber=2, Body=b"tail")
call("error-invalid-part", s3.complete_multipart_upload, Bucket="kaleem", Key="big.rdb.gz", UploadId=uid,
     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": '"00000000000000000000000000000000"'}]})
call("complete-multipart-upload", s3.complete_multipart_upload, Bucket="kaleem", Key="big.rdb.gz", UploadId=uid,
     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]})
up2 = s3.create_multipart_upload(Bucket="kaleem", Key="small.gz")
q1 = s3.upload_part(Bucket="kaleem", Key="small.gz", UploadId=up2["UploadId"], PartNumber=1, Body=b"x")
q2 = s3.upload_part(Bucket="kaleem", Key="small.gz", UploadId=up2["UploadId"], PartNumber=2, Body=b"y")
call("error-entity-too-small", s3.complete_multipart_upload, Bucket="kaleem", Key="small.gz", UploadId=up2["UploadId"],
     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": q1["ETag"]}, {"PartNumber": 2, "ETag": q2["ETag"]}]})
call("error-no-such-upload", s3.complete_multipart_upload, Bucket="kaleem", Key="big.rdb.gz", UploadId="nosuchupload",
     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}]})
call("error-no-such-bucket", s3.list_objects_v2, Bucket="nosuchbucket")
call("error-no-such-key", s3.get_object, Bucket="kaleem", Key="nosuchkey")
call("error-bucket-not-empty", s3.delete_bucket, Bucket="kaleem")
call("error-invalid-bucket-name", s3.create_bucket, Bucket="Not_A_Bucket")
call("delete-objects", s3.delete_objects, Bucket="kaleem", Delete={"Quiet": False, "Objects": [{"Key": "mongo/a b+c/\u00fc%.archive"}, {"Key": "gone"}]})
call("get-bucket-location", s3.get_bucket_location, Bucket="kaleem")
for n, body in captured.items():
    open(n + ".xml", "wb").write(body)
    print(n, len(body))
