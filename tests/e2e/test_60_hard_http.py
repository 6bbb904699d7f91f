"""Hardening of the HTTP side (issue 11 findings 1, 3, 10 and 13;
docs/http.md "Limits", docs/security.md).

Each test replays an attack of the issue at its sizes (or larger) against
the real binary and asserts the bound that now holds, while a witness XMPP
session keeps pinging (answered within WITNESS_BOUND):

* clients that pipeline requests and never read their answers (plain,
  HTTPS, and item reads with a token) hold at most http.max_outq_bytes of
  answers plus one answer and the stash each, are closed after
  http.write_timeout, and leave RSS near its baseline;
* HTTP connections have their own budget (http.max_connections, per
  address with http.limit_loopback) and cannot lock XMPP clients out;
* header and idle timeouts are absolute (CRLFs or TLS handshake bytes
  trickled in do not extend them);
* event streams whose reader never reads are closed, one that reads goes on;
* a transfer coding other than exactly "chunked" gets 501 and a close.
"""
import os
import re
import socket
import ssl
import threading
import time

import pytest
from e2e_helpers import RawStream, client_tls_context
from hardening_helpers import SLOWDOWN, Witness, rss_kib
from rest_helpers import (USERS, EventStream, Rest, build_request, curl_request, expect,
                          healthy, new_token, node_path, pipeline)
from rest_helpers import _rest_streams  # noqa: F401 (autouse: ends curl -N streams)

KIB = 1024
MIB = 1024 * 1024
OUTQ = 256 * KIB           # http.max_outq_bytes (the default)
STASH = 2 * 64 * KIB       # pipelined bytes held: 64 KiB, plus one read at most
WRITE_TIMEOUT = 3          # http.write_timeout in these tests, seconds
# The sweep runs once a second; a closing connection may drain for a moment.
SWEEP_SLACK = 2.5 * SLOWDOWN
# Memory every connection may cost besides its answers: parser buffers,
# TLS state, libuv handles (generous, so that the bound is about answers).
CONN_OVERHEAD = 256 * KIB
# Whatever the process does besides (heap fragments, LMDB pages touched).
FIXED_SLACK = 8 * MIB
# Under ASan (scripts/test sets HERALD_E2E_SLOWDOWN) every allocation has
# redzones and shadow memory: the memory bounds scale like the time bounds.
MEM_SCALE = SLOWDOWN


def metric(srv, name):
    r = curl_request(srv, "GET", "/metrics")
    m = re.search(r"^%s (\d+)$" % re.escape(name), r.body.decode(), re.M)
    assert m, "no metric %s in /metrics" % name
    return int(m.group(1))


def wait_metric(srv, name, want, timeout):
    """Seconds until metric name reaches want (fails past timeout)."""
    t0 = time.monotonic()
    while True:
        got = metric(srv, name)
        if got >= want:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, (
            "%s is %d after %.1f s, expected %d" % (name, got, timeout, want))
        time.sleep(0.2)


def timed_healthz(srv):
    t0 = time.monotonic()
    r = curl_request(srv, "GET", "/healthz", timeout=30)
    assert r.status == 200, r
    return time.monotonic() - t0


def connect(port, https=False, rcvbuf=4096, timeout=10.0):
    """A client socket with a small receive buffer and MSS, so that an unread
    answer stalls the server's writes soon (on loopback the kernel would
    otherwise size the server's send buffer from a 64 KiB MSS, some 4 MB a
    socket, before any byte stays in Herald's own queue)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    if https:
        s = client_tls_context().wrap_socket(s, server_hostname="localhost")
    return s


class RssPeak:
    """Samples the server's RSS every 50 ms on a thread; peak() in KiB."""

    def __init__(self, pid):
        self.pid = pid
        self.samples = [rss_kib(pid)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.05):
            try:
                self.samples.append(rss_kib(self.pid))
            except (OSError, AssertionError):
                return

    def peak(self):
        self._stop.set()
        self._thread.join(5)
        return max(self.samples)


def unread_flood(srv, n, request, total, https=False, answer_max=0):
    """The attack of finding 1: n connections each write `total` bytes of
    pipelined `request` and never read. Asserts the RSS bound while they are
    open, /healthz and a witness answered meanwhile, every connection closed
    within http.write_timeout + sweep slack, and RSS back near its baseline.
    Returns (baseline, peak, after) in KiB."""
    pid = srv.proc.pid
    port = srv.https_port if https else srv.http_port
    payload = request * (total // len(request))
    baseline = rss_kib(pid)
    timeouts_before = metric(srv, "herald_http_write_timeouts_total")
    socks = []
    with Witness(srv, "alice", USERS["alice"]) as w:
        rss = RssPeak(pid)
        for _ in range(n):
            s = connect(port, https)
            s.sendall(payload)
            socks.append(s)
        sent_at = time.monotonic()
        worst_healthz = max(timed_healthz(srv) for _ in range(3))
        time.sleep(1.0)
        peak = rss.peak()
        print("baseline %d KiB, peak %d KiB, /healthz %.2f s, witness worst %.2f s"
              % (baseline, peak, worst_healthz, w.worst()))
        w.check()
    per_conn = OUTQ + answer_max + STASH + CONN_OVERHEAD
    bound = (n * per_conn + FIXED_SLACK) * MEM_SCALE
    growth = (peak - baseline) * KIB
    assert growth < bound, (
        "RSS grew by %.1f MiB with %d unread connections (bound %.1f MiB = %d x %.0f KiB + "
        "%.0f MiB)" % (growth / MIB, n, bound / MIB, n, per_conn / KIB, FIXED_SLACK / MIB))
    assert worst_healthz < 2.0 * SLOWDOWN, "/healthz took %.2f s during the attack" % worst_healthz
    # Every connection stops making progress as soon as its buffers are
    # full: it is closed within the write timeout plus the sweep's slack.
    waited = wait_metric(srv, "herald_http_write_timeouts_total", timeouts_before + n,
                         WRITE_TIMEOUT + SWEEP_SLACK + 2.0 * SLOWDOWN)
    closed_after = time.monotonic() - sent_at
    assert closed_after < WRITE_TIMEOUT + SWEEP_SLACK + 2.0 * SLOWDOWN, closed_after
    for s in socks:
        s.close()
    time.sleep(1.5)  # the sweep gives freed heap back (trim_heap)
    after = rss_kib(pid)
    assert (after - baseline) * KIB < FIXED_SLACK * MEM_SCALE, (
        "RSS stayed %.1f MiB above its baseline after the connections closed"
        % ((after - baseline) / 1024.0))
    healthy(srv)
    print("after close %d KiB, closed %.1f s after the attack (%.1f s of polling)"
          % (after, closed_after, waited))
    return baseline, peak, after


def hard_server(herald, http=None, c2s=None):
    cfg = {"http": {"write_timeout": WRITE_TIMEOUT}}
    cfg["http"].update(http or {})
    if c2s:
        cfg["c2s"] = c2s
    env = None
    if "ASAN_OPTIONS" in os.environ:
        # ASan keeps freed memory in a quarantine (256 MB by default) and
        # its own allocator, not glibc's, so trim_heap cannot give it back:
        # a small quarantine released often keeps RSS about Herald's heap.
        env = {"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"] +
               ":quarantine_size_mb=4:allocator_release_to_os_interval_ms=200"}
    return herald(config=cfg, users=USERS, env=env)


# --------------------------------------------------------------------------
# Finding 1: answers bounded by the reader
# --------------------------------------------------------------------------

def test_unread_pipelined_openapi_is_bounded(herald):
    """16 connections x 64 KiB of pipelined GET /v1/openapi.json, never
    read (before: 8.7 MB -> 1,009 MB, /healthz 7.2 s, 880 MB kept)."""
    srv = hard_server(herald)
    answer = len(curl_request(srv, "GET", "/v1/openapi.json").body) + 512
    req = build_request("GET", "/v1/openapi.json")
    unread_flood(srv, 16, req, 64 * KIB, answer_max=answer)


def test_unread_pipelined_openapi_over_https_is_bounded(herald):
    """The same over TLS (before: +39.5 MiB per connection, ciphertext of
    every answer encrypted into one buffer)."""
    srv = hard_server(herald)
    answer = len(curl_request(srv, "GET", "/v1/openapi.json").body) + 512
    req = build_request("GET", "/v1/openapi.json")
    unread_flood(srv, 8, req, 64 * KIB, https=True, answer_max=2 * answer)


def test_unread_pipelined_item_reads_are_bounded(herald):
    """With a read token, 27.6 KB of pipelined GET .../items?max=20 on a
    node whose items are 16 KB (before: +232 MiB on one connection)."""
    srv = hard_server(herald)
    alice = Rest(srv, new_token(srv, "alice@localhost"))
    alice.create("big", {"max_items": 20})
    for i in range(20):
        alice.publish("big", {"n": i, "pad": "x" * 16000})
    reader = new_token(srv, "alice@localhost", scope="read")
    path = node_path("big", "items") + "?max=20"
    answer = len(curl_request(srv, "GET", path, tok=reader).body) + 512
    assert answer > 300 * KIB, answer
    req = build_request("GET", path, tok=reader)
    unread_flood(srv, 4, req, 27600, answer_max=answer)


def test_pipelined_answers_still_all_arrive_in_order(herald):
    """The bound delays parsing, it loses nothing: 300 pipelined requests
    whose answers are 40 KB each (12 MB, far over the bound) all come back,
    in order, to a client that reads them."""
    srv = hard_server(herald)
    reqs = []
    for i in range(300):
        reqs.append(build_request("GET", "/v1/openapi.json" if i % 2 == 0 else "/healthz"))
    got = pipeline(srv, reqs, timeout=60)
    assert [r.status for r in got] == [200] * 300
    assert all(r.body == b"ok\n" for r in got[1::2])
    assert len({r.body for r in got[0::2]}) == 1 and len(got[0].body) > 30000


# --------------------------------------------------------------------------
# Finding 3: separate budgets, absolute timeouts
# --------------------------------------------------------------------------

def xmpp_login_and_served(srv, sock):
    """XMPP logins still succeed, and sock (an HTTP connection within the
    budget) is answered."""
    for _ in range(3):
        x = RawStream(srv.port, timeout=10)
        x.login("bob", USERS["bob"])
        x.close()
    sock.sendall(build_request("GET", "/healthz"))
    sock.settimeout(10)
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_http_connections_do_not_lock_out_xmpp(herald):
    """2,100 keep-alive HTTP connections from one address with
    c2s.max_connections = 2000 (before: every XMPP connect failed with
    resource-constraint). HTTP has its own budget: past
    http.max_connections = 2050 the next ones get 503 (one log line per
    burst), and XMPP logins still succeed."""
    srv = hard_server(herald, http={"max_connections": 2050}, c2s={"max_connections": 2000})
    socks = []
    try:
        for _ in range(2100):
            socks.append(socket.create_connection(("127.0.0.1", srv.http_port), timeout=10))
        # The refused ones are answered 503 and closed; the others wait.
        refused = []
        deadline = time.monotonic() + 10 * SLOWDOWN
        for s in socks[2000:]:
            s.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
            try:
                data = s.recv(4096)
            except (socket.timeout, TimeoutError):
                continue
            refused.append(data)
        xmpp_login_and_served(srv, socks[0])
        assert len(refused) == 50, "%d connections refused, expected 50" % len(refused)
        assert all(d.startswith(b"HTTP/1.1 503") and b"http.max_connections (2050)" in d
                   for d in refused), refused[:2]
        lines = srv.log_text().count("http.max_connections (2050) reached")
        assert 1 <= lines <= 11, "%d log lines for 50 refusals" % lines
    finally:
        for s in socks:
            s.close()
    time.sleep(0.5)
    assert metric(srv, "herald_http_connections_refused_total") == 50
    healthy(srv)


def test_http_per_address_limit(herald):
    """http.max_connections_per_ip applies to loopback with
    http.limit_loopback: the 6th connection from 127.0.0.1 gets 503 naming
    the setting; XMPP from the same address is not affected."""
    srv = hard_server(herald, http={"max_connections_per_ip": 5, "limit_loopback": True})
    socks = [socket.create_connection(("127.0.0.1", srv.http_port), timeout=10)
             for _ in range(6)]
    try:
        socks[5].settimeout(5)
        data = socks[5].recv(4096)
        assert data.startswith(b"HTTP/1.1 503"), data
        assert b"http.max_connections_per_ip (5)" in data, data
        assert socks[5].recv(4096) == b""
        xmpp_login_and_served(srv, socks[0])
    finally:
        for s in socks:
            s.close()
    # Closed connections give their place back: five new ones are served.
    time.sleep(0.5)
    again = [socket.create_connection(("127.0.0.1", srv.http_port), timeout=10)
             for _ in range(5)]
    for s in again:
        s.sendall(build_request("GET", "/healthz", close=True))
        s.settimeout(10)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        s.close()
    healthy(srv)


def client_hello():
    """The first flight of a TLS client (a ClientHello record)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_tls_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, hello[:20]
    return hello


def closed_within(s, limit, trickle):
    """Sends trickle every 0.5 s until the server closes s; returns the
    seconds it took and what the server sent (fails past limit)."""
    t0 = time.monotonic()
    got = b""
    s.settimeout(0.5)
    while time.monotonic() - t0 < limit:
        try:
            if trickle:
                s.sendall(trickle)
            data = s.recv(4096)
            if not data:
                return time.monotonic() - t0, got
            got += data
        except (socket.timeout, TimeoutError):
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0, got
    raise AssertionError("connection still open after %.1f s (trickling %r)" % (limit, trickle))


@pytest.mark.once
def test_header_and_idle_timeouts_are_absolute(herald):
    """CRLFs between requests, header bytes of a request, or bytes of a TLS
    ClientHello trickled every 0.5 s do not keep a connection open past
    http.idle_timeout / http.header_timeout (before: open forever). Idle
    time counts from the last answer."""
    srv = hard_server(herald, http={"header_timeout": 2, "idle_timeout": 3})
    bound_idle = 3 + SWEEP_SLACK
    bound_header = 2 + SWEEP_SLACK
    results = {}

    def run(name, fn):
        try:
            results[name] = fn()
        except BaseException as e:  # noqa: BLE001 - reported below
            results[name] = e

    def crlf():
        return closed_within(connect(srv.http_port), bound_idle + 3, b"\r\n")

    def header():
        s = connect(srv.http_port)
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        return closed_within(s, bound_header + 3, b"X")

    def tls_hello():
        # A real ClientHello, one byte at a time: the handshake never ends.
        hello = client_hello()
        s = connect(srv.https_port)
        t0 = time.monotonic()
        for i in range(len(hello)):
            try:
                s.sendall(hello[i:i + 1])
            except (ConnectionResetError, BrokenPipeError):
                break
            s.settimeout(0.5)
            try:
                if s.recv(4096) == b"":
                    break
            except (socket.timeout, TimeoutError):
                pass
            except ConnectionResetError:
                break
            assert time.monotonic() - t0 < bound_idle + 3, "TLS handshake trickle still open"
        else:
            raise AssertionError("the whole ClientHello went out before the close")
        return time.monotonic() - t0, b""

    def after_answer():
        s = connect(srv.http_port)
        time.sleep(2)  # idle since accept, but the answer restarts the clock
        s.sendall(build_request("GET", "/healthz"))
        s.settimeout(5)
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first
        return closed_within(s, bound_idle + 3, b"\r\n")

    with Witness(srv, "alice", USERS["alice"]) as w:
        threads = [threading.Thread(target=run, args=(n, f)) for n, f in
                   (("crlf", crlf), ("header", header), ("tls", tls_hello),
                    ("answer", after_answer))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        w.check()
    for name in ("crlf", "tls", "answer", "header"):
        assert not isinstance(results[name], BaseException), "%s: %r" % (name, results[name])
    print({k: round(v[0], 2) for k, v in results.items()})
    assert results["crlf"][0] < bound_idle, results["crlf"]
    assert results["tls"][0] < bound_idle, results["tls"]
    assert 3 - 0.5 < results["answer"][0] < bound_idle, results["answer"]
    assert results["header"][0] < bound_header, results["header"]
    assert b"408" in results["header"][1], results["header"]
    healthy(srv)


# --------------------------------------------------------------------------
# Finding 10: event streams that never read
# --------------------------------------------------------------------------

@pytest.mark.once
def test_sse_readers_that_never_read_are_closed(herald):
    """120 event streams that never read while 60 items of 16 KB are
    published (before: never closed; 500 held 270 MB): each is closed
    after http.write_timeout, RSS stays bounded by the per-connection
    output bound, and a stream that reads gets every item."""
    srv = hard_server(herald)
    pid = srv.proc.pid
    alice = Rest(srv, new_token(srv, "alice@localhost"))
    alice.create("feed", {"max_items": 100})
    reader = new_token(srv, "alice@localhost", scope="read")
    n = 120
    baseline = rss_kib(pid)
    before = metric(srv, "herald_http_write_timeouts_total")
    live = EventStream(srv, "feed", reader).wait_ready()
    req = build_request("GET", node_path("feed", "events"), tok=reader,
                        headers=["Accept: text/event-stream"])
    socks = []
    with Witness(srv, "alice", USERS["alice"]) as w:
        rss = RssPeak(pid)
        for _ in range(n):
            s = connect(srv.http_port)
            s.sendall(req)
            socks.append(s)
        time.sleep(0.5)
        items = 60
        pubs = [build_request("POST", node_path("feed", "items"), tok=alice.tok,
                              body={"n": i, "pad": "y" * 16000}) for i in range(items)]
        answers = pipeline(srv, pubs, timeout=60)
        assert [a.status for a in answers] == [201] * items
        published_at = time.monotonic()
        got = live.take(items, timeout=30 * SLOWDOWN)
        assert [e.json()["json"]["n"] for e in got] == list(range(items))
        time.sleep(1.0)
        print("baseline %d KiB, peak %d KiB with %d unread streams"
              % (baseline, max(rss.samples), n))
        wait_metric(srv, "herald_http_write_timeouts_total", before + n,
                    WRITE_TIMEOUT + SWEEP_SLACK + 3.0 * SLOWDOWN)
        closed_after = time.monotonic() - published_at
        peak = rss.peak()
        w.check()
    per_stream = OUTQ // 2 + 32 * KIB + CONN_OVERHEAD // 4
    bound = (n * per_stream + FIXED_SLACK) * MEM_SCALE
    assert (peak - baseline) * KIB < bound, (
        "RSS grew by %.1f MiB with %d unread streams (bound %.1f MiB)"
        % ((peak - baseline) / 1024.0, n, bound / MIB))
    # The reading stream was not closed: it still gets new items.
    alice.publish("feed", {"n": "after"})
    assert live.next(timeout=10 * SLOWDOWN).json()["json"]["n"] == "after"
    for s in socks:
        s.close()
    print("%d streams closed %.1f s after the last publish" % (n, closed_after))
    healthy(srv)


# --------------------------------------------------------------------------
# Finding 13: transfer codings
# --------------------------------------------------------------------------

def test_unknown_transfer_coding_is_refused(herald):
    """RFC 9112 §6.1: a transfer coding the server does not understand gets
    501 and the connection closes (before: "gzip, chunked" was read as
    plain chunked and the item published). Exactly "chunked" still works."""
    srv = hard_server(herald)
    alice = Rest(srv, new_token(srv, "alice@localhost"))
    alice.create("te")
    r = curl_request(srv, "POST", node_path("te", "items"), tok=alice.tok, body={"v": 1},
                     headers=["Transfer-Encoding: gzip, chunked"])
    assert r.status == 501, r
    assert r.json()["status"] == 501 and "chunked" in r.json()["detail"]
    bodies = {
        "gzip, chunked": None,
        "chunked, chunked": None,
        "identity": None,
        "x-custom ,chunked": None,
    }
    chunk = b"9\r\n{\"v\": 22}\r\n0\r\n\r\n"
    for te in list(bodies) + ["gzip\r\nTransfer-Encoding: chunked"]:
        s = connect(srv.http_port)
        head = ("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: %s\r\n\r\n"
                % (node_path("te", "items"), alice.tok, te)).encode()
        s.sendall(head + chunk + build_request("GET", "/healthz"))
        t, got = closed_within(s, 5 * SLOWDOWN, None)
        assert got.startswith(b"HTTP/1.1 501"), (te, got[:200])
        assert got.count(b"HTTP/1.1") == 1, (te, got)  # the pipelined GET is not answered
        assert b"Connection: close" in got, got
        s.close()
    # Nothing was published; plain chunked (any case) is still read.
    assert alice.items("te")["items"] == []
    for te in ("chunked", "Chunked", " chunked "):
        s = connect(srv.http_port)
        head = ("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding:%s\r\n"
                "Connection: close\r\n\r\n" % (node_path("te", "items"), alice.tok, te)).encode()
        s.sendall(head + chunk)
        t, got = closed_within(s, 5 * SLOWDOWN, None)
        assert got.startswith(b"HTTP/1.1 201"), (te, got[:200])
        s.close()
    assert len(alice.items("te")["items"]) == 3
    expect(alice.delete(node_path("te")), 204)
    healthy(srv)
