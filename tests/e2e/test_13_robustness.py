"""Stream handling under awkward but legal input, and session cleanup."""
import asyncio
import socket

from e2e_helpers import RawStream, XClient, run, stanza_error_condition

USERS = {"alice": "wonderland", "bob": "builder", "carol": "singer"}


def test_stanza_one_byte_at_a_time(herald):
    """RFC 6120 4.2 / 11.6 (a stream is an incremental UTF-8 byte stream):
    a message sent one byte per TLS record, with multi-byte UTF-8
    characters split across records, arrives intact."""
    srv = herald(users=USERS)

    async def body():
        bob = XClient(srv, "bob@localhost/b", "builder")
        await bob.login()
        await bob.presence()
        s = RawStream(srv.port)
        try:
            s.login("alice", "wonderland", "slow")
            s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            text = "h\u00e9llo \u2603 \U0001d11e &amp; done"
            stanza = ("<message to='bob@localhost/b' type='chat'><body>%s</body></message>"
                      % text).encode("utf-8")
            for i in range(len(stanza)):
                assert s.send(stanza[i:i + 1])
            m = await bob.expect_message()
            assert m["body"] == text.replace("&amp;", "&")
            assert m["from"] == "alice@localhost/slow"
        finally:
            s.close()
    run(body)


def test_large_message_under_default_limit(herald):
    """RFC 6120 13.12 (the limit is a limit, not a lower cap): a 200 kB
    message (default max_stanza_size is 256 KiB) crosses many TLS records
    and is delivered intact."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        bob = XClient(srv, "bob@localhost/b", "builder")
        await alice.login()
        await bob.login()
        big = "".join(chr(0x41 + (i % 26)) for i in range(200000))
        alice.send_message(bob.jid, big)
        m = await bob.expect_message(timeout=15)
        assert len(m["body"]) == len(big) and m["body"] == big
    run(body)


def test_many_clients_exchange(herald):
    """RFC 6120 10.1 (in-order processing per sender) under light load:
    8 sessions each send 10 messages to every other session; every message
    arrives once, in per-sender order, with the right 'from'."""
    users = {"u%d" % i: "pw%d" % i for i in range(8)}
    srv = herald(users=users)

    async def body():
        clients = []
        for i in range(8):
            c = XClient(srv, "u%d@localhost/r" % i, "pw%d" % i)
            await c.login()
            clients.append(c)
        for i, c in enumerate(clients):
            for j, d in enumerate(clients):
                if i != j:
                    for k in range(10):
                        c.send_message(d.jid, "%d-%d-%d" % (i, j, k))
        for j, d in enumerate(clients):
            got = {}
            for _ in range(7 * 10):
                m = await d.expect_message(timeout=10)
                i, jj, k = map(int, m["body"].split("-"))
                assert jj == j and m["from"] == clients[i].jid, (m["body"], m["from"])
                got.setdefault(i, []).append(k)
            assert all(v == list(range(10)) for v in got.values()) and len(got) == 7, got
            await d.assert_no_message(0.1)
    run(body, timeout=80)


def test_jid_normalisation_in_routing(herald):
    """RFC 7622 3.2 / 3.3 (domain and localpart are case-insensitive;
    resourcepart is not): a message to 'BOB@LocalHost/b' reaches
    bob@localhost/b."""
    srv = herald(users=USERS)

    async def body():
        bob = XClient(srv, "bob@localhost/b", "builder")
        await bob.login()
        await bob.presence()
        s = RawStream(srv.port)
        try:
            s.login("alice", "wonderland", "raw")
            s.send("<message to='BOB@LocalHost/b' type='chat'><body>shouting</body></message>")
            m = await bob.expect_message()
            assert m["body"] == "shouting" and m["from"] == "alice@localhost/raw"
        finally:
            s.close()
    run(body)


def test_invalid_utf8_closes_stream(herald):
    """RFC 6120 11.6 (UTF-8 only) and 4.9.3.22 <unsupported-encoding/> (or
    <not-well-formed/>, which the XML parser reports): invalid UTF-8 ends the
    stream; the bytes are not delivered and others keep working."""
    srv = herald(users=USERS)

    async def body():
        bob = XClient(srv, "bob@localhost/b", "builder")
        await bob.login()
        await bob.presence()
        s = RawStream(srv.port)
        try:
            s.login("alice", "wonderland", "u8")
            s.send(b"<message to='bob@localhost/b'><body>bad \xff\xfe bytes</body></message>")
            s.read_until_closed(timeout=10)
            assert s.stream_error() in ("not-well-formed", "unsupported-encoding"), s.text()
            assert s.closed
        finally:
            s.close()
        await bob.assert_no_message(0.5)
        await bob.sync()
    run(body)


def test_client_closes_stream(herald):
    """RFC 6120 4.4 (closing a stream): when the client sends
    </stream:stream>, the server answers with its own closing tag and
    closes the TCP connection; the resource is then offline (IQ to it gets
    <service-unavailable/>)."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        await alice.login()
        s = RawStream(srv.port)
        try:
            s.login("bob", "builder", "leaving")
            s.send("</stream:stream>")
            s.read_until_closed(timeout=10, reply_close=False)
            assert s.stream_ended, "server did not answer </stream:stream>: %r" % s.text()[-300:]
            assert s.closed, "server did not close the connection after </stream:stream>"
        finally:
            s.close()
        resp = await alice.iq("<ping xmlns='urn:xmpp:ping'/>", to="bob@localhost/leaving")
        assert resp["type"] == "error" and \
            stanza_error_condition(resp.xml) == "service-unavailable", resp
    run(body)


def test_abrupt_disconnect_cleans_up_session(herald):
    """RFC 6120 4.4 / 4.6 (a broken connection ends the session): after a
    client drops its TCP connection without closing the stream, the server
    notices, routes no more to it (IQ gets <service-unavailable/>), keeps
    serving others, and the same resource can log in again."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        await alice.login()
        s = RawStream(srv.port)
        s.login("bob", "builder", "dropped")
        s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST, no </stream:stream>
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while True:
            try:
                resp = await alice.iq("<ping xmlns='urn:xmpp:ping'/>",
                                      to="bob@localhost/dropped", timeout=1)
            except AssertionError:  # forwarded into the dead connection
                resp = None
            if resp is not None and resp["type"] == "error" and \
                    stanza_error_condition(resp.xml) == "service-unavailable":
                break
            assert loop.time() < deadline, "session still routed 5 s after the drop: %s" % resp
            await asyncio.sleep(0.1)
        bob = XClient(srv, "bob@localhost/dropped", "builder")
        await bob.login()
        alice.send_message(bob.jid, "welcome back")
        assert (await bob.expect_message())["body"] == "welcome back"
    run(body)
