#!/usr/bin/env python3
"""A hostile "Redis" for fault tests: answers the first command it reads with one bad reply, bounded in size and
time (it never sends more than 4 MiB nor lives more than 60 s). Usage: redis_hostile.py PORT MODE

  huge-bulk    `$9223372036854775807` (the largest Int64: `n + 2` overflows)
  deep-array   `*1` two million times (a reply nested that deep overflows a recursive reader's stack)
  long-line    `+` and 4 MiB without a newline (a reader without a line cap grows without bound)
  wide-array   `*2000000000` then nothing (an array that claims two billion elements)
  bulk-no-crlf `$3` `abcXY` (a bulk whose CRLF is not there)
  echo-error   an error that quotes the command it got, arguments and all (AUTH's password among them)
  escape-error an error carrying terminal escapes (retitle, clear screen), and a bidi override
"""
import socket, sys, time

port, mode = int(sys.argv[1]), sys.argv[2]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(4)
srv.settimeout(60)
print("ready", flush=True)
started = time.time()
while time.time() - started < 60:
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        break
    conn.settimeout(10)
    try:
        request = conn.recv(65536)
        if mode == "escape-error":
            conn.sendall(b"-ERR \x1b]0;pwned\x07\x1b[2J\xe2\x80\xaeevil\x1b[31m red\r\n")
        elif mode == "echo-error":
            words = [w for w in request.split(b"\r\n") if w and not w[:1] in (b"*", b"$")]
            conn.sendall(b"-ERR refused: " + b" ".join(words)[:200] + b"\r\n")
        elif mode == "huge-bulk":
            conn.sendall(b"$9223372036854775807\r\nabc")
        elif mode == "deep-array":
            conn.sendall(b"*1\r\n" * 2_000_000 + b":1\r\n")
        elif mode == "long-line":
            chunk = b"a" * 65536
            conn.sendall(b"+")
            for _ in range(64):
                conn.sendall(chunk)
        elif mode == "wide-array":
            conn.sendall(b"*2000000000\r\n")
        elif mode == "bulk-no-crlf":
            conn.sendall(b"$3\r\nabcXY")
        time.sleep(1)
    except OSError:
        pass
    finally:
        conn.close()
