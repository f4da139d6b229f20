#!/usr/bin/env python3
"""An S3 stand-in for benchmarks at a million objects and more, where moto is too slow to be used: moto
sorts every key of a bucket for each ListObjectsV2 page (1.3 s a page at 100,000 keys, so about four hours to
list a million) and serves ~120 GETs a second.

It honours the part of the S3 API kaleem-backup's bucket source uses, with the real shapes (path-style URLs,
ListObjectsV2 with continuation tokens, max-keys and encoding-type=url, ETags that are the content's MD5,
DeleteObjects, HEAD and PUT of buckets and objects), keeps objects in memory, lists them from a sorted index
(UTF-8 byte order, as S3 does) and does not check signatures. Not a test double: the test suite uses moto.

    python3 scripts/lib/s3-scale-standin.py PORT

Benchmarks fill it without HTTP, through one extra route that S3 does not have:
    POST /_seed?bucket=B&from=I&to=J&prefix=P          objects I..J-1 (P "-": users/<i mod 997>/uploads/<i>.jpg)
    POST /_seed?bucket=B&from=N&to=K&prefix=-&seed=S   K keys picked at random among 0..N-1, overwritten
Each request is logged as `"METHOD PATH HTTP/1.1" STATUS -` on stderr (what the benchmarks count).
"""
import bisect
import hashlib
import random
import sys
import threading
import time
import urllib.parse
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from sortedcontainers import SortedList

LOCK = threading.Lock()
BUCKETS = {}  # name -> {"keys": SortedList[bytes], "objects": {bytes: (body, etag, modified)}}


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


def put(bucket, key, body, now=None):
    now = time.time() if now is None else now
    b = BUCKETS[bucket]
    if key not in b["objects"]:
        b["keys"].add(key)
    b["objects"][key] = (body, hashlib.md5(body).hexdigest(), now)


def seed_key(i, prefix):
    return f"users/{i % 997}/uploads/{i:09d}.jpg" if prefix == "-" else f"{prefix}/{i:09d}.jpg"


def seed(q):
    bucket, start, end, prefix = q["bucket"], int(q["from"]), int(q["to"]), q.get("prefix", "-")
    with LOCK:
        BUCKETS.setdefault(bucket, {"keys": SortedList(), "objects": {}})
        if "seed" in q:
            content = "overwritten " + q["seed"]
            picked = random.Random(q["seed"]).sample(range(start), end)
            for i in picked:
                k = seed_key(i, prefix)
                put(bucket, k.encode(), (content + " " + k).encode())
            return len(picked)
        now = time.time()
        b = BUCKETS[bucket]
        fresh = []
        for i in range(start, end):
            k = seed_key(i, prefix)
            key = k.encode()
            if key not in b["objects"]:
                fresh.append(key)
            body = ("object " + k).encode()
            b["objects"][key] = (body, hashlib.md5(body).hexdigest(), now)
        b["keys"].update(fresh)
        return end - start


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY each GET waits for the client's delayed ACK
    # (40 ms), which capped this server at ~350 GETs a second with 16 connections. Go's net/http (MinIO) sets it.
    disable_nagle_algorithm = True

    def split(self):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.lstrip("/").split("/", 1)
        bucket = urllib.parse.unquote(parts[0])
        key = urllib.parse.unquote(parts[1]).encode() if len(parts) > 1 and parts[1] else None
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        return bucket, key, query

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if self.command != "HEAD" or not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message):
        self.reply(status, f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>".encode(),
                   [("Content-Type", "application/xml")])

    def do_HEAD(self):
        bucket, key, _ = self.split()
        if bucket not in BUCKETS:
            return self.reply(404)
        if key is None:
            return self.reply(200)
        obj = BUCKETS[bucket]["objects"].get(key)
        if obj is None:
            return self.reply(404)
        self.reply(200, b"", [("ETag", f'"{obj[1]}"'), ("Content-Length", str(len(obj[0]))),
                              ("Last-Modified", formatdate(obj[2], usegmt=True))])

    def do_GET(self):
        bucket, key, q = self.split()
        if not bucket:
            names = "".join(f"<Bucket><Name>{escape(n)}</Name><CreationDate>{iso(0)}</CreationDate></Bucket>" for n in sorted(BUCKETS))
            return self.reply(200, f"<ListAllMyBucketsResult><Buckets>{names}</Buckets></ListAllMyBucketsResult>".encode())
        if bucket not in BUCKETS:
            return self.error(404, "NoSuchBucket", "The specified bucket does not exist")
        b = BUCKETS[bucket]
        if key is None:
            return self.list(bucket, b, q)
        obj = b["objects"].get(key)
        if obj is None:
            return self.error(404, "NoSuchKey", "The specified key does not exist.")
        self.reply(200, obj[0], [("ETag", f'"{obj[1]}"'), ("Last-Modified", formatdate(obj[2], usegmt=True)),
                                 ("Content-Type", "application/octet-stream")])

    def list(self, bucket, b, q):
        prefix = q.get("prefix", "").encode()
        max_keys = min(1000, int(q.get("max-keys", "1000")))
        url = q.get("encoding-type") == "url"
        after = q.get("continuation-token") or q.get("start-after")
        keys = b["keys"]
        with LOCK:
            i = keys.bisect_right(urllib.parse.unquote(after).encode()) if after else keys.bisect_left(prefix)
            page = []
            while i < len(keys) and len(page) < max_keys + 1:
                k = keys[i]
                if not k.startswith(prefix):
                    break
                page.append((k, b["objects"][k]))
                i += 1
        truncated = len(page) > max_keys
        page = page[:max_keys]
        out = [f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>{escape(bucket)}</Name>",
               f"<Prefix>{escape(prefix.decode())}</Prefix><KeyCount>{len(page)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>"]
        if url:
            out.append("<EncodingType>url</EncodingType>")
        out.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if truncated:
            out.append(f"<NextContinuationToken>{urllib.parse.quote(page[-1][0])}</NextContinuationToken>")
        for k, (body, etag, modified) in page:
            name = urllib.parse.quote(k, safe="/") if url else escape(k.decode())
            out.append(f"<Contents><Key>{name}</Key><LastModified>{iso(modified)}</LastModified><ETag>&quot;{etag}&quot;</ETag>"
                       f"<Size>{len(body)}</Size><StorageClass>STANDARD</StorageClass></Contents>")
        out.append("</ListBucketResult>")
        self.reply(200, "".join(out).encode(), [("Content-Type", "application/xml")])

    def do_PUT(self):
        bucket, key, _ = self.split()
        data = self.body()
        with LOCK:
            if key is None:
                BUCKETS.setdefault(bucket, {"keys": SortedList(), "objects": {}})
                return self.reply(200)
            if bucket not in BUCKETS:
                return self.error(404, "NoSuchBucket", "The specified bucket does not exist")
            put(bucket, key, data)
            etag = BUCKETS[bucket]["objects"][key][1]
        self.reply(200, b"", [("ETag", f'"{etag}"')])

    def do_DELETE(self):
        bucket, key, _ = self.split()
        with LOCK:
            if bucket not in BUCKETS:
                return self.error(404, "NoSuchBucket", "The specified bucket does not exist")
            b = BUCKETS[bucket]
            if key is None:
                if b["objects"]:
                    return self.error(409, "BucketNotEmpty", "The bucket you tried to delete is not empty")
                del BUCKETS[bucket]
            elif b["objects"].pop(key, None) is not None:
                b["keys"].remove(key)
        self.reply(204)

    def do_POST(self):
        bucket, _, q = self.split()
        data = self.body()
        if bucket == "_seed":
            return self.reply(200, f"{seed(q)}\n".encode())
        if "delete" not in q:
            return self.error(501, "NotImplemented", "only DeleteObjects is served")
        import xml.etree.ElementTree as ET
        root = ET.fromstring(data)
        with LOCK:
            b = BUCKETS.get(bucket)
            if b is None:
                return self.error(404, "NoSuchBucket", "The specified bucket does not exist")
            for el in root.iter():
                if el.tag.endswith("Key") and el.text is not None:
                    k = el.text.encode()
                    if b["objects"].pop(k, None) is not None:
                        b["keys"].remove(k)
        self.reply(200, b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><DeleteResult></DeleteResult>", [("Content-Type", "application/xml")])


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
