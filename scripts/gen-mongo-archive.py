#!/usr/bin/env python3
"""Writes a mongodump archive (the format of mongo-tools' common/archive: magic 6de29981, a prelude header
{concurrent_collections, version "0.1", server_version, tool_version}, one metadata document per collection
and a terminator, then per namespace a header {db, collection, EOF: false, CRC: 0}, its BSON documents and a
terminator, closed by a header {..., EOF: true, CRC: <CRC-64/XZ of the documents>} and a terminator) of about
BYTES bytes, for benchmarks: no MongoDB is needed to read it back, and kaleem-backup's verifier checks every
CRC of it.

    scripts/gen-mongo-archive.py BYTES OUT

The documents look like an application's: an _id, a user name, an e-mail, a timestamp, a status, tags and
a text body of words (gzip -6 compresses them about 3x, as it does real collections). To stay fast in pure
Python, one block of 4 MiB of documents is made and its CRC computed once; each collection holds that block
(the namespaces differ, so the archive is still what mongodump would write for such a database).
"""
import os, random, struct, sys

POLY = 0xC96C5795D7870F42  # CRC-64/XZ (ECMA-182 reflected), as the verifier and mongo-tools use
TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    TABLE.append(c)


def crc64(data, crc=0xFFFFFFFFFFFFFFFF):
    t = TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


assert crc64(b"123456789") ^ 0xFFFFFFFFFFFFFFFF == 0x995DC9BBDF1939FA


def cstr(s):
    return s.encode() + b"\0"


def bson(fields):
    body = b""
    for k, v in fields:
        if isinstance(v, bool):
            body += b"\x08" + cstr(k) + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            body += b"\x12" + cstr(k) + struct.pack("<q", v)
        elif isinstance(v, str):
            e = v.encode()
            body += b"\x02" + cstr(k) + struct.pack("<i", len(e) + 1) + e + b"\0"
        elif isinstance(v, list):
            body += b"\x04" + cstr(k) + bson([(str(i), x) for i, x in enumerate(v)])
        else:
            raise TypeError(v)
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def main():
    target, out = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(7)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))) for _ in range(4000)]
    block = bytearray()
    n = 0
    while len(block) < 4 << 20:
        doc = bson([("_id", "%024x" % rng.getrandbits(96)), ("user", rng.choice(words) + str(n)),
                    ("email", "%s@%s.example" % (rng.choice(words), rng.choice(words))),
                    ("createdAt", 1700000000000 + n * 1000), ("status", rng.choice(["active", "blocked", "new"])),
                    ("tags", [rng.choice(words) for _ in range(rng.randint(0, 4))]),
                    ("body", " ".join(rng.choice(words) for _ in range(rng.randint(20, 80))))])
        block += doc
        n += 1
    block = bytes(block)
    crc = crc64(block) ^ 0xFFFFFFFFFFFFFFFF
    collections = max(1, target // len(block))
    terminator = b"\xff\xff\xff\xff"
    with open(out, "wb") as f:
        f.write(b"\x6d\xe2\x99\x81")
        f.write(bson([("concurrent_collections", 4), ("version", "0.1"), ("server_version", "7.0.14"),
                      ("tool_version", "100.10.0")]))
        names = ["c%04d" % i for i in range(collections)]
        for c in names:
            meta = '{"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"}],"uuid":"","collectionName":"%s","type":"collection"}' % c
            f.write(bson([("db", "bench"), ("collection", c), ("metadata", meta), ("size", 0), ("type", "collection")]))
        f.write(terminator)
        for c in names:
            f.write(bson([("db", "bench"), ("collection", c), ("EOF", False), ("CRC", 0)]))
            f.write(block)
            f.write(terminator)
            f.write(bson([("db", "bench"), ("collection", c), ("EOF", True), ("CRC", struct.unpack("<q", struct.pack("<Q", crc))[0])]))
            f.write(terminator)
    print("%d collections x %d documents (%d bytes)" % (collections, n, os.path.getsize(out)), file=sys.stderr)


main()
