"""XEP-0198 across transports: a session is a session whatever carries it.

A TCP session with resumption enabled loses its connection (a reset, no
closing stream); messages sent meanwhile are queued on the detached session;
the client comes back over WebSocket (RFC 7395) or over BOSH (XEP-0206),
authenticates and resumes, and gets each of those messages exactly once, in
order, rendered for its new transport (standalone elements carrying
xmlns='jabber:client'). And the other way: a WebSocket session resumed over
TCP. docs/web.md ("a WebSocket or BOSH client gets an ordinary XMPP
session").
"""
import base64

from e2e_helpers import NS_CLIENT, q, show
from stream_helpers import NS_SM, PLAIN, USERS, chat, cut, login, resume_stream, wait_log
from web_helpers import Bosh, WsXmpp, scaled


def _bodies(elements):
    return [m.findtext(q(NS_CLIENT, "body")) for m in elements
            if m.tag == q(NS_CLIENT, "message")]


def _detach_tcp_alice(srv):
    a = login(srv, "alice", "a1")
    b = login(srv, "bob", "b1", enable=False)
    previd = a.enabled.get("id")
    h_client = a.h
    cut(a)
    assert wait_log(srv, "kept for resumption"), "the server did not notice the cut"
    for i in range(1, 4):
        chat(b, "alice@localhost/a1", "m%d" % i)
    return b, previd, h_client


def test_tcp_session_resumed_over_websocket(herald):
    srv = herald(config=PLAIN, users=USERS)
    b, previd, h_client = _detach_tcp_alice(srv)
    ws = WsXmpp.connect(srv)
    _, feats = ws.open()
    ws.sasl("alice", USERS["alice"], "PLAIN")
    _, feats = ws.open()
    assert feats.find(q(NS_SM, "sm")) is not None, "no <sm/> over WebSocket: %s" % show(feats)
    ws.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, h_client))
    r = ws.expect(lambda e: e.tag in (q(NS_SM, "resumed"), q(NS_SM, "failed")), "<resumed/>")
    assert r.tag == q(NS_SM, "resumed") and r.get("previd") == previd, show(r)
    got = []
    while len(got) < 3:
        got += _bodies([ws.expect(lambda e: e.tag == q(NS_CLIENT, "message"), "a message")])
    assert got == ["m1", "m2", "m3"], "each queued message once, in order: %r" % got
    # Rendered for WebSocket: every message one element declaring jabber:client.
    for text in ws.messages:
        if text.startswith("<message"):
            assert "xmlns='jabber:client'" in text.split(">", 1)[0], text
    # Still the same session: a new message arrives over WebSocket.
    chat(b, "alice@localhost/a1", "after")
    m = ws.expect(lambda e: e.tag == q(NS_CLIENT, "message"), "the message sent after")
    assert _bodies([m]) == ["after"], show(m)
    ws.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
    ws.close()


def test_tcp_session_resumed_over_bosh(herald):
    srv = herald(config=PLAIN, users=USERS)
    b, previd, h_client = _detach_tcp_alice(srv)
    bo = Bosh(srv, wait=scaled(5))
    bo.create()
    bo.req("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
           % base64.b64encode(b"\0alice\0" + USERS["alice"].encode()).decode())
    bo.req(attrs=" xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'")
    got, resumed = [], None
    el = bo.req("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, h_client))
    for _ in range(10):
        for child in el:
            if child.tag == q(NS_SM, "resumed"):
                resumed = child
            got += _bodies([child])
        if resumed is not None and len(got) >= 3:
            break
        el = bo.req()
    assert resumed is not None and resumed.get("previd") == previd, \
        "no <resumed/> over BOSH: %s" % show(el)
    assert got == ["m1", "m2", "m3"], "each queued message once, in order: %r" % got
    bo.req(attrs=" type='terminate'")


def test_websocket_session_resumed_over_tcp(herald):
    srv = herald(config=PLAIN, users=USERS)
    ws = WsXmpp.connect(srv)
    ws.login("alice", USERS["alice"], "PLAIN", resource="w1")
    ws.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    en = ws.expect(lambda e: e.tag == q(NS_SM, "enabled"), "<enabled/>")
    previd = en.get("id")
    assert previd, show(en)
    b = login(srv, "bob", "b1", enable=False)
    # The WebSocket's TCP connection is reset: no close frame, no <close/>.
    cut(ws.ws)
    assert wait_log(srv, "kept for resumption"), "the server did not notice the cut"
    chat(b, "alice@localhost/w1", "over tcp")
    a2, r = resume_stream(srv, "alice", previd, 0)
    assert r is not None and r.tag == q(NS_SM, "resumed"), "resume failed: %s" % show(r)
    assert a2.messages(want=1, timeout=scaled(5)) == ["over tcp"]
