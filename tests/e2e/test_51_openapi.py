"""The OpenAPI 3.0 description of the REST bridge (docs/openapi.json) against
its validator, the server that serves it, the C route tables and the real
routes (docs/rest-api.md is the contract).

The validator is @apidevtools/swagger-parser, pinned in tests/openapi
(`npm ci --prefix tests/openapi`). Without tests/openapi/node_modules the
validation test is skipped, unless HERALD_REQUIRE_NODE is set (CI), in which
case it fails."""
import http.client
import json
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OPENAPI_JSON = os.path.join(ROOT, "docs", "openapi.json")
VALIDATOR_DIR = os.path.join(ROOT, "tests", "openapi")
ROUTE_SOURCES = [os.path.join(ROOT, "api", "http.c"), os.path.join(ROOT, "api", "rest.c")]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Routes answered without a token (docs/rest-api.md, "Authentication" and "Routes").
PUBLIC_PATHS = {"/healthz", "/metrics", "/v1/openapi.json"}

ROUTE_RE = re.compile(r'\{HTTP_([A-Z]+),\s*"(/[^"]*)"')
# A C string or character literal (kept), or a comment (dropped).
C_STRING_OR_COMMENT = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|/\*.*?\*/|//[^\n]*',
                                 re.S)


def load_openapi():
    with open(OPENAPI_JSON, encoding="utf-8") as f:
        return json.load(f)


def openapi_routes(doc):
    """The set of (METHOD, path template) pairs in an OpenAPI document."""
    return {(m.upper(), path) for path, item in doc["paths"].items()
            for m in HTTP_METHODS if m in item}


def strip_c_comments(src):
    return C_STRING_OR_COMMENT.sub(lambda m: " " if m.group(0)[0] == "/" else m.group(0), src)


def c_routes(src):
    """(METHOD, path) pairs of route table entries such as
    `{HTTP_GET, "/healthz", get_healthz}` in C source, comments ignored;
    HEAD is implied by GET and left out."""
    return {(m, p) for m, p in ROUTE_RE.findall(strip_c_comments(src)) if m != "HEAD"}


def require_node():
    return os.environ.get("HERALD_REQUIRE_NODE", "") not in ("", "0")


def request(srv, method, path, timeout=10.0):
    """One request on its own connection, without a token. A method that
    carries a body sends `{}` as JSON. Returns (status, headers, body);
    the body is read only when the answer has a Content-Length (an event
    stream is never read)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=timeout)
    try:
        body, headers = None, {}
        if method in ("POST", "PUT", "PATCH"):
            body, headers = b"{}", {"Content-Type": "application/json"}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read() if resp.getheader("Content-Length") is not None else b""
        return resp.status, resp.headers, data
    finally:
        conn.close()


def media_type(headers):
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower()


def concrete(path):
    """A request path for a template: every {param} becomes `x`."""
    return re.sub(r"\{[^}/]+\}", "x", path)


def test_route_parsing():
    """The parsers this file relies on: route table entries in C (comments
    skipped, HEAD dropped) and operations in an OpenAPI document."""
    src = '''
        static const struct route routes[] = {
            {HTTP_GET, "/healthz", get_healthz},
            {HTTP_POST,  "/v1/nodes/{node}/items", post_item},  /* {HTTP_PUT, "/c"} */
            // {HTTP_DELETE, "/commented", nothing},
            {HTTP_HEAD, "/healthz", head_healthz},
        };
        static const char *s = "// {HTTP_GET, \\"/in-a-string\\"";
        static const char q = '"'; /* {HTTP_GET, "/after-a-char-literal"} */
    '''
    assert c_routes(src) == {("GET", "/healthz"), ("POST", "/v1/nodes/{node}/items")}
    doc = {"paths": {"/a/{id}": {"parameters": [], "get": {}, "delete": {}}, "/b": {"post": {}}}}
    assert openapi_routes(doc) == {("GET", "/a/{id}"), ("DELETE", "/a/{id}"), ("POST", "/b")}
    assert concrete("/v1/nodes/{node}/items/{id}") == "/v1/nodes/x/items/x"


def test_openapi_document_validates():
    """docs/openapi.json is a valid OpenAPI 3.0.3 document according to
    @apidevtools/swagger-parser (tests/openapi/validate.js)."""
    if not os.path.isdir(os.path.join(VALIDATOR_DIR, "node_modules")):
        if require_node():
            pytest.fail("HERALD_REQUIRE_NODE is set but tests/openapi/node_modules is missing "
                        "(run: npm ci --prefix tests/openapi)")
        pytest.skip("tests/openapi/node_modules missing (npm ci --prefix tests/openapi)")
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is not installed but tests/openapi/node_modules exists"
    out = subprocess.run([node, "tests/openapi/validate.js", "docs/openapi.json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, "validation failed:\n%s%s" % (out.stdout, out.stderr)
    assert re.search(r"\b\d+ paths, \d+ operations\b", out.stdout), out.stdout
    assert load_openapi()["openapi"] == "3.0.3"


def test_served_openapi_is_the_docs_file(herald):
    """GET /v1/openapi.json needs no token and answers docs/openapi.json as
    application/json."""
    srv = herald()
    status, headers, body = request(srv, "GET", "/v1/openapi.json")
    assert status == 200, (status, body[:300])
    assert media_type(headers) == "application/json", headers.get("Content-Type")
    assert json.loads(body.decode("utf-8")) == load_openapi(), \
        "the served document differs from docs/openapi.json"


def test_openapi_matches_route_tables():
    """The (method, path) pairs of docs/openapi.json are exactly the entries
    of the route tables in api/http.c and api/rest.c."""
    found = set()
    for path in ROUTE_SOURCES:
        assert os.path.isfile(path), "%s is missing" % os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as f:
            found |= c_routes(f.read())
    documented = {(m, p) for m, p in openapi_routes(load_openapi()) if m != "HEAD"}
    assert documented - found == set(), "documented but not routed: %s" % sorted(documented - found)
    assert found - documented == set(), "routed but not documented: %s" % sorted(found - documented)


def test_every_documented_route_exists(herald):
    """Each documented (method, path), with `x` for {node} and {id} and no
    token, reaches a route: never 404 "no such resource" nor 405. The public
    routes answer 200; every other /v1 route 401 with WWW-Authenticate:
    Bearer, as application/problem+json (RFC 9457, RFC 6750)."""
    srv = herald()
    routes = sorted(openapi_routes(load_openapi()))
    assert routes
    for method, template in routes:
        if method == "HEAD":
            continue
        path = concrete(template)
        status, headers, body = request(srv, method, path)
        what = "%s %s -> %d %s" % (method, path, status, body[:300])
        assert status != 405, what
        assert not (status == 404 and b"no such resource" in body), what
        if template in PUBLIC_PATHS:
            assert status == 200, what
        else:
            assert status == 401, what
            assert (headers.get("WWW-Authenticate") or "").lower().split()[0:1] == ["bearer"], \
                "%s: WWW-Authenticate is %r" % (what, headers.get("WWW-Authenticate"))
            assert media_type(headers) == "application/problem+json", what
            assert json.loads(body.decode("utf-8"))["status"] == 401, what
