"""Helpers for the end-to-end tests of the REST bridge (docs/rest-api.md).

Real clients only:

* ``Rest``: one bearer token's view of the API, every request made by the
  curl command line tool (``curl -i``), answers parsed into ``Resp``
  (status, headers, body, JSON).
* ``EventStream``: ``curl -N`` on ``GET /v1/nodes/{node}/events``, read by a
  thread that parses the Server-Sent Events wire format (WHATWG HTML
  §9.2.6) into ``Event`` records; bounded waits for the next event and for
  the server to end the stream.
* ``pipeline``: several requests written in one go on one raw socket (or
  TLS socket), the answers read back in order (RFC 9112 §9.3.2).
* ``new_token``: ``herald token create`` through the CLI.

Everything waits with explicit, bounded timeouts. XMPP clients come from
pubsub_helpers (slixmpp).
"""
import json
import queue
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

import pytest

from e2e_helpers import client_tls_context

USERS = {"alice": "wonderland", "bob": "builder", "carol": "singer"}
TOKEN_RE = re.compile(r"^([0-9a-f]{16})\.[A-Za-z0-9_-]{43}$")
PROBLEM_TYPE = "application/problem+json"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:", "Segmentation fault", "Assertion `", "stack-buffer",
                   "heap-use-after-free")


# --------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------

def new_token(srv, jid="alice@localhost", scope=None, expires=None):
    """`herald token create`; returns the token (the last line of stdout)."""
    args = ["token", "create", "--jid", jid]
    if scope is not None:
        args += ["--scope", scope]
    if expires is not None:
        args += ["--expires", str(expires)]
    r = srv.cli(*args)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, "herald %s failed (%d): %s %s" % (
        " ".join(args), r.returncode, out, r.stderr.decode("utf-8", "replace"))
    tok = out.strip().splitlines()[-1].strip()
    assert TOKEN_RE.match(tok), "the last line of `token create` is not a token: %r" % out
    return tok


def token_id(tok):
    return tok.split(".", 1)[0]


def revoke(srv, tok):
    r = srv.cli("token", "revoke", token_id(tok))
    assert r.returncode == 0, "herald token revoke %s failed (%d): %s" % (
        token_id(tok), r.returncode, r.stderr.decode("utf-8", "replace"))


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------

def enc(segment):
    """One percent-encoded path segment ('/' included)."""
    return urllib.parse.quote(segment, safe="")


def node_path(node, *rest):
    return "/v1/nodes/" + enc(node) + "".join("/" + r for r in rest)


def items_path(node):
    return node_path(node, "items")


def item_path(node, item_id):
    return node_path(node, "items", enc(item_id))


def base_url(srv, https=False):
    if https:
        return "https://127.0.0.1:%d" % srv.https_port
    return "http://127.0.0.1:%d" % srv.http_port


# --------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------

class Resp:
    """One HTTP answer: status, reason, headers [(name, value)], body bytes."""

    def __init__(self, status, reason, headers, body, method="", path=""):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.method = method
        self.path = path

    def header(self, name):
        """The last value of a header (case-insensitive name), or None."""
        name = name.lower()
        found = None
        for k, v in self.headers:
            if k.lower() == name:
                found = v
        return found

    @property
    def ctype(self):
        return (self.header("Content-Type") or "").split(";")[0].strip().lower()

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError("%s %s: the body is not JSON: %r" % (self.method, self.path,
                                                                      self.body[:500]))

    def __repr__(self):
        return "<%s %s -> %d %s %s %r>" % (self.method, self.path, self.status, self.reason,
                                          self.headers, self.body[:600])


def parse_head(head):
    """(status, reason, [(name, value)]) of a response head (bytes)."""
    lines = head.decode("iso-8859-1").split("\r\n")
    m = re.match(r"^HTTP/1\.[01] (\d{3}) ?(.*)$", lines[0])
    assert m, "not an HTTP status line: %r" % lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return int(m.group(1)), m.group(2), headers


def expect(resp, status, what=None):
    """Asserts the status; returns the response."""
    assert resp.status == status, "%sexpected %d, got %r" % (
        (what + ": ") if what else "", status, resp)
    return resp


def assert_problem(resp, status, condition=None, app=None, what=None):
    """RFC 9457 problem details as documented in docs/rest-api.md
    ("Errors"): application/problem+json with type, title, status (equal
    to the HTTP status) and detail; for pubsub errors ``condition`` (the
    XMPP condition), ``pubsub-condition`` and a type of
    urn:herald:problem:<pubsub-condition or condition>. Returns the
    problem object."""
    expect(resp, status, what)
    assert resp.ctype == PROBLEM_TYPE, "%s: error answer is %r, not %s: %r" % (
        what or resp.path, resp.header("Content-Type"), PROBLEM_TYPE, resp)
    p = resp.json()
    assert isinstance(p, dict), resp
    for field in ("type", "title", "status", "detail"):
        assert field in p, "problem without %r: %r" % (field, resp)
    assert p["status"] == status, "problem status %r in a %d answer" % (p["status"], status)
    assert isinstance(p["title"], str) and p["title"], resp
    assert isinstance(p["detail"], str) and p["detail"], resp
    assert isinstance(p["type"], str) and p["type"], resp
    if condition is not None:
        assert p.get("condition") == condition, "%s: expected condition %r, got %r" % (
            what or resp.path, condition, p)
        assert p["type"] == "urn:herald:problem:" + (app or condition), \
            "%s: unexpected problem type %r" % (what or resp.path, p)
    if app is not None:
        assert p.get("pubsub-condition") == app, "%s: expected pubsub-condition %r, got %r" % (
            what or resp.path, app, p)
    if status == 401:
        assert (resp.header("WWW-Authenticate") or "").lower().startswith("bearer"), \
            "401 without WWW-Authenticate: Bearer: %r" % resp
    return p


# --------------------------------------------------------------------------
# curl
# --------------------------------------------------------------------------

def curl_request(srv, method, path, tok=None, body=None, ctype=None, headers=(), https=False,
                 timeout=10, auth=None):
    """One request with the curl CLI. body: dict/list (sent as JSON with
    application/json unless ctype says otherwise), str or bytes. ctype ""
    sends no Content-Type at all. auth: a literal Authorization value
    (overrides tok)."""
    argv = ["curl", "-sS", "-i", "-g", "--path-as-is", "--max-time", str(timeout),
            "-H", "Expect:"]
    if https:
        argv.append("-k")
    if method == "HEAD":
        argv.append("-I")
    else:
        argv += ["-X", method]
    if auth is not None:
        argv += ["-H", "Authorization: %s" % auth]
    elif tok is not None:
        argv += ["-H", "Authorization: Bearer %s" % tok]
    data = None
    if body is not None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            if ctype is None:
                ctype = "application/json"
        else:
            data = body.encode() if isinstance(body, str) else body
        argv += ["--data-binary", "@-"]
    if ctype is not None:
        argv += ["-H", "Content-Type:" if ctype == "" else "Content-Type: %s" % ctype]
    for h in headers:
        argv += ["-H", h]
    argv.append(base_url(srv, https) + path)
    r = subprocess.run(argv, input=data if data is not None else b"", capture_output=True,
                       timeout=timeout + 10)
    assert r.returncode == 0, "curl %s %s failed (%d): %s" % (
        method, path, r.returncode, r.stderr.decode("utf-8", "replace"))
    out = r.stdout
    head, sep, rest = out.partition(b"\r\n\r\n")
    assert sep, "no HTTP answer head from curl: %r" % out[:500]
    status, reason, hdrs = parse_head(head)
    return Resp(status, reason, hdrs, rest, method, path)


def curl_many(srv, urls_paths, tok=None, https=False, timeout=10):
    """One curl invocation for several GETs (curl reuses the connection).
    Returns (stdout bytes, stderr text of -v)."""
    argv = ["curl", "-sS", "-v", "-g", "--max-time", str(timeout)]
    if https:
        argv.append("-k")
    if tok:
        argv += ["-H", "Authorization: Bearer %s" % tok]
    argv += [base_url(srv, https) + p for p in urls_paths]
    r = subprocess.run(argv, capture_output=True, timeout=timeout + 10)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0, "curl failed (%d): %s" % (r.returncode, err)
    return r.stdout, err


class Rest:
    """The API as one token sees it (tok None: no Authorization)."""

    def __init__(self, srv, tok=None, https=False):
        self.srv = srv
        self.tok = tok
        self.https = https

    def req(self, method, path, body=None, **kw):
        kw.setdefault("https", self.https)
        return curl_request(self.srv, method, path, tok=self.tok, body=body, **kw)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.req("PUT", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.req("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)

    # -- common steps, asserting success --------------------------------------
    def create(self, node=None, config=None):
        """POST /v1/nodes; returns the node object."""
        body = {}
        if node is not None:
            body["node"] = node
        if config is not None:
            body["config"] = config
        r = expect(self.post("/v1/nodes", body), 201, "create node %r" % node)
        obj = r.json()
        if node is not None:
            assert obj["node"] == node, r
        assert r.header("Location") == node_path(obj["node"]), r
        return obj

    def publish(self, node, value, item_id=None):
        """POST (or PUT with item_id) a JSON item; returns its id."""
        if item_id is None:
            r = expect(self.post(items_path(node), value), 201, "publish to %r" % node)
        else:
            r = self.put(item_path(node, item_id), value)
            assert r.status in (200, 201), r
        body = r.json()
        assert body["node"] == node and body["id"], r
        return body["id"]

    def items(self, node, **params):
        """GET items (one page); returns the parsed body."""
        qs = ("?" + urllib.parse.urlencode(params)) if params else ""
        return expect(self.get(items_path(node) + qs), 200, "items of %r" % node).json()

    def item(self, node, item_id):
        return expect(self.get(item_path(node, item_id)), 200,
                      "item %r of %r" % (item_id, node)).json()

    def all_items(self, node, page=3):
        """Every item, following "next" cursors; newest first."""
        out, before, pages = [], None, 0
        while True:
            params = {"max": page}
            if before is not None:
                params["before"] = before
            body = self.items(node, **params)
            out += body["items"]
            pages += 1
            assert pages < 1000, "paging does not end"
            if body["next"] is None:
                return out
            before = body["next"]


def rest_server(herald, config=None, users=USERS):
    """A server with the usual accounts and a full-scope token for alice:
    (srv, Rest as alice)."""
    srv = herald(config=config, users=users)
    return srv, Rest(srv, new_token(srv, "alice@localhost"))


def healthy(srv, https=False, allow_errors=()):
    """The server still answers /healthz and its log shows no crash (and no
    error-level line other than those matching allow_errors)."""
    assert srv.running(), "herald is no longer running"
    r = curl_request(srv, "GET", "/healthz", https=https)
    assert r.status == 200 and r.body == b"ok\n", r
    assert_log_clean(srv, allow_errors)


def assert_log_clean(srv, allow_errors=()):
    text = srv.log_text(max_chars=10 ** 7)
    for mark in SANITIZER_MARKS:
        assert mark not in text, "the server log shows %r:\n%s" % (mark, text[-4000:])
    errors = [e for e in re.findall(r"^\S+Z error .*$", text, re.M)
              if not any(re.search(a, e) for a in allow_errors)]
    assert not errors, "the server logged errors: %s" % errors[:10]


# --------------------------------------------------------------------------
# Raw sockets: pipelining
# --------------------------------------------------------------------------

def build_request(method, path, tok=None, body=None, ctype=None, headers=(), close=False):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        ctype = ctype or "application/json"
    elif isinstance(body, str):
        body = body.encode()
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    if tok:
        lines.append("Authorization: Bearer %s" % tok)
    if ctype:
        lines.append("Content-Type: %s" % ctype)
    if body is not None:
        lines.append("Content-Length: %d" % len(body))
    lines += list(headers)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


class RawHttp:
    """A plain or TLS socket to the HTTP listener, reading answers one by
    one (Content-Length framed)."""

    def __init__(self, srv, https=False, timeout=10.0):
        self.timeout = timeout
        port = srv.https_port if https else srv.http_port
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if https:
            s = client_tls_context().wrap_socket(s, server_hostname="localhost")
        self.sock = s
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.eof:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_response(self, method="GET", timeout=None):
        """The next answer (Resp), or None if the connection ended or the
        timeout passed first."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                return None
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        status, reason, headers = parse_head(head)
        resp = Resp(status, reason, headers, b"", method)
        n = int(resp.header("Content-Length") or 0)
        if method == "HEAD" or status in (204, 304):
            n = 0
        while len(rest) < n:
            self.buf = head + b"\r\n\r\n" + rest
            if not self._fill(deadline):
                return None
            head, _, rest = self.buf.partition(b"\r\n\r\n")
        resp.body = rest[:n]
        self.buf = rest[n:]
        return resp

    def read_until_closed(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._fill(deadline):
            pass
        return self.eof

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def pipeline(srv, requests, https=False, timeout=10.0):
    """Writes every request (bytes from build_request) in one sendall on one
    connection, then reads as many answers, in order."""
    c = RawHttp(srv, https, timeout)
    try:
        c.send(b"".join(r for r in requests))
        out = []
        for r in requests:
            method = r.split(b" ", 1)[0].decode()
            resp = c.read_response(method)
            assert resp is not None, "only %d of %d pipelined answers arrived: %r" % (
                len(out), len(requests), c.buf[:300])
            out.append(resp)
        return out
    finally:
        c.close()


# --------------------------------------------------------------------------
# Server-Sent Events with curl -N
# --------------------------------------------------------------------------

class Event:
    def __init__(self, etype, eid, data):
        self.type = etype
        self.id = eid
        self.data = data

    def json(self):
        try:
            return json.loads(self.data)
        except ValueError:
            raise AssertionError("event data is not JSON: %r" % self.data)

    def __repr__(self):
        return "<event %s id=%s data=%s>" % (self.type, self.id, self.data[:300])


_streams = []


class EventStream:
    """``curl -N -i`` on a node's event stream. ``status``/``headers`` once
    the head arrived; events in order through next(); ``retry`` the retry
    field (the server sends it first, so seeing it means the stream is set
    up); ``comments`` the comment lines."""

    def __init__(self, srv, node, tok, last_event_id=None, query=None, https=False,
                 max_time=80):
        path = node_path(node, "events")
        if query:
            path += "?" + query
        argv = ["curl", "-sS", "-N", "-i", "-g", "--max-time", str(max_time),
                "-H", "Accept: text/event-stream", "-H", "Authorization: Bearer %s" % tok]
        if https:
            argv.append("-k")
        if last_event_id is not None:
            argv += ["-H", "Last-Event-ID: %s" % last_event_id]
        argv.append(base_url(srv, https) + path)
        self.path = path
        self.raw = bytearray()
        self.status = None
        self.headers = None
        self.retry = None
        self.comments = []
        self.events = queue.Queue()
        self.all = []  # every event, in order, consumed or not
        self.ended = threading.Event()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0)
        _streams.append(self)
        self._thread = threading.Thread(target=self._reader, daemon=True)
        self._thread.start()

    # -- reading ------------------------------------------------------------
    def _reader(self):
        pending = b""
        fields = {}
        try:
            while True:
                chunk = self.proc.stdout.read1(65536) if hasattr(self.proc.stdout, "read1") \
                    else self.proc.stdout.read(65536)
                if not chunk:
                    break
                self.raw += chunk
                pending += chunk
                if self.status is None:
                    head, sep, rest = pending.partition(b"\r\n\r\n")
                    if not sep:
                        continue
                    self.status, _, self.headers = parse_head(head)
                    pending = rest
                    if self.status != 200:
                        self._ready.set()
                # WHATWG HTML 9.2.6: lines end in LF, CR or CRLF.
                while True:
                    m = re.search(rb"\r\n|\n|\r", pending)
                    if not m or (m.group(0) == b"\r" and m.end() == len(pending)):
                        break
                    line = pending[:m.start()].decode("utf-8", "replace")
                    pending = pending[m.end():]
                    self._line(line, fields)
        except (OSError, ValueError):
            pass
        finally:
            self.ended.set()
            self._ready.set()

    def _line(self, line, fields):
        if line == "":
            if "data" in fields:
                ev = Event(fields.get("event", "message"), fields.get("id"),
                           "\n".join(fields["data"]))
                self.all.append(ev)
                self.events.put(ev)
            fields.clear()
            return
        if line.startswith(":"):
            self.comments.append(line[1:].strip())
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            fields.setdefault("data", []).append(value)
        elif name in ("event", "id"):
            fields[name] = value
        elif name == "retry":
            self.retry = value
            self._ready.set()

    # -- waiting ------------------------------------------------------------
    def header(self, name):
        for k, v in self.headers or []:
            if k.lower() == name.lower():
                return v
        return None

    def wait_ready(self, timeout=10.0):
        """Waits until the server has set the stream up (the head and the
        initial retry field arrived). Asserts a 200 text/event-stream."""
        assert self._ready.wait(timeout), "no event stream head within %.0f s: %r" % (
            timeout, bytes(self.raw[:500]))
        assert self.status == 200, "event stream answered %s: %r" % (self.status,
                                                                     bytes(self.raw[:800]))
        ctype = (self.header("Content-Type") or "").split(";")[0].strip()
        assert ctype == "text/event-stream", "event stream of type %r" % ctype
        assert self.retry is not None or self.ended.is_set(), self.raw
        return self

    def next(self, timeout=5.0, what="event"):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no %s on %s within %.0f s (ended: %s; received so far: %r)" % (
                what, self.path, timeout, self.ended.is_set(), bytes(self.raw[-1500:])))

    def take(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        return [self.next(max(0.05, deadline - time.monotonic()),
                          "event %d of %d" % (i + 1, n)) for i in range(n)]

    def pending(self):
        """Events received and not yet consumed."""
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def wait_ended(self, timeout=10.0):
        """True when the server ended the stream (curl got EOF) in time."""
        return self.ended.wait(timeout)

    def close(self):
        """Disconnects (ends the curl process this helper started)."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.ended.wait(5)
        for f in (self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


def close_streams():
    while _streams:
        _streams.pop().close()


@pytest.fixture(autouse=True)
def _rest_streams(herald):
    """Set up after (so torn down before) the herald fixture: every curl -N
    a test started is ended before its server is stopped."""
    yield
    close_streams()


async def in_thread(fn, *args):
    """Runs a blocking helper (curl, an event wait) off the event loop, so
    that slixmpp clients keep reading meanwhile."""
    import asyncio
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
