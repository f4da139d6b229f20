#!/usr/bin/env python3
"""Stand-ins for mongodump, mongorestore and mongosh (no MongoDB server can be installed on the build machines).

They honour the real tools' command-line contract: --archive only in its `=` form or bare (stdout/stdin),
--config=FILE with `uri:` in YAML, unknown options rejected the way go-flags rejects them (exit 1), logs on
stderr, mongorestore's summary line. Data comes from the real mongodump archives in Tests/Fixtures/mongo.

Environment knobs (for tests):
  STANDIN_ARCHIVE        archive mongodump streams (default: dump-w-oplog.archive of the fixtures)
  STANDIN_MODE           ok | fail | hang | garbage | empty
  STANDIN_LOG            append one JSON line per run: argv, whether a config with a uri was read, and for
                         mongorestore the sha256 of the archive bytes it received and the namespaces it restored
  STANDIN_FAILED_DOCS    mongorestore: report this many documents as failed (default 0)
  STANDIN_MARKER         a path; the log says whether the tool could see it (a host /tmp file is invisible when
                         the tool runs through the docker stand-in)
"""
import gzip, hashlib, json, os, struct, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "Fixtures", "mongo"))

COMMON = {"--archive", "--config", "--uri", "--host", "--port", "--username", "--password", "--authenticationDatabase",
          "--gzip", "--quiet", "--verbose", "-v", "--numParallelCollections", "-j", "--db", "-d", "--collection", "-c"}
DUMP = COMMON | {"--oplog", "--excludeCollection", "--excludeCollectionsWithPrefix", "--query", "--readPreference"}
RESTORE = COMMON | {"--nsInclude", "--nsExclude", "--nsFrom", "--nsTo", "--drop", "--dryRun", "--oplogReplay",
                    "--objcheck", "--stopOnError", "--noIndexRestore", "--maintainInsertionOrder"}
VALUED = {"--config", "--uri", "--host", "--port", "--username", "--password", "--authenticationDatabase",
          "--numParallelCollections", "-j", "--db", "-d", "--collection", "-c", "--excludeCollection",
          "--excludeCollectionsWithPrefix", "--query", "--readPreference", "--nsInclude", "--nsExclude", "--nsFrom", "--nsTo"}
MULTI = {"--excludeCollection", "--nsInclude", "--nsExclude", "--nsFrom", "--nsTo"}


def log(msg):
    sys.stderr.write(time.strftime("%Y-%m-%dT%H:%M:%S.000+0000") + "\t" + msg + "\n")
    sys.stderr.flush()


def die(msg):
    sys.stderr.write(msg + "\n")
    sys.exit(1)


def parse(argv, allowed):
    opts = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("-"):
            die("error parsing command line options: positional arguments not allowed: [%s]" % a)
        name, eq, value = a.partition("=")
        if name not in allowed:
            die("error parsing command line options: unknown option \"%s\"" % name.lstrip("-"))
        if name in VALUED and not eq:
            i += 1
            if i >= len(argv):
                die("error parsing command line options: expected argument for flag `%s'" % name)
            value = argv[i]
        elif not eq:
            value = True
        if name in MULTI:
            opts.setdefault(name, []).append(value)
        else:
            opts[name] = value
        i += 1
    return opts


def read_config(opts):
    path = opts.get("--config")
    if not path:
        return None
    with open(path) as f:
        for line in f:
            if line.startswith("uri:"):
                v = line[4:].strip()
                if v.startswith('"'):
                    v = json.loads(v)
                return v
    die("error parsing config file %s: no uri" % path)


def record(entry):
    marker = os.environ.get("STANDIN_MARKER")
    if marker:
        entry["marker_visible"] = os.path.exists(marker)  # a host file: invisible inside the docker stand-in
    path = os.environ.get("STANDIN_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")


def read_archive(data):
    """Namespaces and document counts of an archive, the way mongorestore walks it."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[:4] != b"\x6d\xe2\x99\x81":
        raise ValueError("stream or file does not appear to be a mongodump archive")
    pos = 4
    (n,) = struct.unpack_from("<i", data, pos)
    pos += n
    metas = []
    while True:
        (n,) = struct.unpack_from("<I", data, pos)
        if n == 0xFFFFFFFF:
            pos += 4
            break
        metas.append(data[pos:pos + n])
        pos += n
    counts = {}
    while pos < len(data):
        (n,) = struct.unpack_from("<i", data, pos)
        header = data[pos:pos + n]
        pos += n
        db = cstring_field(header, b"db")
        coll = cstring_field(header, b"collection")
        ns = "oplog" if db == "" and coll == "oplog" else db + "." + coll
        eof = b"\x08EOF\x00\x01" in header
        counts.setdefault(ns, 0)
        while True:
            (m,) = struct.unpack_from("<I", data, pos)
            pos += 4 if m == 0xFFFFFFFF else m
            if m == 0xFFFFFFFF:
                break
            if not eof:
                counts[ns] += 1
    return counts


def cstring_field(doc, name):
    key = b"\x02" + name + b"\x00"
    i = doc.find(key)
    if i < 0:
        return ""
    (n,) = struct.unpack_from("<i", doc, i + len(key))
    start = i + len(key) + 4
    return doc[start:start + n - 1].decode()


def rename(ns, pairs):
    for src, dst in pairs:
        if "*" in src:
            prefix = src.split("*")[0]
            if ns.startswith(prefix):
                return dst.split("*")[0] + ns[len(prefix):]
        elif ns == src:
            return dst
    return ns


def mongodump(argv):
    opts = parse(argv, DUMP)
    uri = read_config(opts)
    record({"tool": "mongodump", "argv": argv, "config_uri": bool(uri)})
    if "--archive" not in opts:
        die("stand-in: only --archive dumps are supported")
    if opts.get("--oplog") and opts.get("--db"):
        die("Failed: bad option: --oplog mode only supported on full dumps")
    mode = os.environ.get("STANDIN_MODE", "ok")
    log("connected to: " + (uri.split("@")[-1] if uri else "localhost"))
    if mode == "fail":
        log("Failed: error connecting to db server: server selection error: connection refused")
        sys.exit(1)
    if mode == "hang":
        log("writing test.foo to archive on stdout")
        while True:
            time.sleep(1)
    out = sys.stdout.buffer
    if mode == "garbage":
        out.write(os.urandom(5000))
        out.flush()
        return
    if mode == "empty":
        return
    archive = os.environ.get("STANDIN_ARCHIVE", os.path.join(FIXTURES, "dump-w-oplog.archive"))
    dest = opts["--archive"]
    if os.path.getsize(archive) > 1 << 20 and not opts.get("--gzip") and (dest is True or dest == "-"):
        # A large archive (the benchmarks'): streamed in 1 MiB pieces, as mongodump streams, never held whole.
        with open(archive, "rb") as f:
            while True:
                piece = f.read(1 << 20)
                if not piece:
                    break
                out.write(piece)
        out.flush()
        log("done dumping (archive %d bytes)" % os.path.getsize(archive))
        return
    with open(archive, "rb") as f:
        data = f.read()
    if opts.get("--gzip"):
        data = gzip.compress(data)
    if dest is True or dest == "-":
        for i in range(0, len(data), 1000):
            out.write(data[i:i + 1000])
        out.flush()
    else:
        with open(dest, "wb") as f:
            f.write(data)
    log("done dumping (archive %d bytes)" % len(data))


def mongorestore(argv):
    opts = parse(argv, RESTORE)
    uri = read_config(opts)
    mode = os.environ.get("STANDIN_MODE", "ok")
    src = opts.get("--archive")
    data = sys.stdin.buffer.read() if src is True or src == "-" or src is None else open(src, "rb").read()
    entry = {"tool": "mongorestore", "argv": argv, "config_uri": bool(uri), "sha256": hashlib.sha256(data).hexdigest(),
             "bytes": len(data)}
    if mode == "hang":
        record(entry)
        while True:
            time.sleep(1)
    if mode == "fail":
        record(entry)
        log("Failed: error connecting to db server: connection refused")
        sys.exit(1)
    if opts.get("--gzip") and data[:2] != b"\x1f\x8b":
        die("Failed: gzip: invalid header")
    try:
        counts = read_archive(data)
    except Exception as e:  # noqa: BLE001
        record(entry)
        log("Failed: %s" % e)
        sys.exit(1)
    pairs = list(zip(opts.get("--nsFrom", []), opts.get("--nsTo", [])))
    includes = opts.get("--nsInclude", [])
    excludes = opts.get("--nsExclude", [])
    def match(p, ns):
        return ns.startswith(p.split("*")[0]) if "*" in p else ns == p
    def included(ns):
        return (not includes or any(match(p, ns) for p in includes)) and not any(match(p, ns) for p in excludes)
    restored = {rename(ns, pairs): n for ns, n in counts.items()
                if (ns != "oplog" or opts.get("--oplogReplay")) and included(ns)}
    entry["restored"] = restored
    record(entry)
    if opts.get("--dryRun"):
        log("dry run completed")
        return
    failed = int(os.environ.get("STANDIN_FAILED_DOCS", "0"))
    for ns, n in sorted(restored.items()):
        if opts.get("--drop"):
            log("dropping collection %s before restoring" % ns)
        log("finished restoring %s (%d documents, 0 failures)" % (ns, n))
    total = sum(restored.values())
    log("%d document(s) restored successfully. %d document(s) failed to restore." % (total - failed, failed))


def mongosh(argv):
    """Runs nothing: records the databases a script would drop (the script arrives on stdin)."""
    for a in argv:
        if a not in ("--nodb", "--quiet"):
            die("MongoshInvalidInputError: unknown option %s" % a)
    script = sys.stdin.read()
    import re
    record({"tool": "mongosh", "argv": argv, "connects": "connect(" in script,
            "drops": re.findall(r'getSiblingDB\("([^"]+)"\)\.dropDatabase\(\)', script)})
    if os.environ.get("STANDIN_MONGOSH_MODE") == "fail":
        die("MongoServerError: not authorized")


if __name__ == "__main__":
    tool = os.path.basename(sys.argv[0])
    {"mongodump": mongodump, "mongorestore": mongorestore, "mongosh": mongosh}[tool](sys.argv[1:])
