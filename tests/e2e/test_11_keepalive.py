"""Whitespace keepalives (RFC 6120 4.6.1)."""
from e2e_helpers import NS_PING, RawStream, XClient, run, show


def test_whitespace_between_stanzas_accepted(herald):
    """RFC 6120 4.6.1 (whitespace keepalive) and 11.7 (whitespace between
    stanzas): spaces and newlines before, between and after stanzas, on an
    authenticated TLS stream, do not disturb it."""
    srv = herald(users={"alice": "wonderland", "bob": "builder"})

    async def body():
        bob = XClient(srv, "bob@localhost/b", "builder")
        await bob.login()
        await bob.presence()
        s = RawStream(srv.port)
        try:
            s.login("alice", "wonderland", "ws")
            s.send(" ")
            s.send("\n\n  \t\r\n")
            r1 = s.iq("<ping xmlns='%s'/>" % NS_PING, to="localhost", iq_id="ka-1")
            assert r1 is not None and r1.get("type") == "result", show(r1)
            s.send("   \n<iq type='get' id='ka-2' to='localhost'><ping xmlns='%s'/></iq>\n   "
                   "<message to='bob@localhost/b' type='chat'><body>between spaces</body>"
                   "</message>  \n " % NS_PING)
            r2 = s.wait_element(lambda e: e.get("id") == "ka-2")
            assert r2 is not None and r2.get("type") == "result", show(r2)
            m = await bob.expect_message()
            assert m["body"] == "between spaces" and m["from"] == "alice@localhost/ws"
            # Many keepalives in a row, one byte at a time.
            for _ in range(50):
                s.send(" ")
            r3 = s.iq("<ping xmlns='%s'/>" % NS_PING, to="localhost", iq_id="ka-3")
            assert r3 is not None and r3.get("type") == "result", show(r3)
            assert s.stream_error() is None and not s.closed
        finally:
            s.close()
    run(body)


def test_slixmpp_whitespace_keepalive(herald):
    """RFC 6120 4.6.1: a real client's whitespace keepalive (send_raw(' '))
    keeps the session working."""
    srv = herald(users={"alice": "wonderland", "bob": "builder"})

    async def body():
        a = XClient(srv, "alice@localhost/a", "wonderland")
        b = XClient(srv, "bob@localhost/b", "builder")
        await a.login()
        await b.login()
        for _ in range(5):
            a.xmpp.send_raw(" ")
        a.send_message(b.jid, "kept alive")
        assert (await b.expect_message())["body"] == "kept alive"
        assert a.stream_errors == []
    run(body)
