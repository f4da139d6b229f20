#!/usr/bin/env python3
"""RESP commands for redis-cli --pipe: N keys of mixed types (60% strings, 10% each hash, list, set, zset),
the data set of scripts/bench-redis.sh and scripts/bench-ls.sh. Seeded, so every run loads the same keys.

    scripts/gen-redis-keys.py N [TTL_EVERY]   (TTL_EVERY > 0: every TTL_EVERY-th key gets a 1-day TTL)
"""
import random
import sys

n = int(sys.argv[1])
ttl_every = int(sys.argv[2]) if len(sys.argv) > 2 else 0
random.seed(42)
out = sys.stdout.buffer


def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.write(b"".join(parts))


for i in range(n):
    r = i % 10
    v = ("%016x" % random.getrandbits(64)) * 5
    if r < 6:
        key = "str:%d" % i; cmd("SET", key, v)
    elif r == 6:
        key = "hash:%d" % i; cmd("HSET", key, "a", v[:20], "b", v[20:40], "c", v[40:60], "d", i)
    elif r == 7:
        key = "list:%d" % i; cmd("RPUSH", key, v[:20], v[20:40], v[40:60], i)
    elif r == 8:
        key = "set:%d" % i; cmd("SADD", key, v[:16], v[16:32], v[32:48], v[48:64], i)
    else:
        key = "zset:%d" % i; cmd("ZADD", key, 1, v[:20], 2, v[20:40], 3, v[40:60], 4, i)
    if ttl_every and i % ttl_every == 0:
        cmd("PEXPIRE", key, 86400000)
