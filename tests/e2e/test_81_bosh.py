"""XMPP over BOSH (XEP-0124, XEP-0206) at POST /http-bind on the HTTP listener.

* strophe.js (5.0, pinned in tests/web/package-lock.json; in Node with
  @xmldom/xmldom and, for BOSH's XMLHttpRequest, xhr2: see
  tests/web/boshclient.js) logs in, exchanges messages with slixmpp on TCP,
  receives a message on a request the server held (long polling), and
  terminates: the session ends for everyone.
* Raw HTTP (http.client): the session creation response, authentication only
  over TLS or with allow_plaintext, rid replay, pause, the inactivity
  timeout, terminate, CORS preflight, GET -> 405.

A session over the plain HTTP port is a plaintext session (docs/web.md): with
the default c2s.require_tls it cannot authenticate, so the tests on http://
run with c2s.allow_plaintext; https:// needs no such setting.

Without tests/web/node_modules the strophe.js test is skipped, unless
HERALD_REQUIRE_NODE is set (scripts/test), in which case it fails."""
import asyncio
import select
import time
import xml.etree.ElementTree as ET

import pytest
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from e2e_helpers import DOMAIN, NS_CLIENT, NS_PING, NS_SASL, NS_TLS, XClient, q, run, show, \
    stanza_error_condition
from web_helpers import (NS_HTTPBIND, NS_XBOSH, Bosh, NodeClient, Scram, b64e, bosh_post,
                         http_request, metric, metrics, scaled, wait_metric)

USERS = {"alice": "wonderland", "bob": "builder"}


def presence_queue(c):
    """Every <presence/> slixmpp client c receives, in a queue."""
    c.presences = asyncio.Queue()
    c.xmpp.register_handler(Callback("web-presences", MatchXPath("{%s}presence" % NS_CLIENT),
                                     lambda p: c.presences.put_nowait(p)))
    return c


async def next_presence(c, frm, timeout=None):
    deadline = time.monotonic() + (timeout or scaled(10))
    seen = []
    while time.monotonic() < deadline:
        try:
            p = await asyncio.wait_for(c.presences.get(), max(0.01, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        if p["from"].full == frm:
            return p
        seen.append(str(p))
    raise AssertionError("%s got no presence from %s (others: %s)" % (c.jid, frm, seen))


def is_item_not_found(r, el):
    return (r.status == 200 and el is not None and el.tag == q(NS_HTTPBIND, "body")
            and el.get("type") == "terminate" and el.get("condition") == "item-not-found")


# --------------------------------------------------------------------------
# strophe.js
# --------------------------------------------------------------------------

def test_strophe_bosh_messages_long_poll_and_terminate(herald):
    """strophe.js logs in over BOSH as alice, bob is slixmpp on TCP:
    (1) alice's bound JID; herald_sessions{transport="bosh"} is 1 and
    herald_bosh_requests_total counts; (2) alice's directed presence and a
    chat message reach bob with alice's full JID; (3) long polling
    (XEP-0124 §7, XEP-0206): once strophe.js is idle with its one request
    held, bob's message arrives in the answer to a request sent *before*
    bob sent it; (4) terminate (XEP-0124 §13): strophe.js's disconnect ends
    the session: bob sees alice unavailable, /metrics drops the bosh
    session, an iq to alice's full JID gets service-unavailable, and the
    old sid is unknown (item-not-found)."""
    srv = herald(users=USERS, allow_plaintext=True)

    async def scenario():
        bob = presence_queue(XClient(srv, "bob@%s/slix" % DOMAIN, USERS["bob"]))
        await bob.login()
        await bob.presence()
        js = await NodeClient.start("boshclient.js", {
            "HERALD_SERVICE": "http://127.0.0.1:%d/http-bind" % srv.http_port,
            "HERALD_DOMAIN": DOMAIN, "XMPP_USER": "alice", "XMPP_PASSWORD": USERS["alice"],
            "XMPP_RESOURCE": "strophe-bosh", "BOSH_WAIT": "30"}, "strophe.js")
        try:
            online = await js.expect(lambda e: e["event"] in ("online", "fatal"), "login")
            assert online["event"] == "online", "strophe.js could not log in over BOSH: %s\n%s" \
                % (online.get("error"), js.diag())
            alice = online["jid"]
            assert alice == "alice@%s/strophe-bosh" % DOMAIN, alice
            first = await js.expect(lambda e: e["event"] == "http" and e["seq"] == 1,
                                    "the session creation response", consume=False)
            created = ET.fromstring(first["body"])
            sid = created.get("sid")
            assert sid, "session creation response without sid: %s" % first["body"]

            m = metrics(srv)
            assert metric(m, "herald_sessions", transport="bosh") == 1, \
                {k: v for k, v in m.items() if "sessions" in k}
            reqs = metric(m, "herald_bosh_requests_total")
            assert reqs is not None and reqs >= 4, "herald_bosh_requests_total = %r" % reqs

            # (2) presence and a message to bob
            await js.request(cmd="send", xml="<presence xmlns='jabber:client'/>")
            await js.request(cmd="send", xml="<presence xmlns='jabber:client' to='%s'/>" % bob.jid)
            p = await next_presence(bob, alice)
            assert p["type"] == "available", str(p)
            await js.request(cmd="send", xml=(
                "<message xmlns='jabber:client' to='%s' type='chat' id='b-m1'>"
                "<body>hello from strophe.js over BOSH</body></message>" % bob.jid))
            msg = await bob.expect_message(timeout=scaled(5))
            assert msg["body"] == "hello from strophe.js over BOSH" and msg["from"].full == alice, \
                str(msg)

            # (3) long polling: let strophe.js settle on one held request
            await asyncio.sleep(scaled(0.7))
            mark = await js.request(cmd="mark")
            assert mark["outstanding"] >= 1, "strophe.js holds no request while idle: %s" % mark
            bob.send_message(alice, "delivered on a held request")
            got = await js.stanza(lambda e: e.findtext(q(NS_CLIENT, "body"))
                                  == "delivered on a held request", "bob's message")
            assert got.get("from") == bob.jid, show(got)
            carrier = await js.expect(lambda e: e["event"] == "http"
                                      and "delivered on a held request" in (e["body"] or ""),
                                      "the HTTP response that carried bob's message",
                                      consume=False)
            assert carrier["seq"] <= mark["sent"], (
                "bob's message came on request #%d, sent after bob's message (strophe.js had "
                "sent %d requests before): the server did not deliver it on the held request"
                % (carrier["seq"], mark["sent"]))

            # (4) terminate
            await js.request(cmd="disconnect")
            term = await js.expect(lambda e: e["event"] == "http" and e.get("type") == "terminate",
                                   "the answer to the terminate request", consume=False)
            assert term["status"] == 200, term
            tel = ET.fromstring(term["body"])
            assert tel.get("type") == "terminate", "terminate answered with %s" % term["body"]
            p = await next_presence(bob, alice)
            assert p["type"] == "unavailable", str(p)
            left = await wait_metric(srv, "herald_sessions", 0, transport="bosh")
            assert left == 0, "herald_sessions{transport=bosh} = %r after terminate" % left
            ans = await bob.iq("<ping xmlns='%s'/>" % NS_PING, to=alice)
            assert ans["type"] == "error" and \
                stanza_error_condition(ans.xml) == "service-unavailable", str(ans)
            r, el = bosh_post(srv.http_port, "<body rid='%d' sid='%s' xmlns='%s'/>"
                              % (int(first["rid"]) + 50, sid, NS_HTTPBIND))
            assert is_item_not_found(r, el), "a request on the terminated sid: %r" % r
        finally:
            rc = await js.stop()
        assert rc == 0, "strophe.js exited %r\n%s" % (rc, js.diag())

    run(scenario, timeout=scaled(45))


# --------------------------------------------------------------------------
# Raw HTTP
# --------------------------------------------------------------------------

def test_bosh_session_creation_and_login(herald):
    """XEP-0124 §7.1-7.2, XEP-0206 §5: the creation response (200,
    text/xml; charset=utf-8) carries sid, wait (not above the request),
    requests (hold+1), hold, inactivity, polling, maxpause, ver, from,
    xmpp:version='1.0' and the stream features (SCRAM, no STARTTLS);
    SCRAM-SHA-1, a restart with xmpp:restart='true'
    (XEP-0206 §5), bind and an iq round trip work; a wait above the
    server's maximum is lowered."""
    srv = herald(users=USERS, allow_plaintext=True)
    b = Bosh(srv, wait=10, hold=1)
    el = b.create()
    a = el.attrib
    for attr in ("sid", "wait", "requests", "hold", "inactivity", "polling", "maxpause", "ver",
                 "from"):
        assert a.get(attr), "creation response without %s: %s" % (attr, show(el))
    assert int(a["wait"]) <= 10 and int(a["hold"]) == 1, show(el)
    assert int(a["requests"]) == int(a["hold"]) + 1, "requests != hold+1 (§7.1): %s" % show(el)
    assert a["from"] == DOMAIN, show(el)
    assert a.get(q(NS_XBOSH, "version")) == "1.0", "no xmpp:version='1.0': %s" % show(el)
    assert len(a["sid"]) >= 16, "sid too short to be unpredictable: %r" % a["sid"]
    feats = b.features_of(el)
    mechs = [m.text for m in feats.find(q(NS_SASL, "mechanisms"))]
    assert "SCRAM-SHA-1" in mechs, show(feats)
    assert feats.find(q(NS_TLS, "starttls")) is None, show(feats)
    r = b.created_resp
    assert r.header("content-type", "").replace(" ", "").lower() == "text/xml;charset=utf-8", r

    jid = b.login("alice", USERS["alice"])
    assert jid == "alice@%s/raw-bosh" % DOMAIN, jid
    el = b.req("<iq xmlns='jabber:client' type='get' id='bp1' to='%s'><ping xmlns='%s'/></iq>"
               % (DOMAIN, NS_PING))
    res = b.collect(el, lambda c: c.get("id") == "bp1", "ping result")
    assert res.tag == q(NS_CLIENT, "iq") and res.get("type") == "result", show(res)
    assert metric(metrics(srv), "herald_sessions", transport="bosh") == 1

    b2 = Bosh(srv, wait=3600)
    el2 = b2.create()
    assert int(el2.get("wait")) <= 60, "wait=3600 accepted as %s" % el2.get("wait")


def test_bosh_authentication_needs_tls_or_allow_plaintext(herald):
    """docs/web.md: with the default c2s.require_tls a BOSH session over
    http:// is plaintext: its features offer no SASL mechanism (nor
    STARTTLS) and <auth/> fails with <encryption-required/>; over https://
    (the TLS port) SCRAM and PLAIN are offered and a login works."""
    srv = herald(users=USERS)
    b = Bosh(srv, wait=2)
    el = b.create()
    feats = b.features_of(el)
    assert feats.find(q(NS_SASL, "mechanisms")) is None and \
        feats.find(q(NS_TLS, "starttls")) is None, "http:// BOSH offers %s" % show(feats)
    el = b.req("<auth xmlns='%s' mechanism='SCRAM-SHA-1'>%s</auth>"
               % (NS_SASL, b64e(Scram("alice", USERS["alice"]).first())))
    fail = b.collect(el, lambda c: c.tag.startswith("{%s}" % NS_SASL), "SASL answer")
    assert fail.tag == q(NS_SASL, "failure") and \
        fail.find(q(NS_SASL, "encryption-required")) is not None, show(fail)

    t = Bosh(srv, wait=2, https=True)
    el = t.create()
    mechs = [m.text for m in t.features_of(el).find(q(NS_SASL, "mechanisms"))]
    assert "PLAIN" in mechs and "SCRAM-SHA-1" in mechs, mechs
    assert t.login("alice", USERS["alice"], resource="tls-bosh") == "alice@%s/tls-bosh" % DOMAIN


def test_bosh_rid_replay(herald):
    """XEP-0124 §14.3: a request repeated with a rid already answered gets
    the same response again (byte for byte), and its payload is not
    processed twice; the session goes on with the next rid."""
    srv = herald(users=USERS, allow_plaintext=True)
    b = Bosh(srv, wait=2)
    b.create()
    b.login("alice", USERS["alice"])
    rid = b.next_rid()
    body = b.body("<iq xmlns='jabber:client' type='get' id='rp1' to='%s'><ping xmlns='%s'/></iq>"
                  % (DOMAIN, NS_PING), rid=rid)
    r1, el1 = bosh_post(srv.http_port, body)
    assert r1.status == 200 and el1 is not None, r1
    r2, el2 = bosh_post(srv.http_port, body)
    assert r2.status == 200 and r2.body == r1.body, \
        "replayed rid %d answered %r, first answer %r" % (rid, r2.body, r1.body)
    # The ping was answered once: the next polls bring no second result.
    results = [c for c in el1 if c.get("id") == "rp1"]
    more = b.req()
    results += [c for c in more if c.get("id") == "rp1"]
    assert len(results) == 1, "ping answered %d times: %s" % (len(results),
                                                             [show(c) for c in results])
    el = b.req("<iq xmlns='jabber:client' type='get' id='rp2' to='%s'><ping xmlns='%s'/></iq>"
               % (DOMAIN, NS_PING))
    res = b.collect(el, lambda c: c.get("id") == "rp2", "ping after the replay")
    assert res.get("type") == "result", show(res)


@pytest.mark.once
def test_bosh_long_poll_delivery_and_empty_wait(herald):
    """XEP-0124 §7 / §8: (1) an empty request is held; a message bob sends
    meanwhile comes back as the answer to that held request; (2) with
    nothing to deliver a held request is answered, empty, by the end of
    'wait'."""
    srv = herald(users=USERS, allow_plaintext=True)

    async def scenario():
        bob = XClient(srv, "bob@%s/slix" % DOMAIN, USERS["bob"])
        await bob.login()
        b = Bosh(srv, wait=3)
        b.create()
        alice = await asyncio.to_thread(b.login, "alice", USERS["alice"])
        conn = b.start()
        # Not answered yet: the request is held (nothing to deliver).
        readable, _, _ = select.select([conn.sock], [], [], 0.3)
        assert not readable, "the empty request was answered at once instead of held"
        bob.send_message(alice, "long-poll delivery")
        el = await asyncio.to_thread(Bosh.finish, conn)
        bodies = [c.findtext(q(NS_CLIENT, "body")) for c in el if c.tag == q(NS_CLIENT, "message")]
        assert bodies == ["long-poll delivery"], "held request answered with %s" % show(el)
        el = await asyncio.to_thread(b.req)
        assert len(el) == 0 and el.get("type") is None, "empty wait answered %s" % show(el)

    run(scenario, timeout=scaled(40))


@pytest.mark.once
def test_bosh_pause_and_inactivity(herald):
    """XEP-0124 §10 with [http] bosh_inactivity = 5: (1) the creation
    response says inactivity='5'; (2) a session left without a request for
    longer ends: bob sees its unavailable presence (the directed presence
    it had sent), /metrics drops it, its sid is unknown (item-not-found);
    (3) meanwhile a second session that asked for pause='12' (within
    maxpause) got an immediate empty answer and outlives the inactivity
    period: its next request is served and its iq answered."""
    srv = herald(users=USERS, allow_plaintext=True,
                 config={"http": {"bosh_inactivity": 5, "bosh_max_pause": 30}})

    async def scenario():
        bob = presence_queue(XClient(srv, "bob@%s/slix" % DOMAIN, USERS["bob"]))
        await bob.login()
        await bob.presence()
        idle = Bosh(srv, wait=2)
        el = idle.create()
        assert el.get("inactivity") == "5", show(el)
        assert int(el.get("maxpause")) == 30, show(el)
        idle_jid = await asyncio.to_thread(idle.login, "alice", USERS["alice"], "SCRAM-SHA-1",
                                           "idle")
        await asyncio.to_thread(idle.req, "<presence xmlns='jabber:client'/><presence "
                                "xmlns='jabber:client' to='%s'/>" % bob.jid)
        p = await next_presence(bob, idle_jid)
        assert p["type"] == "available", str(p)

        paused = Bosh(srv, wait=30)
        paused.create()
        paused_jid = await asyncio.to_thread(paused.login, "alice", USERS["alice"],
                                             "SCRAM-SHA-1", "paused")
        held = paused.start()
        readable, _, _ = select.select([held.sock], [], [], 0.3)
        assert not readable, "the empty request was answered at once instead of held"
        # The pause request and the held one are both answered at once (long
        # before wait='30'), without payloads.
        held.sock.settimeout(10)
        t0 = time.monotonic()
        pel = await asyncio.to_thread(paused.req, "", None, " pause='12'", 10)
        assert len(pel) == 0 and pel.get("type") != "terminate", \
            "pause answered with %s" % show(pel)
        hel = await asyncio.to_thread(Bosh.finish, held)
        assert len(hel) == 0 and hel.get("type") != "terminate", \
            "the held request answered with %s on pause" % show(hel)
        assert metric(metrics(srv), "herald_sessions", transport="bosh") == 2

        # (2) the idle one ends after ~5 s without a request
        p = await next_presence(bob, idle_jid, timeout=scaled(12))
        assert p["type"] == "unavailable", str(p)
        left = await wait_metric(srv, "herald_sessions", 1, transport="bosh")
        assert left == 1, "herald_sessions{transport=bosh} = %r, expected the paused one" % left
        r, el = await asyncio.to_thread(bosh_post, srv.http_port, idle.body())
        assert is_item_not_found(r, el), "request on the expired session: %r" % r

        # (3) the paused one is still there (more than 5 s since its last answer)
        await asyncio.sleep(max(0.0, t0 + 6.5 - time.monotonic()))
        el = await asyncio.to_thread(
            paused.req, "<iq xmlns='jabber:client' type='get' id='pp1' to='%s'>"
            "<ping xmlns='%s'/></iq>" % (DOMAIN, NS_PING))
        assert el.get("type") != "terminate", "paused session gone: %s" % show(el)
        res = await asyncio.to_thread(paused.collect, el, lambda c: c.get("id") == "pp1",
                                      "ping result")
        assert res.get("type") == "result", show(res)
        assert paused_jid.endswith("/paused")

    run(scenario, timeout=scaled(45))



def test_bosh_terminate_ends_session(herald):
    """XEP-0124 §13: an empty <body type='terminate'/> is answered with a
    terminate body; the session ends: bob, who had alice's directed
    presence (sent after her initial presence), gets her unavailable
    presence from the server (RFC 6121 4.6.3), and the sid is unknown
    afterwards."""
    srv = herald(users=USERS, allow_plaintext=True)

    async def scenario():
        bob = presence_queue(XClient(srv, "bob@%s/slix" % DOMAIN, USERS["bob"]))
        await bob.login()
        await bob.presence()
        b = Bosh(srv, wait=2)
        b.create()
        alice = await asyncio.to_thread(b.login, "alice", USERS["alice"])
        await asyncio.to_thread(b.req, "<presence xmlns='jabber:client'/><presence "
                                "xmlns='jabber:client' to='%s'/>" % bob.jid)
        p = await next_presence(bob, alice)
        assert p["type"] == "available", str(p)
        el = await asyncio.to_thread(b.req, "", None, " type='terminate'")
        assert el.get("type") == "terminate", "terminate answered with %s" % show(el)
        p = await next_presence(bob, alice)
        assert p["type"] == "unavailable", str(p)
        r, el = await asyncio.to_thread(bosh_post, srv.http_port, b.body())
        assert is_item_not_found(r, el), "request on the terminated session: %r" % r
        left = await wait_metric(srv, "herald_sessions", 0, transport="bosh")
        assert left == 0, left

    run(scenario, timeout=scaled(30))


def test_bosh_cors_and_methods(herald):
    """CORS for browser clients on another origin, with [http]
    allowed_origins = 'https://app.example.test': (1) OPTIONS /http-bind
    preflight from that origin: 204 with Access-Control-Allow-Origin (the
    origin), -Methods (POST), -Headers (Content-Type), -Max-Age and Vary:
    Origin; (2) a POST from it carries Access-Control-Allow-Origin; (3) GET
    /http-bind is 405 with Allow naming POST."""
    srv = herald(users=USERS, config={"http": {"allowed_origins": "https://app.example.test"}})
    origin = "https://app.example.test"
    r = http_request(srv.http_port, "OPTIONS", "/http-bind", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert r.status == 204, r
    assert r.header("access-control-allow-origin") == origin, r
    assert "POST" in r.header("access-control-allow-methods", ""), r
    assert "content-type" in r.header("access-control-allow-headers", "").lower(), r
    assert r.header("access-control-max-age"), r
    assert "origin" in r.header("vary", "").lower(), r

    b = Bosh(srv)
    body = ("<body rid='%d' xmlns='%s' to='%s' xml:lang='en' wait='5' hold='1' ver='1.6' "
            "xmpp:version='1.0' xmlns:xmpp='%s'/>" % (b.rid, NS_HTTPBIND, DOMAIN, NS_XBOSH))
    r, el = bosh_post(srv.http_port, body, headers={"Origin": origin})
    assert r.status == 200 and el is not None and el.get("sid"), r
    assert r.header("access-control-allow-origin") == origin, r

    r = http_request(srv.http_port, "GET", "/http-bind")
    assert r.status == 405, r
    assert "POST" in r.header("allow", ""), r
