#!/usr/bin/env python3
"""Starts the tests' S3 servers: each one a real moto server (the same WSGI application `python3 -m moto.server`
serves), forked from this process, which has imported moto, Flask and werkzeug and loaded the S3 and IAM
backends once. A test still gets a server of its own, empty and on its own port, that it can stop; it no longer
pays the ~0.6 s of CPU a fresh `python3 -m moto.server` spends importing (about 40 servers a suite run).

Protocol, one line each way, on stdin and stdout (Tests/TestSupport/S3TestServer.swift):
  start LOGFILE   ->  ok PID PORT       a server listening on 127.0.0.1:PORT (a free port the kernel chose at
                                        bind: no pick-then-bind race), its output appended to LOGFILE
                  ->  error MESSAGE     it did not start (the reason is also in LOGFILE)
  stop PID        ->  stopped PID       SIGTERM, then reaped: once answered, its port refuses connections
End of input (the test process exited or died): every server still running is killed, its log (the first
argument) is removed if empty, then this exits.
A server whose fork server dies gets SIGTERM from the kernel (PR_SET_PDEATHSIG)."""
import ctypes
import os
import signal
import sys
import time

from moto.moto_api._internal.models import moto_api_backend
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server
from werkzeug.test import Client

HOST = "127.0.0.1"


def warmed_application():
    """The application of `moto.server`, with its S3 and IAM backends loaded (the first request to each loads it:
    most of a fresh server's start-up), then reset to the state of a server that has served nothing."""
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    client = Client(app)
    client.get("/", headers={"Host": "127.0.0.1:5000"})  # S3 ListBuckets
    client.post("/", headers={"Host": "127.0.0.1:5000", "Authorization": "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=x"},
                data="Action=ListUsers&Version=2010-05-08", content_type="application/x-www-form-urlencoded")  # IAM
    moto_api_backend.reset()
    return app


def serve(app, log, report):
    """In the forked child: bind, say the port, serve until SIGTERM."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:
        os._exit(1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    try:
        server = make_server(HOST, 0, app, threaded=True)
    except Exception as e:  # noqa: BLE001 - said on the report pipe and in the log
        print(f"moto_forkserver: could not bind {HOST}: {e}", file=sys.stderr)
        os.write(report, f"error could not bind {HOST}: {e}\n".encode())
        os._exit(1)
    port = server.server_port
    os.environ["MOTO_PORT"] = str(port)
    print(f" * Running on http://{HOST}:{port}", file=sys.stderr)
    os.write(report, f"ok {os.getpid()} {port}\n".encode())
    os.close(report)
    server.serve_forever()
    os._exit(0)


def stop(pid):
    """SIGTERM (what `python3 -m moto.server` gets), SIGKILL if it is still there after 5 s; reaped either way."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def main():
    # The test process may start this with signals blocked (a thread's mask is inherited): its servers must die of
    # SIGTERM as moto's own process does.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    app = warmed_application()
    children = set()
    for line in sys.stdin:
        words = line.split(maxsplit=1)
        if not words:
            continue
        if words[0] == "start" and len(words) == 2:
            log = words[1].rstrip("\n")
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                try:
                    serve(app, log, w)
                finally:
                    os._exit(1)
            os.close(w)
            with os.fdopen(r, "rb") as reader:
                answer = reader.readline().decode().strip()
            if answer.startswith("ok "):
                children.add(pid)
                reply = answer
            else:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                reply = answer if answer.startswith("error ") else f"error the server exited before listening (see {log})"
        elif words[0] == "stop" and len(words) == 2 and words[1].strip().isdigit():
            pid = int(words[1])
            if pid in children:
                children.discard(pid)
                stop(pid)
            reply = f"stopped {pid}"
        else:
            reply = f"error unknown request {line.strip()!r}"
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    for pid in children:
        os.waitpid(pid, 0)
    # Its own log (the first argument): nothing is left in /tmp when nothing was said; a log that holds something
    # is kept to be read.
    if len(sys.argv) > 1:
        try:
            if os.path.getsize(sys.argv[1]) == 0:
                os.unlink(sys.argv[1])
        except OSError:
            pass


if __name__ == "__main__":
    main()
