#!/usr/bin/env python3
"""A fake Redis master for fault tests: answers every command +OK until SYNC, then announces an RDB of
1000 bytes and sends it one byte every TRICKLE_SECONDS (default 0.5): each silence shorter than any sane
idle timeout, the whole transfer far longer than a deadline. Usage: redis_trickle.py PORT"""
import socket, sys, time

port = int(sys.argv[1])
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(4)
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    buf = b""
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                break
            buf += data
            # Commands arrive as RESP arrays; answer each, stream on SYNC.
            while b"\r\n" in buf:
                text = buf.decode("latin-1")
                if not text.startswith("*"):  # an inline command
                    line, _, rest = text.partition("\r\n")
                    buf = rest.encode("latin-1")
                    args = line.split()
                else:
                    parts = text.split("\r\n")
                    n = int(parts[0][1:])
                    if len(parts) < 1 + 2 * n + 1:
                        break
                    args = [parts[2 + 2 * i] for i in range(n)]
                    consumed = "\r\n".join(parts[:1 + 2 * n]) + "\r\n"
                    buf = buf[len(consumed.encode("latin-1")):]
                if args and args[0].upper() == "SYNC":
                    conn.sendall(b"$1000\r\n")
                    payload = b"REDIS0009" + b"\xfa" + b"\x00" * 990
                    for b in payload:
                        conn.sendall(bytes([b]))
                        time.sleep(delay)
                else:
                    conn.sendall(b"+OK\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    conn.close()
