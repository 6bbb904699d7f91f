"""Resource limits: stanza size, nesting depth, connections per IP
(RFC 6120 4.9.3.14 <policy-violation/>, 13.12 denial of service)."""
import asyncio
import time

import pytest
from e2e_helpers import NS_STREAM, RawStream, XClient, q, run

USERS = {"alice": "wonderland", "bob": "builder", "carol": "singer"}


def test_oversized_stanza_policy_violation(herald):
    """RFC 6120 4.9.3.14 <policy-violation/> and 13.12 (stanza size limit):
    with max_stanza_size = 10000, a 20000-byte message closes that stream
    and is not delivered; a stanza under the limit is delivered; other
    clients keep working."""
    srv = herald(config={"c2s": {"max_stanza_size": 10000}}, users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        bob = XClient(srv, "bob@localhost/b", "builder")
        await alice.login()
        await bob.login()
        await bob.presence()
        s = RawStream(srv.port)
        try:
            s.login("carol", "singer", "big")
            small = "s" * 5000
            s.send("<message to='bob@localhost/b' type='chat'><body>%s</body></message>" % small)
            m = await bob.expect_message()
            assert m["body"] == small
            s.send("<message to='bob@localhost/b' type='chat'><body>%s</body></message>"
                   % ("x" * 20000))
            s.read_until_closed(timeout=10)
            assert s.stream_error() == "policy-violation", s.text()[-1500:]
            assert s.stream_ended and s.closed
        finally:
            s.close()
        await bob.assert_no_message(0.5)
        alice.send_message(bob.jid, "still here")
        m = await bob.expect_message()
        assert m["body"] == "still here" and m["from"] == "alice@localhost/a"
    run(body)


def test_oversized_stanza_unterminated(herald):
    """RFC 6120 13.12: the size limit applies while a stanza is still being
    received (an endless open element must not be buffered forever)."""
    srv = herald(config={"c2s": {"max_stanza_size": 10000}}, users=USERS)
    s = RawStream(srv.port)
    try:
        s.login("carol", "singer", "big")
        s.send("<message to='bob@localhost' type='chat'><body>" + "y" * 30000)
        s.read_until_closed(timeout=10)
        assert s.stream_error() == "policy-violation", s.text()[-1500:]
        assert s.closed
    finally:
        s.close()


def test_too_deep_stanza_policy_violation(herald):
    """RFC 6120 4.9.3.14 <policy-violation/> and 13.12 (nesting depth): with
    max_depth = 8, a stanza nested 50 deep closes the stream; one nested
    3 deep is fine."""
    srv = herald(config={"c2s": {"max_depth": 8}}, users=USERS)
    s = RawStream(srv.port)
    try:
        s.login("carol", "singer", "deep")
        ok = s.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
        assert ok is not None and ok.get("type") == "result"
        deep = "<x xmlns='urn:example:deep'>" + "<x>" * 49 + "</x>" * 49 + "</x>"
        s.send("<message to='bob@localhost' type='chat'>%s</message>" % deep)
        s.read_until_closed(timeout=10)
        assert s.stream_error() == "policy-violation", s.text()[-1500:]
        assert s.closed
    finally:
        s.close()


def _opened(srv, source):
    """A stream from the given source address; returns (RawStream, got_features)."""
    s = RawStream(srv.port, source=source, timeout=5)
    hdr = s.open(wait=True)
    if hdr is None:
        return s, False
    el = s.next_element(timeout=5)
    return s, el is not None and el.tag == q(NS_STREAM, "features")


def test_max_connections_per_ip(herald):
    """RFC 6120 13.12 (connection limits) with [c2s] max_connections_per_ip =
    3 (and limit_loopback = true: loopback is exempt by default): three
    streams from 127.0.0.2 are served, the fourth from the same address is
    refused (closed or <policy-violation/>), another address (127.0.0.3) is
    still served, and closing one of the three frees a slot."""
    srv = herald(config={"c2s": {"max_connections_per_ip": 3, "limit_loopback": True}},
                 users=USERS)
    conns = []
    try:
        for i in range(3):
            s, ok = _opened(srv, "127.0.0.2")
            conns.append(s)
            assert ok, "connection %d of 3 was not served: %r" % (i + 1, s.text())
        try:
            s4 = RawStream(srv.port, source="127.0.0.2", timeout=5)
        except OSError:
            s4 = None  # refused outright: acceptable
        if s4 is not None:
            conns.append(s4)
            s4.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                    "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' "
                    "version='1.0'>")
            s4.read_until_closed(timeout=10)
            assert s4.closed, "4th connection from one IP was not closed"
            assert not any(e.tag == q(NS_STREAM, "features") for e in s4.seen), \
                "4th connection got stream features: %r" % s4.text()
            err = s4.stream_error()
            assert err in (None, "policy-violation", "resource-constraint"), s4.text()
            s4.close()  # a refused client hangs up (the server lingers until then)
        other, ok = _opened(srv, "127.0.0.3")
        conns.append(other)
        assert ok, "a different source address was refused too"
        # Free a slot: close one stream properly and wait until the server lets
        # a new one in (bounded polling; the server notices the close
        # asynchronously).
        first = conns[0]
        first.send("</stream:stream>")
        first.read_until_closed(timeout=5, reply_close=False)
        first.close()
        deadline = time.monotonic() + 5
        while True:
            s, ok = _opened(srv, "127.0.0.2")
            if ok:
                conns.append(s)
                break
            s.close()  # a refused attempt holds its slot until we hang up
            assert time.monotonic() < deadline, "closing a connection did not free its slot"
            time.sleep(0.1)
    finally:
        for s in conns:
            s.close()


def test_slixmpp_clients_within_connection_limit(herald):
    """RFC 6120 13.12: with max_connections_per_ip = 3 applied to loopback
    (limit_loopback = true), three real clients can log in from 127.0.0.1
    and talk (the limit does not break normal use)."""
    srv = herald(config={"c2s": {"max_connections_per_ip": 3, "limit_loopback": True}},
                 users=USERS)

    async def body():
        a = XClient(srv, "alice@localhost/a", "wonderland")
        b = XClient(srv, "bob@localhost/b", "builder")
        c = XClient(srv, "carol@localhost/c", "singer")
        for cl in (a, b, c):
            await cl.login()
        a.send_message(c.jid, "three is fine")
        assert (await c.expect_message())["body"] == "three is fine"
    run(body)


def test_oversized_stream_header_policy_violation(herald):
    """RFC 6120 4.9.3.14 <policy-violation/> and 13.12: max_stanza_size also
    bounds the stream header; a 20000-byte header with max_stanza_size =
    10000 is refused."""
    srv = herald(config={"c2s": {"max_stanza_size": 10000}}, allow_plaintext=True)
    s = RawStream(srv.port)
    try:
        s.open(wait=False, extra="x-padding='%s'" % ("p" * 20000))
        s.read_until_closed(timeout=10)
        assert s.stream_error() == "policy-violation", s.text()[-1000:]
        assert s.closed
    finally:
        s.close()


@pytest.mark.once
def test_slow_reader_disconnected(herald):
    """RFC 6120 13.12 (a client that does not read must not exhaust server
    memory) with [c2s] max_outq_bytes = 65536 and write_timeout = 2: a
    recipient that stops reading is disconnected once its queue made no
    write progress for write_timeout (connection-timeout, per the server's
    slow-consumer policy; meanwhile the sender is paced); the sender and the
    server stay healthy."""
    srv = herald(config={"c2s": {"max_outq_bytes": 65536, "write_timeout": 2}}, users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        await alice.login()
        s = RawStream(srv.port)
        try:
            s.login("bob", "builder", "slow")
            # Bob reads nothing from now on. The kernel buffers on both sides
            # (a few MB on loopback) fill first, then the server's queue.
            chunk = "z" * 60000
            sent = 0
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 40
            gone = False
            while not gone:
                for _ in range(20):
                    alice.send_message("bob@localhost/slow", chunk)
                sent += 20
                # The answer to a ping proves the server handled the batch.
                await alice.sync()
                # A ping to bob is forwarded to him (and never answered, as
                # he does not read) while he is connected; once the server
                # has dropped him it answers <service-unavailable/> itself.
                try:
                    resp = await alice.iq("<ping xmlns='urn:xmpp:ping'/>",
                                          to="bob@localhost/slow", timeout=1)
                except AssertionError:
                    resp = None
                gone = resp is not None and resp["type"] == "error"
                assert loop.time() < deadline, \
                    "slow reader still connected after %d x 60 kB" % sent
                assert sent <= 2000, "slow reader never disconnected"
            # Now drain bob's socket: the stream ends (its stalled queue,
            # and the stream error behind it, were dropped).
            s.read_until_closed(timeout=20)
            assert s.closed, "slow reader's connection was not closed"
            assert s.stream_error() in (None, "connection-timeout"), s.stream_error()
        finally:
            s.close()
        await alice.sync()
        assert alice.stream_errors == []
    run(body, timeout=80)


def test_resources_per_account_bounded(herald):
    """RFC 6120 7.6.2.1 <resource-constraint/>: with [c2s]
    max_resources_per_account = 2, a third resource of one account cannot
    bind (the iq error says resource-constraint) while the two bound ones
    and other accounts keep working; replacing a bound resource (7.7.2.2)
    is not a new resource and still works."""
    srv = herald(config={"c2s": {"max_resources_per_account": 2}}, users=USERS)
    streams = []
    try:
        for res in ("one", "two"):
            s = RawStream(srv.port)
            streams.append(s)
            assert s.login("alice", "wonderland", res) == "alice@localhost/" + res
        third = RawStream(srv.port)
        streams.append(third)
        assert third.open() is not None
        third.features()
        third.starttls()
        assert third.open() is not None
        third.features()
        assert third.auth_plain("alice", "wonderland").tag == q(
            "urn:ietf:params:xml:ns:xmpp-sasl", "success")
        assert third.open() is not None
        third.features()
        resp = third.iq("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>three"
                        "</resource></bind>", itype="set")
        assert resp is not None and resp.get("type") == "error", resp
        err = resp.find(q("jabber:client", "error"))
        assert err is not None and err.find(
            q("urn:ietf:params:xml:ns:xmpp-stanzas", "resource-constraint")) is not None, resp
        # Replacing an existing resource is allowed at the limit.
        again = RawStream(srv.port)
        streams.append(again)
        assert again.login("alice", "wonderland", "two") == "alice@localhost/two"
        other = RawStream(srv.port)
        streams.append(other)
        assert other.login("bob", "builder", "b") == "bob@localhost/b"
    finally:
        for s in streams:
            s.close()
