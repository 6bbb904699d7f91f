"""Stanza content passes through intact, and errors never cause error loops
(RFC 6120 sections 8.3.1, 8.4 and 11)."""
from e2e_helpers import NS_CLIENT, NS_PING, RawStream, XClient, run, show

USERS = {"alice": "wonderland", "bob": "builder"}


def test_cdata_and_character_references(herald):
    """RFC 6120 11.1 (CDATA sections and character references are allowed;
    only comments, PIs, DTDs and non-predefined entities are restricted):
    they arrive as the text they stand for."""
    srv = herald(users=USERS)

    async def body():
        bob = XClient(srv, "bob@localhost/b", "builder")
        await bob.login()
        await bob.presence()
        s = RawStream(srv.port)
        try:
            s.login("alice", "wonderland", "raw")
            s.send("<message to='bob@localhost/b' type='chat'><body>"
                   "<![CDATA[<b>bold</b> & co]]> &#x2603;&#65;&lt;&gt;&amp;&quot;&apos;"
                   "</body></message>")
            m = await bob.expect_message()
            assert m["body"] == "<b>bold</b> & co \u2603A<>&\"'", repr(m["body"])
        finally:
            s.close()
    run(body)


def test_extension_elements_routed_intact(herald):
    """RFC 6120 8.4 (extended content: the server routes stanzas with
    unknown namespaced children unchanged): attributes, nesting, text and
    the namespace of an extension element reach the recipient."""
    srv = herald(users=USERS)

    async def body():
        bob = XClient(srv, "bob@localhost/b", "builder")
        await bob.login()
        await bob.presence()
        s = RawStream(srv.port)
        try:
            s.login("alice", "wonderland", "raw")
            s.send("<message to='bob@localhost/b' type='chat' id='m1'><body>with ext</body>"
                   "<ext xmlns='urn:example:ext' a='1' b='two'><inner k='v'>text</inner>"
                   "<p:other xmlns:p='urn:example:other'>o</p:other></ext></message>")
            m = await bob.expect_message()
            assert m["id"] == "m1"
            ext = m.xml.find("{urn:example:ext}ext")
            assert ext is not None, m
            assert ext.get("a") == "1" and ext.get("b") == "two"
            inner = ext.find("{urn:example:ext}inner")
            assert inner is not None and inner.get("k") == "v" and inner.text == "text"
            other = ext.find("{urn:example:other}other")
            assert other is not None and other.text == "o"
        finally:
            s.close()
    run(body)


def test_error_stanzas_are_not_bounced(herald):
    """RFC 6120 8.3.1 (an entity MUST NOT respond to an error stanza with an
    error) and 8.2.3 (no reply to iq result/error): a message of type
    'error' to an unknown user, and iq results/errors to the server with
    unknown ids, get no answer; the stream stays usable."""
    srv = herald(users=USERS)
    s = RawStream(srv.port)
    try:
        s.login("alice", "wonderland", "raw")
        s.send("<message to='nobody@localhost' type='error' id='e1'><error type='cancel'>"
               "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        s.send("<iq type='result' id='stray-result' to='localhost'/>")
        s.send("<iq type='error' id='stray-error' to='localhost'><error type='cancel'>"
               "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        s.send("<iq type='result' id='stray-user' to='nobody@localhost/x'/>")
        pong = s.iq("<ping xmlns='%s'/>" % NS_PING, to="localhost", iq_id="after")
        assert pong is not None and pong.get("type") == "result", show(pong)
        s.wait_for(lambda: False, 0.5)  # let anything stray arrive
        stray = [show(e) for e in s.seen
                 if e.get("id") in ("e1", "stray-result", "stray-error", "stray-user")]
        assert stray == [], stray
    finally:
        s.close()


def test_iq_get_without_payload_is_an_error(herald):
    """RFC 6120 8.2.3 (an iq get or set MUST contain exactly one child): an
    empty iq get to the server is answered with type='error', never
    'result'."""
    srv = herald(users=USERS)
    s = RawStream(srv.port)
    try:
        s.login("alice", "wonderland", "raw")
        resp = s.iq("", to="localhost", iq_id="empty")
        assert resp is not None and resp.tag == "{%s}iq" % NS_CLIENT, show(resp)
        assert resp.get("type") == "error", show(resp)
    finally:
        s.close()
