"""Resource binding (RFC 6120 section 7) and the legacy session iq."""
from e2e_helpers import NS_SESSION, RawStream, XClient, run, show

ALICE = {"alice": "wonderland"}


def test_bind_requested_resource(herald):
    """RFC 6120 7.7 (client-submitted resource): the requested resource is
    the one bound, and the session is usable."""
    srv = herald(users=ALICE)

    async def body():
        c = XClient(srv, "alice@localhost/Kitchen Table", "wonderland")
        await c.login()
        assert c.jid == "alice@localhost/Kitchen Table"
        await c.sync()
    run(body)


def test_bind_resourceprep(herald):
    """RFC 6120 7.7.2.1 / RFC 3920 appendix B (resourceprep): the server
    prepares the requested resource: U+00AD SOFT HYPHEN is mapped to nothing
    (table B.1) and U+FF21 FULLWIDTH A is NFKC-normalised to 'A'."""
    srv = herald(users=ALICE)
    s = RawStream(srv.port)
    try:
        jid = s.login("alice", "wonderland", resource="lap\u00adtop\uff21")
        assert jid == "alice@localhost/laptopA", jid
    finally:
        s.close()


def test_bind_generated_resource(herald):
    """RFC 6120 7.6 (server-generated resource): binding without a resource
    gets a non-empty resource from the server; two such sessions get
    different resources and both stay online."""
    srv = herald(users=ALICE)

    async def body():
        a = XClient(srv, "alice@localhost", "wonderland")
        b = XClient(srv, "alice@localhost", "wonderland")
        await a.login()
        await b.login()
        for c in (a, b):
            assert c.xmpp.boundjid.bare == "alice@localhost"
            assert c.xmpp.boundjid.resource, "empty generated resource"
        assert a.jid != b.jid
        # Both sessions are live: each can be reached at its full JID.
        a.send_message(b.jid, "to b")
        b.send_message(a.jid, "to a")
        assert (await b.expect_message())["body"] == "to b"
        assert (await a.expect_message())["body"] == "to a"
    run(body)


def test_bind_conflict_replaces_old_session(herald):
    """RFC 6120 7.7.2.2 (resource conflict, policy 'override the existing
    session'): a second login with the same resource gets it; the first
    session receives a <conflict/> stream error and is disconnected."""
    srv = herald(users={"alice": "wonderland", "bob": "builder"})

    async def body():
        old = XClient(srv, "alice@localhost/phone", "wonderland")
        await old.login()
        new = XClient(srv, "alice@localhost/phone", "wonderland")
        await new.login()
        assert new.jid == "alice@localhost/phone"
        assert await old.wait_disconnected(10), "old session was not closed"
        assert "conflict" in old.stream_errors, old.stream_errors
        # The new session is the one that receives messages for the resource.
        bob = XClient(srv, "bob@localhost/b", "builder")
        await bob.login()
        bob.send_message("alice@localhost/phone", "who has it?")
        msg = await new.expect_message()
        assert msg["body"] == "who has it?"
        assert msg["from"] == bob.jid
    run(body)


def test_bind_conflict_raw_stream_error(herald):
    """RFC 6120 7.7.2.2 and 4.9.3.3 <conflict/>: the replaced stream sees the
    exact stream error, then </stream:stream>, then the TCP close."""
    srv = herald(users=ALICE)
    first = RawStream(srv.port)
    second = RawStream(srv.port)
    try:
        assert first.login("alice", "wonderland", "same") == "alice@localhost/same"
        assert second.login("alice", "wonderland", "same") == "alice@localhost/same"
        first.read_until_closed(timeout=10)
        assert first.stream_error() == "conflict", first.text()[-1500:]
        assert first.stream_ended and first.closed
        # The second stream still works.
        pong = second.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
        assert pong is not None and pong.get("type") == "result", show(pong)
    finally:
        first.close()
        second.close()


def test_legacy_session_iq_accepted(herald):
    """RFC 3921 section 3 / RFC 6121 appendix E (session establishment, kept
    for old clients): <session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>
    after bind gets a result."""
    srv = herald(users=ALICE)
    s = RawStream(srv.port)
    try:
        s.login("alice", "wonderland", "legacy")
        resp = s.iq("<session xmlns='%s'/>" % NS_SESSION, itype="set")
        assert resp is not None and resp.get("type") == "result", show(resp)
    finally:
        s.close()

