#!/usr/bin/env python3
"""Fake LLM provider for the ngx_llm_cache test suite.

Standard library only.  See t/README.md, section "The fake provider".

    fake_provider.py --port N [--host H] [--redis-port R] [--redis-host H]
                     [--fixtures DIR] [--verbose]

Prints "READY <port>" on stdout once it listens (--port 0 picks a free port).
"""

import argparse
import hashlib
import http.client
import json
import os
import re
import signal
import socket
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
        if path.startswith("/__"):
            self.control(path, body)
        else:
            self.provider(path, body)

    def control(self, path, body):
        state = self.server.state
        if path == "/__reset":
            state.reset()
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
        elif path in ("/__redis/pause", "/__redis/kill"):
            # make Redis slow (CLIENT PAUSE) or drop its clients
            query = urllib.parse.parse_qs(self.path.partition("?")[2])
            if path == "/__redis/pause":
                cmd = ("CLIENT", "PAUSE", query.get("ms", ["1000"])[0], "ALL")
            else:
                cmd = ("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            try:
                redis_command(self.server.redis_host, self.server.redis_port,
                              *cmd)
            except (OSError, RedisError, ValueError) as e:
                self.send_plain(502, ("redis error: %s\n" % e).encode())
                return
            self.send_plain(200, b"ok\n")
        else:
            self.send_plain(404, b"unknown control endpoint\n")

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

        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/json")
        if cache_control is not None:
            self.send_header("Cache-Control", cache_control)
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

        events = split_events(data)
        if cut is not None and cut <= 0:
            self.abort()
            return
        for i, ev in enumerate(events):
            ev = substitute_id_sse(ev, n)
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

    def wants_stream(self, body):
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return bool(STREAM_TRUE_RE.search(body))
        return isinstance(obj, dict) and obj.get("stream") is True

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
    server.fixtures = args.fixtures
    server.redis_host = args.redis_host
    server.redis_port = args.redis_port
    server.verbose = args.verbose

    # Block SIGTERM/SIGINT in every thread (the server threads inherit the
    # mask) and wait for them in the main thread, so a signal stops the
    # server at once whichever thread the kernel delivers it to.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    runner = threading.Thread(target=server.serve_forever,
                              kwargs={"poll_interval": 0.05}, daemon=True)
    runner.start()

    sys.stdout.write("READY %d\n" % server.server_address[1])
    sys.stdout.flush()

    signal.sigwait(stop_signals)
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
