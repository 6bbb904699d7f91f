"""Helpers for the browser-transport tests (test_80_websocket, test_81_bosh,
test_84_web_bad_input): XMPP over WebSocket (RFC 7395) and over BOSH
(XEP-0124/XEP-0206) on Herald's HTTP listener.

* ``http_request``: one HTTP/1.1 request with http.client; status, headers
  (lower-case names) and body.
* ``WsConn``: a tiny RFC 6455 client on a raw socket (Python's stdlib has no
  WebSocket client): the opening handshake (Sec-WebSocket-Accept checked),
  masked frames, control frames, and deliberately broken frames.
* ``WsXmpp``: XMPP over a ``WsConn`` with the RFC 7395 framing (<open/>,
  <close/>, one element per message), SASL SCRAM-SHA-1 (RFC 5802, written
  here) or PLAIN, bind.
* ``Bosh``: a raw BOSH client (session creation, rid bookkeeping, requests
  in flight on their own connections).
* ``NodeClient``: a Node.js client library (tests/web/*.js: xmpp.js over
  WebSocket, strophe.js over BOSH) driven line by line with JSON over its
  stdin/stdout from an asyncio test, next to slixmpp clients.
* ``still_serves``: after hostile input, a TCP XMPP login and GET /healthz
  must still succeed.

Sanitizer builds are slower: waits scale with HERALD_E2E_SLOWDOWN.
"""
import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import struct
import time
import xml.etree.ElementTree as ET

import pytest

from e2e_helpers import (DOMAIN, NS_BIND, NS_CLIENT, NS_SASL, NS_STREAM, RawStream, q,
                         show)

SLOWDOWN = max(1.0, float(os.environ.get("HERALD_E2E_SLOWDOWN", "1")))
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WEB_DIR = os.path.join(ROOT, "tests", "web")

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
NS_STREAM_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
NS_XML = "http://www.w3.org/XML/1998/namespace"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def scaled(seconds):
    return seconds * SLOWDOWN


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

class HttpResp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value (last one wins)
        self.body = body

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "HTTP %d %r %r" % (self.status, self.headers, self.body[:2000])


def tls_client_context():
    """Herald's certificate is self-signed: no verification on loopback."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http_request(port, method, path, body=None, headers=None, timeout=None, https=False):
    """One request on a fresh connection (TLS with https); returns HttpResp."""
    if https:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout or scaled(10),
                                           context=tls_client_context())
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout or scaled(10))
    try:
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=dict(headers or {}))
        r = conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        return HttpResp(r.status, hdrs, data)
    finally:
        conn.close()


def metrics(srv):
    """/metrics as {'name{labels}': float}."""
    r = http_request(srv.http_port, "GET", "/metrics")
    assert r.status == 200, "GET /metrics: %r" % r
    out = {}
    for line in r.text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name.replace(" ", "")] = float(value)
        except ValueError:
            pass
    return out


def metric(m, name, **labels):
    """The value of one series; labels given as keyword arguments, in any
    order in the exposition. None when absent."""
    for key, v in m.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if got == {k: str(v2) for k, v2 in labels.items()}:
            return v
    return None


async def wait_metric(srv, name, want, timeout=None, **labels):
    """Polls /metrics until the metric has the wanted value (or the time
    is up); returns the last value read."""
    deadline = time.monotonic() + (timeout or scaled(5))
    while True:
        v = metric(metrics(srv), name, **labels)
        if v == want or time.monotonic() > deadline:
            return v
        await asyncio.sleep(0.05)


def still_serves(srv, user, password):
    """After hostile input: GET /healthz answers 200 and a TCP XMPP login
    (STARTTLS, PLAIN, bind) works."""
    r = http_request(srv.http_port, "GET", "/healthz")
    assert r.status == 200, "GET /healthz after the hostile input: %r" % r
    s = RawStream(srv.port, timeout=scaled(10))
    try:
        jid = s.login(user, password, resource="witness")
        assert jid.startswith("%s@%s/" % (user, DOMAIN)), jid
    finally:
        s.sock.close()
    assert srv.running(), "herald is no longer running"


# --------------------------------------------------------------------------
# WebSocket (RFC 6455) by hand
# --------------------------------------------------------------------------

class WsClosed(Exception):
    pass


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def read_http_head(sock, deadline):
    """Reads up to the end of an HTTP response head; returns (status, headers
    lower-case dict, head text, bytes after the head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before a complete HTTP head: %r" % data)
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, head.decode("iso-8859-1"), rest


class WsConn:
    """A WebSocket client connection. ``handshake`` returns the HTTP answer;
    after a 101, frames go both ways. Pings from the server are answered
    with pongs (and counted) unless auto_pong is off."""

    def __init__(self, port, host="127.0.0.1", timeout=None, tls=False):
        self.timeout = timeout or scaled(10)
        self.sock = socket.create_connection((host, port), timeout=self.timeout)
        if tls:
            self.sock = tls_client_context().wrap_socket(self.sock, server_hostname=DOMAIN)
        self.buf = b""
        self.pings = 0
        self.auto_pong = True
        self.close_code = None     # code of the server's close frame
        self.close_reason = b""
        self.eof = False
        self.status = None
        self.headers = {}
        self.body = b""

    def handshake(self, path="/xmpp-websocket", protocols=("xmpp",), origin=None,
                  host_header=None, extra=(), upgrade=True):
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path,
                 "Host: %s" % (host_header or "127.0.0.1:%d" % self.sock.getpeername()[1])]
        if upgrade:
            lines += ["Upgrade: websocket", "Connection: Upgrade",
                      "Sec-WebSocket-Key: %s" % key, "Sec-WebSocket-Version: 13"]
        if protocols:
            lines.append("Sec-WebSocket-Protocol: %s" % ", ".join(protocols))
        if origin:
            lines.append("Origin: %s" % origin)
        lines += list(extra)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        deadline = time.monotonic() + self.timeout
        self.status, self.headers, self.head, rest = read_http_head(self.sock, deadline)
        if self.status == 101:
            self.buf = rest
            assert self.headers.get("sec-websocket-accept") == ws_accept(key), \
                "wrong Sec-WebSocket-Accept in %r" % self.head
        else:
            # Read the body (Content-Length) for the assertion messages.
            n = int(self.headers.get("content-length", "0") or 0)
            body = rest
            while len(body) < n:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            self.body = body
        return self.status

    # -- frames --------------------------------------------------------------
    @staticmethod
    def frame(opcode, payload, fin=True, mask=True, rsv=0, mask_key=None):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if not mask:
            return head + payload
        key = mask_key or os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 4096 else \
            _xor_mask(payload, key)
        return head + key + masked

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text)

    def send_close(self, code=1000, reason=b""):
        self.send_frame(OP_CLOSE, struct.pack("!H", code) + reason)

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete frame in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                raise WsClosed("connection closed by the server (EOF)")
            self.buf += chunk

    def recv_frame(self, timeout=None):
        """One frame: (fin, opcode, payload). Raises WsClosed on EOF and
        socket.timeout on timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._fill(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._fill(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        assert not b1 & 0x80, "the server sent a masked frame (RFC 6455 5.1 forbids it)"
        assert not b0 & 0x70, "the server set reserved bits: %#x" % b0
        self._fill(pos + n, deadline)
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_message(self, timeout=None):
        """The next data message as (opcode, payload) with fragments joined;
        pings answered; a close frame is recorded, answered and raises
        WsClosed."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        parts, first = [], None
        while True:
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if op == OP_PING:
                self.pings += 1
                if self.auto_pong:
                    self.send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 \
                    else 1005
                self.close_reason = payload[2:]
                try:
                    self.send_frame(OP_CLOSE, payload[:2])
                except OSError:
                    pass
                raise WsClosed("close frame %d %r" % (self.close_code, self.close_reason))
            if first is None:
                first = op
            parts.append(payload)
            if fin:
                return first, b"".join(parts)

    def wait_close(self, timeout=None):
        """Reads (and drops data messages) until the server's close frame or
        EOF; returns (close code or None, data messages seen)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        seen = []
        while True:
            try:
                seen.append(self.recv_message(max(0.0, deadline - time.monotonic())))
            except WsClosed:
                return self.close_code, seen
            except socket.timeout:
                raise AssertionError("the server neither sent a close frame nor closed the "
                                     "connection in time; got %r" % seen)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _xor_mask(payload, key):
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


# --------------------------------------------------------------------------
# SCRAM-SHA-1 (RFC 5802), client side
# --------------------------------------------------------------------------

class Scram:
    def __init__(self, user, password, hashname="sha1"):
        self.user, self.password, self.h = user, password, hashname
        self.cnonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"),
                                       self.cnonce)

    def first(self):
        return "n,," + self.first_bare

    def final(self, server_first):
        f = dict(kv.split("=", 1) for kv in server_first.split(","))
        assert f["r"].startswith(self.cnonce), "server nonce does not extend ours: %r" % f
        salted = hashlib.pbkdf2_hmac(self.h, self.password.encode(),
                                     base64.b64decode(f["s"]), int(f["i"]))
        ckey = hmac.new(salted, b"Client Key", self.h).digest()
        skey = hmac.new(salted, b"Server Key", self.h).digest()
        stored = hashlib.new(self.h, ckey).digest()
        without_proof = "c=biws,r=%s" % f["r"]
        auth_msg = ",".join([self.first_bare, server_first, without_proof]).encode()
        sig = hmac.new(stored, auth_msg, self.h).digest()
        proof = bytes(a ^ b for a, b in zip(ckey, sig))
        self.server_sig = base64.b64encode(hmac.new(skey, auth_msg, self.h).digest()).decode()
        return without_proof + ",p=" + base64.b64encode(proof).decode()

    def verify(self, server_final):
        f = dict(kv.split("=", 1) for kv in server_final.split(","))
        assert f.get("v") == self.server_sig, "wrong server signature: %r" % server_final


def b64e(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def b64d(s):
    return base64.b64decode(s or "").decode()


# --------------------------------------------------------------------------
# XMPP over WebSocket (RFC 7395)
# --------------------------------------------------------------------------

OPEN = "<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, DOMAIN)
CLOSE = "<close xmlns='%s'/>" % NS_FRAMING


class WsXmpp:
    """RFC 7395 over a WsConn that completed its handshake. Every text
    message from the server must be one well-formed element; ``messages``
    keeps the raw text of each."""

    def __init__(self, ws):
        self.ws = ws
        self.messages = []
        self.pending = []

    @classmethod
    def connect(cls, srv, tls=False, **kw):
        ws = WsConn(srv.https_port if tls else srv.http_port, tls=tls)
        status = ws.handshake(**kw)
        assert status == 101, "WebSocket handshake: HTTP %d\n%s\n%r" % (status, ws.head, ws.body)
        assert ws.headers.get("sec-websocket-protocol") == "xmpp", \
            "101 without 'Sec-WebSocket-Protocol: xmpp' (RFC 7395 3.2): %s" % ws.head
        return cls(ws)

    def send(self, text):
        self.ws.send_text(text)

    def recv(self, timeout=None):
        """The next element from the server (parsed), or raises."""
        if self.pending:
            return self.pending.pop(0)
        op, payload = self.ws.recv_message(timeout)
        assert op == OP_TEXT, "the server sent a non-text data frame (opcode %d): %r" % (
            op, payload[:200])
        text = payload.decode("utf-8")
        self.messages.append(text)
        try:
            return ET.fromstring(text)
        except ET.ParseError as e:
            raise AssertionError("the server's WebSocket message is not one well-formed "
                                 "element (RFC 7395 3.3.3): %r (%s)" % (text, e))

    def expect(self, pred, what, timeout=None):
        """The first element satisfying pred (others are kept for later)."""
        deadline = time.monotonic() + (timeout or scaled(10))
        for i, el in enumerate(self.pending):
            if pred(el):
                return self.pending.pop(i)
        skipped = []
        while True:
            try:
                el = self.recv(max(0.0, deadline - time.monotonic()))
            except socket.timeout:
                raise AssertionError("no %s within the timeout; got %s" % (
                    what, [show(e) for e in skipped]))
            if pred(el):
                self.pending[:0] = skipped
                return el
            skipped.append(el)

    def open(self):
        self.send(OPEN)
        hdr = self.recv()
        assert hdr.tag == q(NS_FRAMING, "open"), "expected the server's <open/>, got %s" % show(hdr)
        assert hdr.get("version") == "1.0" and hdr.get("from") == DOMAIN and hdr.get("id"), \
            "server <open/> lacks version='1.0', from='%s' or id: %s" % (DOMAIN, show(hdr))
        feats = self.recv()
        assert feats.tag == q(NS_STREAM, "features"), "expected <stream:features/>, got %s" % (
            show(feats))
        return hdr, feats

    @staticmethod
    def mechanisms(feats):
        m = feats.find(q(NS_SASL, "mechanisms"))
        return [e.text for e in m] if m is not None else []

    def sasl(self, user, password, mech="SCRAM-SHA-1"):
        """Authenticates; returns the <success/> element."""
        if mech == "PLAIN":
            self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
                      % (NS_SASL, b64e("\0%s\0%s" % (user, password))))
            ans = self.recv()
            assert ans.tag == q(NS_SASL, "success"), "PLAIN over WebSocket: %s" % show(ans)
            return ans
        sc = Scram(user, password, "sha1" if mech == "SCRAM-SHA-1" else "sha256")
        self.send("<auth xmlns='%s' mechanism='%s'>%s</auth>" % (NS_SASL, mech, b64e(sc.first())))
        ch = self.recv()
        assert ch.tag == q(NS_SASL, "challenge"), "%s first answer: %s" % (mech, show(ch))
        self.send("<response xmlns='%s'>%s</response>" % (NS_SASL, b64e(sc.final(b64d(ch.text)))))
        ans = self.recv()
        if ans.tag == q(NS_SASL, "challenge"):  # additional data in a challenge
            sc.verify(b64d(ans.text))
            self.send("<response xmlns='%s'/>" % NS_SASL)
            ans = self.recv()
        else:
            assert ans.tag == q(NS_SASL, "success"), "%s: %s" % (mech, show(ans))
            sc.verify(b64d(ans.text))
        assert ans.tag == q(NS_SASL, "success"), "%s: %s" % (mech, show(ans))
        return ans

    def bind(self, resource="raw-ws"):
        self.send("<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='%s'>"
                  "<resource>%s</resource></bind></iq>" % (NS_BIND, resource))
        res = self.expect(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "bind1",
                          "bind result")
        assert res.get("type") == "result", "bind over WebSocket: %s" % show(res)
        return res.find("%s/%s" % (q(NS_BIND, "bind"), q(NS_BIND, "jid"))).text

    def login(self, user, password, mech="SCRAM-SHA-1", resource="raw-ws"):
        _, feats = self.open()
        assert mech in self.mechanisms(feats), "%s not offered over WebSocket: %s" % (
            mech, show(feats))
        self.sasl(user, password, mech)
        _, feats = self.open()
        assert feats.find(q(NS_BIND, "bind")) is not None, \
            "no <bind/> after SASL over WebSocket: %s" % show(feats)
        return self.bind(resource)

    def close(self):
        self.ws.close()


def stream_error_condition(el):
    if el is None or el.tag != q(NS_STREAM, "error"):
        return None
    for child in el:
        if child.tag.startswith("{%s}" % NS_STREAM_ERR) and not child.tag.endswith("}text"):
            return child.tag.rsplit("}", 1)[1]
    return "<no condition>"


# --------------------------------------------------------------------------
# BOSH (XEP-0124 / XEP-0206) by hand
# --------------------------------------------------------------------------

BOSH_HEADERS = {"Content-Type": "text/xml; charset=utf-8"}


def bosh_post(port, body, timeout=None, headers=None, https=False):
    """POST /http-bind; returns (HttpResp, parsed <body/> or None)."""
    hdrs = dict(BOSH_HEADERS)
    hdrs.update(headers or {})
    r = http_request(port, "POST", "/http-bind", body=body, headers=hdrs,
                     timeout=timeout or scaled(20), https=https)
    el = None
    if r.body.strip():
        try:
            el = ET.fromstring(r.body)
        except ET.ParseError:
            el = None
    return r, el


class Bosh:
    """A BOSH session driven by hand: ``create`` sends the session creation
    request; ``req`` sends a body with the next rid and returns the answer's
    <body/>; ``start`` does the same on its own thread-free connection and
    returns a handle to collect later (a request the server holds)."""

    def __init__(self, srv, wait=10, hold=1, https=False):
        self.https = https
        self.port = srv.https_port if https else srv.http_port
        self.rid = int.from_bytes(os.urandom(4), "big") % 1000000 + 1000
        self.sid = None
        self.wait = wait
        self.hold = hold
        self.attrs = {}

    def next_rid(self):
        self.rid += 1
        return self.rid

    def create(self, extra="", wait=None):
        wait = self.wait if wait is None else wait
        body = ("<body rid='%d' xmlns='%s' to='%s' xml:lang='en' wait='%d' hold='%d' "
                "ver='1.6' xmpp:version='1.0' xmlns:xmpp='%s' content='text/xml; charset=utf-8'"
                "%s/>" % (self.rid, NS_HTTPBIND, DOMAIN, wait, self.hold, NS_XBOSH, extra))
        r, el = bosh_post(self.port, body, https=self.https)
        assert r.status == 200 and el is not None and el.tag == q(NS_HTTPBIND, "body"), \
            "BOSH session creation: %r" % r
        assert el.get("type") != "terminate", "session creation refused: %r" % r
        self.sid = el.get("sid")
        self.created_resp = r
        self.attrs = el.attrib
        self.created = el
        return el

    def body(self, children="", rid=None, attrs=""):
        rid = self.next_rid() if rid is None else rid
        return ("<body rid='%d' sid='%s' xmlns='%s'%s>%s</body>"
                % (rid, self.sid, NS_HTTPBIND, attrs, children))

    def req(self, children="", rid=None, attrs="", timeout=None):
        r, el = bosh_post(self.port, self.body(children, rid, attrs), timeout=timeout,
                          https=self.https)
        assert r.status == 200 and el is not None and el.tag == q(NS_HTTPBIND, "body"), \
            "BOSH request answered %r" % r
        return el

    def start(self, children="", rid=None, attrs=""):
        """Sends a request on its own connection without reading the
        answer; returns the connection (read it with ``finish``)."""
        data = self.body(children, rid, attrs).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=scaled(30))
        conn.request("POST", "/http-bind", body=data, headers=BOSH_HEADERS)
        return conn

    @staticmethod
    def finish(conn):
        r = conn.getresponse()
        data = r.read()
        conn.close()
        assert r.status == 200, "held BOSH request: HTTP %d %r" % (r.status, data)
        return ET.fromstring(data)

    # -- XMPP on top ----------------------------------------------------------
    def features_of(self, el):
        f = el.find(q(NS_STREAM, "features"))
        assert f is not None, "no <stream:features/> in %s" % show(el)
        return f

    def collect(self, el, pred, what):
        """pred over el's children, then over further empty polls."""
        for _ in range(5):
            for child in el:
                if pred(child):
                    return child
            el = self.req()
        raise AssertionError("no %s from the BOSH session" % what)

    def login(self, user, password, mech="SCRAM-SHA-1", resource="raw-bosh"):
        el = self.created
        feats = el.find(q(NS_STREAM, "features"))
        while feats is None:
            el = self.req()
            feats = el.find(q(NS_STREAM, "features"))
        mechs = [m.text for m in feats.find(q(NS_SASL, "mechanisms"))] \
            if feats.find(q(NS_SASL, "mechanisms")) is not None else []
        assert mech in mechs, "%s not offered over BOSH: %s" % (mech, show(feats))
        sc = Scram(user, password, "sha1" if mech == "SCRAM-SHA-1" else "sha256")
        el = self.req("<auth xmlns='%s' mechanism='%s'>%s</auth>"
                      % (NS_SASL, mech, b64e(sc.first())))
        ch = self.collect(el, lambda c: c.tag.startswith("{%s}" % NS_SASL), "SASL challenge")
        assert ch.tag == q(NS_SASL, "challenge"), show(ch)
        el = self.req("<response xmlns='%s'>%s</response>"
                      % (NS_SASL, b64e(sc.final(b64d(ch.text)))))
        ok = self.collect(el, lambda c: c.tag.startswith("{%s}" % NS_SASL), "SASL outcome")
        assert ok.tag == q(NS_SASL, "success"), "SCRAM over BOSH: %s" % show(ok)
        sc.verify(b64d(ok.text))
        el = self.req(attrs=" xmpp:restart='true' xmlns:xmpp='%s' to='%s' xml:lang='en'"
                      % (NS_XBOSH, DOMAIN))
        feats = self.collect(el, lambda c: c.tag == q(NS_STREAM, "features"), "features")
        assert feats.find(q(NS_BIND, "bind")) is not None, show(feats)
        el = self.req("<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='%s'>"
                      "<resource>%s</resource></bind></iq>" % (NS_BIND, resource))
        res = self.collect(el, lambda c: c.tag == q(NS_CLIENT, "iq"), "bind result")
        assert res.get("type") == "result", show(res)
        return res.find("%s/%s" % (q(NS_BIND, "bind"), q(NS_BIND, "jid"))).text


# --------------------------------------------------------------------------
# Node.js clients (tests/web)
# --------------------------------------------------------------------------

def require_node():
    return os.environ.get("HERALD_REQUIRE_NODE", "") not in ("", "0")


def node_binary(package_dir):
    """The node executable; skip (or fail with HERALD_REQUIRE_NODE) when
    tests/web/node_modules/<package_dir> is missing."""
    if not os.path.isdir(os.path.join(WEB_DIR, "node_modules", package_dir)):
        msg = ("tests/web/node_modules/%s is missing (run: npm ci --prefix tests/web)"
               % package_dir)
        if require_node():
            pytest.fail("HERALD_REQUIRE_NODE is set but " + msg)
        pytest.skip(msg)
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is not installed but tests/web/node_modules exists"
    return node


class NodeClient:
    """A tests/web/*.js driver in a subprocess. It prints one JSON object per
    line ({"event": ...}); the test sends commands the same way. Events are
    queued; ``expect`` waits for one matching a predicate."""

    def __init__(self, proc, name):
        self.proc = proc
        self.name = name
        self.events = []
        self.stderr = bytearray()
        self.cond = asyncio.Condition()
        self.reader = asyncio.ensure_future(self._read())
        self.err_reader = asyncio.ensure_future(self._read_err())
        self.next_id = 0

    @classmethod
    async def start(cls, script, env, package_dir):
        node = node_binary(package_dir)
        full_env = dict(os.environ)
        full_env.update({"NODE_NO_WARNINGS": "1"})
        full_env.update({k: str(v) for k, v in env.items()})
        proc = await asyncio.create_subprocess_exec(
            node, os.path.join(WEB_DIR, script), cwd=WEB_DIR, env=full_env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=16 << 20)
        return cls(proc, script)

    async def _read(self):
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "junk", "line": line.decode("utf-8", "replace")}
            if ev.get("xml"):
                try:
                    ev["el"] = ET.fromstring(ev["xml"])
                except ET.ParseError:
                    ev["el"] = None
            async with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        async with self.cond:
            self.events.append({"event": "exit"})
            self.cond.notify_all()

    async def _read_err(self):
        while True:
            chunk = await self.proc.stderr.read(65536)
            if not chunk:
                break
            self.stderr += chunk

    def diag(self):
        evs = [{k: v for k, v in e.items() if k != "el"} for e in self.events[-30:]]
        return "%s events: %s\nstderr: %s" % (self.name, json.dumps(evs)[-6000:],
                                              self.stderr.decode("utf-8", "replace")[-4000:])

    def command(self, **cmd):
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())

    async def request(self, **cmd):
        """A command answered by {"event": "reply", "id": n, ...}."""
        self.next_id += 1
        cmd["id"] = self.next_id
        self.command(**cmd)
        ev = await self.expect(lambda e: e.get("event") == "reply" and e.get("id") == cmd["id"],
                               "reply to %s" % cmd["cmd"], consume=True)
        assert ev.get("ok"), "%s: command %r failed: %s\n%s" % (self.name, cmd, ev.get("error"),
                                                                self.diag())
        return ev

    async def expect(self, pred, what, timeout=None, consume=True):
        timeout = timeout or scaled(15)

        def find():
            for i, e in enumerate(self.events):
                if pred(e):
                    return i
            return None
        try:
            async with self.cond:
                await asyncio.wait_for(self.cond.wait_for(
                    lambda: find() is not None or any(e["event"] == "exit" for e in self.events)),
                    timeout)
                i = find()
        except asyncio.TimeoutError:
            i = None
        if i is None:
            raise AssertionError("%s: no %s\n%s" % (self.name, what, self.diag()))
        return self.events.pop(i) if consume else self.events[i]

    async def stanza(self, pred, what, timeout=None):
        ev = await self.expect(lambda e: e.get("event") == "stanza" and e.get("el") is not None
                               and pred(e["el"]), what, timeout)
        return ev["el"]

    async def stop(self, timeout=None):
        """Asks the client to log out and waits for the process to exit."""
        if self.proc.returncode is None:
            try:
                self.command(cmd="quit")
                await self.proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                await asyncio.wait_for(self.proc.wait(), timeout or scaled(10))
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.gather(self.reader, self.err_reader, return_exceptions=True)
        return self.proc.returncode

    def kill(self):
        if self.proc.returncode is None:
            self.proc.kill()
