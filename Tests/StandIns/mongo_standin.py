#!/usr/bin/env python3
"""Stand-ins for mongodump, mongorestore and mongosh (no MongoDB server can be installed on the build machines).

They honour the real tools' command-line contract: --archive only in its `=` form or bare (stdout/stdin),
--config=FILE read with yaml.v2's rules (strict keys, YAML 1.1 escapes), unknown options rejected the way go-flags rejects them (exit 1), logs on
stderr, mongorestore's summary line. Data comes from the real mongodump archives in Tests/Fixtures/mongo.

Environment knobs (for tests):
  STANDIN_ARCHIVE        archive mongodump streams (default: dump-w-oplog.archive of the fixtures)
  STANDIN_MODE           ok | fail | hang | garbage | empty
  STANDIN_LOG            append one JSON line per run: argv, whether a config with a uri was read, and for
                         mongorestore the sha256 of the archive bytes it received and the namespaces it restored
  STANDIN_FAILED_DOCS    mongorestore: report this many documents as failed (default 0)
  STANDIN_TOOLS_VERSION  the Database Tools version whose output mongorestore imitates (default 100.16.0:
                         backquoted namespaces in its count lines; 100.9.0: bare)
  STANDIN_PROGRESS_LINES mongorestore: progress lines printed after the first namespace's count line (default 0)
  STANDIN_OPLOG_SILENT   mongorestore --oplogReplay: say "replaying oplog" but never "applied N oplog entries"
  STANDIN_MONGOSH_MODE   fail: mongosh's statement throws (it still exits 0, as its REPL does)
  STANDIN_RENAME_FAIL    a namespace: mongosh's renameCollection of it fails (11600, interrupted at shutdown), as a
                         server stopping between two renames does
  STANDIN_MARKER         a path; the log says whether the tool could see it (a host /tmp file is invisible when
                         the tool runs through the docker stand-in)
  STANDIN_STATE          a directory standing for the server's data: STATE/<db>/<collection> (names %-quoted)
                         holds the collection's document count (or `view`). mongorestore writes the namespaces it
                         restores into it (after --nsInclude/--nsExclude/--nsFrom/--nsTo, --drop replacing), and
                         mongosh runs the statements of its script against it (renameCollection, drop, count,
                         listCollections, dropDatabase, ping), refusing what the real server refuses. Unset: no
                         state, mongosh only answers as the statement would.
"""
import gzip, hashlib, json, os, struct, sys, time
from urllib.parse import quote as url_quote, unquote as url_unquote

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


# --config, read as mongo-tools reads it: common/options/options.go (ParseConfigFile) reads the whole file and
# calls gopkg.in/yaml.v2's UnmarshalStrict into a struct of four string fields; an unknown or repeated key is an
# error, and so is any double-quoted escape that yaml.v2's scanner (scannerc.go, yaml_parser_scan_flow_scalar)
# does not list: YAML 1.1's, without JSON's `\/`. The error goes out as ParseOptions' ("error parsing command
# line options: error parsing config file PATH: yaml: ..."), exit 1 (mongodump/main, mongorestore/main).
CONFIG_KEYS = ("password", "uri", "sslPEMKeyPassword", "destinationPassword")
YAML_V2_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
                   "r": "\r", "e": "\x1b", " ": " ", '"': '"', "'": "'", "\\": "\\", "N": "\x85", "_": "\xa0",
                   "L": "\u2028", "P": "\u2029"}
YAML_V2_HEX = {"x": 2, "u": 4, "U": 8}


class YAMLError(Exception):
    pass


def yaml_v2_double_quoted(text, line_no):
    """The value of a double-quoted scalar starting at text[0] == '"', and the rest of the line."""
    out, i = [], 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), text[i + 1:]
        if c == "\\":
            e = text[i + 1] if i + 1 < len(text) else ""
            if e in YAML_V2_ESCAPES:
                out.append(YAML_V2_ESCAPES[e])
                i += 2
                continue
            if e in YAML_V2_HEX:
                n = YAML_V2_HEX[e]
                digits = text[i + 2:i + 2 + n]
                if len(digits) != n or any(d not in "0123456789abcdefABCDEF" for d in digits):
                    raise YAMLError("yaml: line %d: did not find expected hexdecimal number" % line_no)
                v = int(digits, 16)
                if 0xD800 <= v <= 0xDFFF or v > 0x10FFFF:
                    raise YAMLError("yaml: line %d: found invalid Unicode character escape code" % line_no)
                out.append(chr(v))
                i += 2 + n
                continue
            raise YAMLError("yaml: line %d: found unknown escape character" % line_no)
        out.append(c)
        i += 1
    raise YAMLError("yaml: line %d: found unexpected end of stream" % line_no)


def yaml_v2_config(text):
    """The keys of a flat `key: scalar` document, with yaml.v2 + UnmarshalStrict's rules for what we write."""
    for ch in text:
        if (ord(ch) < 0x20 and ch not in "\t\n\r") or ord(ch) == 0x7F:
            raise YAMLError("yaml: control characters are not allowed")
    found, errors = {}, []
    for line_no, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, rest = line.partition(":")
        if not sep or key != key.strip() or not key:
            raise YAMLError("yaml: line %d: could not find expected ':'" % line_no)
        rest = rest.strip()
        if rest.startswith('"'):
            value, after = yaml_v2_double_quoted(rest, line_no)
        elif rest.startswith("'"):
            end = rest.find("'", 1)
            while end != -1 and rest[end:end + 2] == "''":
                end = rest.find("'", end + 2)
            if end == -1:
                raise YAMLError("yaml: line %d: found unexpected end of stream" % line_no)
            value, after = rest[1:end].replace("''", "'"), rest[end + 1:]
        else:
            value, after = rest.split(" #")[0].strip(), ""
        if after.strip() and not after.strip().startswith("#"):
            raise YAMLError("yaml: line %d: did not find expected key" % line_no)
        if key in found:
            errors.append('line %d: key "%s" already set in map' % (line_no, key))
        elif key not in CONFIG_KEYS:
            errors.append("line %d: field %s not found in type struct { Password string \"yaml:\\\"password\\\"\"; ... }"
                          % (line_no, key))
        found[key] = value
    if errors:
        raise YAMLError("yaml: unmarshal errors:\n  " + "\n  ".join(errors))
    return found


def read_config(opts):
    path = opts.get("--config")
    if not path:
        return None
    with open(path, "rb") as f:
        data = f.read()
    try:
        config = yaml_v2_config(data.decode("utf-8"))
    except (YAMLError, UnicodeDecodeError) as e:
        die("error parsing command line options: error parsing config file %s: %s" % (path, e))
    uri = config.get("uri") or None
    # connstring.Parse (common/connstring) refuses any other scheme.
    if uri is not None and not uri.startswith(("mongodb://", "mongodb+srv://")):
        die('error parsing command line options: error parsing uri: scheme must be "mongodb" or "mongodb+srv"')
    return uri


def local_address(uri):
    """(host, port) of a connection string naming a server on this machine (127.0.0.1, localhost) with a port;
    None for any other (the stand-ins cannot reach db.internal and do not pretend to check it)."""
    rest = (uri or "").split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = rest.partition(":")
    if host in ("127.0.0.1", "localhost") and port.isdigit():
        return ("127.0.0.1", int(port))
    return None


def published_ports():
    """The 127.0.0.1 ports of the containers the docker stand-in runs (`run -d mongo:X`), from its state file."""
    path = os.environ.get("DOCKER_CONTAINERS") or os.path.join(os.environ.get("TMPDIR") or "/tmp", "kb-docker-containers.json")
    try:
        with open(path) as f:
            return {c.get("port") for c in json.load(f).values()}
    except (OSError, ValueError):
        return set()


def refused(uri):
    """The error a real tool gives when a throwaway mongod (one the docker stand-in started, or one it has just
    removed) does not accept the connection, or None: a drill must wait for it to start. Other addresses are not
    dialled (the tests' sources name servers that do not exist here)."""
    address = local_address(uri)
    if address is None or address[1] not in published_ports() | removed_ports():
        return None
    import socket
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(address)
        return None
    except OSError:
        return "connect ECONNREFUSED %s:%d" % address
    finally:
        s.close()


def removed_ports():
    """Ports of containers the docker stand-in removed: a tool dialling one after the drill is refused too."""
    path = (os.environ.get("DOCKER_CONTAINERS") or os.path.join(os.environ.get("TMPDIR") or "/tmp", "kb-docker-containers.json")) + ".removed"
    try:
        with open(path) as f:
            return {int(line) for line in f if line.strip().isdigit()}
    except OSError:
        return set()


def mongod(argv):
    """What `docker run -d mongo:X` starts here: a listener on --port (127.0.0.1) that accepts connections after
    STANDIN_MONGOD_START_SECONDS (default 1: a real mongod takes seconds to start, and a drill must wait for it),
    and exits after STANDIN_MONGOD_LIFETIME seconds (default 600) if no one stops it."""
    import socket
    port = int(argv[argv.index("--port") + 1])
    time.sleep(float(os.environ.get("STANDIN_MONGOD_START_SECONDS", "1")))
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    srv.settimeout(1)
    until = time.time() + float(os.environ.get("STANDIN_MONGOD_LIFETIME", "600"))
    while time.time() < until:
        try:
            conn, _ = srv.accept()
            conn.close()
        except socket.timeout:
            pass


def unacknowledged(uri):
    """w=0 in the connection string (mongo-tools' WriteConcern.Acknowledged() is then false)."""
    query = (uri or "").partition("?")[2]
    return any(p.split("=", 1)[0].lower() == "w" and p.split("=", 1)[1:] == ["0"] for p in query.replace(";", "&").split("&"))


def go_quote(ns):
    """Go's %#q: a backquoted string when strconv.CanBackquote, else a double-quoted one with Go escapes."""
    if "`" not in ns and all(ord(c) >= 0x20 and c != "\x7f" for c in ns):
        return "`%s`" % ns
    return json.dumps(ns)


def tools_version():
    parts = os.environ.get("STANDIN_TOOLS_VERSION", "100.16.0").split(".")
    return tuple(int(p) for p in parts if p.isdigit())


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


class ServerError(Exception):
    """A command the server answers with ok: 0; the driver under mongosh throws it as MongoServerError."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


class State:
    """The server's databases and collections with their document counts: STATE/<db>/<coll> (STANDIN_STATE)."""

    def __init__(self, root):
        self.root = root

    @staticmethod
    def open():
        root = os.environ.get("STANDIN_STATE")
        if not root:
            return None
        os.makedirs(root, exist_ok=True)
        return State(root)

    def _path(self, db, coll=None):
        path = os.path.join(self.root, url_quote(db, safe=""))
        return path if coll is None else os.path.join(path, url_quote(coll, safe=""))

    def databases(self):
        return sorted(url_unquote(d) for d in os.listdir(self.root) if os.listdir(os.path.join(self.root, d)))

    def collections(self, db):
        """[(name, type)] of a database ("collection" or "view"), by name."""
        path = self._path(db)
        if not os.path.isdir(path):
            return []
        out = []
        for f in sorted(os.listdir(path)):
            with open(os.path.join(path, f)) as h:
                out.append((url_unquote(f), "view" if h.read().strip() == "view" else "collection"))
        return out

    def kind(self, db, coll):
        return dict(self.collections(db)).get(coll)

    def count(self, db, coll):
        try:
            with open(self._path(db, coll)) as h:
                text = h.read().strip()
        except OSError:
            return None
        return 0 if text == "view" else int(text)

    def put(self, db, coll, n):
        check_namespace(db, coll)
        os.makedirs(self._path(db), exist_ok=True)
        with open(self._path(db, coll), "w") as h:
            h.write("%s\n" % n)

    def remove(self, db, coll):
        os.remove(self._path(db, coll))
        if not os.listdir(self._path(db)):
            os.rmdir(self._path(db))

    def drop_database(self, db):
        import shutil
        existed = os.path.isdir(self._path(db))
        shutil.rmtree(self._path(db), ignore_errors=True)
        return existed


def check_namespace(db, coll):
    """The server's naming rules (NamespaceString::validDBName / validCollectionName, and the 255-byte limit)."""
    if not db or len(db.encode()) > 63 or any(c in db for c in '/\\. "$\0'):
        raise ServerError("Invalid database name: '%s'" % db, 73)
    if not coll or "$" in coll or "\0" in coll:
        raise ServerError("Invalid collection name: %s" % coll, 73)
    if len((db + "." + coll).encode()) > 255:
        raise ServerError("Fully qualified namespace is too long. Namespace: %s.%s Max: 255" % (db, coll), 73)


def run_command(state, db, cmd):
    """One database command against the state, answered as mongod answers it (errors raised as ServerError)."""
    if not isinstance(cmd, dict) or not cmd:
        raise ServerError("no such command: ''", 59)
    name = next(iter(cmd))
    if name == "ping":
        return {"ok": 1}
    if name == "renameCollection":
        # src/mongo/db/commands/rename_collection_cmd.cpp and catalog/rename_collection.cpp.
        if db != "admin":
            raise ServerError("renameCollection may only be run against the admin database.", 13)
        unknown = set(cmd) - {"renameCollection", "to", "dropTarget", "stayTemp", "writeConcern", "comment"}
        if unknown:
            raise ServerError("BSON field 'renameCollection.%s' is an unknown field." % sorted(unknown)[0], 40415)
        source, target = cmd.get("renameCollection"), cmd.get("to")
        if not isinstance(source, str) or not isinstance(target, str) or "." not in source or "." not in target:
            raise ServerError("Invalid namespace specified '%s'" % (source if not isinstance(target, str) or "." in str(target) else target), 73)
        sdb, _, scoll = source.partition(".")
        tdb, _, tcoll = target.partition(".")
        check_namespace(tdb, tcoll)
        if source == target:
            raise ServerError("Can't rename a collection to itself", 20)
        if os.environ.get("STANDIN_RENAME_FAIL") == source:
            raise ServerError("interrupted at shutdown", 11600)
        kind = state.kind(sdb, scoll)
        if kind is None:
            raise ServerError("source namespace does not exist", 26)
        if kind == "view":
            raise ServerError("Namespace %s is a view, not a collection" % source, 166)
        if state.kind(tdb, tcoll) is not None:
            if not cmd.get("dropTarget"):
                raise ServerError("target namespace exists", 48)
            if state.kind(tdb, tcoll) == "view":
                raise ServerError("Namespace %s is a view, not a collection" % target, 166)
        n = state.count(sdb, scoll)
        state.put(tdb, tcoll, n)
        state.remove(sdb, scoll)
        return {"ok": 1}
    if name == "drop":
        coll = cmd["drop"]
        if state.kind(db, coll) is None:
            raise ServerError("ns not found", 26)
        state.remove(db, coll)
        return {"ok": 1, "ns": db + "." + coll}
    if name == "count":
        return {"ok": 1, "n": state.count(db, cmd["count"]) or 0}
    if name == "dropDatabase":
        state.drop_database(db)
        return {"ok": 1, "dropped": db}
    if name == "listCollections":
        return {"ok": 1, "cursor": {"firstBatch": [{"name": n, "type": t} for n, t in state.collections(db)]}}
    raise ServerError("no such command: '%s'" % name, 59)


JS_STRING = r'"(?:[^"\\]|\\.)*"'


def run_script(state, script):
    """Runs the statements between `const kb = connect(...);` and the success marker's print, in order, against
    the state: the statement forms kaleem-backup writes (see MongoshScript and the MongoDB kind). Returns the lines
    printed and the error that stopped it (None when every statement ran)."""
    import re
    start = re.search(r'try \{ const kb = connect\(' + JS_STRING + r'\); ', script)
    if start is None:
        return [], "SyntaxError: the stand-in runs only kaleem-backup's try { const kb = connect(...); ... } scripts"
    pos, out = start.end(), []
    decoder = json.JSONDecoder()
    ping = ("const kb_ping = kb.adminCommand({ ping: 1 }); if (kb_ping.ok !== 1) { throw new Error('ping answered ' "
            "+ JSON.stringify(kb_ping)); }")
    infos = re.compile(r'print\((' + JS_STRING + r') \+ JSON\.stringify\(kb\.getSiblingDB\((' + JS_STRING
                       + r')\)\.getCollectionInfos\(\{\}\)\.map\(\(kb_c\) => \[kb_c\.name, kb_c\.type\]\)\)\);')
    dbs = re.compile(r'print\((' + JS_STRING + r') \+ JSON\.stringify\(kb\.adminCommand\(\{"listDatabases": 1, "nameOnly": true\}\)'
                     r'\.databases\.map\(\(kb_d\) => kb_d\.name\)\)\);')
    sibling = re.compile(r'kb\.getSiblingDB\((' + JS_STRING + r')\)\.')
    try:
        while True:
            while script[pos:pos + 1].isspace():
                pos += 1
            if re.match(r'print\(' + JS_STRING + r'\);\s*\} catch', script[pos:]):
                return out, None
            if script.startswith(ping, pos):
                pos += len(ping)
                continue
            m = infos.match(script, pos)
            if m:
                db = json.loads(m.group(2))
                # As Node's JSON.stringify prints: non-ASCII raw, U+2028/U+2029/U+0085 included (not \\u-escaped).
                out.append(json.loads(m.group(1)) + json.dumps([[n, t] for n, t in state.collections(db)], ensure_ascii=False, separators=(",", ":")))
                pos = m.end()
                continue
            m = dbs.match(script, pos)
            if m:
                out.append(json.loads(m.group(1)) + json.dumps(sorted(state.databases()), ensure_ascii=False, separators=(",", ":")))
                pos = m.end()
                continue
            db = "admin"
            m = sibling.match(script, pos)
            if m:
                db = json.loads(m.group(1))
                pos = m.end()
                if script.startswith("dropDatabase();", pos):
                    run_command(state, db, {"dropDatabase": 1})
                    pos += len("dropDatabase();")
                    continue
                if not script.startswith("runCommand(", pos):
                    break
                pos += len("runCommand(")
            elif script.startswith("kb.adminCommand(", pos):
                pos += len("kb.adminCommand(")
            else:
                break
            cmd, end = decoder.raw_decode(script, pos)
            if not script.startswith(");", end):
                break
            pos = end + 2
            run_command(state, db, cmd)
    except ServerError as e:
        return out, "MongoServerError: %s" % e
    except (ValueError, KeyError, TypeError) as e:
        return out, "SyntaxError: %s" % e
    return out, "SyntaxError: the stand-in does not know the statement at: %s" % script[pos:pos + 80]


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
    if opts.get("--oplogReplay"):
        # mongorestore/restore.go ParseAndValidateOptions, before it connects or reads a byte of the archive.
        if opts.get("--nsInclude") or opts.get("--db") or opts.get("-d"):
            die("Failed: cannot use --oplogReplay with includes specified")
        if opts.get("--nsExclude"):
            die("Failed: cannot use --oplogReplay with excludes specified")
        if opts.get("--nsFrom"):
            die("Failed: cannot use --oplogReplay with namespace renames specified")
    if refused(uri):
        # Dialled before the archive is read (restore.New), as below.
        record({"tool": "mongorestore", "argv": argv, "config_uri": bool(uri), "bytes": 0, "refused": True})
        log("Failed: error connecting to db server: server selection error: %s" % refused(uri))
        sys.exit(1)
    if mode == "fail":
        # mongorestore/main.go builds the session (db.NewSessionProvider, which dials the server) in
        # restore.New, before it opens the archive: a refused connection exits without reading a byte of stdin,
        # and whoever feeds it gets EPIPE.
        record({"tool": "mongorestore", "argv": argv, "config_uri": bool(uri), "bytes": 0})
        log("Failed: error connecting to db server: connection refused")
        sys.exit(1)
    data = sys.stdin.buffer.read() if src is True or src == "-" or src is None else open(src, "rb").read()
    entry = {"tool": "mongorestore", "argv": argv, "config_uri": bool(uri), "sha256": hashlib.sha256(data).hexdigest(),
             "bytes": len(data)}
    if mode == "hang":
        record(entry)
        while True:
            time.sleep(1)
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
    replay = bool(opts.get("--oplogReplay"))
    if replay:
        # restore.go, once the archive's prelude is read: "no oplog file to replay".
        if "oplog" not in counts:
            die("Failed: no oplog file to replay; make sure you run mongodump with --oplog")
    def match(p, ns):
        return ns.startswith(p.split("*")[0]) if "*" in p else ns == p
    def included(ns):
        return (not includes or any(match(p, ns) for p in includes)) and not any(match(p, ns) for p in excludes)
    # The oplog is never a collection restored: --oplogReplay applies it after them (restore.go, RestoreOplog).
    restored = {rename(ns, pairs): n for ns, n in counts.items() if ns != "oplog" and included(ns)}
    entry["restored"] = restored
    record(entry)
    if opts.get("--dryRun"):
        log("dry run completed")
        return
    state = State.open()
    if state is not None:
        for ns, n in sorted(restored.items()):
            db, _, coll = ns.partition(".")
            if not opts.get("--drop") and state.count(db, coll) is not None:
                n += state.count(db, coll)  # inserted beside what is there (the stand-in has no _ids to clash)
            try:
                state.put(db, coll, n)
            except ServerError as e:
                log("Failed: %s: error creating collection %s: %s" % (ns, ns, e))
                sys.exit(1)
    failed = int(os.environ.get("STANDIN_FAILED_DOCS", "0"))
    unacked = unacknowledged(uri)
    # mongorestore/restore.go: Result.log prints `finished restoring NS (N document(s), M failure(s))` per
    # namespace, NS formatted with %#q from Database Tools 100.16 on (%v before); with w=0 the driver returns no
    # bulk result, so every count is 0.
    quote = go_quote if tools_version() >= (100, 16) else (lambda ns: ns)
    progress = int(os.environ.get("STANDIN_PROGRESS_LINES", "0"))
    log("preparing collections to restore from")
    for i, (ns, n) in enumerate(sorted(restored.items())):
        log("reading metadata for %s from archive on stdin" % ns)
        if opts.get("--drop"):
            log("dropping collection %s before restoring" % ns)
        log("restoring %s from archive on stdin" % ns)
        log("finished restoring %s (%d %s, 0 failures)" % (quote(ns), 0 if unacked else n,
                                                           "document" if (0 if unacked else n) == 1 else "documents"))
        if i == 0:
            # common/progress: a bar a second per namespace still restoring, which pushes early lines out of a tail.
            for k in range(progress):
                log("[%s] %s  %.1fMB/%.1fMB  (%.1f%%)" % ("#" * (k % 24) + "." * (24 - k % 24), ns, k / 10, progress / 10,
                                                         100.0 * k / max(progress, 1)))
        log("no indexes to restore for collection %s" % ns)
    if replay:
        # restore.go logs "replaying oplog"; oplog.go "applied %v oplog entries" once it is done. The archive
        # fixtures hold no no-op entries, so every entry counts.
        log("replaying oplog")
        if os.environ.get("STANDIN_OPLOG_SILENT") != "1":
            log("applied %d oplog entries" % counts["oplog"])
    total = sum(restored.values())
    if unacked:
        # mongorestore/main/mongorestore.go: the summary only when the write concern is acknowledged.
        log("done")
        return
    log("%d document(s) restored successfully. %d document(s) failed to restore." % (total - failed, failed))


def mongosh(argv):
    """mongosh with a script on stdin: runs nothing, but answers as its REPL does. cli-repl (mongosh's
    packages/cli-repl/src/cli-repl.ts) sets a failing exit code only for --eval and --file: a script piped on
    stdin is read line by line by the REPL, an error thrown by a statement is printed and the next one runs, and
    the process exits 0. kaleem-backup's scripts are one `try { ... print(OK) } catch (e) { print(FAIL + e) }`
    statement: the stand-in prints what that statement would print. It records the databases a script would
    drop."""
    for a in argv:
        if a not in ("--nodb", "--quiet"):
            die("MongoshInvalidInputError: unknown option %s" % a)
    script = sys.stdin.read()
    import re
    record({"tool": "mongosh", "argv": argv, "connects": "connect(" in script,
            "drops": re.findall(r'getSiblingDB\("([^"]+)"\)\.dropDatabase\(\)', script)})
    failing = os.environ.get("STANDIN_MONGOSH_MODE") == "fail"
    target = re.search(r'connect\("([^"]*)"\)', script)
    down = refused(target.group(1)) if target else None
    shape = re.search(r'print\("([^"]*)"\);\s*\}\s*catch\s*\((\w+)\)\s*\{\s*print\("([^"]*)"\s*\+\s*\2\);', script)
    error = "MongoServerError: not authorized on admin to execute command { ping: 1 }"
    if shape is None:
        # Statements outside a try: the REPL prints the error and carries on; exit 0 all the same.
        if failing:
            sys.stderr.write(error + "\n")
        sys.exit(0)
    state = State.open()
    if down:
        sys.stdout.write(shape.group(3) + "MongoNetworkError: " + down + "\n")
    elif failing:
        sys.stdout.write(shape.group(3) + error + "\n")
    elif state is not None:
        # The statements run one after the other; the first that throws ends the try (what ran before stays done).
        printed, problem = run_script(state, script)
        for line in printed:
            sys.stdout.write(line + "\n")
        sys.stdout.write((shape.group(3) + problem if problem else shape.group(1)) + "\n")
    else:
        sys.stdout.write(shape.group(1) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    tool = os.path.basename(sys.argv[0])
    {"mongodump": mongodump, "mongorestore": mongorestore, "mongosh": mongosh, "mongod": mongod}[tool](sys.argv[1:])
