"""REST bridge, authentication (docs/rest-api.md "Authentication"): bearer
tokens made with `herald token`, 401 for missing, malformed, unknown,
expired and revoked tokens and for a deleted account (with
WWW-Authenticate: Bearer), 403 for a missing scope, revocation effective
on the next request (also on a kept-alive connection), public routes
without a token."""
import time

from rest_helpers import (TOKEN_RE, EventStream, RawHttp, Rest, assert_problem,
                          build_request, expect, healthy, item_path, items_path, new_token,
                          node_path, revoke, rest_server, token_id)
from rest_helpers import _rest_streams  # noqa: F401 (autouse: ends curl -N streams)


def test_token_cli(herald):
    """`token create` prints the id, JID, scopes and expiry, then the token
    (ID.SECRET, 16 hex + 43 base64url) as the last line; `token list`
    shows id, JID and scopes but never the secret; an unknown account, a
    bad scope or a bad duration is refused."""
    srv = herald(users={"alice": "wonderland"})
    r = srv.cli("token", "create", "--jid", "alice@localhost", "--scope", "read,publish",
                "--expires", "30d")
    out = r.stdout.decode()
    assert r.returncode == 0, r
    tok = out.strip().splitlines()[-1]
    m = TOKEN_RE.match(tok)
    assert m, out
    assert m.group(1) in out.split(tok)[0], "the id is not printed before the token: %r" % out
    assert "alice@localhost" in out and "read,publish" in out, out
    listing = srv.cli("token", "list")
    text = listing.stdout.decode()
    assert listing.returncode == 0 and token_id(tok) in text, text
    assert "alice@localhost" in text and "read,publish" in text, text
    assert tok.split(".")[1] not in text, "token list shows the secret"
    for bad in (["--jid", "nobody@localhost"], ["--jid", "alice@localhost", "--scope", "admin"],
                ["--jid", "alice@localhost", "--expires", "soon"], []):
        r = srv.cli("token", "create", *bad)
        assert r.returncode != 0, "token create %s succeeded: %r" % (bad, r.stdout)
    r = srv.cli("token", "revoke", "0123456789abcdef")
    assert r.returncode != 0, "revoking an unknown id succeeded"


def test_public_routes_need_no_token(herald):
    """/v1/openapi.json, /healthz and /metrics answer without a token;
    every other /v1 route needs one."""
    srv, alice = rest_server(herald)
    anon = Rest(srv)
    r = expect(anon.get("/v1/openapi.json"), 200)
    assert r.ctype == "application/json" and r.json()["openapi"].startswith("3.0"), r
    expect(anon.get("/healthz"), 200)
    expect(anon.get("/metrics"), 200)
    alice.create("n")
    for method, path in (("GET", "/v1/nodes"), ("POST", "/v1/nodes"), ("GET", node_path("n")),
                         ("PATCH", node_path("n")), ("DELETE", node_path("n")),
                         ("POST", node_path("n", "purge")), ("GET", items_path("n")),
                         ("POST", items_path("n")), ("GET", item_path("n", "i")),
                         ("PUT", item_path("n", "i")), ("DELETE", item_path("n", "i")),
                         ("GET", node_path("n", "subscriptions")),
                         ("GET", node_path("n", "events"))):
        body = {"x": 1} if method in ("POST", "PUT", "PATCH") else None
        assert_problem(anon.req(method, path, body), 401, "not-authorized",
                       what="%s %s without a token" % (method, path))
    # Nothing was changed by the refused requests.
    assert expect(alice.get(node_path("n")), 200).json()["items"] == 0


def test_missing_malformed_unknown_tokens(herald):
    """401 with WWW-Authenticate: Bearer for: no Authorization, another
    scheme, an empty bearer, a malformed token (no dot, short, long,
    non-hex id), a well-formed unknown token, a known id with a wrong
    secret."""
    srv, alice = rest_server(herald)
    alice.create("n")
    tok = alice.tok
    tid, secret = tok.split(".")
    wrong_secret = tid + "." + ("A" if secret[0] != "A" else "B") + secret[1:]
    cases = {
        "basic": "Basic YWxpY2U6d29uZGVybGFuZA==",
        "empty bearer": "Bearer ",
        "no dot": "Bearer " + tid + secret,
        "short": "Bearer " + tok[:-1],
        "long": "Bearer " + tok + "A",
        "non-hex id": "Bearer " + "g" + tok[1:],
        "unknown": "Bearer 0123456789abcdef." + secret,
        "wrong secret": "Bearer " + wrong_secret,
        "token only": tok,
        "two tokens": "Bearer %s %s" % (tok, tok),
    }
    for what, auth in cases.items():
        r = Rest(srv).req("GET", items_path("n"), auth=auth)
        assert_problem(r, 401, "not-authorized", what=what)
    # The scheme name is case-insensitive (RFC 9110 11.1); the real token works.
    expect(Rest(srv).req("GET", items_path("n"), auth="bearer " + tok), 200)
    expect(alice.get(items_path("n")), 200)
    healthy(srv)


def test_expired_token(herald):
    """A token made with --expires 2 works at first and gets 401 once its
    lifetime has passed; a token with a long lifetime keeps working."""
    srv, alice = rest_server(herald)
    alice.create("n")
    made = time.monotonic()
    short = Rest(srv, new_token(srv, "alice@localhost", expires=2))
    long_ = Rest(srv, new_token(srv, "alice@localhost", expires="1h"))
    r = short.get(items_path("n"))
    if time.monotonic() - made < 1.0:  # surely still within its lifetime
        expect(r, 200, "a fresh token with --expires 2")
    deadline = made + 15
    while True:
        r = short.get(items_path("n"))
        if r.status != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert_problem(r, 401, "not-authorized", what="expired token")
    assert time.monotonic() - made >= 1.0, "the token expired before its lifetime"
    expect(long_.get(items_path("n")), 200)
    listing = srv.cli("token", "list").stdout.decode()
    assert token_id(short.tok) in listing, listing


def test_deleted_account(herald):
    """A token of an account deleted with `herald user del` gets 401; the
    other accounts' tokens keep working."""
    srv, alice = rest_server(herald)
    alice.create("n")
    bob = Rest(srv, new_token(srv, "bob@localhost"))
    expect(bob.get(items_path("n")), 200)
    r = srv.cli("user", "del", "bob@localhost")
    assert r.returncode == 0, r
    assert_problem(bob.get(items_path("n")), 401, "not-authorized")
    assert_problem(bob.post(items_path("n"), {"x": 1}), 401, "not-authorized")
    expect(alice.get(items_path("n")), 200)
    healthy(srv)


def test_scopes_enforced(herald):
    """read: GET only; publish: POST/PUT/DELETE items only; manage: node
    creation, reconfiguration, purge and deletion only. A missing scope is
    403 forbidden and changes nothing."""
    srv, alice = rest_server(herald)
    alice.create("n")
    item = alice.publish("n", {"v": 1}, "i1")
    read = Rest(srv, new_token(srv, "alice@localhost", scope="read"))
    pub = Rest(srv, new_token(srv, "alice@localhost", scope="publish"))
    manage = Rest(srv, new_token(srv, "alice@localhost", scope="manage"))
    # read can read ...
    expect(read.get("/v1/nodes"), 200)
    expect(read.get(node_path("n")), 200)
    expect(read.get(items_path("n")), 200)
    expect(read.get(item_path("n", item)), 200)
    expect(read.get(node_path("n", "subscriptions")), 200)
    # ... and nothing else.
    for r in (read.post(items_path("n"), {"v": 2}), read.put(item_path("n", "i2"), {"v": 2}),
              read.delete(item_path("n", item)), read.post("/v1/nodes", {"node": "m"}),
              read.patch(node_path("n"), {"config": {"title": "t"}}),
              read.post(node_path("n", "purge")), read.delete(node_path("n"))):
        p = assert_problem(r, 403, "forbidden", what="read-only token: %s %s" % (r.method, r.path))
    assert "publish" in p["detail"] or "manage" in p["detail"], p
    # publish can publish and retract, not read or manage.
    expect(pub.put(item_path("n", "i2"), {"v": 2}), 201)
    expect(pub.delete(item_path("n", "i2")), 204)
    for r in (pub.get(items_path("n")), pub.get("/v1/nodes"), pub.get(item_path("n", item)),
              pub.post("/v1/nodes", {"node": "m"}), pub.delete(node_path("n"))):
        assert_problem(r, 403, "forbidden", what="publish-only token: %s %s" % (r.method, r.path))
    # manage can manage, not publish or read.
    expect(manage.patch(node_path("n"), {"config": {"title": "T"}}), 200)
    assert_problem(manage.post(items_path("n"), {"v": 3}), 403, "forbidden")
    assert_problem(manage.get(items_path("n")), 403, "forbidden")
    # Nothing the refused requests asked for happened.
    items = alice.items("n")["items"]
    assert [i["id"] for i in items] == [item], items
    nodes = [n["node"] for n in alice.get("/v1/nodes").json()["nodes"]]
    assert nodes == ["n"], nodes


def test_revocation_takes_effect_on_next_request(herald):
    """A read-only token GETs but cannot POST (403); after `herald token
    revoke ID` the same token gets 401 on the next request, including on a
    connection kept alive across the revocation; other tokens go on
    working and the server keeps running."""
    srv, alice = rest_server(herald)
    alice.create("n")
    reader_tok = new_token(srv, "alice@localhost", scope="read")
    reader = Rest(srv, reader_tok)
    expect(reader.get(items_path("n")), 200)
    assert_problem(reader.post(items_path("n"), {"x": 1}), 403, "forbidden")
    conn = RawHttp(srv)
    try:
        conn.send(build_request("GET", items_path("n"), reader_tok))
        expect(conn.read_response(), 200)
        revoke(srv, reader_tok)
        conn.send(build_request("GET", items_path("n"), reader_tok))
        r = conn.read_response()
        assert r is not None, "no answer on the kept-alive connection"
        assert_problem(r, 401, "not-authorized", what="revoked token, same connection")
    finally:
        conn.close()
    assert_problem(reader.get(items_path("n")), 401, "not-authorized")
    listing = srv.cli("token", "list").stdout.decode()
    assert token_id(reader_tok) not in listing, listing
    expect(alice.get(items_path("n")), 200)
    # Revoking by the whole token works too.
    other = new_token(srv, "alice@localhost")
    r = srv.cli("token", "revoke", other)
    assert r.returncode == 0, r
    assert_problem(Rest(srv, other).get(items_path("n")), 401, "not-authorized")
    healthy(srv)


def test_revoked_token_stream_is_refused(herald):
    """A revoked token cannot open an event stream; a token revoked while
    its stream is open does not crash anything, and new streams of it
    are refused."""
    srv, alice = rest_server(herald)
    alice.create("n")
    tok = new_token(srv, "alice@localhost", scope="read")
    s = EventStream(srv, "n", tok).wait_ready()
    revoke(srv, tok)
    assert_problem(Rest(srv, tok).get(node_path("n", "events")), 401, "not-authorized")
    alice.publish("n", {"v": 1})
    s.close()
    healthy(srv)
