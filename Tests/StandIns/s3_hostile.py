#!/usr/bin/env python3
"""A hostile "S3" for the fault campaign: HEAD of anything answers 200; a listing (GET ?list-type=2) answers
with one bad reply; anything else 404. Bounded: it never sends more than 8 MiB in one reply nor lives more than
600 s. Usage: s3_hostile.py PORT MODE

  deep-xml      a ListBucketResult nested 200,000 elements deep (a recursive XML tree overflows its stack)
  repeat-token  a truncated listing whose NextContinuationToken is the one it was asked for, forever
  trickle       a listing announced at 1 MiB, sent a byte every half second
  huge-length   Content-Length: 4611686018427387904, then 1 KiB, then the connection closes
  garbage       200 with 1 MiB of bytes that are not XML
"""
import http.server, socketserver, sys, time, urllib.parse

port, mode = int(sys.argv[1]), sys.argv[2]
started = time.time()

LISTING = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
           '<Name>uploads</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>'
           '<Contents><Key>k-%d</Key><LastModified>2026-12-01T00:00:00.000Z</LastModified><ETag>"d41d8cd98f00b204e9800998ecf8427e"</ETag>'
           '<Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>'
           '<ContinuationToken>%s</ContinuationToken><NextContinuationToken>%s</NextContinuationToken></ListBucketResult>')


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query, keep_blank_values=True)
        if "list-type" not in query:
            body = b'<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>no</Message></Error>'
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if mode == "deep-xml":
            body = (b"<?xml version=\"1.0\"?><ListBucketResult>" + b"<a>" * 200000 + b"</a>" * 200000 + b"</ListBucketResult>")
            self.reply(body)
        elif mode == "repeat-token":
            token = query.get("continuation-token", ["t0"])[0]
            self.reply((LISTING % (int(time.time() * 1000), token, token)).encode())
        elif mode == "trickle":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            for i in range(1 << 20):
                if time.time() - started > 600:
                    return
                self.wfile.write(b"<")
                self.wfile.flush()
                time.sleep(0.5)
        elif mode == "huge-length":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 62))
            self.end_headers()
            self.wfile.write(b"<" * 1024)
            self.close_connection = True
        else:
            self.reply(bytes((i * 7) % 251 for i in range(1 << 20)))

    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: 8 << 20])


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


server = Server(("127.0.0.1", port), Handler)
server.timeout = 1
print("ready", flush=True)
while time.time() - started < 600:
    server.handle_request()
