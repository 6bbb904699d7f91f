"""HTTP listener and the operations endpoints (issue 5 foundation): /healthz,
/metrics in the Prometheus text format, problem+json errors (RFC 9457),
keep-alive, pipelining and request limits. Driven with curl and raw
sockets."""
import json
import re
import socket
import subprocess

from e2e_helpers import XClient, run

USERS = {"alice": "wonderland"}


def curl(*args):
    out = subprocess.run(["curl", "-s", "-S", "--max-time", "10", *args], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return out.stdout, out.stderr


def url(srv, path):
    return "http://127.0.0.1:%d%s" % (srv.http_port, path)


def raw_http(srv, data, timeout=5.0):
    """Sends data on one connection and reads until the server closes or
    the timeout passes; returns everything received."""
    s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=timeout)
    s.sendall(data)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pass
    s.close()
    return got


def metric(text, name):
    m = re.search(r"^%s (\d+(?:\.\d+)?)$" % re.escape(name), text, re.M)
    assert m, "metric %s missing in:\n%s" % (name, text)
    return float(m.group(1))


def test_healthz_and_head(herald):
    """RFC 9110 9.3.1/9.3.2: GET /healthz answers 200 'ok'; HEAD gives the
    same headers without a body."""
    srv = herald()
    body, _ = curl(url(srv, "/healthz"))
    assert body == "ok\n"
    head, _ = curl("-I", url(srv, "/healthz"))
    assert head.startswith("HTTP/1.1 200"), head
    assert "Content-Length: 3" in head, head


def test_metrics_reflect_logins_and_publishes(herald):
    """Prometheus text format 0.0.4: counters and gauges with HELP/TYPE, a
    commit-latency histogram whose count grows with pubsub publishes."""
    srv = herald(users=USERS)
    before, _ = curl(url(srv, "/metrics"))
    assert "# TYPE herald_commit_seconds histogram" in before
    assert metric(before, "herald_sessions{transport=\"tcp\"}") == 0

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        await alice.login()
        resp = await alice.iq("<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                              "<create node='m'/></pubsub>", to="pubsub.localhost", itype="set")
        assert resp["type"] == "result", resp
        resp = await alice.iq("<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='m'>"
                              "<item id='1'><x xmlns='urn:x'/></item></publish></pubsub>",
                              to="pubsub.localhost", itype="set")
        assert resp["type"] == "result", resp
        during, _ = curl(url(srv, "/metrics"))
        assert metric(during, "herald_sessions{transport=\"tcp\"}") == 1
        assert metric(during, "herald_sessions{transport=\"websocket\"}") == 0
        assert metric(during, "herald_logins_total") >= 1
        assert metric(during, "herald_pubsub_publishes_total") == 1
        assert metric(during, "herald_commit_seconds_count") >= 2  # create + publish
        inf = re.search(r'^herald_commit_seconds_bucket\{le="\+Inf"\} (\d+)$', during, re.M)
        assert inf and int(inf.group(1)) == metric(during, "herald_commit_seconds_count")
        assert re.search(r'^herald_http_requests_total\{code="2xx"\} [1-9]', during, re.M)
    run(body)


def test_errors_are_problem_json(herald):
    """RFC 9457: unknown resource 404 and wrong method 405, as
    application/problem+json with the status in the body."""
    srv = herald()
    out, _ = curl("-i", url(srv, "/nowhere"))
    head, _, body = out.partition("\n\n")  # text mode turns CRLF into LF
    assert head.startswith("HTTP/1.1 404"), head
    assert "Content-Type: application/problem+json" in head
    assert json.loads(body)["status"] == 404
    out, _ = curl("-i", "-X", "POST", url(srv, "/healthz"))
    assert out.startswith("HTTP/1.1 405"), out
    assert json.loads(out.partition("\n\n")[2])["status"] == 405


def test_keep_alive_and_pipelining(herald):
    """RFC 9112 9.3 (persistent connections) and 9.3.2 (pipelining): two
    requests sent in one write on one connection get two responses, in
    order; curl reuses one connection for two URLs."""
    srv = herald()
    got = raw_http(srv, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    text = got.decode()
    assert text.count("HTTP/1.1 200 OK") == 2, text[:500]
    assert text.index("ok\n") < text.index("herald_connections"), "responses out of order"
    _, err = curl("-v", url(srv, "/healthz"), url(srv, "/healthz"))
    assert "Re-using existing connection" in err or "Reusing existing connection" in err, err


def test_bad_and_oversized_requests(herald):
    """RFC 9112 2.2 and RFC 6585 5: garbage gets 400 and the connection
    closes; a request with over 16 KiB of headers gets 431; the server
    keeps serving."""
    srv = herald()
    got = raw_http(srv, b"this is not http\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 400"), got[:200]
    assert b"Connection: close" in got
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    got = raw_http(srv, big)
    assert got.startswith(b"HTTP/1.1 431"), got[:200]
    body, _ = curl(url(srv, "/healthz"))
    assert body == "ok\n"
