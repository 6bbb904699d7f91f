"""Hostile and malformed input on the browser transports (RFC 6455, RFC 7395,
XEP-0124/0206): each gets its documented error (docs/web.md, "Errors"), and
afterwards the server still serves (a TCP XMPP login and GET /healthz
succeed). Sessions that log in over the plain HTTP port run with
c2s.allow_plaintext (docs/web.md: they are plaintext sessions)."""
import json

import pytest

from e2e_helpers import DOMAIN, q, show
from web_helpers import (NS_FRAMING, NS_HTTPBIND, NS_XBOSH, OP_BINARY, OP_TEXT, Bosh, WsConn,
                         WsXmpp, bosh_post, http_request, metric, metrics, still_serves,
                         stream_error_condition)

USERS = {"alice": "wonderland"}


def opened(srv):
    """A WebSocket XMPP connection past <open/> and the features."""
    x = WsXmpp.connect(srv)
    x.open()
    return x


def close_code_after(x, send):
    """Sends (a callable on the WsConn), then returns the server's close
    code (None if it just closed the TCP connection)."""
    send(x.ws)
    code, seen = x.ws.wait_close()
    return code, seen


# --------------------------------------------------------------------------
# WebSocket frames (RFC 6455)
# --------------------------------------------------------------------------

MALFORMED_FRAMES = {
    # RFC 6455 5.1: a client MUST mask every frame; the server MUST close
    # with 1002 on an unmasked one.
    "unmasked": WsConn.frame(OP_TEXT, "<presence xmlns='jabber:client'/>", mask=False),
    # 5.2: RSV1-3 MUST be 0 unless an extension was negotiated.
    "rsv1": WsConn.frame(OP_TEXT, "<presence xmlns='jabber:client'/>", rsv=4),
    "rsv3": WsConn.frame(OP_TEXT, "<presence xmlns='jabber:client'/>", rsv=1),
    # 5.2: opcodes 3-7 and 0xB-0xF are reserved.
    "reserved-opcode": WsConn.frame(0x3, b"x"),
    # 5.4: a continuation frame with no message begun.
    "stray-continuation": WsConn.frame(0x0, b"x"),
    # 5.5: control frames carry at most 125 bytes and are not fragmented.
    "long-ping": WsConn.frame(0x9, b"p" * 126),
    "fragmented-ping": WsConn.frame(0x9, b"p", fin=False),
}


@pytest.mark.parametrize("name", list(MALFORMED_FRAMES))
def test_malformed_frame_closes_1002(herald, name):
    """RFC 6455 7.4.1: a protocol error closes the WebSocket with 1002."""
    frame = MALFORMED_FRAMES[name]
    srv = herald(users=USERS)
    x = opened(srv)
    try:
        code, seen = close_code_after(x, lambda ws: ws.send_raw(frame))
        assert code == 1002, "%s frame: close code %r (data before it: %r)" % (name, code, seen)
    finally:
        x.close()
    still_serves(srv, "alice", USERS["alice"])


def test_binary_message_closes_1003(herald):
    """RFC 7395 3.2 (XMPP messages are UTF-8 text) and RFC 6455 7.4.1: a
    binary message closes the WebSocket with 1003."""
    srv = herald(users=USERS)
    x = opened(srv)
    try:
        code, _ = close_code_after(x, lambda ws: ws.send_frame(
            OP_BINARY, b"<presence xmlns='jabber:client'/>"))
        assert code == 1003, "binary message: close code %r" % code
    finally:
        x.close()
    still_serves(srv, "alice", USERS["alice"])


@pytest.mark.parametrize("fragmented", [False, True])
def test_oversize_message_closes_1009(herald, fragmented):
    """A message larger than c2s.max_stanza_size (4096 here) closes the
    WebSocket with 1009 (RFC 6455 7.4.1), whether sent in one frame or in
    fragments each below the limit."""
    srv = herald(users=USERS, config={"c2s": {"max_stanza_size": 4096}})
    x = opened(srv)
    big = "<message xmlns='jabber:client' to='alice@%s'><body>%s</body></message>" % (
        DOMAIN, "x" * 6000)
    try:
        if fragmented:
            def send(ws):
                parts = [big[i:i + 2000] for i in range(0, len(big), 2000)]
                for i, part in enumerate(parts):
                    ws.send_frame(OP_TEXT if i == 0 else 0x0, part, fin=(i == len(parts) - 1))
        else:
            def send(ws):
                ws.send_text(big)
        code, _ = close_code_after(x, send)
        assert code == 1009, "oversize message: close code %r" % code
    finally:
        x.close()
    still_serves(srv, "alice", USERS["alice"])


def test_invalid_utf8_text_closes_1007(herald):
    """RFC 6455 8.1: a text message that is not UTF-8 fails the WebSocket
    connection (1007)."""
    srv = herald(users=USERS)
    x = opened(srv)
    try:
        code, _ = close_code_after(x, lambda ws: ws.send_frame(
            OP_TEXT, b"<presence xmlns='jabber:client'><status>\xff\xfe</status></presence>"))
        assert code == 1007, "invalid UTF-8 text: close code %r" % code
    finally:
        x.close()
    still_serves(srv, "alice", USERS["alice"])


# --------------------------------------------------------------------------
# XMPP framing (RFC 7395)
# --------------------------------------------------------------------------

NOT_ONE_ELEMENT = {
    "broken": "<message xmlns='jabber:client'><body>x</message>",
    "two-elements": "<iq xmlns='jabber:client' type='get' id='q1' to='localhost'>"
                    "<ping xmlns='urn:xmpp:ping'/></iq>"
                    "<iq xmlns='jabber:client' type='get' id='q2' to='localhost'>"
                    "<ping xmlns='urn:xmpp:ping'/></iq>",
    "unfinished": "<message xmlns='jabber:client'><body>half",
    "text-only": "just some text",
    "stream-header": "<stream:stream xmlns='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams' to='localhost'>",
    "mismatched-ping": "<iq xmlns='jabber:client' type='get' id='z'>"
                       "<ping xmlns='urn:xmpp:ping'></iq>",
}


@pytest.mark.parametrize("name", list(NOT_ONE_ELEMENT))
def test_not_one_element_is_not_well_formed(herald, name):
    """RFC 7395 3.3.3: every message is exactly one complete well-formed
    element; anything else (here sent by a logged-in session, so that each
    element alone would be acceptable) gets, as the first answer,
    <stream:error> with <not-well-formed/> (RFC 6120 4.9.3.13),
    stream-prefixed with xmlns:stream, then <close/>, then the WebSocket is
    closed."""
    srv = herald(users=USERS, allow_plaintext=True)
    x = WsXmpp.connect(srv)
    try:
        x.login("alice", USERS["alice"])
        x.send(NOT_ONE_ELEMENT[name])
        # Nothing of the rejected message is acted on: the stream error is
        # the first answer (two pings in one message get no results).
        err = x.recv()
        assert stream_error_condition(err) == "not-well-formed", \
            "%s message: first answer %s, expected <stream:error><not-well-formed/>" % (
                name, show(err))
        assert x.messages[-1].lstrip().startswith("<stream:error") and \
            "xmlns:stream=" in x.messages[-1], \
            "stream error not as <stream:error xmlns:stream=...>: %r" % x.messages[-1]
        cl = x.recv()
        assert cl.tag == q(NS_FRAMING, "close"), "after the stream error: %s" % show(cl)
        code, rest = x.ws.wait_close()
        assert rest == [], "data after <close/>: %r" % rest
    finally:
        x.close()
    still_serves(srv, "alice", USERS["alice"])


# --------------------------------------------------------------------------
# The handshake
# --------------------------------------------------------------------------

def test_missing_subprotocol_is_400(herald):
    """RFC 7395 3.2: the client offers the 'xmpp' subprotocol; without it
    the handshake is refused with 400 (application/problem+json whose
    detail names it), also when other subprotocols are offered; each
    refusal counts in herald_websocket_upgrades_refused_total."""
    srv = herald(users=USERS)
    before = metric(metrics(srv), "herald_websocket_upgrades_refused_total") or 0
    for protocols in ((), ("chat", "soap")):
        ws = WsConn(srv.http_port)
        try:
            status = ws.handshake(protocols=protocols)
            assert status == 400, "protocols %r: %s" % (protocols, ws.head)
            assert ws.headers.get("content-type", "").startswith("application/problem+json"), \
                ws.head
            doc = json.loads(ws.body)
            assert "'xmpp'" in doc.get("detail", ""), doc
        finally:
            ws.close()
    after = metric(metrics(srv), "herald_websocket_upgrades_refused_total")
    assert after == before + 2, "herald_websocket_upgrades_refused_total %r -> %r" % (before, after)
    still_serves(srv, "alice", USERS["alice"])


def test_not_an_upgrade_is_426(herald):
    """A plain GET /xmpp-websocket (no Upgrade) gets 426 Upgrade Required
    with 'Upgrade: websocket' (RFC 9110 15.5.22); another method gets 405
    with 'Allow: GET'."""
    srv = herald(users=USERS)
    r = http_request(srv.http_port, "GET", "/xmpp-websocket")
    assert r.status == 426, r
    assert r.header("upgrade", "").lower() == "websocket", r
    r = http_request(srv.http_port, "POST", "/xmpp-websocket", body="<open/>")
    assert r.status == 405 and r.header("allow") == "GET", r
    still_serves(srv, "alice", USERS["alice"])


def test_bad_handshake_key_or_version(herald):
    """RFC 6455 4.2.1-4.2.2: a Sec-WebSocket-Key that is not 16 bytes in
    base64 is a bad request (400); an unsupported Sec-WebSocket-Version
    gets 426 with Sec-WebSocket-Version: 13."""
    srv = herald(users=USERS)
    base = ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Protocol: xmpp"]
    for extra, want in (
            (base + ["Sec-WebSocket-Key: c2hvcnQ=", "Sec-WebSocket-Version: 13"], (400,)),
            (base + ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 8"],
             (426,))):
        ws = WsConn(srv.http_port)
        try:
            status = ws.handshake(upgrade=False, protocols=(), extra=extra)
            assert status in want, "%r: %s" % (extra, ws.head)
            if "Sec-WebSocket-Version: 8" in extra:
                assert ws.headers.get("sec-websocket-version") == "13", \
                    "no 'Sec-WebSocket-Version: 13' with the refusal (RFC 6455 4.4): %s" % ws.head
        finally:
            ws.close()
    still_serves(srv, "alice", USERS["alice"])


def test_origin_policy(herald):
    """[http] allowed_origins: (1) unset: no Origin, or an Origin whose
    host:port is the Host header, is allowed (101); another origin gets
    403, for the WebSocket and for BOSH; (2) set to a list, exactly the
    listed origins are allowed, others get 403; '*' allows any."""
    srv = herald(users=USERS)
    host = "127.0.0.1:%d" % srv.http_port
    for origin, want in ((None, 101), ("http://%s" % host, 101), ("http://evil.example", 403),
                         ("http://127.0.0.1:1", 403)):
        ws = WsConn(srv.http_port)
        try:
            status = ws.handshake(origin=origin)
            assert status == want, "Origin %r (Host %s): %s" % (origin, host, ws.head)
        finally:
            ws.close()
    b = Bosh(srv)
    body = ("<body rid='%d' xmlns='%s' to='%s' xml:lang='en' wait='5' hold='1' ver='1.6' "
            "xmpp:version='1.0' xmlns:xmpp='%s'/>" % (b.rid, NS_HTTPBIND, DOMAIN, NS_XBOSH))
    r, _ = bosh_post(srv.http_port, body, headers={"Origin": "http://evil.example"})
    assert r.status == 403, "BOSH from a foreign origin: %r" % r
    still_serves(srv, "alice", USERS["alice"])

    srv2 = herald(users=USERS, config={"http": {
        "allowed_origins": "https://app.example.test, http://other.example.test:8080"}})
    for origin, want in (("https://app.example.test", 101), ("http://other.example.test:8080", 101),
                         ("http://127.0.0.1:%d" % srv2.http_port, 403),
                         ("https://app.example.test.evil", 403)):
        ws = WsConn(srv2.http_port)
        try:
            status = ws.handshake(origin=origin)
            assert status == want, "Origin %r with a list: %s" % (origin, ws.head)
        finally:
            ws.close()
    still_serves(srv2, "alice", USERS["alice"])

    srv3 = herald(users=USERS, config={"http": {"allowed_origins": "*"}})
    ws = WsConn(srv3.http_port)
    try:
        assert ws.handshake(origin="https://anything.example") == 101, ws.head
    finally:
        ws.close()


# --------------------------------------------------------------------------
# BOSH
# --------------------------------------------------------------------------

def item_not_found(r, el):
    return (r.status == 200 and el is not None and el.tag == q(NS_HTTPBIND, "body")
            and el.get("type") == "terminate" and el.get("condition") == "item-not-found")


def test_bosh_unknown_sid(herald):
    """XEP-0124 §17.2: a request for a session that does not exist gets
    200 with <body type='terminate' condition='item-not-found'/>."""
    srv = herald(users=USERS)
    r, el = bosh_post(srv.http_port, "<body rid='1234567' sid='no-such-session' xmlns='%s'/>"
                      % NS_HTTPBIND)
    assert item_not_found(r, el), r
    still_serves(srv, "alice", USERS["alice"])


@pytest.mark.parametrize("where", ["above", "below"])
def test_bosh_rid_out_of_window(herald, where):
    """XEP-0124 §14.2-14.3: a rid above the window, or one below it that is
    no longer buffered, gets item-not-found and ends the session (the next
    correct rid finds no session)."""
    srv = herald(users=USERS, allow_plaintext=True)
    b = Bosh(srv, wait=1)
    b.create()
    b.login("alice", USERS["alice"])  # four requests: past what a replay buffer holds
    bad = b.rid + 10 if where == "above" else b.rid - 4
    r, el = bosh_post(srv.http_port, b.body(rid=bad))
    assert item_not_found(r, el), "rid %d (%s the window, last %d): %r" % (bad, where, b.rid, r)
    r, el = bosh_post(srv.http_port, b.body())
    assert item_not_found(r, el), "session still there after the bad rid: %r" % r
    still_serves(srv, "alice", USERS["alice"])


MALFORMED_BODIES = {
    "not-xml": "this is not XML at all",
    "truncated": "<body rid='1' xmlns='%s' to='%s'" % (NS_HTTPBIND, DOMAIN),
    "wrong-root": "<iq xmlns='jabber:client' type='get' id='x'/>",
    "wrong-namespace": "<body rid='1' xmlns='urn:example:not-bosh' to='%s' wait='5' hold='1'/>"
                       % DOMAIN,
    "empty": "",
    "no-rid": "<body xmlns='%s' to='%s' wait='5' hold='1' ver='1.6'/>" % (NS_HTTPBIND, DOMAIN),
}


@pytest.mark.parametrize("name", list(MALFORMED_BODIES))
def test_bosh_malformed_body(herald, name):
    """XEP-0124 §17.2: a request whose body is not a well-formed
    <body xmlns='http://jabber.org/protocol/httpbind'/> with a valid rid is
    answered 200 <body type='terminate' condition='bad-request'/>
    (docs/web.md); no session is created."""
    srv = herald(users=USERS)
    r, el = bosh_post(srv.http_port, MALFORMED_BODIES[name])
    assert (r.status == 200 and el is not None and el.tag == q(NS_HTTPBIND, "body")
            and el.get("type") == "terminate" and el.get("condition") == "bad-request"), \
        "%s body answered %r" % (name, r)
    assert not el.get("sid"), "a session was created from %s: %r" % (name, r)
    n = metric(metrics(srv), "herald_bosh_sessions")
    assert n == 0, "herald_bosh_sessions = %r after a malformed request" % n
    still_serves(srv, "alice", USERS["alice"])


def test_bosh_oversize_body_and_payload(herald):
    """A BOSH body larger than the HTTP body limit (1 MiB) gets 413; a
    payload element larger than c2s.max_stanza_size (4096 here) ends the
    session with XEP-0206 §8's <body type='terminate'
    condition='remote-stream-error'/> carrying the stream error
    (policy-violation, as on TCP); the sid is unknown afterwards."""
    srv = herald(users=USERS, allow_plaintext=True, config={"c2s": {"max_stanza_size": 4096}})
    r = http_request(srv.http_port, "POST", "/http-bind", body=b"<body>" + b"x" * ((1 << 20) + 1),
                     headers={"Content-Type": "text/xml; charset=utf-8"})
    assert r.status == 413, r
    b = Bosh(srv, wait=1)
    b.create()
    b.login("alice", USERS["alice"])
    r, el = bosh_post(srv.http_port, b.body(
        "<message xmlns='jabber:client' to='alice@%s'><body>%s</body></message>"
        % (DOMAIN, "y" * 6000)))
    assert r.status == 200 and el is not None and el.get("type") == "terminate", r
    assert any(e.tag == "{urn:ietf:params:xml:ns:xmpp-streams}policy-violation"
               for e in el.iter()), "no <policy-violation/> in %r" % r
    assert el.get("condition") == "remote-stream-error", \
        "terminate without condition='remote-stream-error' (XEP-0206 §8): %r" % r
    r, el = bosh_post(srv.http_port, b.body())
    assert item_not_found(r, el), "session still there after the stream error: %r" % r
    still_serves(srv, "alice", USERS["alice"])


def test_bosh_session_request_errors(herald):
    """docs/web.md / XEP-0124 §17.2: a session request for another domain
    gets host-unknown; a pause above maxpause ends the session with
    policy-violation (the next rid finds no session)."""
    srv = herald(users=USERS, config={"http": {"bosh_max_pause": 30}})
    r, el = bosh_post(srv.http_port, (
        "<body rid='1000' xmlns='%s' to='example.org' xml:lang='en' wait='5' hold='1' "
        "ver='1.6' xmpp:version='1.0' xmlns:xmpp='%s'/>" % (NS_HTTPBIND, NS_XBOSH)))
    assert (r.status == 200 and el is not None and el.get("type") == "terminate"
            and el.get("condition") == "host-unknown" and not el.get("sid")), r
    b = Bosh(srv, wait=1)
    el = b.create()
    assert el.get("maxpause") == "30", show(el)
    r, el = bosh_post(srv.http_port, b.body(attrs=" pause='31'"))
    assert (r.status == 200 and el is not None and el.get("type") == "terminate"
            and el.get("condition") == "policy-violation"), "pause over maxpause: %r" % r
    r, el = bosh_post(srv.http_port, b.body())
    assert item_not_found(r, el), "session still there after the refused pause: %r" % r
    still_serves(srv, "alice", USERS["alice"])
