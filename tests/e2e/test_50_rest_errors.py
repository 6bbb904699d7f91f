"""REST bridge, error answers (docs/rest-api.md "Errors" and the statuses
named in "Routes", "Items on the wire" and "Authentication"): 400, 403,
404, 405 (with Allow), 409, 413, 414, 415 and 501, each as
application/problem+json (RFC 9457) with type, title, status, detail and,
for pubsub errors, the XMPP condition and the XEP-0060 application
condition. After all of them the server still serves (/healthz) and its
log shows no crash; the fixture then checks a clean exit."""
import json
import re

from rest_helpers import (RawHttp, Rest, assert_problem, build_request,
                          curl_request, expect, healthy, item_path, items_path, new_token,
                          node_path, pipeline, rest_server)
from rest_helpers import _rest_streams  # noqa: F401 (autouse: ends curl -N streams)

MIB = 1024 * 1024


def test_400_bad_bodies(herald):
    """400 bad-request for: item JSON that does not parse (or is empty);
    a POST /v1/nodes body that is not a JSON object; "node" not a string;
    "config" not an object; a config value that is null or an object; an
    unknown config field; a value out of range (400 not-acceptable, as
    over XMPP). Nothing is created by a refused request."""
    srv, alice = rest_server(herald)
    alice.create("n")
    for bad in ('{"a":', "{'a': 1}", "[1, 2", "", "nul", '{"a":1}}', "\"unterminated"):
        assert_problem(alice.post(items_path("n"), bad, ctype="application/json"), 400,
                       "bad-request", what="item JSON %r" % bad)
    for bad in ("[]", "[1]", '"grid"', "3", "null", "true", "{", "{\"node\": }"):
        assert_problem(alice.post("/v1/nodes", bad, ctype="application/json"), 400,
                       "bad-request", what="POST /v1/nodes %r" % bad)
    for body, what in (({"node": 7}, "node a number"), ({"node": ["a"]}, "node an array"),
                       ({"node": "c", "config": [1]}, "config an array"),
                       ({"node": "c", "config": "max_items=3"}, "config a string"),
                       ({"node": "c", "config": {"title": None}}, "config value null"),
                       ({"node": "c", "config": {"title": {"x": 1}}}, "config value object"),
                       ({"node": "c", "config": {"no_such_field": 1}}, "unknown field"),
                       ({"node": "c", "config": {"pubsub#nope": 1}}, "unknown pubsub# field")):
        assert_problem(alice.post("/v1/nodes", body), 400, "bad-request", what=what)
    for cfg in ({"max_items": -1}, {"access_model": "bogus"}, {"max_items": "many"},
                {"deliver_payloads": "perhaps"}):
        r = alice.post("/v1/nodes", {"node": "c", "config": cfg})
        p = assert_problem(r, 400, what="config %r" % cfg)
        assert p.get("condition") in ("bad-request", "not-acceptable"), p
    assert [n["node"] for n in alice.get("/v1/nodes").json()["nodes"]] == ["n"]
    assert alice.items("n")["items"] == []


def test_400_bad_xml(herald):
    """An XML item body must be exactly one well-formed element declaring
    its namespace: not-well-formed XML, an element without a namespace, two
    elements, bare text, an empty body, a DTD (entity declarations) are
    400; nothing is stored."""
    srv, alice = rest_server(herald)
    alice.create("x")
    cases = {
        "not well-formed": "<a xmlns='urn:a'><b></a>",
        "unclosed": "<a xmlns='urn:a'>",
        "no namespace": "<a>text</a>",
        "no namespace, empty": "<a/>",
        "two elements": "<a xmlns='urn:a'/><b xmlns='urn:a'/>",
        "text only": "hello",
        "empty": "",
        "dtd": "<!DOCTYPE a [<!ENTITY e 'boom'>]><a xmlns='urn:a'>&e;</a>",
        "undeclared prefix": "<p:a xmlns='urn:a'/>",
        "trailing text": "<a xmlns='urn:a'/>tail",
        "unknown entity": "<a xmlns='urn:a'>&nbsp;</a>",
    }
    for what, body in cases.items():
        assert_problem(alice.put(item_path("x", "i"), body, ctype="application/xml"), 400,
                       "bad-request", what=what)
    assert alice.items("x")["items"] == []
    # The same element with its namespace is fine, with whitespace around it too.
    expect(alice.put(item_path("x", "i"), "\n <a xmlns='urn:a'>ok</a>\n",
                     ctype="application/xml"), 201)
    assert alice.item("x", "i")["xml"] == "<a xmlns='urn:a'>ok</a>"


def test_xml_document_with_declaration_accepted(herald):
    """An application/xml body that is an XML document with an XML
    declaration (<?xml version="1.0" encoding="UTF-8"?>, what most XML
    serializers write) still holds exactly one well-formed namespaced
    element, so it is an item payload (201), stored without the
    declaration."""
    srv, alice = rest_server(herald)
    alice.create("x")
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<a xmlns="urn:a">ok</a>\n'
    r = alice.put(item_path("x", "decl"), body, ctype="application/xml")
    expect(r, 201, "XML document with a declaration")
    assert alice.item("x", "decl")["xml"] == "<a xmlns='urn:a'>ok</a>"


def test_400_bad_paths_and_queries(herald):
    """400 for a path segment that is not valid percent-encoding (bad hex,
    truncated escape, an escaped NUL, invalid UTF-8, longer than a node
    name may be) and for bad paging parameters (max outside 1..500 or not a
    number, a before that is not a cursor)."""
    srv, alice = rest_server(herald)
    alice.create("n")
    for seg in ("a%zz", "a%4", "%", "a%00b", "%C3%28", "%FF", "x" * 300):
        assert_problem(alice.get("/v1/nodes/" + seg), 400, "bad-request", what="node %r" % seg)
        assert_problem(alice.get("/v1/nodes/n/items/" + seg), 400, "bad-request",
                       what="item %r" % seg)
    for q in ("max=0", "max=501", "max=abc", "max=-1", "max=", "max=3.5",
              "max=99999999999999999999", "before=abc", "before=-5", "before="):
        assert_problem(alice.get(items_path("n") + "?" + q), 400, "bad-request", what=q)
    # Limits that are fine.
    for q in ("max=1", "max=500", "before=1", "max=2&before=99999"):
        expect(alice.get(items_path("n") + "?" + q), 200, q)


def test_403_forbidden(herald):
    """403 when the token lacks the scope, or its JID may not do it:
    publishing to another's node (publish_model publishers), retracting
    another's item, reconfiguring/purging/deleting another's node, listing
    subscriptions as a non-owner, reading a whitelist node
    (not-allowed/closed-node) or an authorize node without a subscription
    (not-authorized/not-subscribed) or a presence node without a presence
    subscription (not-authorized/presence-subscription-required). The token
    is valid, so these are 403 ("a valid token ... whose JID is not allowed
    the action"), not 401."""
    srv, alice = rest_server(herald)
    alice.create("a", {"publish_model": "publishers"})
    alice.create("wl", {"access_model": "whitelist"})
    alice.create("auth", {"access_model": "authorize"})
    alice.create("pres", {"access_model": "presence"})
    item = alice.publish("a", {"v": 1})
    bob = Rest(srv, new_token(srv, "bob@localhost"))
    bob_read = Rest(srv, new_token(srv, "bob@localhost", scope="read"))
    checks = [
        (bob_read.post(items_path("a"), {"v": 2}), "forbidden", None),
        (bob_read.post("/v1/nodes", {"node": "b"}), "forbidden", None),
        (bob.post(items_path("a"), {"v": 2}), "forbidden", None),
        (bob.put(item_path("a", item), {"v": 2}), "forbidden", None),
        (bob.delete(item_path("a", item)), "forbidden", None),
        (bob.patch(node_path("a"), {"config": {"title": "x"}}), "forbidden", None),
        (bob.post(node_path("a", "purge")), "forbidden", None),
        (bob.delete(node_path("a")), "forbidden", None),
        (bob.get(node_path("a", "subscriptions")), "forbidden", None),
        (bob.get(items_path("wl")), "not-allowed", "closed-node"),
        (bob.get(node_path("wl")), "not-allowed", "closed-node"),
        (bob.get(items_path("auth")), "not-authorized", "not-subscribed"),
        (bob.get(node_path("auth", "events")), "not-authorized", "not-subscribed"),
        (bob.get(items_path("pres")), "not-authorized", "presence-subscription-required"),
    ]
    for r, cond, app in checks:
        assert_problem(r, 403, cond, app, what="%s %s" % (r.method, r.path))
    assert [i["id"] for i in alice.items("a")["items"]] == [item]
    assert alice.item("a", item)["json"] == {"v": 1}
    healthy(srv)


def test_404_not_found(herald):
    """404 for an unknown node on every node route (item-not-found, detail
    "no such node"), an unknown item (GET and DELETE), and unknown routes
    (about:blank, no condition)."""
    srv, alice = rest_server(herald)
    alice.create("n")
    for method, path in (("GET", node_path("ghost")), ("PATCH", node_path("ghost")),
                         ("DELETE", node_path("ghost")), ("POST", node_path("ghost", "purge")),
                         ("GET", items_path("ghost")), ("POST", items_path("ghost")),
                         ("GET", item_path("ghost", "i")), ("PUT", item_path("ghost", "i")),
                         ("DELETE", item_path("ghost", "i")),
                         ("GET", node_path("ghost", "subscriptions")),
                         ("GET", node_path("ghost", "events"))):
        body = None
        if method in ("POST", "PUT") and "purge" not in path:
            body = {"v": 1}
        if method == "PATCH":
            body = {"config": {"title": "x"}}
        p = assert_problem(alice.req(method, path, body), 404, "item-not-found",
                           what="%s %s" % (method, path))
        assert p["detail"] == "no such node", p
    p = assert_problem(alice.get(item_path("n", "nope")), 404, "item-not-found")
    assert p["detail"] != "no such node", p
    assert_problem(alice.delete(item_path("n", "nope")), 404, "item-not-found")
    for path in ("/v1", "/v1/", "/v1/nope", "/v1/nodes/", "/v1/nodes/n/nope",
                 "/v1/nodes/n/items/i/more", "/v1/nodes/n/items/", "/v1/nodesx", "/v2/nodes",
                 "/v1//nodes", "/nope"):
        p = assert_problem(alice.get(path), 404, what=path)
        assert p["type"] == "about:blank" and "condition" not in p, p
    # The node still works.
    alice.publish("n", {"ok": 1})
    healthy(srv)


def allowed(resp):
    return {m.strip().upper() for m in (resp.header("Allow") or "").split(",") if m.strip()}


def test_405_with_allow(herald):
    """405 for a method a known route does not support, with an Allow
    header listing the methods that route does support (RFC 9110 15.5.6),
    as problem+json."""
    srv, alice = rest_server(herald)
    alice.create("n")
    cases = [
        ("PUT", "/v1/nodes", {"GET", "POST"}),
        ("DELETE", "/v1/nodes", {"GET", "POST"}),
        ("POST", node_path("n"), {"GET", "PATCH", "DELETE"}),
        ("PUT", node_path("n"), {"GET", "PATCH", "DELETE"}),
        ("GET", node_path("n", "purge"), {"POST"}),
        ("DELETE", items_path("n"), {"GET", "POST"}),
        ("PUT", items_path("n"), {"GET", "POST"}),
        ("POST", item_path("n", "i"), {"GET", "PUT", "DELETE"}),
        ("PATCH", item_path("n", "i"), {"GET", "PUT", "DELETE"}),
        ("POST", node_path("n", "events"), {"GET"}),
        ("DELETE", node_path("n", "subscriptions"), {"GET"}),
        ("POST", "/v1/openapi.json", {"GET"}),
    ]
    for method, path, allow in cases:
        body = {"x": 1} if method in ("POST", "PUT", "PATCH") else None
        r = alice.req(method, path, body)
        assert_problem(r, 405, what="%s %s" % (method, path))
        assert allowed(r) - {"HEAD"} == allow, "%s %s: Allow %r, expected %r" % (
            method, path, r.header("Allow"), allow)
    # Nothing happened to the node.
    assert alice.items("n")["items"] == []


def test_405_operations_routes_have_allow(herald):
    """The documented operations routes (/healthz, /metrics) are known
    routes too: a POST is 405 with Allow (docs: "405 method not allowed on
    a known route (with Allow)"; RFC 9110 15.5.6: a 405 MUST carry
    Allow)."""
    srv, alice = rest_server(herald)
    for path in ("/healthz", "/metrics"):
        r = curl_request(srv, "POST", path, body=b"x", ctype="text/plain")
        assert_problem(r, 405, what="POST %s" % path)
        assert "GET" in allowed(r), "POST %s: 405 without Allow: GET: %r" % (path, r)


def test_413_and_414(herald):
    """A body over 1 MiB is 413 (problem+json) and the connection closes;
    a payload over the node's max_payload_size is 413 with condition
    not-acceptable and pubsub-condition payload-too-big (JSON and XML),
    while one at the limit is accepted; a request target over 8 KiB is
    414."""
    srv, alice = rest_server(herald)
    alice.create("n", {"max_items": 10})
    alice.create("small", {"max_payload_size": 200})
    big = '{"blob": "%s"}' % ("a" * (MIB + 10))
    r = alice.post(items_path("n"), big, ctype="application/json")
    assert_problem(r, 413, what="1 MiB body")
    assert (r.header("Connection") or "").lower() == "close", r
    # Exactly at the transport limit is not refused for its size.
    at_limit = '{"b": "%s"}' % ("a" * (MIB - 10))
    r = alice.post(items_path("n"), at_limit, ctype="application/json")
    assert r.status != 413 or "1 MiB" not in r.text, r
    # The node's payload limit (the stored payload is the JSON container).
    p = assert_problem(alice.post(items_path("small"), {"blob": "b" * 300}), 413,
                       "not-acceptable", "payload-too-big")
    assert p["type"] == "urn:herald:problem:payload-too-big", p
    xml = "<big xmlns='urn:example:big'>%s</big>" % ("c" * 300)
    assert_problem(alice.put(item_path("small", "x"), xml, ctype="application/xml"), 413,
                   "not-acceptable", "payload-too-big")
    expect(alice.post(items_path("small"), {"blob": "b" * 100}), 201)
    assert len(alice.items("small")["items"]) == 1
    r = alice.get("/v1/nodes/" + "n" * 9000)
    assert_problem(r, 414, what="9000-byte path")
    healthy(srv)


def test_415_unsupported_media_type(herald):
    """415 for an item body that is neither JSON nor XML (text/plain, no
    Content-Type, form-urlencoded, application/jsonx), and for a node body
    that is not JSON; nothing is stored."""
    srv, alice = rest_server(herald)
    alice.create("n")
    for ctype in ("text/plain", "", "application/x-www-form-urlencoded", "application/jsonx",
                  "application/octet-stream", "image/png", "json"):
        assert_problem(alice.post(items_path("n"), '{"a": 1}', ctype=ctype), 415,
                       what="item as %r" % ctype)
        assert_problem(alice.put(item_path("n", "i"), '{"a": 1}', ctype=ctype), 415,
                       what="PUT item as %r" % ctype)
    assert_problem(alice.post("/v1/nodes", "node=x", ctype="application/x-www-form-urlencoded"),
                   415)
    assert_problem(alice.post("/v1/nodes", "<create xmlns='urn:x'/>", ctype="application/xml"),
                   415)
    assert_problem(alice.patch(node_path("n"), "title=x", ctype="text/plain"), 415)
    assert alice.items("n")["items"] == []
    assert [n["node"] for n in alice.get("/v1/nodes").json()["nodes"]] == ["n"]
    # Media types are case-insensitive (RFC 9110 8.3.1).
    expect(alice.post(items_path("n"), '{"a": 1}', ctype="Application/JSON"), 201)


def test_501_publish_to_collection(herald):
    """Publishing to a collection node is 501 feature-not-implemented
    (XEP-0060 §7.1.3.5, as over XMPP)."""
    srv, alice = rest_server(herald)
    node = alice.create("coll", {"node_type": "collection"})
    assert node["type"] == "collection", node
    assert_problem(alice.post(items_path("coll"), {"v": 1}), 501, "feature-not-implemented",
                   "unsupported")


def test_errors_pipelined_on_one_connection(herald):
    """Error answers do not break a kept-alive connection: a pipeline of
    failing and succeeding requests on one socket gets every answer, in
    order, and the last (successful) one sees the earlier good one."""
    srv, alice = rest_server(herald)
    alice.create("n")
    t = alice.tok
    reqs = [
        (build_request("GET", items_path("ghost"), t), 404),
        (build_request("POST", items_path("n"), t, '{"bad', "application/json"), 400),
        (build_request("POST", items_path("n"), t, "x", "text/plain"), 415),
        (build_request("GET", items_path("n"), None), 401),
        (build_request("PUT", "/v1/nodes", t, {}), 405),
        (build_request("POST", "/v1/nodes", t, {"node": "n"}), 409),
        (build_request("PUT", item_path("n", "ok"), t, {"ok": True}), 201),
        (build_request("GET", items_path("n") + "?max=0", t), 400),
        (build_request("GET", "/v1/nope", t), 404),
        (build_request("GET", item_path("n", "ok"), t), 200),
    ]
    answers = pipeline(srv, [r for r, _ in reqs])
    assert [a.status for a in answers] == [s for _, s in reqs], answers
    for a in answers:
        if a.status >= 400:
            assert a.ctype == "application/problem+json", a
            assert json.loads(a.body)["status"] == a.status, a
    assert json.loads(answers[-1].body)["json"] == {"ok": True}


def test_server_survives_every_error(herald):
    """Every error status above, then: /healthz still answers, the
    error counters moved, and the log shows no crash (the fixture then
    requires exit status 0 on SIGTERM, which under ASan also means no
    leak)."""
    srv, alice = rest_server(herald)
    alice.create("n", {"max_payload_size": 100})
    anon = Rest(srv)
    bob = Rest(srv, new_token(srv, "bob@localhost", scope="read"))
    statuses = [
        anon.get("/v1/nodes").status,
        bob.post(items_path("n"), {"v": 1}).status,
        alice.get(node_path("ghost")).status,
        alice.put("/v1/nodes").status,
        alice.post("/v1/nodes", "[]", ctype="application/json").status,
        alice.post("/v1/nodes", {"node": "n"}).status,
        alice.post(items_path("n"), {"v": "x" * 200}).status,
        alice.post(items_path("n"), "x", ctype="text/plain").status,
        alice.get("/v1/nodes/" + "x" * 9000).status,
        # Too deep, within the 64 KiB payload cap (a larger body is 413 unread).
        alice.post(items_path("n"), "{" * 60000, ctype="application/json").status,
        alice.post(items_path("n"), "<a xmlns='u'>" * 5000, ctype="application/xml").status,
    ]
    assert statuses == [401, 403, 404, 405, 400, 409, 413, 415, 414, 400, 400], statuses
    # A raw request whose body is cut short by closing the connection.
    c = RawHttp(srv)
    c.send(b"POST /v1/nodes/n/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
           alice.tok.encode() + b"\r\nContent-Type: application/json\r\n"
           b"Content-Length: 1000\r\n\r\n{\"partial\":")
    c.close()
    metrics = curl_request(srv, "GET", "/metrics").text
    m = re.search(r'^herald_http_requests_total\{code="4xx"\} (\d+)$', metrics, re.M)
    assert m and int(m.group(1)) >= 10, metrics
    healthy(srv)
    assert alice.items("n")["items"] == []
