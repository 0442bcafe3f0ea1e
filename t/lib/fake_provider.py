#!/usr/bin/env python3
"""Fake LLM provider for the ngx_llm_cache test suite.

Standard library only.  See t/README.md, section "The fake provider".

    fake_provider.py --port N [--host H] [--redis-port R] [--redis-host H]
                     [--fixtures DIR] [--verbose]

Prints "READY <port>" on stdout once it listens (--port 0 picks a free port).
"""

import argparse
import base64
import hashlib
import http.client
import json
import math
import os
import re
import select
import signal
import socket
import struct
import urllib.parse
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")

# The first "id":"..." of a JSON text; group 1 keeps the key and separator.
ID_RE = re.compile(rb'("id"\s*:\s*)"(?:[^"\\]|\\.)*"')
# One SSE event: everything up to and including a blank line.
SSE_EVENT_RE = re.compile(rb".*?(?:\r?\n\r?\n)", re.S)
STREAM_TRUE_RE = re.compile(rb'"stream"\s*:\s*true\b')

MODELS_BODY = (
    b'{"object":"list","id":"models","data":['
    b'{"id":"gpt-4.1-mini","object":"model","created":1744316542,"owned_by":"system"},'
    b'{"id":"gpt-4.1","object":"model","created":1744316542,"owned_by":"system"},'
    b'{"id":"text-embedding-3-small","object":"model","created":1705948997,"owned_by":"system"}'
    b']}')

QUIET_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                socket.timeout, TimeoutError)


class State:
    """Call counter and last provider request, shared by all threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = 0
        self.last = None

    def reset(self):
        with self.lock:
            self.calls = 0
            self.last = None

    def record(self, method, path, body):
        with self.lock:
            self.calls += 1
            self.last = (method, path, len(body),
                         hashlib.sha256(body).hexdigest())
            return self.calls

    def snapshot(self):
        with self.lock:
            return self.calls, self.last


# ---------------------------------------------------------------- redis ----

class RedisError(Exception):
    pass


def resp_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def resp_read(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise RedisError("connection closed by redis")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        return RedisError(rest.decode("utf-8", "replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise RedisError("connection closed by redis")
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [resp_read(f) for _ in range(n)]
    raise RedisError("bad reply from redis: %r" % line)


def redis_keys_report(host, port, db=0):
    with socket.create_connection((host, port), timeout=5) as s:
        f = s.makefile("rb")
        s.sendall(resp_command("SELECT", str(db)) + resp_command("KEYS", "*"))
        selected = resp_read(f)
        if isinstance(selected, RedisError):
            raise selected
        keys = resp_read(f)
        if isinstance(keys, RedisError):
            raise keys
        keys = sorted(keys)
        if keys:
            s.sendall(b"".join(resp_command("TTL", k) + resp_command("STRLEN", k)
                               for k in keys))
        lines = [b"keys=%d\n" % len(keys)]
        for k in keys:
            ttl = resp_read(f)
            strlen = resp_read(f)
            if not isinstance(ttl, int):
                ttl = -3
            if not isinstance(strlen, int):   # WRONGTYPE: not a string
                strlen = -1
            lines.append(b"%s ttl=%d bytes=%d\n" % (k, ttl, strlen))
        f.close()
    return b"".join(lines)


def redis_command(host, port, *args):
    with socket.create_connection((host, port), timeout=5) as s:
        f = s.makefile("rb")
        s.sendall(resp_command(*args))
        reply = resp_read(f)
        f.close()
    if isinstance(reply, RedisError):
        raise reply
    return reply


# ---------------------------------------------------------- redis proxy ----

class RedisProxy:
    """A TCP proxy in front of the test Redis that a test can break the way
    networks break: freeze (sockets stay open, nothing is forwarded: a
    partition or a failed-over endpoint; connections accepted meanwhile are
    frozen too), thaw (new connections are forwarded again, frozen ones stay
    dead) and down/up (every connection closed and connects refused, then
    listening again on the same port: a Redis restart)."""

    def __init__(self, host, target_port):
        self.host = host
        self.target_port = target_port
        self.lock = threading.Lock()
        self.conns = {}
        self.frozen = False
        self.accepted = 0
        self.listener = self._listen(0)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _listen(self, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, port))
        s.listen(128)
        return s

    def _accept_loop(self):
        while True:
            listener = self.listener
            if listener is None:
                time.sleep(0.01)
                continue
            try:
                r, _, _ = select.select([listener], [], [], 0.05)
                if not r:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):
                continue
            try:
                upstream = socket.create_connection(
                    (self.host, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            conn = {"c": client, "u": upstream, "frozen": False}
            with self.lock:
                conn["frozen"] = self.frozen
                self.conns[id(conn)] = conn
                self.accepted += 1
            threading.Thread(target=self._pump, args=(conn,),
                             daemon=True).start()

    def _pump(self, conn):
        c, u = conn["c"], conn["u"]
        try:
            while not conn.get("closed"):
                if conn["frozen"]:
                    # forward nothing; only notice the client leaving
                    r, _, _ = select.select([c], [], [], 0.05)
                    if r and c.recv(1, socket.MSG_PEEK) == b"":
                        break
                    time.sleep(0.05)
                    continue
                r, _, _ = select.select([c, u], [], [], 0.05)
                for src in r:
                    data = src.recv(65536)
                    if not data:
                        raise ConnectionResetError()
                    (u if src is c else c).sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            self._close(conn)

    def _close(self, conn):
        conn["closed"] = True
        for sock in (conn["c"], conn["u"]):
            try:
                sock.close()
            except OSError:
                pass
        with self.lock:
            self.conns.pop(id(conn), None)

    def _all(self):
        with self.lock:
            return list(self.conns.values())

    def freeze(self):
        with self.lock:
            self.frozen = True
            self.accepted = 0
            for conn in self.conns.values():
                conn["frozen"] = True

    def thaw(self):
        with self.lock:
            self.frozen = False

    def down(self):
        with self.lock:
            listener, self.listener = self.listener, None
            self.accepted = 0
        if listener is not None:
            listener.close()
        for conn in self._all():
            for sock in (conn["c"], conn["u"]):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            conn["closed"] = True

    def up(self):
        if self.listener is None:
            self.listener = self._listen(self.port)

    def reset(self):
        """Between blocks: listening, nothing frozen, frozen ones closed."""
        self.up()
        self.thaw()
        for conn in self._all():
            if conn["frozen"]:
                conn["closed"] = True

    def stats(self):
        with self.lock:
            conns = list(self.conns.values())
            return ("proxy accepted=%d open=%d frozen=%d listening=%d\n"
                    % (self.accepted, len(conns),
                       sum(1 for x in conns if x["frozen"]),
                       self.listener is not None)).encode()

    def ping(self, timeout=0.2):
        """True when Redis answers PING through the proxy."""
        try:
            with socket.create_connection((self.host, self.port),
                                          timeout=timeout) as s:
                s.sendall(resp_command("PING"))
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False


def keepalive_report(port):
    """The loopback TCP connections to `port` (client side) and how many of
    them have SO_KEEPALIVE on (an established socket with the keepalive
    timer armed: timer_active 2 in /proc/net/tcp)."""
    established = keepalive = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            rem_port = int(fields[2].split(":")[1], 16)
            if rem_port != port or fields[3] != "01":
                continue
            established += 1
            if fields[5].split(":")[0] == "02":
                keepalive += 1
    return b"established=%d keepalive=%d\n" % (established, keepalive)


# Puts the one stored entry back "behind" a lock race: see /__redis/race.
RACE_SCRIPT = ("redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) "
               "redis.call('DEL', KEYS[2])")


def redis_race(host, port, pause, after, hold):
    keys = [k for k in redis_command(host, port, "KEYS", "*")
            if not k.endswith(b":lock")]
    if len(keys) != 1:
        raise RedisError("want one entry in redis, found %d" % len(keys))
    key = keys[0]
    lock = key + b":lock"
    value = redis_command(host, port, "GET", key)
    ttl = max(redis_command(host, port, "TTL", key), 1)
    redis_command(host, port, "DEL", key)
    if hold:
        redis_command(host, port, "SET", lock, "race", "PX", "10000")

    s = socket.create_connection((host, port), timeout=10)
    f = s.makefile("rb")

    def race():
        try:
            sleep_ms(after)
            s.sendall(resp_command("CLIENT", "SETNAME", "llm_race")
                      + resp_command("CLIENT", "PAUSE", str(pause), "WRITE")
                      + resp_command("EVAL", RACE_SCRIPT, "2", key, lock,
                                     value, str(ttl)))
            resp_read(f)
            resp_read(f)
            resp_read(f)    # the script: once the pause is over
        except (OSError, RedisError):
            pass
        finally:
            f.close()
            s.close()

    t = threading.Thread(target=race, daemon=True)
    t.start()
    if after:
        return

    # the script must be queued behind the pause before the answer
    for _ in range(200):
        out = redis_command(host, port, "CLIENT", "LIST")
        if any(b" name=llm_race " in line and b" cmd=eval " in line
               for line in out.split(b"\n")):
            return
        sleep_ms(5)
    raise RedisError("the script did not queue behind CLIENT PAUSE")


# ------------------------------------------------------------- fixtures ----

def substitute_id(data, n):
    return ID_RE.sub(lambda m: m.group(1) + b'"fake-%d"' % n, data, count=1)


def split_events(data):
    events = []
    pos = 0
    for m in SSE_EVENT_RE.finditer(data):
        events.append(m.group(0))
        pos = m.end()
    if pos < len(data):
        events.append(data[pos:])
    return events


def substitute_id_sse(event, n):
    lines = event.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(b"data:"):
            lines[i] = substitute_id(line, n)
    return b"\n".join(lines)


def header_bytes(value):
    """A header value with backslash escapes (\\n, \\r, \\xNN) decoded."""
    return value.encode("latin-1").decode("unicode_escape").encode("latin-1")


def reshape_sse(h, events):
    """X-Fake-Drop, -Append, -Newline and -Chunk: the stream's bytes
    changed (in this order), then sent in pieces of -Chunk bytes (else one
    chunk per event)."""
    append = h.get("X-Fake-Append")
    drop = header_int(h, "X-Fake-Drop")
    newline = (h.get("X-Fake-Newline") or "").strip().lower()
    piece = header_int(h, "X-Fake-Chunk")
    if append is None and not drop and not newline and not piece:
        return events
    body = b"".join(events)
    if drop:
        body = body[:max(0, len(body) - drop)]
    if append is not None:
        body += header_bytes(append)
    if newline == "crlf":
        body = body.replace(b"\n", b"\r\n")
    elif newline == "cr":
        body = body.replace(b"\n", b"\r")
    if piece and piece > 0:
        return [body[i:i + piece] for i in range(0, len(body), piece)]
    return split_events(body)


def pad_json(body, size):
    brace = body.find(b"{")
    if brace < 0:
        return body
    overhead = len(b'"pad":"",')
    k = size - len(body) - overhead
    if k < 0:
        return body
    return body[:brace + 1] + b'"pad":"' + b"x" * k + b'",' + body[brace + 1:]


def header_int(headers, name):
    v = headers.get(name)
    if v is None:
        return None
    try:
        return int(float(v.strip()))
    except ValueError:
        return None


def sleep_ms(ms):
    if ms and ms > 0:
        time.sleep(ms / 1000.0)


# ------------------------------------------------------------- embedder ----

EMBED_DEFAULT_DIMS = 64
EMBED_MAX_DIMS = 16384
EMBED_FAULTS = ("fail", "delay", "malformed", "wrong_dims")
# lowercase text splits into tokens on anything not a letter or a digit
EMBED_SPLIT_RE = re.compile(r"[\W_]+")


class EmbedError(Exception):
    pass


def f32(x):
    """x rounded to the nearest float32 (as a Python float)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f32_text(v):
    """The shortest decimal that reads back as the float32 v (as the
    OpenAI API prints them), always with a "." or an exponent."""
    for p in range(1, 10):
        s = "%.*g" % (p, v)
        if f32(float(s)) == v:
            break
    if "." not in s and "e" not in s:
        s += ".0"
    return s


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v] if n > 0 else v


def seeded_unit(seed, d):
    """A unit vector drawn from the bytes of SHAKE-256(seed)."""
    raw = hashlib.shake_256(seed.encode("utf-8")).digest(8 * d)
    return unit([int.from_bytes(raw[8 * i:8 * i + 8], "big") / 2.0 ** 63 - 1
                 for i in range(d)])


def embed_tokens(text):
    return [t for t in EMBED_SPLIT_RE.split(text.lower()) if t]


def bag_of_words(text, d):
    """Each token adds +-1 at the dimension its sha256 picks (first 4
    bytes, big endian, mod d; the sign is bit 0 of byte 5: 1 is minus);
    normalized.  Text without tokens counts as one token, itself
    (stripped)."""
    v = [0.0] * d
    for tok in embed_tokens(text) or [text.strip()]:
        h = hashlib.sha256(tok.encode("utf-8")).digest()
        v[int.from_bytes(h[:4], "big") % d] += -1.0 if h[4] & 1 else 1.0
    return unit(v)


def cosine(a, b):
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    if na == 0 or nb == 0:
        return 0.0
    return sum(x * y for x, y in zip(a, b)) / (na * nb)


class Embedder:
    """The fake embedder's state: the fixture table (text -> vector), the
    default dimension, the pending fault, and the calls since the reset.

    A table entry is ("vector", [floats]) (answered as set, whatever the
    dimension asked), ("anchor", seed) (a seeded random unit vector) or
    ("placed", anchor text, cos, seed): cos times the anchor's vector plus
    sqrt(1 - cos^2) times a seeded unit vector orthogonal to it.  The last
    two are computed at the dimension each call asks for, so a placed pair
    has its cosine at every dimension."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.table = {}
            self.dims = EMBED_DEFAULT_DIMS
            self.fault = {}
            self.fault_left = None
            self.calls = 0
            self.inputs = []

    # -- vectors (callers hold the lock) ----------------------------------

    def _vec(self, text, d, depth=0):
        """The vector of `text` (stripped) at dimension d, as doubles."""
        if depth > 1000:
            raise EmbedError("placement chain too long")
        entry = self.table.get(text.strip())
        if entry is None:
            return bag_of_words(text, d)
        if entry[0] == "vector":
            return list(entry[1])
        if entry[0] == "anchor":
            return seeded_unit(entry[1], d)
        _, anchor, cos, seed = entry
        a = unit(self._vec(anchor, d, depth + 1))
        sin = math.sqrt(max(0.0, 1.0 - cos * cos))
        if sin == 0.0:
            return [cos * x for x in a]
        u = orthogonal_unit(a, seed)
        return [cos * x + sin * y for x, y in zip(a, u)]

    def vector(self, text, d):
        """The vector answered for `text` at dimension d, float32 values."""
        with self.lock:
            return [f32(x) for x in self._vec(text, d)]

    # -- control endpoints -------------------------------------------------

    def pair(self, a, b, cos, dims):
        a, b = a.strip(), b.strip()
        if not a or not b or a == b:
            raise EmbedError("a and b must be two different non-empty texts")
        if not -1.0 <= cos <= 1.0:
            raise EmbedError("cos must be in [-1, 1]")
        with self.lock:
            t = a
            while self.table.get(t, ("",))[0] == "placed":
                t = self.table[t][1]
                if t == b:
                    raise EmbedError("a is placed relative to b")
            entry = self.table.get(a)
            if entry is None:
                self.table[a] = ("anchor", "anchor\0" + a + "\0" + b)
            seed = "ortho\0" + a + "\0" + b
            if entry is not None and entry[0] == "vector":
                # a fixed vector: b gets one of its dimension
                va = unit(list(entry[1]))
                if len(va) < 2:
                    raise EmbedError("the vector of a has fewer than 2 values")
                sin = math.sqrt(max(0.0, 1.0 - cos * cos))
                u = orthogonal_unit(va, seed)
                self.table[b] = ("vector", [cos * x + sin * y
                                            for x, y in zip(va, u)])
            else:
                self.table[b] = ("placed", a, cos, seed)
            d = dims or self.dims
            return cosine([f32(x) for x in self._vec(a, d)],
                          [f32(x) for x in self._vec(b, d)])

    def set_vector(self, text, vec):
        text = text.strip()
        if not text:
            raise EmbedError("text must be a non-empty string")
        with self.lock:
            self.table[text] = ("vector", [float(x) for x in vec])

    def configure(self, query):
        """/__embed/config: dims=N sets the default; any fault argument
        replaces the pending fault (count=K: for the next K calls)."""
        args = {k: v[-1] for k, v in query.items()}
        for k in ("dims", "fail", "delay", "malformed", "wrong_dims", "count",
                  "clear"):
            if k in args:
                try:
                    args[k] = int(args[k])
                except ValueError:
                    raise EmbedError("%s must be an integer" % k)
        if "dims" in args and not 1 <= args["dims"] <= EMBED_MAX_DIMS:
            raise EmbedError("dims must be 1..%d" % EMBED_MAX_DIMS)
        with self.lock:
            if "dims" in args:
                self.dims = args["dims"]
            if args.get("clear"):
                self.fault, self.fault_left = {}, None
            if any(k in args for k in EMBED_FAULTS):
                self.fault = {k: args[k] for k in EMBED_FAULTS
                              if args.get(k)}
                self.fault_left = args.get("count")
                if self.fault_left is not None and self.fault_left <= 0:
                    self.fault = {}

    def take_call(self, texts):
        """Counts one embedding call; returns (its fault, default dims)."""
        with self.lock:
            self.calls += 1
            self.inputs.extend(texts)
            fault = dict(self.fault)
            if self.fault and self.fault_left is not None:
                self.fault_left -= 1
                if self.fault_left <= 0:
                    self.fault, self.fault_left = {}, None
            return fault, self.dims

    def stats(self):
        with self.lock:
            lines = ["embed_calls=%d\n" % self.calls]
            for t in self.inputs:
                t = (t.replace("\\", "\\\\").replace("\n", "\\n")
                     .replace("\r", "\\r"))
                lines.append("input=%s\n" % t)
            return "".join(lines).encode("utf-8")


def orthogonal_unit(a, seed):
    """A seeded unit vector orthogonal to the unit vector a."""
    for i in range(100):
        r = seeded_unit("%s\0%d" % (seed, i), len(a))
        p = sum(x * y for x, y in zip(r, a))
        u = [x - p * y for x, y in zip(r, a)]
        # once more: what rounding left of a's direction
        p = sum(x * y for x, y in zip(u, a))
        u = [x - p * y for x, y in zip(u, a)]
        n = math.sqrt(sum(x * x for x in u))
        if n > 1e-6:
            return [x / n for x in u]
    raise EmbedError("no orthogonal vector found")


def embed_reply(vectors, model, tokens, encoding):
    items = []
    for i, v in enumerate(vectors):
        if encoding == "base64":
            emb = '"%s"' % base64.b64encode(
                struct.pack("<%df" % len(v), *v)).decode()
        else:
            emb = "[%s]" % ",".join(f32_text(x) for x in v)
        items.append('{"object":"embedding","index":%d,"embedding":%s}'
                     % (i, emb))
    return ('{"object":"list","data":[%s],"model":%s,'
            '"usage":{"prompt_tokens":%d,"total_tokens":%d}}'
            % (",".join(items), json.dumps(model), tokens, tokens)).encode()


def openai_error(status, message, etype):
    return json.dumps({"error": {"message": message, "type": etype,
                                 "param": None, "code": None}},
                      separators=(",", ":")).encode()


# -------------------------------------------------------------- handler ----

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-provider/1.0"
    disable_nagle_algorithm = True

    # every method goes through dispatch()
    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake_provider: %s - %s\n"
                             % (self.address_string(), fmt % args))
            sys.stderr.flush()

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except QUIET_ERRORS:
            self.close_connection = True

    # -- request body ------------------------------------------------------

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionResetError("eof in chunked body")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while True:                 # trailers up to blank line
                        t = self.rfile.readline(65537)
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                data = self.rfile.read(size)
                if len(data) != size:
                    raise ConnectionResetError("eof in chunked body")
                chunks.append(data)
                self.rfile.readline(65537)      # CRLF after the chunk
            return b"".join(chunks)
        cl = self.headers.get("Content-Length")
        if cl:
            n = int(cl)
            data = self.rfile.read(n)
            if len(data) != n:
                raise ConnectionResetError("eof in body")
            return data
        return b""

    # -- response helpers --------------------------------------------------

    def send_plain(self, code, body, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def abort(self):
        """Drop the connection abruptly (X-Fake-Cut)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    # -- dispatch ----------------------------------------------------------

    def dispatch(self):
        try:
            body = self.read_body()
        except (ValueError, TypeError):
            self.close_connection = True
            self.send_plain(400, b"bad request body\n")
            return
        path = self.path.split("?", 1)[0]
        if path.startswith("/__embed/"):
            self.embed_control(path, body)
        elif path.startswith("/__"):
            self.control(path, body)
        else:
            req = None
            if self.command == "POST" and path.endswith("/embeddings"):
                req = self.embedding_request(body)
            if req is not None:
                self.embedder(req)
            else:
                self.provider(path, body)

    def control(self, path, body):
        state = self.server.state
        if path == "/__reset":
            state.reset()
            self.server.embedder.reset()
            self.send_plain(200, b"ok\n")
        elif path == "/__stats":
            calls, _ = state.snapshot()
            self.send_plain(200, b"calls=%d\n" % calls)
        elif path == "/__last":
            _, last = state.snapshot()
            if last is None:
                self.send_plain(200, b"none\n")
            else:
                method, p, n, digest = last
                self.send_plain(200, ("%s %s length=%d sha256=%s\n"
                                      % (method, p, n, digest)).encode())
        elif path == "/__redis/keys":
            query = urllib.parse.parse_qs(self.path.partition("?")[2])
            try:
                out = redis_keys_report(self.server.redis_host,
                                        self.server.redis_port,
                                        int(query.get("db", ["0"])[0]))
            except (OSError, RedisError, ValueError) as e:
                self.send_plain(502, ("redis error: %s\n" % e).encode())
                return
            self.send_plain(200, out)
        elif path == "/__sleep":
            # lets a list of requests wait for a reconnect or an expiry
            query = urllib.parse.parse_qs(self.path.partition("?")[2])
            sleep_ms(int(query.get("ms", ["100"])[0]))
            self.send_plain(200, b"ok\n")
        elif path == "/__redis/clients":
            # the module's connections name themselves "llm_cache"
            try:
                out = redis_command(self.server.redis_host,
                                    self.server.redis_port, "CLIENT", "LIST")
            except (OSError, RedisError, ValueError) as e:
                self.send_plain(502, ("redis error: %s\n" % e).encode())
                return
            n = sum(1 for line in out.split(b"\n")
                    if b" name=llm_cache " in line)
            self.send_plain(200, b"llm_cache clients=%d\n" % n)
        elif path == "/__redis/overwrite":
            # an entry the module would never write, under every cache key
            query = urllib.parse.parse_qs(self.path.partition("?")[2])
            try:
                value = bytes.fromhex(query.get("hex", [""])[0])
                keys = redis_command(self.server.redis_host,
                                     self.server.redis_port, "KEYS", "*")
                n = 0
                for k in keys:
                    if k.endswith(b":lock"):
                        continue
                    redis_command(self.server.redis_host,
                                  self.server.redis_port,
                                  "SET", k, value, "KEEPTTL")
                    n += 1
            except (OSError, RedisError, ValueError) as e:
                self.send_plain(502, ("redis error: %s\n" % e).encode())
                return
            self.send_plain(200, b"overwritten=%d\n" % n)
        elif path == "/__fire":
            self.fire(body)
        elif path == "/__outage":
            self.outage(body)
        elif path == "/__redis/proxy":
            proxy = self.server.proxy
            op = urllib.parse.parse_qs(self.path.partition("?")[2]).get(
                "op", [""])[0]
            if op in ("freeze", "thaw", "down", "up", "reset"):
                getattr(proxy, op)()
            self.send_plain(200, proxy.stats())
        elif path == "/__redis/keepalive":
            query = urllib.parse.parse_qs(self.path.partition("?")[2])
            port = int(query.get("port", [self.server.redis_port])[0])
            self.send_plain(200, keepalive_report(port))
        elif path == "/__redis/fill":
            # set=K: the key K ("x"); copy=N: N copies "<key>.<i>" of each
            # key there is (for a purge of many keys of one namespace)
            query = urllib.parse.parse_qs(self.path.partition("?")[2])
            host, port = self.server.redis_host, self.server.redis_port
            try:
                for k in query.get("set", []):
                    redis_command(host, port, "SET", k, "x")
                n = int(query.get("copy", ["0"])[0])
                if n:
                    for key in redis_command(host, port, "KEYS", "*") or []:
                        if key.endswith(b":lock"):
                            continue
                        args = []
                        for i in range(n):
                            args += [key + b".%d" % i, b"x"]
                        redis_command(host, port, "MSET", *args)
            except (OSError, RedisError, ValueError) as e:
                self.send_plain(502, ("redis error: %s\n" % e).encode())
                return
            self.send_plain(200, b"ok\n")
        elif path == "/__redis/wrongtype":
            # every entry becomes a list: its GET answers WRONGTYPE
            host, port = self.server.redis_host, self.server.redis_port
            try:
                for key in redis_command(host, port, "KEYS", "llm:*") or []:
                    redis_command(host, port, "DEL", key)
                    redis_command(host, port, "RPUSH", key, "x")
            except (OSError, RedisError, ValueError) as e:
                self.send_plain(502, ("redis error: %s\n" % e).encode())
                return
            self.send_plain(200, b"ok\n")
        elif path in ("/__redis/config", "/__redis/replicaof"):
            # maxmemory/policy (an OOM Redis) or REPLICAOF (a read-only one)
            query = urllib.parse.parse_qs(self.path.partition("?")[2])
            cmds = []
            if path == "/__redis/config":
                for k in ("maxmemory", "maxmemory-policy"):
                    if k in query:
                        cmds.append(("CONFIG", "SET", k, query[k][0]))
            elif query.get("port", ["no"])[0] == "no":
                cmds.append(("REPLICAOF", "NO", "ONE"))
            else:
                cmds.append(("REPLICAOF", "127.0.0.1", query["port"][0]))
            try:
                for cmd in cmds:
                    redis_command(self.server.redis_host,
                                  self.server.redis_port, *cmd)
            except (OSError, RedisError, ValueError) as e:
                self.send_plain(502, ("redis error: %s\n" % e).encode())
                return
            self.send_plain(200, b"ok\n")
        elif path == "/__redis/race":
            query = urllib.parse.parse_qs(self.path.partition("?")[2])
            try:
                redis_race(self.server.redis_host, self.server.redis_port,
                           int(query.get("ms", ["300"])[0]),
                           int(query.get("after", ["0"])[0]),
                           query.get("hold", ["0"])[0] == "1")
            except (OSError, RedisError, ValueError) as e:
                self.send_plain(502, ("redis error: %s\n" % e).encode())
                return
            self.send_plain(200, b"ok\n")
        elif path == "/__redis/gets":
            # how many GETs Redis ran (INFO commandstats): L1 hits run none
            try:
                out = redis_command(self.server.redis_host,
                                    self.server.redis_port,
                                    "INFO", "commandstats")
            except (OSError, RedisError, ValueError) as e:
                self.send_plain(502, ("redis error: %s\n" % e).encode())
                return
            m = re.search(rb"cmdstat_get:calls=(\d+)", out)
            if "reset=1" in self.path:
                try:
                    redis_command(self.server.redis_host,
                                  self.server.redis_port,
                                  "CONFIG", "RESETSTAT")
                except (OSError, RedisError, ValueError) as e:
                    self.send_plain(502, ("redis error: %s\n" % e).encode())
                    return
            self.send_plain(200, b"gets=%s\n" % (m.group(1) if m else b"0"))
        elif path in ("/__redis/pause", "/__redis/kill"):
            # make Redis slow (CLIENT PAUSE) or drop its clients
            # (type=pubsub: the subscribers only, the L1 channel)
            query = urllib.parse.parse_qs(self.path.partition("?")[2])
            if path == "/__redis/pause":
                cmd = ("CLIENT", "PAUSE", query.get("ms", ["1000"])[0], "ALL")
            else:
                cmd = ("CLIENT", "KILL", "TYPE",
                       query.get("type", ["normal"])[0], "SKIPME", "yes")
            try:
                redis_command(self.server.redis_host, self.server.redis_port,
                              *cmd)
            except (OSError, RedisError, ValueError) as e:
                self.send_plain(502, ("redis error: %s\n" % e).encode())
                return
            self.send_plain(200, b"ok\n")
        else:
            self.send_plain(404, b"unknown control endpoint\n")

    # -- the fake embedder -------------------------------------------------

    def embedding_request(self, body):
        """The JSON object of an embeddings request the fake embedder
        answers: one with "input", unless that input is the canned
        request's (openai/embeddings-request.json keeps its canned answer,
        counted in /__stats, as before the embedder)."""
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        if not isinstance(obj, dict) or "input" not in obj:
            return None
        canned = self.load_fixture("openai/embeddings-request.json")
        try:
            if canned and obj["input"] == json.loads(canned).get("input"):
                return None
        except (ValueError, UnicodeDecodeError, AttributeError):
            pass
        return obj

    def embedder(self, req):
        """POST .../embeddings with "input": computed vectors.  X-Fake-*
        headers are ignored (the module's subrequest inherits the client's
        headers); faults come from /__embed/config and the URL's query."""
        inp = req["input"]
        texts = [inp] if isinstance(inp, str) else inp
        if not isinstance(texts, list):
            texts = [inp]
        fault, dims = self.server.embedder.take_call(
            [t if isinstance(t, str) else json.dumps(t) for t in texts])
        query = urllib.parse.parse_qs(self.path.partition("?")[2])
        for k in EMBED_FAULTS + ("dims",):
            if k in query:
                try:
                    fault[k] = int(query[k][-1])
                except ValueError:
                    pass
        if fault.get("dims"):
            dims = fault["dims"]

        sleep_ms(fault.get("delay"))
        status = fault.get("fail")
        if status:
            data = self.load_fixture("openai/error-%d.json" % status)
            if data is None:
                data = openai_error(status, "fake embedder error %d" % status,
                                    "server_error")
            self.send_plain(status, data, "application/json")
            return

        if "dimensions" in req:
            dims = req["dimensions"]
        if not texts or not all(isinstance(t, str) and t for t in texts):
            self.send_plain(400, openai_error(400,
                "fake embedder: input must be a non-empty string or a "
                "non-empty list of them", "invalid_request_error"),
                "application/json")
            return
        if (type(dims) is not int or not 1 <= dims <= EMBED_MAX_DIMS):
            self.send_plain(400, openai_error(400,
                "fake embedder: dimensions must be an integer in 1..%d"
                % EMBED_MAX_DIMS, "invalid_request_error"),
                "application/json")
            return
        try:
            vectors = [self.server.embedder.vector(t, dims) for t in texts]
        except EmbedError as e:
            self.send_plain(500, openai_error(500, "fake embedder: %s" % e,
                                              "server_error"),
                            "application/json")
            return
        if fault.get("wrong_dims"):
            vectors = [v + [0.0] for v in vectors]
        model = req.get("model")
        if not isinstance(model, str):
            model = "fake-embed"
        tokens = sum(max(1, len(embed_tokens(t))) for t in texts)
        data = embed_reply(vectors, model, tokens,
                           req.get("encoding_format"))
        if fault.get("malformed"):
            data = data[:len(data) // 2]
        self.send_plain(200, data, "application/json")

    def embed_control(self, path, body):
        """/__embed/pair, /vector, /config, /stats, /cosine."""
        emb = self.server.embedder
        query = urllib.parse.parse_qs(self.path.partition("?")[2],
                                      keep_blank_values=True)
        args = {k: v[-1] for k, v in query.items()}
        if self.command == "POST" and body.strip():
            try:
                obj = json.loads(body)
                if not isinstance(obj, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError, RecursionError) as e:
                self.send_plain(400, ("bad JSON body: %s\n" % e).encode())
                return
            args.update(obj)
        try:
            if path == "/__embed/pair":
                a, b, cos = args.get("a"), args.get("b"), args.get("cos")
                if not isinstance(a, str) or not isinstance(b, str):
                    raise EmbedError("want a and b (texts) and cos")
                try:
                    cos = float(cos)
                    dims = int(args.get("dims") or 0)
                except (TypeError, ValueError):
                    raise EmbedError("cos must be a number, dims an integer")
                if dims and not 2 <= dims <= EMBED_MAX_DIMS:
                    raise EmbedError("dims must be 2..%d" % EMBED_MAX_DIMS)
                got = emb.pair(a, b, cos, dims)
                self.send_plain(200, b"pair cos=%.6f\n" % got)
            elif path == "/__embed/vector" and self.command == "POST":
                text, vec = args.get("text"), args.get("vector")
                if (not isinstance(text, str) or not isinstance(vec, list)
                        or not vec
                        or not all(type(x) in (int, float) for x in vec)):
                    raise EmbedError("want text (a string) and vector "
                                     "(a list of numbers)")
                emb.set_vector(text, vec)
                self.send_plain(200, b"ok\n")
            elif path == "/__embed/vector":
                text = args.get("text")
                if not isinstance(text, str):
                    raise EmbedError("want text")
                v = emb.vector(text, self.embed_dims(args))
                self.send_plain(200, ("[%s]\n" % ",".join(
                    f32_text(x) for x in v)).encode())
            elif path == "/__embed/cosine":
                a, b = args.get("a"), args.get("b")
                if not isinstance(a, str) or not isinstance(b, str):
                    raise EmbedError("want a and b")
                d = self.embed_dims(args)
                va, vb = emb.vector(a, d), emb.vector(b, d)
                if len(va) != len(vb):
                    raise EmbedError("dimensions differ: %d and %d"
                                     % (len(va), len(vb)))
                self.send_plain(200, b"cos=%.6f\n" % cosine(va, vb))
            elif path == "/__embed/config":
                emb.configure({k: [str(v)] for k, v in args.items()})
                self.send_plain(200, b"ok\n")
            elif path == "/__embed/stats":
                self.send_plain(200, emb.stats())
            else:
                self.send_plain(404, b"unknown control endpoint\n")
        except EmbedError as e:
            self.send_plain(400, ("%s\n" % e).encode())

    def embed_dims(self, args):
        if "dims" not in args:
            with self.server.embedder.lock:
                return self.server.embedder.dims
        try:
            d = int(args["dims"])
        except (TypeError, ValueError):
            raise EmbedError("dims must be an integer")
        if not 1 <= d <= EMBED_MAX_DIMS:
            raise EmbedError("dims must be 1..%d" % EMBED_MAX_DIMS)
        return d

    def fire(self, body):
        """POST /__fire?n=N&gap=MS&path=P[&serial=1]: N clients send this
        body to nginx (port from X-Fire-Port) at once, MS apart (or each
        after the previous one's answer), with this
        request's Authorization, Content-Type and X-Fake-* headers; the
        answer lists each client's status, cache status and body digest,
        then a count per cache status."""
        query = urllib.parse.parse_qs(self.path.partition("?")[2])
        n = int(query.get("n", ["2"])[0])
        gap = int(query.get("gap", ["0"])[0])
        path = query.get("path", ["/v1/chat/completions"])[0]
        port = int(self.headers.get("X-Fire-Port"))
        headers = {k: v for k, v in self.headers.items()
                   if k.lower().startswith("x-fake-")
                   or k.lower() in ("authorization", "content-type")}
        results = [None] * n

        def client(i):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                results[i] = "status=%d cache=%s sha256=%s" % (
                    resp.status, resp.getheader("X-LLM-Cache", "-"),
                    hashlib.sha256(data).hexdigest()[:16])
                if resp.getheader("X-Lock-Wait"):
                    results[i] += " wait=%s" % resp.getheader("X-Lock-Wait")
            except (OSError, http.client.HTTPException) as e:
                results[i] = "error=%s" % type(e).__name__
            finally:
                conn.close()

        serial = query.get("serial", ["0"])[0] == "1"
        threads = []
        for i in range(n):
            t = threading.Thread(target=client, args=(i,))
            t.start()
            threads.append(t)
            if serial:
                t.join()
            if gap:
                sleep_ms(gap)
        for t in threads:
            t.join()

        counts = {}
        for r in results:
            m = re.search(r"cache=(\S+)", r or "")
            k = m.group(1) if m else "none"
            counts[k] = counts.get(k, 0) + 1
        digests = {re.search(r"sha256=(\w+)", r).group(1)
                   for r in results if r and "sha256=" in r}
        out = "".join("client %d %s\n" % (i, r) for i, r in enumerate(results))
        out += " ".join("%s=%d" % kv for kv in sorted(counts.items()))
        out += "\nbodies=%d\n" % len(digests)
        self.send_plain(200, out.encode())

    def outage(self, body):
        """POST /__outage?mode=down|freeze&ms=MS[&during=1][&settle=MS]
        [&rounds=N][&within=MS]: after `settle` ms, the Redis proxy goes
        down (or freezes) for MS ms, with this request sent to nginx (port
        from X-Fire-Port) one after another meanwhile if during=1; then it
        comes back, and the request is sent again every 20 ms until its
        status is not ERROR; all that `rounds` times.  Answers the statuses
        seen during the outages, recovered_ms for each round (from the
        first PING Redis answers through the proxy to the start of the
        first request answered HIT or MISS), whether the slowest was within
        `within` ms, and the connections the proxy accepted since the last
        outage began."""
        query = urllib.parse.parse_qs(self.path.partition("?")[2])
        mode = query.get("mode", ["down"])[0]
        ms = int(query.get("ms", ["1000"])[0])
        during = query.get("during", ["0"])[0] == "1"
        rounds = int(query.get("rounds", ["1"])[0])
        within = int(query.get("within", ["0"])[0])
        path = query.get("path", ["/v1/chat/completions"])[0]
        port = int(self.headers.get("X-Fire-Port"))
        headers = {k: v for k, v in self.headers.items()
                   if k.lower().startswith("x-fake-")
                   or k.lower() in ("authorization", "content-type")}
        proxy = self.server.proxy

        def status():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                return resp.getheader("X-LLM-Cache", "-")
            except (OSError, http.client.HTTPException) as e:
                return "error=%s" % type(e).__name__
            finally:
                conn.close()

        def count(seen):
            counts = {}
            for st in seen:
                counts[st] = counts.get(st, 0) + 1
            return " ".join("%s=%d" % kv for kv in sorted(counts.items()))

        sleep_ms(int(query.get("settle", ["0"])[0]))
        seen, after, recovered = [], [], []
        for _ in range(rounds):
            if mode == "freeze":
                proxy.freeze()
            else:
                proxy.down()
            end = time.time() + ms / 1000.0
            while time.time() < end:
                if during:
                    seen.append(status())
                time.sleep(min(0.1, max(0.0, end - time.time())))
            if mode == "freeze":
                proxy.thaw()
            else:
                proxy.up()

            deadline = time.time() + 10
            while not proxy.ping() and time.time() < deadline:
                time.sleep(0.005)
            t0 = time.time()
            while time.time() < deadline:
                t1 = time.time()
                st = status()
                after.append(st)
                if st in ("HIT", "MISS", "HIT_WAITED", "MISS_WAITED"):
                    recovered.append(int((t1 - t0) * 1000))
                    break
                time.sleep(0.02)
            else:
                break

        out = "during: %s\n" % (count(seen) or "none")
        out += "recovered_ms=%s status=%s after: %s\n" % (
            ",".join(str(r) for r in recovered) or "none",
            after[-1] if after else "none", count(after))
        if within:
            ok = len(recovered) == rounds and max(recovered) <= within
            out += "within %d ms: %s\n" % (within, "yes" if ok else "no")
        with proxy.lock:
            out += "accepted=%d\n" % proxy.accepted
        self.send_plain(200, out.encode())

    def provider(self, path, body):
        n = self.server.state.record(self.command, self.path, body)
        h = self.headers

        status = header_int(h, "X-Fake-Status") or 200
        if n == 1 and header_int(h, "X-Fake-Fail-First"):
            status = header_int(h, "X-Fake-Fail-First")
        delay = header_int(h, "X-Fake-Delay")
        cut = header_int(h, "X-Fake-Cut")
        size = header_int(h, "X-Fake-Size")
        cache_control = h.get("X-Fake-Cache-Control")
        content_type = h.get("X-Fake-Content-Type")

        stream = False
        if status != 200:
            data = self.load_fixture("openai/error-%d.json" % status)
            if data is None:
                data = (b'{"error":{"message":"fake error %d","type":"server_error",'
                        b'"param":null,"code":null}}' % status)
        elif self.command in ("GET", "HEAD") and (
                path == "/v1/models" or path.startswith("/v1/models/")):
            data = MODELS_BODY
        elif self.command in ("GET", "HEAD"):
            status = 404
            data = (b'{"error":{"message":"Unknown request URL: GET %s","type":'
                    b'"invalid_request_error","param":null,"code":"unknown_url"}}'
                    % path.encode("utf-8", "replace"))
        elif h.get("X-Fake-Fixture"):
            rel = h.get("X-Fake-Fixture").strip()
            if rel.startswith("/") or ".." in rel.split("/"):
                rel = "-"
            data = self.load_fixture(rel)
            stream = rel.endswith(".sse")
        elif path.endswith(":streamGenerateContent"):
            stream = True
            data = self.load_fixture("gemini/stream-generate-content.sse")
        elif path.endswith("/chat-messages"):
            if self.wants_stream(body, "response_mode", "streaming"):
                stream = True
                data = self.load_fixture(
                    "dify/chat-messages-response-stream.sse")
            else:
                data = self.load_fixture("dify/chat-messages-response.json")
        elif path.endswith("/responses"):
            if self.wants_stream(body):
                stream = True
                data = self.load_fixture("openai/responses-response-stream.sse")
            else:
                data = self.load_fixture("openai/responses-response.json")
        elif path.endswith("/messages") and self.wants_stream(body):
            stream = True
            data = self.load_fixture("anthropic/messages-response-stream.sse")
        elif path.endswith("/chat/completions"):
            if self.wants_stream(body):
                stream = True
                data = self.load_fixture("openai/chat-response-stream.sse")
            else:
                data = self.load_fixture("openai/chat-response.json")
        elif path.endswith("/embeddings"):
            data = self.load_fixture("openai/embeddings-response.json")
        elif path.endswith("/messages"):
            data = self.load_fixture("anthropic/messages-response.json")
        else:
            data = self.load_fixture("openai/chat-response.json")

        if data is None:
            status, stream = 500, False
            data = (b'{"error":{"message":"fake provider: fixture missing",'
                    b'"type":"server_error","param":null,"code":null}}')

        sleep_ms(delay)

        if stream:
            self.send_sse(n, data, cut, cache_control, content_type)
            return

        data = substitute_id(data, n)
        if size:
            data = pad_json(data, size)

        if h.get("X-Fake-No-Status-Line"):
            # the body alone, no status line or headers (HTTP/0.9 style)
            self.wfile.write(data)
            self.close_connection = True
            return

        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/json")
        # one Cache-Control line for each X-Fake-Cache-Control line
        for cc in h.get_all("X-Fake-Cache-Control") or []:
            self.send_header("Cache-Control", cc)
        for link in h.get_all("X-Fake-Link") or []:
            self.send_header("Link", link)
        if h.get("X-Fake-Locks"):
            self.send_header("X-Fake-Locks", self.redis_locks())
        if status in (204, 304) or status < 200:
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if cut is not None:
            self.wfile.write(data[:len(data) // 2])
            self.abort()
            return
        self.wfile.write(data)

    def redis_locks(self):
        """The values of the "*:lock" keys in Redis: the leader's token."""
        host, port = self.server.redis_host, self.server.redis_port
        try:
            keys = sorted(redis_command(host, port, "KEYS", "*:lock"))
            vals = [redis_command(host, port, "GET", k) or b"-" for k in keys]
        except (OSError, RedisError) as e:
            return "error %s" % e
        return " ".join(v.decode("utf-8", "replace") for v in vals) or "none"

    def send_sse(self, n, data, cut, cache_control, content_type):
        h = self.headers
        event_delay = header_int(h, "X-Fake-Event-Delay")
        hold = header_int(h, "X-Fake-Hold")
        chunked = self.request_version != "HTTP/1.0"
        if not chunked:
            # no chunked encoding for HTTP/1.0: the end of the body is
            # the end of the connection
            self.close_connection = True

        self.send_response(200)
        self.send_header("Content-Type", content_type or "text/event-stream")
        self.send_header("Cache-Control",
                         cache_control if cache_control is not None else "no-cache")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

        events = [substitute_id_sse(ev, n) for ev in split_events(data)]
        events = reshape_sse(h, events)
        if cut is not None and cut <= 0:
            self.abort()
            return
        for i, ev in enumerate(events):
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
            else:
                self.wfile.write(ev)
            self.wfile.flush()
            sent = i + 1
            if sent == 1:
                sleep_ms(hold)
            if cut is not None and sent >= cut:
                self.abort()
                return
            if sent < len(events):
                sleep_ms(event_delay)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    def wants_stream(self, body, member="stream", value=True):
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return member == "stream" and bool(STREAM_TRUE_RE.search(body))
        return isinstance(obj, dict) and obj.get(member) == value \
            and type(obj.get(member)) is type(value)

    def load_fixture(self, rel):
        try:
            with open(os.path.join(self.server.fixtures, rel), "rb") as f:
                return f.read()
        except OSError:
            return None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # the default backlog of 5 overflows when Redis drops and every
    # request goes to the provider at once (each overflow costs ~1 s)
    request_queue_size = 128

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, QUIET_ERRORS):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description="Fake LLM provider for tests")
    ap.add_argument("--port", type=int, default=0,
                    help="port to listen on (0: pick a free one)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--redis-port", type=int, default=6379)
    ap.add_argument("--redis-host", default="127.0.0.1")
    ap.add_argument("--fixtures", default=DEFAULT_FIXTURES)
    ap.add_argument("--verbose", action="store_true",
                    help="log one line per request to stderr")
    args = ap.parse_args()

    server = Server((args.host, args.port), Handler)
    server.state = State()
    server.embedder = Embedder()
    server.fixtures = args.fixtures
    server.redis_host = args.redis_host
    server.redis_port = args.redis_port
    server.verbose = args.verbose
    server.proxy = RedisProxy(args.redis_host, args.redis_port)

    # Block SIGTERM/SIGINT in every thread (the server threads inherit the
    # mask) and wait for them in the main thread, so a signal stops the
    # server at once whichever thread the kernel delivers it to.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    runner = threading.Thread(target=server.serve_forever,
                              kwargs={"poll_interval": 0.05}, daemon=True)
    runner.start()

    sys.stdout.write("PROXY %d\n" % server.proxy.port)
    sys.stdout.write("READY %d\n" % server.server_address[1])
    sys.stdout.flush()

    signal.sigwait(stop_signals)
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
