"""Stream errors (RFC 6120 section 4.9): the offending stream gets the error,
</stream:stream> and a TCP close; other clients keep being served."""
import pytest

from e2e_helpers import NS_STREAM, RawStream, XClient, q, run

USERS = {"alice": "wonderland", "bob": "builder", "carol": "singer"}


def assert_stream_error(s, condition, timeout=10):
    s.read_until_closed(timeout=timeout)
    got = s.stream_error()
    assert got == condition, "expected stream error <%s/>, got %r; received: %r" % (
        condition, got, s.text()[-1500:])
    assert s.stream_ended, "no </stream:stream> after the stream error: %r" % s.text()[-500:]
    assert s.closed, "the server did not close the TCP connection"


async def assert_still_serving(srv, a, b, text):
    """Two already logged-in clients can still talk, and a new login works."""
    a.send_message(b.jid, text)
    m = await b.expect_message()
    assert m["body"] == text and m["from"] == a.jid
    fresh = XClient(srv, "carol@localhost/fresh", "singer")
    await fresh.login()
    await fresh.sync()


def test_malformed_xml_before_auth(herald):
    """RFC 6120 4.9.3.13 <not-well-formed/> and 4.9.1.1 (unrecoverable):
    garbage that is not XML ends that stream; a logged-in client keeps
    working (message delivered afterwards)."""
    srv = herald(allow_plaintext=True, users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        bob = XClient(srv, "bob@localhost/b", "builder")
        await alice.login()
        await bob.login()
        s = RawStream(srv.port)
        try:
            assert s.open() is not None
            s.features()
            s.send("<message><<<this is not xml>>></message>")
            assert_stream_error(s, "not-well-formed")
        finally:
            s.close()
        await assert_still_serving(srv, alice, bob, "after garbage")
    run(body)


def test_malformed_xml_after_auth_mismatched_tag(herald):
    """RFC 6120 4.9.3.13 <not-well-formed/>: an authenticated TLS client that
    sends a mismatched end tag gets the error and is closed; the other
    clients are not affected, and the broken stanza is not delivered."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        bob = XClient(srv, "bob@localhost/b", "builder")
        await alice.login()
        await bob.login()
        await bob.presence()
        s = RawStream(srv.port)
        try:
            assert s.login("carol", "singer", "bad") == "carol@localhost/bad"
            s.send("<message to='bob@localhost/b' type='chat'><body>broken</bodyy></message>")
            assert_stream_error(s, "not-well-formed")
        finally:
            s.close()
        await bob.assert_no_message(0.5)
        await assert_still_serving(srv, alice, bob, "after mismatched tag")
    run(body)


def test_duplicate_attribute_not_well_formed(herald):
    """RFC 6120 4.9.3.13 / XML 1.0 WFC Unique Att Spec: a duplicate attribute
    is not well-formed."""
    srv = herald(allow_plaintext=True, users=USERS)
    s = RawStream(srv.port)
    try:
        s.open()
        s.features()
        s.send("<iq type='get' type='set' id='x'/>")
        assert_stream_error(s, "not-well-formed")
    finally:
        s.close()


RESTRICTED = {
    "comment": (True, "<!-- a comment -->"),
    "processing-instruction": (True, "<?evil-pi do something?>"),
    "doctype-with-entity": (False, "<!DOCTYPE stream:stream [<!ENTITY x 'boom'>]>"),
    "entity-reference": (True, None),
}


@pytest.mark.parametrize("kind", sorted(RESTRICTED))
def test_restricted_xml(herald, kind):
    """RFC 6120 11.1 (restrictions: no comments, processing instructions,
    DTDs, internal or external entity references) and 4.9.3.18
    <restricted-xml/>."""
    srv = herald(allow_plaintext=True, users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        bob = XClient(srv, "bob@localhost/b", "builder")
        await alice.login()
        await bob.login()
        s = RawStream(srv.port)
        try:
            after_header, payload = RESTRICTED[kind]
            if kind == "entity-reference":
                s.open()
                s.features()
                # An undeclared entity is rejected either way; &x; can only
                # be declared in a DTD, which the previous case covers.
                s.send("<message to='bob@localhost'><body>&x;</body></message>")
                s.read_until_closed()
                assert s.stream_error() in ("restricted-xml", "not-well-formed"), s.text()
                assert s.closed
                return
            if after_header:
                s.open()
                s.features()
                s.send(payload)
            else:
                s.send("<?xml version='1.0'?>" + payload +
                       "<stream:stream xmlns='jabber:client' "
                       "xmlns:stream='http://etherx.jabber.org/streams' "
                       "to='localhost' version='1.0'>")
            assert_stream_error(s, "restricted-xml")
        finally:
            s.close()
        await assert_still_serving(srv, alice, bob, "after restricted xml")
    run(body)


def test_wrong_host_host_unknown(herald):
    """RFC 6120 4.9.3.6 <host-unknown/>: a stream header whose 'to' is not
    served here; the server still opens its stream first (RFC 6120 4.9.1.2)."""
    srv = herald(allow_plaintext=True, users=USERS)
    s = RawStream(srv.port)
    try:
        s.open(to="not-my-domain.example", wait=False)
        assert_stream_error(s, "host-unknown")
        assert s.header is not None and s.header.tag == q(NS_STREAM, "stream"), s.text()
    finally:
        s.close()


@pytest.mark.parametrize("which", ["stream-namespace", "content-namespace"])
def test_wrong_namespace_invalid_namespace(herald, which):
    """RFC 6120 4.9.3.10 <invalid-namespace/>: the stream namespace is not
    http://etherx.jabber.org/streams, or the content namespace is not one
    the server supports (jabber:client here)."""
    srv = herald(allow_plaintext=True, users=USERS)
    s = RawStream(srv.port)
    try:
        if which == "stream-namespace":
            s.open(stream_ns="urn:example:wrong-streams", wait=False)
        else:
            s.open(xmlns="urn:example:wrong-content", wait=False)
        assert_stream_error(s, "invalid-namespace")
    finally:
        s.close()


def test_stanza_before_auth_not_authorized(herald):
    """RFC 6120 4.9.3.12 <not-authorized/> and 6.4.7 / 8.1.4 (no stanzas
    before authentication): a message sent before SASL is not routed and
    the stream is closed."""
    srv = herald(allow_plaintext=True, users=USERS)

    async def body():
        bob = XClient(srv, "bob@localhost/b", "builder")
        await bob.login()
        await bob.presence()
        s = RawStream(srv.port)
        try:
            s.open()
            s.features()
            s.send("<message to='bob@localhost/b' type='chat'><body>sneaky</body></message>")
            assert_stream_error(s, "not-authorized")
        finally:
            s.close()
        await bob.assert_no_message(0.5)
    run(body)
