"""XMPP over WebSocket (RFC 7395) at GET /xmpp-websocket on the HTTP listener.

A session over the plain HTTP port is a plaintext session (docs/web.md): with
the default c2s.require_tls it cannot authenticate, so the tests on ws:// run
with c2s.allow_plaintext, as TCP tests without STARTTLS do; wss:// on the
HTTPS port needs no such setting.

* xmpp.js (@xmpp/client 0.14, its WebSocket transport, pinned in
  tests/web/package-lock.json; `npm ci --prefix tests/web`) logs in over
  ws:// with SCRAM-SHA-1, exchanges messages with a slixmpp client on TCP, subscribes to a
  node slixmpp publishes to and publishes to one slixmpp subscribes to;
  /metrics counts its session as transport="websocket".
* A hand-made client (tests/e2e/web_helpers.py: handshake, masked frames)
  checks the framing itself: the 101 answer, <open/> and features, SASL
  SCRAM-SHA-1, bind, authentication only over TLS or with allow_plaintext, namespaces of what the
  server sends, <close/> answered with <close/>, pings as keepalive, wss on
  the HTTPS listener.
* XEP-0156 host-meta (XRD and JSON) lists the WebSocket and BOSH endpoints
  built from the Host header.

Without tests/web/node_modules the xmpp.js test is skipped, unless
HERALD_REQUIRE_NODE is set (scripts/test), in which case it fails."""
import json
import socket
import time
import xml.etree.ElementTree as ET

import pytest
from e2e_helpers import DOMAIN, NS_CLIENT, NS_PING, NS_SASL, NS_TLS, q, run, show
from pubsub_helpers import (NS_EVENT, NS_PUBSUB, PUBSUB, must_create, must_publish,
                            items_event_children, must_subscribe, next_event,
                            ps_client)
from web_helpers import (CLOSE, NS_FRAMING, OP_PING, OP_PONG, NodeClient, Scram, WsXmpp, b64e,
                         http_request, metric, metrics, scaled, wait_metric)

USERS = {"alice": "wonderland", "bob": "builder"}
NS_XRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0"
REL_WS = "urn:xmpp:alt-connections:websocket"
REL_BOSH = "urn:xmpp:alt-connections:xbosh"


# --------------------------------------------------------------------------
# xmpp.js over WebSocket
# --------------------------------------------------------------------------

def test_xmppjs_websocket_messages_and_pubsub_with_slixmpp(herald):
    """xmpp.js logs in over ws:// (RFC 7395, SCRAM-SHA-1) as alice while
    slixmpp is bob on TCP: (1) alice's bound JID; /metrics herald_sessions counts one
    websocket and one tcp session; (2) a chat message alice -> bob arrives
    at slixmpp with alice's full JID as from, and bob's answer reaches
    xmpp.js; (3) XEP-0060: alice subscribes to bob's node and receives the
    notification of bob's publication with its payload; bob subscribes to
    alice's node and receives hers; (4) WebSocket frames were counted both
    ways; (5) after xmpp.js stops (<close/>) the websocket session is
    gone from /metrics."""
    srv = herald(users=USERS, allow_plaintext=True)

    async def scenario():
        bob = await ps_client(srv, "bob", USERS["bob"], resource="slix")
        js = await NodeClient.start("wsclient.js", {
            "HERALD_SERVICE": "ws://127.0.0.1:%d/xmpp-websocket" % srv.http_port,
            "HERALD_DOMAIN": DOMAIN, "XMPP_USER": "alice", "XMPP_PASSWORD": USERS["alice"],
            "XMPP_RESOURCE": "xmppjs-ws"}, "@xmpp/client")
        try:
            online = await js.expect(lambda e: e["event"] in ("online", "fatal"), "login")
            assert online["event"] == "online", "xmpp.js could not log in over WebSocket: %s\n%s" \
                % (online.get("error"), js.diag())
            alice = online["jid"]
            assert alice == "alice@%s/xmppjs-ws" % DOMAIN, alice
            auth = await js.expect(lambda e: e["event"] == "auth", "<auth/>", consume=False)
            assert auth["mechanism"] == "SCRAM-SHA-1", "xmpp.js authenticated with %s" % auth

            m = metrics(srv)
            assert metric(m, "herald_sessions", transport="websocket") == 1, \
                "herald_sessions{transport=websocket}: %r" % {k: v for k, v in m.items()
                                                              if "sessions" in k}
            assert metric(m, "herald_sessions", transport="tcp") == 1, m

            # (2) messages both ways
            await js.request(cmd="send", xml="<presence xmlns='jabber:client'/>")
            await js.request(cmd="send", xml=(
                "<message xmlns='jabber:client' to='%s' type='chat' id='ws-m1'>"
                "<body>hello from xmpp.js &amp; WebSocket</body></message>" % bob.jid))
            msg = await bob.expect_message(timeout=scaled(5))
            assert msg["body"] == "hello from xmpp.js & WebSocket", msg
            assert msg["from"].full == alice, "from=%s, expected %s" % (msg["from"], alice)
            assert msg["id"] == "ws-m1", msg
            bob.send_message(alice, "hello back over TCP <3")
            got = await js.stanza(lambda e: e.tag == q(NS_CLIENT, "message")
                                  and e.findtext(q(NS_CLIENT, "body")) is not None,
                                  "bob's message")
            assert got.findtext(q(NS_CLIENT, "body")) == "hello back over TCP <3", show(got)
            assert got.get("from") == bob.jid and got.get("to") == alice, show(got)

            # (3) pubsub: slixmpp publishes, xmpp.js is notified ...
            await must_create(bob, "web/from-tcp")
            ans = await js.request(cmd="iq", xml=(
                "<iq xmlns='jabber:client' type='set' to='%s'><pubsub xmlns='%s'>"
                "<subscribe node='web/from-tcp' jid='alice@%s'/></pubsub></iq>"
                % (PUBSUB, NS_PUBSUB, DOMAIN)))
            assert ans["type"] == "result", "xmpp.js subscribe: %s" % ans["xml"]
            sub = ET.fromstring(ans["xml"]).find(".//{%s}subscription" % NS_PUBSUB)
            assert sub is not None and sub.get("subscription") == "subscribed", ans["xml"]
            await must_publish(bob, "web/from-tcp", "i1",
                               "<reading xmlns='urn:example:grid'>3.5 kW</reading>")
            ev = await js.stanza(lambda e: e.find(".//{%s}items" % NS_EVENT) is not None,
                                 "the notification of bob's item")
            items = ev.find(".//{%s}items" % NS_EVENT)
            assert items.get("node") == "web/from-tcp", show(ev)
            item = items.find(q(NS_EVENT, "item"))
            assert item is not None and item.get("id") == "i1", show(ev)
            assert item.findtext("{urn:example:grid}reading") == "3.5 kW", show(ev)
            assert ev.get("from") == PUBSUB, show(ev)

            # ... and xmpp.js publishes, slixmpp is notified.
            ans = await js.request(cmd="iq", xml=(
                "<iq xmlns='jabber:client' type='set' to='%s'><pubsub xmlns='%s'>"
                "<create node='web/from-ws'/></pubsub></iq>" % (PUBSUB, NS_PUBSUB)))
            assert ans["type"] == "result", "xmpp.js create: %s" % ans["xml"]
            await must_subscribe(bob, "web/from-ws")
            ans = await js.request(cmd="iq", xml=(
                "<iq xmlns='jabber:client' type='set' to='%s'><pubsub xmlns='%s'>"
                "<publish node='web/from-ws'><item id='w1'><entry xmlns='urn:example:ws'>"
                "from the browser transport</entry></item></publish></pubsub></iq>"
                % (PUBSUB, NS_PUBSUB)))
            assert ans["type"] == "result", "xmpp.js publish: %s" % ans["xml"]
            note = await next_event(bob, "items", "web/from-ws", timeout=scaled(5))
            kids = items_event_children(note)
            assert [k.get("id") for k in kids] == ["w1"], str(note)
            assert kids[0].findtext("{urn:example:ws}entry") == "from the browser transport", \
                str(note)

            # (4) frames counted
            m = metrics(srv)
            fin = metric(m, "herald_websocket_frames_total", direction="in")
            fout = metric(m, "herald_websocket_frames_total", direction="out")
            assert fin is not None and fin >= 8 and fout is not None and fout >= 8, \
                "herald_websocket_frames_total in=%r out=%r" % (fin, fout)
        finally:
            rc = await js.stop()
        assert rc == 0, "xmpp.js exited %r\n%s" % (rc, js.diag())
        # (5) the session is gone
        left = await wait_metric(srv, "herald_sessions", 0, transport="websocket")
        assert left == 0, "herald_sessions{transport=websocket} is %r after xmpp.js stopped" % left

    run(scenario, timeout=scaled(45))


# --------------------------------------------------------------------------
# Hand-made client: the framing itself
# --------------------------------------------------------------------------

def test_raw_websocket_scram_login_ping_and_close(herald):
    """RFC 7395 by hand on ws:// (allow_plaintext): (1) 101 with
    Sec-WebSocket-Protocol: xmpp (§3.2); (2) <open/> answered with <open/>
    (from, id, version) and features in the streams namespace, prefixed
    with its xmlns:stream (§3.3.2-3), without STARTTLS (§3.8: TLS is the
    WebSocket's); (3) SCRAM-SHA-1 with the server signature verified, a
    restart with <open/>, bind; (4) an iq answered as one message whose root
    carries xmlns='jabber:client' (§3.3.3); (5) <close/> answered with
    <close/> (§3.6), then a close frame 1000."""
    srv = herald(users=USERS, allow_plaintext=True)
    x = WsXmpp.connect(srv)
    try:
        hdr, feats = x.open()
        mechs = x.mechanisms(feats)
        assert "SCRAM-SHA-1" in mechs, show(feats)
        assert feats.find(q(NS_TLS, "starttls")) is None, \
            "STARTTLS offered over WebSocket (RFC 7395 3.8): %s" % show(feats)
        assert x.messages[1].lstrip().startswith("<stream:features") and \
            "xmlns:stream=" in x.messages[1], \
            "features not stream-prefixed with xmlns:stream: %r" % x.messages[1]
        x.sasl("alice", USERS["alice"], "SCRAM-SHA-1")
        hdr2, feats2 = x.open()
        assert hdr2.get("id") and hdr2.get("from") == DOMAIN, show(hdr2)
        jid = x.bind("raw-ws")
        assert jid == "alice@%s/raw-ws" % DOMAIN, jid
        x.send("<iq xmlns='jabber:client' type='get' id='p1' to='%s'><ping xmlns='%s'/></iq>"
               % (DOMAIN, NS_PING))
        res = x.expect(lambda e: e.get("id") == "p1", "ping result")
        assert res.tag == q(NS_CLIENT, "iq") and res.get("type") == "result", show(res)
        m = metrics(srv)
        assert metric(m, "herald_sessions", transport="websocket") == 1, m

        x.send(CLOSE)
        el = x.expect(lambda e: True, "the server's <close/>")
        assert el.tag == q(NS_FRAMING, "close"), "expected <close/>, got %s" % show(el)
        code, rest = x.ws.wait_close()
        assert rest == [], "data after <close/>: %r" % rest
        assert code == 1000, "close code %r after <close/>" % code
    finally:
        x.close()


def test_websocket_authentication_needs_tls_or_allow_plaintext(herald):
    """docs/web.md: a session on the plain HTTP port is a plaintext one.
    (1) With the default c2s.require_tls, ws:// offers no SASL mechanism
    (and no STARTTLS) and an <auth/> fails with <encryption-required/>;
    (2) with c2s.allow_plaintext PLAIN is offered and works over ws://;
    (3) wss:// on the HTTPS port counts as encrypted: PLAIN and SCRAM are
    offered without that setting and PLAIN works."""
    srv = herald(users=USERS)
    x = WsXmpp.connect(srv)
    try:
        _, feats = x.open()
        assert x.mechanisms(feats) == [] and feats.find(q(NS_TLS, "starttls")) is None, \
            "ws:// under c2s.require_tls offers %s" % show(feats)
        x.send("<auth xmlns='%s' mechanism='SCRAM-SHA-1'>%s</auth>"
               % (NS_SASL, b64e(Scram("alice", USERS["alice"]).first())))
        ans = x.recv()
        assert ans.tag == q(NS_SASL, "failure") and \
            ans.find(q(NS_SASL, "encryption-required")) is not None, \
            "<auth/> over ws:// under c2s.require_tls: %s" % show(ans)
    finally:
        x.close()

    # RFC 7395 3.8: no STARTTLS over WebSocket, even when asked for; the
    # stream ends (RFC 6120 5.4.2.2: <failure/>, then the close).
    x = WsXmpp.connect(srv)
    try:
        x.open()
        x.send("<starttls xmlns='%s'/>" % NS_TLS)
        ans = x.recv()
        assert ans.tag == q(NS_TLS, "failure"), "<starttls/> over ws:// answered %s" % show(ans)
        end = x.recv()
        assert end.tag == q(NS_FRAMING, "close"), "after <failure/>: %s" % show(end)
    finally:
        x.close()

    x = WsXmpp.connect(srv, tls=True)
    try:
        _, feats = x.open()
        mechs = x.mechanisms(feats)
        assert "PLAIN" in mechs and "SCRAM-SHA-1" in mechs, "wss:// offers %s" % show(feats)
        x.sasl("alice", USERS["alice"], "PLAIN")
        x.open()
        assert x.bind("wss") == "alice@%s/wss" % DOMAIN
    finally:
        x.close()

    srv2 = herald(users=USERS, allow_plaintext=True)
    x = WsXmpp.connect(srv2)
    try:
        jid = x.login("bob", USERS["bob"], mech="PLAIN", resource="plain-ws")
        assert jid == "bob@%s/plain-ws" % DOMAIN
    finally:
        x.close()


@pytest.mark.once
def test_websocket_server_pings_keepalive(herald):
    """With c2s.keepalive_interval = 1, an idle WebSocket session gets
    WebSocket pings (RFC 6455 5.5.2) rather than whitespace (which is not
    an element, RFC 7395 3.3.3); answered with pongs, the session stays."""
    srv = herald(users=USERS, config={"c2s": {"keepalive_interval": 1}}, allow_plaintext=True)
    x = WsXmpp.connect(srv)
    try:
        x.login("alice", USERS["alice"])
        deadline = time.monotonic() + scaled(6)
        pings = 0
        while pings < 2 and time.monotonic() < deadline:
            try:
                fin, op, payload = x.ws.recv_frame(timeout=max(0.05, deadline - time.monotonic()))
            except socket.timeout:
                break
            assert op == OP_PING, "unexpected frame (opcode %d) while idle: %r" % (op, payload)
            pings += 1
            x.ws.send_frame(OP_PONG, payload)
        assert pings >= 2, "%d WebSocket pings in %.0f s of silence" % (pings, scaled(6))
        x.send("<iq xmlns='jabber:client' type='get' id='p2' to='%s'><ping xmlns='%s'/></iq>"
               % (DOMAIN, NS_PING))
        res = x.expect(lambda e: e.get("id") == "p2", "ping result after the keepalives")
        assert res.get("type") == "result", show(res)
    finally:
        x.close()


# --------------------------------------------------------------------------
# XEP-0156
# --------------------------------------------------------------------------

def test_host_meta_lists_websocket_and_bosh(herald):
    """XEP-0156 §3: /.well-known/host-meta is an XRD (application/xrd+xml)
    and /.well-known/host-meta.json its JSON form, each with a Link for
    urn:xmpp:alt-connections:websocket and :xbosh whose URL is built from
    the request's Host header (two different Host values)."""
    srv = herald(users=USERS)
    for host in ("127.0.0.1:%d" % srv.http_port, "chat.example.test:8443"):
        r = http_request(srv.http_port, "GET", "/.well-known/host-meta", headers={"Host": host})
        assert r.status == 200, r
        assert r.header("content-type", "").split(";")[0].strip() == "application/xrd+xml", r
        xrd = ET.fromstring(r.body)
        assert xrd.tag == q(NS_XRD, "XRD"), r
        links = {l.get("rel"): l.get("href") for l in xrd.findall(q(NS_XRD, "Link"))}
        assert links.get(REL_WS) == "ws://%s/xmpp-websocket" % host, links
        assert links.get(REL_BOSH) == "http://%s/http-bind" % host, links

        r = http_request(srv.http_port, "GET", "/.well-known/host-meta.json",
                         headers={"Host": host})
        assert r.status == 200, r
        assert r.header("content-type", "").split(";")[0].strip() == "application/json", r
        doc = json.loads(r.body)
        links = {l.get("rel"): l.get("href") for l in doc.get("links", [])}
        assert links.get(REL_WS) == "ws://%s/xmpp-websocket" % host, doc
        assert links.get(REL_BOSH) == "http://%s/http-bind" % host, doc

    # The HTTPS listener serves the same, with the secure schemes.
    host = "127.0.0.1:%d" % srv.https_port
    r = http_request(srv.https_port, "GET", "/.well-known/host-meta.json",
                     headers={"Host": host}, https=True)
    assert r.status == 200, r
    doc = json.loads(r.body)
    links = {l.get("rel"): l.get("href") for l in doc.get("links", [])}
    assert links.get(REL_WS) == "wss://%s/xmpp-websocket" % host, doc
    assert links.get(REL_BOSH) == "https://%s/http-bind" % host, doc
