"""The web console's HTTP side (docs/web-console.md) and the sessions
endpoint it shows (docs/rest-api.md, "Sessions").

The console is static files compiled into the binary (api/console.c,
cmake/embed_files.cmake): each must be served byte for byte as it is in
api/console/, with its type, the Content-Security-Policy that forbids
inline script and other origins, nosniff and no caching; /console
redirects to /console/; an unknown file is a 404 problem. GET /v1/sessions
lists bound XMPP sessions (here a raw-socket client over TCP) and needs a
token with the manage scope. What the page does in a browser is the
headless-Chromium test's job."""
import datetime
import os
import re
import time

from e2e_helpers import RawStream
from rest_helpers import (PROBLEM_TYPE, Rest, assert_problem, curl_request, expect, healthy,
                          new_token, rest_server)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CONSOLE_DIR = os.path.join(ROOT, "api", "console")

FILES = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
    "vendor/uPlot.iife.min.js": "text/javascript",
    "vendor/uPlot.min.css": "text/css",
    "vendor/LICENSE": "text/plain",
}


def source(name):
    with open(os.path.join(CONSOLE_DIR, name), "rb") as f:
        return f.read()


def csp_directives(resp):
    csp = resp.header("Content-Security-Policy") or ""
    out = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def assert_console_headers(resp, what):
    csp = csp_directives(resp)
    assert csp, "%s: no Content-Security-Policy: %r" % (what, resp)
    assert csp.get("default-src") == ["'none'"], "%s: default-src %r" % (what, csp)
    for d in ("script-src", "style-src", "connect-src"):
        assert csp.get(d) == ["'self'"], "%s: %s is %r, not only 'self'" % (what, d, csp.get(d))
    assert csp.get("frame-ancestors") == ["'none'"], "%s: framing allowed: %r" % (what, csp)
    text = resp.header("Content-Security-Policy")
    assert "unsafe-inline" not in text and "unsafe-eval" not in text, text
    assert (resp.header("X-Content-Type-Options") or "").lower() == "nosniff", resp
    cache = (resp.header("Cache-Control") or "").lower()
    assert "no-store" in cache or "no-cache" in cache, "%s: Cache-Control %r" % (what, cache)


def test_console_files_served(herald):
    """Every console file is served at /console/NAME with its type, the
    console's headers, and exactly the bytes of api/console/NAME (the
    binary cannot drift from the sources); /console/ is index.html."""
    srv = herald()
    anon = Rest(srv)
    for name, ctype in FILES.items():
        r = expect(anon.get("/console/" + name), 200, name)
        assert r.ctype == ctype, "%s served as %r" % (name, r.header("Content-Type"))
        if ctype.startswith("text/"):
            assert "charset=utf-8" in (r.header("Content-Type") or "").lower(), r
        assert r.body == source(name), "%s differs from api/console/%s" % (name, name)
        assert_console_headers(r, name)
    root = expect(anon.get("/console/"), 200)
    assert root.ctype == "text/html" and root.body == source("index.html"), root
    assert_console_headers(root, "/console/")
    head = expect(anon.req("HEAD", "/console/console.js"), 200)
    assert head.body == b"" and head.ctype == "text/javascript", head
    assert int(head.header("Content-Length")) == len(source("console.js")), head
    healthy(srv)


def test_index_loads_only_local_files():
    """The page loads scripts and styles from this origin only (no CDN)
    and has no inline script, style attribute or event handler attribute,
    which the Content-Security-Policy would block anyway."""
    html = source("index.html").decode("utf-8")
    srcs = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]*)"', html)
    assert "console.js" in srcs and "vendor/uPlot.iife.min.js" in srcs, srcs
    for s in srcs:
        if s.startswith("data:"):
            continue  # the empty favicon, so the browser asks for no /favicon.ico
        assert not re.match(r"^(?:[a-z]+:)?//", s, re.I), "loads from another origin: %r" % s
        assert s.split("?")[0] in FILES, "loads a file the binary does not embed: %r" % s
    for m in re.finditer(r"<script\b([^>]*)>(.*?)</script>", html, re.S):
        assert "src=" in m.group(1) and not m.group(2).strip(), "inline script: %r" % m.group(0)
    assert not re.search(r"\sstyle=", html), "style attribute in index.html"
    assert not re.search(r"\son[a-z]+=", html, re.I), "event handler attribute in index.html"
    readme = os.path.join(CONSOLE_DIR, "vendor", "README.md")
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    version = re.search(r"\(v(\d+\.\d+\.\d+)\)", source("vendor/uPlot.iife.min.js")[:200].decode())
    assert version and version.group(1) in text, "vendor/README.md does not name uPlot's version"
    assert "MIT" in text


def test_console_redirect_404_405(herald):
    """/console redirects to /console/ (relative URLs in the page resolve
    against the directory); an unknown file is a 404 problem; a method
    other than GET/HEAD is 405 with Allow; /consolex is not the console."""
    srv = herald()
    anon = Rest(srv)
    for method in ("GET", "HEAD"):
        r = anon.req(method, "/console")
        assert r.status in (301, 302, 307, 308), r
        assert r.header("Location") == "/console/", r
    for path in ("/console/nope.js", "/console/vendor/", "/console/vendor/README.md",
                 "/console/index.html/", "/console/../console/index.html",
                 "/console/%69ndex.html", "/console//index.html"):
        r = anon.get(path)
        assert_problem(r, 404, what=path)
    r = anon.post("/console/", {"x": 1})
    assert_problem(r, 405)
    assert "GET" in (r.header("Allow") or ""), r
    r = anon.get("/consolex")
    assert_problem(r, 404)
    assert "no such resource" in r.json()["detail"], r
    healthy(srv)


def parse_time(s):
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", s), s
    return datetime.datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)


def sessions(rest, **params):
    qs = "&".join("%s=%s" % kv for kv in params.items())
    return expect(rest.get("/v1/sessions" + ("?" + qs if qs else "")), 200).json()


def wait_sessions(rest, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        body = sessions(rest)
        if pred(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_sessions_lists_tcp_session(herald):
    """A client logged in over TCP is listed with its full JID, transport
    "tcp", its address and when it connected; paging with max/after;
    the session leaves the list when it ends."""
    srv, alice = rest_server(herald)
    assert sessions(alice) == {"sessions": [], "total": 0, "next": None}
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    a = RawStream(srv.port)
    b = RawStream(srv.port)
    try:
        assert a.login("alice", "wonderland", "console-a") == "alice@localhost/console-a"
        assert b.login("bob", "builder", "console-b") == "bob@localhost/console-b"
        body = sessions(alice)
        assert body["total"] == 2 and body["next"] is None, body
        by_jid = {s["jid"]: s for s in body["sessions"]}
        assert set(by_jid) == {"alice@localhost/console-a", "bob@localhost/console-b"}, body
        for s in body["sessions"]:
            assert set(s) == {"jid", "transport", "peer", "since"}, s
            assert s["transport"] == "tcp", s
            assert s["peer"] == "127.0.0.1", s
            since = parse_time(s["since"])
            now = datetime.datetime.now(datetime.timezone.utc)
            assert before - datetime.timedelta(seconds=2) <= since <= now, (before, s, now)
        first = sessions(alice, max=1)
        assert len(first["sessions"]) == 1 and first["total"] == 2 and first["next"], first
        second = sessions(alice, max=1, after=first["next"])
        assert len(second["sessions"]) == 1 and second["next"] is None, second
        assert {first["sessions"][0]["jid"], second["sessions"][0]["jid"]} == set(by_jid)
        a.close()
        body = wait_sessions(alice, lambda b: b["total"] == 1)
        assert [s["jid"] for s in body["sessions"]] == ["bob@localhost/console-b"], body
    finally:
        a.close()
        b.close()
    healthy(srv)


def test_sessions_need_manage_scope(herald):
    """GET /v1/sessions needs a token (401) with the manage scope (403,
    naming the scope); bad paging parameters are 400."""
    srv, alice = rest_server(herald)
    r = Rest(srv).get("/v1/sessions")
    assert_problem(r, 401, "not-authorized")
    limited = Rest(srv, new_token(srv, "alice@localhost", scope="read,publish"))
    r = limited.get("/v1/sessions")
    p = assert_problem(r, 403, "forbidden")
    assert "manage" in p["detail"], p
    for qs in ("max=0", "max=1001", "max=x", "after=-1"):
        assert_problem(alice.get("/v1/sessions?" + qs), 400, "bad-request", what=qs)
    r = curl_request(srv, "POST", "/v1/sessions", tok=alice.tok, body={})
    assert r.status == 405 and r.ctype == PROBLEM_TYPE, r
    healthy(srv)
