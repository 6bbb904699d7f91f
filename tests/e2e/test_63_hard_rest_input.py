"""Hardening of what enters through REST (issue 11, findings 4 and 2;
docs/security.md).

Finding 4: every string that enters becomes XML text some XMPP client
parses (notifications, disco#items, disco#info), so JSON payloads (every
string and key, after unescaping, and the raw bytes), node names, item ids,
configuration values and XML payloads must be UTF-8 of XML 1.0 Chars: no
overlong forms, surrogates (raw or as unpaired \\u escapes), code points
above U+10FFFF, U+FFFE/U+FFFF, C0 controls other than tab/LF/CR, or NUL
(which once cut "nul\\u0000tail" to a node named "nul"). Each is refused
with 400 problem+json, nothing is created or published, an XMPP subscriber
keeps parsing its stream, and valid non-ASCII text still goes end to end.

Finding 2 (REST half): a 1 MiB namespace-heavy application/xml item was
canonicalized before any check (40 s of CPU for a publish-only token on a
missing node). Authorization and node existence now come first, and a body
over max_payload_size is refused unread: the server spends well under
0.2 s of CPU on such a request while a witness session keeps its pings
answered within the documented bound.
"""
import json
import time

from e2e_helpers import NS_CLIENT, RawStream, q, show
from hardening_helpers import SLOWDOWN, Witness, cpu_seconds
from pubsub_helpers import (NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_EVENT, NS_PUBSUB,
                            PUBSUB, parse_form, pubsub_xml)
from rest_helpers import (USERS, Rest, assert_problem, enc, expect, item_path, items_path,
                          new_token, node_path, rest_server)

# CPU the server may spend on one refused 1 MiB request.
CPU_BOUND = 0.2 * SLOWDOWN

# JSON item bodies XML cannot carry, each with what is wrong.
BAD_JSON = [
    (b'{"v":"\\uffff"}', "escape of U+FFFF"),
    (b'{"v":"\\ufffe"}', "escape of U+FFFE"),
    (b'{"v":"\xef\xbf\xbf"}', "raw U+FFFF"),
    (b'{"v":"\xc0\xaf"}', "overlong UTF-8 (C0 AF)"),
    (b'{"v":"\xe0\x80\xaf"}', "overlong 3-byte UTF-8"),
    (b'{"v":"\xed\xa0\x80"}', "raw surrogate (ED A0 80)"),
    (b'{"v":"\\ud800"}', "unpaired high surrogate escape"),
    (b'{"v":"\\ud800x"}', "high surrogate escape before a plain character"),
    (b'{"v":"\\ud800\\u0041"}', "high surrogate escape paired with a non-surrogate"),
    (b'{"v":"\\udc00"}', "lone low surrogate escape"),
    (b'{"v":"\xf4\x90\x80\x80"}', "code point above U+10FFFF"),
    (b'{"v":"\xf7\xbf\xbf\xbf"}', "4-byte form beyond Unicode"),
    (b'{"\xed\xbf\xbf":1}', "surrogate in a key"),
    (b'{"\\uffff":1}', "U+FFFF escaped in a key"),
    (b'{"v":"\x01"}', "raw C0 control"),
    (b'["ok", {"deep": ["\\uffff"]}]', "nested string"),
]

# Values that are fine: non-ASCII, astral (a proper surrogate pair when
# escaped), the last valid Char. Control characters and NUL in an item's
# JSON stay escapes in its JSON text (RFC 8259 §7), which is XML text.
GOOD_VALUES = ["caf\u00e9", "\U0001F600", "\U0010FFFD", "tab\tnl\ncr\r", "\ufffd", "\ue000",
               "\U00010000", "nul\u0000tail \u0001\u001f"]


def subscriber(srv, user, node):
    """A hand-driven XMPP session (RawStream, Python's expat parser: it
    stops at the first character XML forbids) subscribed to node with its
    full JID."""
    s = RawStream(srv.port, timeout=10.0)
    jid = s.login(user, USERS[user])
    r = s.iq(pubsub_xml("<subscribe node='%s' jid='%s'/>" % (node, jid)), itype="set",
             to=PUBSUB)
    assert r is not None and r.get("type") == "result", "subscribe failed: %s" % show(r)
    return s


def next_event(s, timeout=5.0):
    """The next pubsub notification <message/> of a RawStream, or None."""
    return s.wait_element(lambda e: e.tag == q(NS_CLIENT, "message")
                          and e.find(q(NS_EVENT, "event")) is not None, timeout)


def assert_stream_fine(s):
    assert s.parse_error is None, "the subscriber's XML parser failed: %s; bytes: %r" % (
        s.parse_error, bytes(s.raw[-600:]))
    assert not s.closed, "the server closed the subscriber's stream"


def disco_items(s):
    r = s.iq("<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=PUBSUB)
    assert_stream_fine(s)
    assert r is not None and r.get("type") == "result", "disco#items: %s" % show(r)
    return sorted(i.get("node") for i in r.find(q(NS_DISCO_ITEMS, "query")))


def disco_meta(s, node):
    """The pubsub#meta-data form of a node's disco#info (XEP-0060 §5.4)."""
    r = s.iq("<query xmlns='%s' node='%s'/>" % (NS_DISCO_INFO, node), to=PUBSUB)
    assert_stream_fine(s)
    assert r is not None and r.get("type") == "result", "disco#info: %s" % show(r)
    return parse_form(r.find(q(NS_DISCO_INFO, "query")).find(q(NS_DATA, "x")))


def nodes_of(alice):
    return sorted(n["node"] for n in expect(alice.get("/v1/nodes"), 200).json()["nodes"])


def assert_400(resp, what):
    p = assert_problem(resp, 400, what=what)
    assert len(p["detail"]) > 10, "%s: the problem does not say what was wrong: %r" % (what, p)
    return p


def test_json_payloads_xml_cannot_carry_are_refused(herald):
    """Each BAD_JSON body, POSTed and PUT as an item, answers 400
    problem+json and publishes nothing while a witness session keeps its
    pings answered; the XMPP subscriber's parser never fails, and then every GOOD_VALUES item (as \\u escapes and as raw
    UTF-8) reaches it and reads back intact."""
    srv, alice = rest_server(herald)
    alice.create("feed")
    sub = subscriber(srv, "bob", "feed")
    with Witness(srv, "carol", USERS["carol"]) as w:
        for body, what in BAD_JSON:
            p = assert_400(alice.post(items_path("feed"), body, ctype="application/json"), what)
            assert_400(alice.put(item_path("feed", "x"), body, ctype="application/json"), what)
            if b"\\u" in body and b"\\ud800\\u0041" not in body:
                assert "\\u" in p["detail"] or "escape" in p["detail"], (what, p)
        w.check()
    assert alice.items("feed")["items"] == [], "a refused item was stored"
    assert next_event(sub, timeout=0.5) is None, "a refused item was delivered"
    assert_stream_fine(sub)

    # Each value as \u escapes (astral ones as surrogate pairs) and as raw UTF-8.
    for i, value in enumerate(GOOD_VALUES):
        body = {"v": value, "k\u00e9\U0001F600\u0002": [value]}
        for ascii_only in (True, False):
            raw = json.dumps(body, ensure_ascii=ascii_only).encode()
            r = expect(alice.put(item_path("feed", "good%d" % i), raw, ctype="application/json"),
                       201 if ascii_only else 200, repr(raw))
            assert alice.item("feed", r.json()["id"])["json"] == body
            ev = next_event(sub)
            assert_stream_fine(sub)
            assert ev is not None, "no notification for %r" % raw
            text = "".join(ev.itertext())
            assert json.loads(text) == body, (raw, text)


def test_node_names_xml_cannot_carry_are_refused(herald):
    """Node names with a control character, NUL, U+FFFF, a surrogate or
    invalid UTF-8, in a create body or in the path, answer 400 and create
    nothing ("nul\\u0000tail" does not create "nul"); disco#items still
    parses for an XMPP client; a valid non-ASCII name works."""
    srv, alice = rest_server(herald, config={"pubsub": {"auto_create": True}})
    alice.create("plain")
    bodies = [
        (b'{"node":"bad\\u0001name"}', "U+0001 in the name"),
        (b'{"node":"nul\\u0000tail"}', "NUL in the name"),
        (b'{"node":"\\uffff"}', "U+FFFF as the name"),
        (b'{"node":"x\\ud800"}', "unpaired surrogate in the name"),
        (b'{"node":"x\xc0\xafy"}', "overlong UTF-8 in the name"),
        (b'{"node":"x\xf4\x90\x80\x80"}', "above U+10FFFF in the name"),
        (b'{"nod\\u0000e":"x"}', "NUL in a key"),
    ]
    for body, what in bodies:
        assert_400(alice.post("/v1/nodes", body, ctype="application/json"), what)
    # Path segments: creating by publishing (auto_create) and plain reads.
    for seg in ("%01", "a%00b", "%EF%BF%BF", "%ED%A0%80", "%C0%AF", "%F4%90%80%80"):
        assert_400(alice.post("/v1/nodes/%s/items" % seg, {"v": 1}), "path " + seg)
        assert_400(alice.get("/v1/nodes/%s" % seg), "path " + seg)
    assert nodes_of(alice) == ["plain"], "a refused name created a node"
    assert_problem(alice.get(node_path("nul")), 404, what="node 'nul'")

    s = RawStream(srv.port, timeout=10.0)
    s.login("carol", USERS["carol"])
    assert disco_items(s) == ["plain"]
    good = "caf\u00e9-\U0001F600-\U0010FFFD"
    alice.create(good)
    assert disco_items(s) == sorted(["plain", good])
    assert_stream_fine(s)
    s.close()


def test_config_values_xml_cannot_carry_are_refused(herald):
    """A title with U+0002 (or U+FFFF, NUL, a raw surrogate) at creation or
    in PATCH answers 400 and changes nothing; disco#info on the node still
    parses for an XMPP client and shows the old title; a non-ASCII title
    works."""
    srv, alice = rest_server(herald)
    alice.create("cfg", {"title": "before"})
    bad = [
        (b'{"config":{"title":"a\\u0002b"}}', "U+0002 in the title"),
        (b'{"config":{"title":"\\uffff"}}', "U+FFFF in the title"),
        (b'{"config":{"title":"nul\\u0000tail"}}', "NUL in the title"),
        (b'{"config":{"title":"\xed\xa0\x80"}}', "raw surrogate in the title"),
        (b'{"config":{"type":"urn:x\\u0007"}}', "U+0007 in pubsub#type"),
    ]
    for body, what in bad:
        assert_400(alice.patch(node_path("cfg"), body, ctype="application/json"), what)
        create = body.replace(b'{"config"', b'{"node":"new","config"')
        assert_400(alice.post("/v1/nodes", create, ctype="application/json"), what)
    # A problem detail quoting a long non-ASCII key stays UTF-8 (no cut
    # sequence), so the answer itself is JSON a client can parse.
    long_key = "a" + "\u00e9" * 60
    p = assert_400(alice.patch(node_path("cfg"), {"config": {long_key: 1}}), "unknown key")
    assert long_key[:40] in p["detail"], p
    assert nodes_of(alice) == ["cfg"]
    node = expect(alice.get(node_path("cfg")), 200).json()
    assert node["config"]["title"] == "before", node

    s = RawStream(srv.port, timeout=10.0)
    s.login("bob", USERS["bob"])
    assert disco_meta(s, "cfg").get("pubsub#title") == ["before"]
    title = "Caf\u00e9 \U0001F600 \U0010FFFD"
    expect(alice.patch(node_path("cfg"), {"config": {"title": title}}), 200)
    assert disco_meta(s, "cfg").get("pubsub#title") == [title]
    assert_stream_fine(s)
    s.close()


def test_xml_payloads_and_item_ids_xml_cannot_carry_are_refused(herald):
    """application/xml items holding a forbidden character (raw or as a
    character reference) and item ids with one answer 400 and publish
    nothing; the subscriber's stream stays well-formed."""
    srv, alice = rest_server(herald)
    alice.create("xfeed")
    sub = subscriber(srv, "bob", "xfeed")
    bodies = [
        b"<v xmlns='urn:t'>&#xFFFF;</v>",
        b"<v xmlns='urn:t'>&#1;</v>",
        b"<v xmlns='urn:t'>&#0;</v>",
        b"<v xmlns='urn:t'>&#xD800;</v>",
        b"<v xmlns='urn:t'>\xef\xbf\xbf</v>",
        b"<v xmlns='urn:t'>\xc0\xaf</v>",
        b"<v xmlns='urn:t'>\xed\xa0\x80</v>",
        b"<v xmlns='urn:t'>\x01</v>",
        b"<v xmlns='urn:t'>a\x00b</v>",
        b"<v xmlns='urn:t' a='\xf4\x90\x80\x80'/>",
    ]
    for body in bodies:
        assert_400(alice.post(items_path("xfeed"), body, ctype="application/xml"), repr(body))
    for seg in ("%01", "a%00b", "%EF%BF%BE", "%ED%B0%80", "%E0%80%AF"):
        assert_400(alice.put("/v1/nodes/xfeed/items/" + seg, {"v": 1}), "item id " + seg)
    assert alice.items("xfeed")["items"] == []
    assert next_event(sub, timeout=0.5) is None
    assert_stream_fine(sub)
    good = "<v xmlns='urn:t' a='\u00e9'>\U0001F600\U0010FFFD</v>".encode()
    r = expect(alice.put(item_path("xfeed", "\u00e9-\U0001F600"), good,
                         ctype="application/xml"), 201)
    assert r.json()["id"] == "\u00e9-\U0001F600"
    ev = next_event(sub)
    assert_stream_fine(sub)
    assert ev is not None and "\U0001F600\U0010FFFD" in "".join(ev.itertext()), show(ev)
    sub.close()


# --------------------------------------------------------------------------
# Finding 2: payload work only after every check
# --------------------------------------------------------------------------

def ns_heavy_xml(total=1024 * 1024 - 64, uri_len=128 * 1024):
    """The attack shape of issue 11: a prefix bound to a 128 KB namespace
    URI on the root, used by as many empty elements as fit in `total`
    bytes (a serializer that declares the URI per element writes it
    ~150,000 times)."""
    head = b"<p:r xmlns:p='urn:" + b"x" * (uri_len - 4) + b"'>"
    tail = b"</p:r>"
    n = (total - len(head) - len(tail)) // len(b"<p:e/>")
    return head + b"<p:e/>" * n + tail


def timed_request(srv, rest, method, path, body, ctype):
    """(answer, server CPU seconds spent, wall seconds)."""
    cpu0, t0 = cpu_seconds(srv.proc.pid), time.monotonic()
    r = rest.req(method, path, body, ctype=ctype, timeout=60)
    return r, cpu_seconds(srv.proc.pid) - cpu0, time.monotonic() - t0


def test_huge_xml_item_refused_before_any_parsing(herald):
    """A 1 MiB namespace-heavy application/xml item is answered at once,
    with no payload work, when (a) the token's JID may not publish to the
    node (403), (b) the node does not exist (404, publish-only token as in
    the issue), (c) the node allows it but the body is over the default
    max_payload_size (413); the server's CPU for each request stays under
    CPU_BOUND, and a witness session's pings are answered within the
    bound throughout."""
    srv = herald(users=USERS)
    alice = Rest(srv, new_token(srv, "alice@localhost"))
    bob = Rest(srv, new_token(srv, "bob@localhost", scope="publish"))
    alice.create("guarded")  # publish_model publishers: bob may not publish
    body = ns_heavy_xml()
    assert len(body) <= 1024 * 1024 and body.count(b"<p:e/>") > 150000
    with Witness(srv, "carol", USERS["carol"]) as w:
        for who, node, status, what in ((bob, "guarded", 403, "no publish right"),
                                        (bob, "missing", 404, "no such node"),
                                        (alice, "guarded", 413, "over max_payload_size")):
            for method, path in (("POST", items_path(node)), ("PUT", item_path(node, "big"))):
                r, cpu, wall = timed_request(srv, who, method, path, body, "application/xml")
                assert cpu < CPU_BOUND, "%s %s (%s): the server spent %.2f s of CPU (%d)" % (
                    method, path, what, cpu, r.status)
                assert_problem(r, status, what=what)
                assert wall < 5 * SLOWDOWN, "%s: answered after %.1f s" % (what, wall)
        w.check()
    assert alice.items("guarded")["items"] == []


def test_huge_namespace_heavy_item_allowed_does_not_stall(herald):
    """With max_payload_size raised to 1 MiB, the same body from a token
    that may publish is parsed and answered (201, or a clear 4xx) without
    stalling a witness session beyond the bound."""
    srv = herald(users=USERS, config={"c2s": {"max_stanza_size": 4 * 1024 * 1024},
                                      "pubsub": {"max_payload_size_cap": 1024 * 1024}})
    alice = Rest(srv, new_token(srv, "alice@localhost"))
    alice.create("big", {"max_payload_size": 1024 * 1024})
    sub = subscriber(srv, "bob", "big")
    body = ns_heavy_xml()
    with Witness(srv, "carol", USERS["carol"]) as w:
        r = alice.req("POST", items_path("big"), body, ctype="application/xml", timeout=60)
        assert r.status == 201 or 400 <= r.status < 500, r
        w.check()
    sub.close()
