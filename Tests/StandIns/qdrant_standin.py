#!/usr/bin/env python3
"""Stand-in for Qdrant's REST API (no Qdrant server can be installed on the build machines), with the calls
kaleem-backup makes and Qdrant's own reply shapes (openapi: {"result": ..., "status": "ok", "time": ...};
errors {"status": {"error": "..."}} with the real status codes):

  GET    /collections                          GET /collections/{c}          DELETE /collections/{c}
  GET    /aliases                              POST /collections/aliases
  POST   /collections/{c}/snapshots?wait=true  -> {"name", "creation_time", "size", "checksum"}
  GET    /collections/{c}/snapshots            GET /collections/{c}/snapshots/{name}   DELETE .../{name}
  POST   /collections/{c}/snapshots/upload?priority=snapshot&checksum=<sha256>&wait=true (multipart "snapshot")
  POST   /collections/{c}/points/count         {"exact": true|false}

What it imitates, and from where (upstream qdrant/qdrant; see Tests/StandIns/README.md, "## Qdrant"):
  - Snapshots are tars written like tar-rs with `sparse(true)` (lib/common/common/src/tar_ext.rs): old-GNU
    headers, a file with holes as a GNU sparse entry (type S); made here by GNU `tar --sparse --format=gnu`,
    which writes the same format (and base-256 sizes past 8 GiB, as tar-rs `num_field_wrapper_into` does).
    Every snapshot holds a preallocated WAL segment with holes (Qdrant's WAL preallocates its segments), so
    every snapshot has an S entry.
  - Snapshots live in snapshots/<collection>/<name> (lib/collection/src/collection/snapshots.rs); an uploaded
    snapshot is moved there under its multipart file name and kept after the recovery, whether it succeeds or
    not (src/actix/api/snapshot_api.rs `do_save_uploaded_snapshot`, then the recovery); deleting a collection
    keeps its snapshot folder, and the snapshot API of a collection that does not exist answers 404.
  - points_count in collection info is approximate (openapi CollectionInfo: "Approximate number of points"):
    here a little above the truth; POST /points/count with exact=true is exact
    (lib/collection/src/operations/types.rs CountRequest, exact defaults to true).
  - Recovering into an existing collection with other vectors or shard number is a 400 "Wrong input: Snapshot
    is not compatible with existing collection: ..." (lib/storage/src/content_manager/snapshots/recover.rs),
    error body {"status": {"error": ...}, "time": ...}; the existing collection is unchanged.

Snapshots hold config.json, 0/segments/<id>/points.json, a vectors file and 0/wal/open-1 (the holes).
Usage: qdrant_standin.py PORT STATE_DIR
  STATE_DIR/collections.json   initial collections {"name": {"points": N, "dim": D}}, aliases {"alias": "name"}
  QDRANT_API_KEY   when set, every request must carry it in the api-key header (else 401)
  QDRANT_MODE      comma list: fail_create (500), hang_download, truncate (half the bytes, then close),
                   bad_checksum (reports a wrong sha256), fail_upload (500), extra_bytes (more than reported),
                   no_shard_number (collection info without config.params.shard_number, so that only the
                   server's 400 can tell a shard-number difference)
  collections.json may give "shards" per collection (default 1): its shard_number.
  QDRANT_LOG       one JSON line per request: method, path, api_key: present / absent / wrong
  GET /_standin/snapshots lists the snapshot files still on the "server" as "<collection>/<file>", those of
  deleted collections included (they must all be deleted)
"""
import hashlib, io, json, os, random, subprocess, sys, tarfile, tempfile, threading, time, urllib.parse, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, STATE = int(sys.argv[1]), sys.argv[2]
SNAPSHOTS = os.path.join(STATE, "snapshots")
os.makedirs(SNAPSHOTS, exist_ok=True)
LOCK = threading.Lock()
with open(os.path.join(STATE, "collections.json")) as f:
    initial = json.load(f)
# "deleted": points deleted but not yet vacuumed by the optimizer, which collection info's approximate count
# still includes; a collection recovered from a snapshot starts with none.
COLLECTIONS = {name: {"points": c["points"], "dim": c["dim"], "shards": c.get("shards", 1),
                      "deleted": max(1, c["points"] // 50) if c["points"] else 0}
               for name, c in initial.get("collections", {}).items()}
WAL_SEGMENT = 1 << 20  # Qdrant preallocates 32 MiB (wal_capacity_mb); smaller here, holes all the same
ALIASES = dict(initial.get("aliases", {}))
MODES = set(filter(None, os.environ.get("QDRANT_MODE", "").split(",")))
KEY = os.environ.get("QDRANT_API_KEY")


def vectors(rng, count):
    if count * 4 <= 1 << 20:
        return bytes(rng.getrandbits(8) for _ in range(count * 4))
    # Large collections (the benchmarks'): float32 values in (-2, 2) as embeddings are, made fast: random
    # mantissas, and the top byte (sign and exponent) one of 0x3c..0x3f or 0xbc..0xbf.
    # randbytes takes at most 2^31 bits at once (256 MiB): made in pieces.
    data = bytearray()
    left = count * 4
    while left:
        n = min(left, 64 << 20)
        data += rng.randbytes(n)
        left -= n
    top = bytes((0x3C | (b & 3) | (b & 0x80)) for b in range(256))
    data[3::4] = data[3::4].translate(top)
    return bytes(data)


CACHE = {}


def snapshot_tar(name, c):
    key = (name, c["points"], c["dim"], c.get("shards", 1))
    if key not in CACHE:
        CACHE[key] = make_snapshot_tar(name, c)
    return CACHE[key]


def make_snapshot_tar(name, c):
    """The snapshot as tar-rs with sparse(true) writes it: GNU tar --sparse --format=gnu (the same old-GNU
    sparse entries; base-256 numbers past 8 GiB), the WAL segment's holes as a type S entry."""
    rng = random.Random(name)
    seg = str(uuid.UUID(int=rng.getrandbits(128)))
    files = {
        "config.json": json.dumps({"params": {"vectors": {"size": c["dim"], "distance": "Cosine"}, "shard_number": c.get("shards", 1)},
                                   "hnsw_config": {"m": 16}, "optimizer_config": {}}).encode(),
        "0/replica_state.json": b'{"is_local": true}',
        "0/segments/%s/points.json" % seg: json.dumps(list(range(c["points"]))).encode(),
        "0/segments/%s/vectors.bin" % seg: vectors(rng, c["points"] * c["dim"]),
    }
    with tempfile.TemporaryDirectory(dir=STATE) as d:
        for path, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(d, path)), exist_ok=True)
            with open(os.path.join(d, path), "wb") as f:
                f.write(data)
        # A preallocated WAL segment: a few records at the start, the rest a hole.
        os.makedirs(os.path.join(d, "0/wal"), exist_ok=True)
        with open(os.path.join(d, "0/wal/open-1"), "wb") as f:
            f.write((json.dumps({"op": "upsert", "points": c["points"], "collection": name}) + "\n").encode() * 8)
            f.truncate(WAL_SEGMENT)
        for root, dirs, names in os.walk(d):
            for n in dirs:
                os.chmod(os.path.join(root, n), 0o755)
            for n in names:
                os.chmod(os.path.join(root, n), 0o644)
        out = subprocess.run(["tar", "--sparse", "--hole-detection=raw", "--format=gnu", "--sort=name", "--mtime=@0", "--owner=0",
                              "--group=0", "--numeric-owner", "-C", d, "-cf", "-", "config.json", "0"],
                             check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return out.stdout


def read_snapshot(path):
    with tarfile.open(path, mode="r:") as t:
        config = json.load(t.extractfile("config.json"))
        points = [m for m in t.getmembers() if m.name.endswith("points.json")]
        count = len(json.load(t.extractfile(points[0]))) if points else 0
    return {"points": count, "dim": config["params"]["vectors"]["size"], "shards": config["params"].get("shard_number", 1), "deleted": 0}


def approximate(c):
    """points_count of collection info: approximate (here: deleted points not yet vacuumed still counted)."""
    return c["points"] + c.get("deleted", 0)


def vectors_config(c):
    return {"size": c["dim"], "distance": "Cosine"}


def snapshot_dir(collection):
    return os.path.join(SNAPSHOTS, os.path.basename(collection))


def describe(collection, name):
    path = os.path.join(snapshot_dir(collection), name)
    data = open(path, "rb").read() if os.path.getsize(path) <= 64 << 20 else b""
    return {"name": name, "creation_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(os.path.getmtime(path))),
            "size": os.path.getsize(path), "checksum": hashlib.sha256(data).hexdigest() if data else None}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, result=None, error=None):
        body = json.dumps({"status": {"error": error}, "time": 0.0} if error else {"result": result, "status": "ok", "time": 0.001}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def record(self):
        path = os.environ.get("QDRANT_LOG")
        given = self.headers.get("api-key")
        state = "absent" if given is None else ("ok" if given == KEY else "wrong")
        if path:
            with LOCK, open(path, "a") as f:
                f.write(json.dumps({"method": self.command, "path": self.path, "api_key": state}) + "\n")
        if KEY and given != KEY:
            self.body()
            self.reply(401, error="Must provide an API key or an Authorization bearer token" if given is None else "Invalid API key or JWT")
            return False
        return True

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def route(self):
        url = urllib.parse.urlparse(self.path)
        return [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")], urllib.parse.parse_qs(url.query)

    def do_GET(self):
        parts, _ = self.route()
        if parts == ["_standin", "snapshots"]:
            left = []
            for c in sorted(os.listdir(SNAPSHOTS)):
                if os.path.isdir(os.path.join(SNAPSHOTS, c)):
                    left += ["%s/%s" % (c, n) for n in sorted(os.listdir(os.path.join(SNAPSHOTS, c)))]
            return self.reply(200, left)
        if not self.record():
            return
        if parts == ["collections"]:
            return self.reply(200, {"collections": [{"name": n} for n in sorted(COLLECTIONS)]})
        if parts == ["aliases"]:
            return self.reply(200, {"aliases": [{"alias_name": a, "collection_name": c} for a, c in sorted(ALIASES.items())]})
        if len(parts) == 2 and parts[0] == "collections":
            c = COLLECTIONS.get(parts[1])
            if c is None:
                return self.reply(404, error="Not found: Collection `%s` doesn't exist!" % parts[1])
            return self.reply(200, {"status": "green", "optimizer_status": "ok", "points_count": approximate(c),
                                    "indexed_vectors_count": 0, "segments_count": 1,
                                    "config": {"params": dict({"vectors": vectors_config(c)},
                                                              **({} if "no_shard_number" in MODES else {"shard_number": c.get("shards", 1)}))},
                                    "payload_schema": {"lang": {"data_type": "keyword", "points": c["points"]}}})
        if len(parts) == 3 and parts[0] == "collections" and parts[2] == "snapshots":
            if parts[1] not in COLLECTIONS:
                return self.reply(404, error="Not found: Collection `%s` doesn't exist!" % parts[1])
            folder = snapshot_dir(parts[1])
            names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
            return self.reply(200, [describe(parts[1], n) for n in names])
        if len(parts) == 4 and parts[0] == "collections" and parts[2] == "snapshots":
            if parts[1] not in COLLECTIONS:
                return self.reply(404, error="Not found: Collection `%s` doesn't exist!" % parts[1])
            path = os.path.join(snapshot_dir(parts[1]), os.path.basename(parts[3]))
            if not os.path.exists(path):
                return self.reply(404, error="Not found: Snapshot %s not found" % parts[3])
            size = os.path.getsize(path)
            data = open(path, "rb").read() if size <= 1 << 20 else None
            if "hang_download" in MODES:
                time.sleep(60)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if "truncate" in MODES and data is not None:
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if data is None:
                # Large snapshots (the benchmarks'): sent by the kernel, as a server in Rust would, so that
                # the stand-in is not what a download measures.
                self.wfile.flush()
                with open(path, "rb") as f:
                    sent = 0
                    while sent < size:
                        sent += os.sendfile(self.connection.fileno(), f.fileno(), sent, size - sent)
                return
            for i in range(0, len(data), 4096):
                self.wfile.write(data[i:i + 4096])
            return
        self.reply(404, error="Not found")

    def do_POST(self):
        parts, query = self.route()
        if not self.record():
            return
        if parts == ["collections", "aliases"]:
            actions = json.loads(self.body())["actions"]
            for a in actions:
                if "create_alias" in a:
                    ALIASES[a["create_alias"]["alias_name"]] = a["create_alias"]["collection_name"]
            return self.reply(200, True)
        if len(parts) == 3 and parts[0] == "collections" and parts[2] == "snapshots":
            self.body()
            c = COLLECTIONS.get(parts[1])
            if c is None:
                return self.reply(404, error="Not found: Collection `%s` doesn't exist!" % parts[1])
            if "fail_create" in MODES:
                return self.reply(500, error="Service internal error: No space left on device (os error 28)")
            name = "%s-%d-%s.snapshot" % (parts[1], random.getrandbits(52), time.strftime("%Y-%m-%d-%H-%M-%S"))
            data = snapshot_tar(parts[1], c)
            os.makedirs(snapshot_dir(parts[1]), exist_ok=True)
            with open(os.path.join(snapshot_dir(parts[1]), name), "wb") as f:
                f.write(data)
            checksum = hashlib.sha256(data).hexdigest()
            if "bad_checksum" in MODES:
                checksum = hashlib.sha256(b"lie").hexdigest()
            size = len(data) - 1000 if "extra_bytes" in MODES else len(data)
            return self.reply(200, {"name": name, "creation_time": time.strftime("%Y-%m-%dT%H:%M:%S"), "size": size, "checksum": checksum})
        if len(parts) == 4 and parts[0] == "collections" and parts[2:] == ["points", "count"]:
            raw = self.body()
            c = COLLECTIONS.get(parts[1])
            if c is None:
                return self.reply(404, error="Not found: Collection `%s` doesn't exist!" % parts[1])
            exact = (json.loads(raw) if raw else {}).get("exact", True)
            return self.reply(200, {"count": c["points"] if exact else approximate(c)})
        if len(parts) == 4 and parts[0] == "collections" and parts[2:] == ["snapshots", "upload"]:
            raw = self.body()
            boundary = self.headers.get("Content-Type", "").split("boundary=")[-1].encode()
            part = raw.split(b"--" + boundary)[1]
            head, rest = part.split(b"\r\n\r\n", 1)
            data = rest[:-2]
            # Moved into snapshots/<collection>/<file name of the upload> and kept (do_save_uploaded_snapshot).
            filename = None
            for line in head.decode("utf-8", "replace").split("\r\n"):
                if line.lower().startswith("content-disposition:"):
                    for token in line.split(";"):
                        token = token.strip()
                        if token.startswith("filename="):
                            filename = os.path.basename(token[len("filename="):].strip('"')) or None
            os.makedirs(snapshot_dir(parts[1]), exist_ok=True)
            path = os.path.join(snapshot_dir(parts[1]), filename or str(uuid.uuid4()))
            with open(path, "wb") as f:
                f.write(data)
            if "fail_upload" in MODES:
                return self.reply(500, error="Service internal error: failed to recover")
            if query.get("checksum", [hashlib.sha256(data).hexdigest()])[0] != hashlib.sha256(data).hexdigest():
                return self.reply(400, error="Bad request: Snapshot checksum mismatch")
            try:
                recovered = read_snapshot(path)
            except Exception as e:  # noqa: BLE001
                return self.reply(400, error="Bad request: invalid snapshot: %s" % e)
            existing = COLLECTIONS.get(parts[1])
            if existing is not None and vectors_config(existing) != vectors_config(recovered):
                # recover.rs: the existing collection's vectors config must equal the snapshot's.
                return self.reply(400, error="Wrong input: Snapshot is not compatible with existing collection: Collection vectors: %s Snapshot Vectors: %s"
                                  % (vectors_config(existing), vectors_config(recovered)))
            if existing is not None and existing.get("shards", 1) != recovered.get("shards", 1):
                return self.reply(400, error="Wrong input: Snapshot is not compatible with existing collection: Collection shard number: %d Snapshot shard number: %d"
                                  % (existing.get("shards", 1), recovered.get("shards", 1)))
            COLLECTIONS[parts[1]] = recovered
            return self.reply(200, True)
        self.reply(404, error="Not found")

    def do_DELETE(self):
        parts, _ = self.route()
        if not self.record():
            return
        if len(parts) == 4 and parts[0] == "collections" and parts[2] == "snapshots":
            if parts[1] not in COLLECTIONS:
                return self.reply(404, error="Not found: Collection `%s` doesn't exist!" % parts[1])
            path = os.path.join(snapshot_dir(parts[1]), os.path.basename(parts[3]))
            if os.path.exists(path):
                os.remove(path)
                return self.reply(200, True)
            return self.reply(404, error="Not found: Snapshot %s not found" % parts[3])
        if len(parts) == 2 and parts[0] == "collections":
            # The collection's snapshot folder stays (Qdrant deletes the collection's data, not its snapshots).
            existed = COLLECTIONS.pop(parts[1], None) is not None
            for a in [a for a, c in ALIASES.items() if c == parts[1]]:
                del ALIASES[a]
            return self.reply(200, existed)
        self.reply(404, error="Not found")


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
