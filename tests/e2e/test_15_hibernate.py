"""Idle sessions give their XML parser back (xmlp_hibernate, driven by the
once-a-second sweep) and get a new one from their own stream header when
they next send. Whatever the client declared on its header must still hold
afterwards: the default namespace, the stream prefix, other prefixes, and
the close tag. The metric herald_parser_hibernations_total shows that the
parser really was released before each check."""
import re
import subprocess
import time

import pytest
from e2e_helpers import NS_PING, RawStream, XClient, run, show

USERS = {"alice": "wonderland", "bob": "builder"}


def hibernations(srv):
    out = subprocess.run(["curl", "-s", "-S", "--max-time", "5",
                          "http://127.0.0.1:%d/metrics" % srv.http_port],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    m = re.search(r"^herald_parser_hibernations_total (\d+)$", out.stdout, re.M)
    assert m, "herald_parser_hibernations_total missing:\n" + out.stdout
    return int(m.group(1))


def wait_hibernations(srv, at_least, timeout=10.0):
    deadline = time.monotonic() + timeout
    n = hibernations(srv)
    while n < at_least and time.monotonic() < deadline:
        time.sleep(0.2)
        n = hibernations(srv)
    assert n >= at_least, "only %d parser hibernations, expected %d" % (n, at_least)
    return n


@pytest.mark.once
def test_idle_sessions_work_after_hibernation(herald):
    """Two slixmpp sessions go idle, their parsers are released; then
    messages, iqs and presence flow both ways as before, and again after a
    second idle period."""
    srv = herald(users=USERS)

    async def body():
        a = XClient(srv, "alice@localhost/a", "wonderland")
        b = XClient(srv, "bob@localhost/b", "builder")
        await a.login()
        await b.login()
        await a.presence()
        await b.presence()
        before = hibernations(srv)
        for round_no in range(2):
            before = wait_hibernations(srv, before + 2)
            a.send_message(b.jid, "after idle %d" % round_no)
            m = await b.expect_message()
            assert m["body"] == "after idle %d" % round_no and m["from"] == a.jid
            b.send_message(a.jid, "reply %d" % round_no)
            assert (await a.expect_message())["body"] == "reply %d" % round_no
            r = await b.iq("<ping xmlns='%s'/>" % NS_PING, to="localhost")
            assert r["type"] == "result", r
        assert a.stream_errors == [] and b.stream_errors == []
    run(body)


@pytest.mark.once
def test_header_prefixes_survive_hibernation(herald):
    """A client that names the stream namespace 's' and declares a prefix
    'e' on its header (legal XML, RFC 6120 4.8.5 leaves prefixes free): after
    its parser was released, stanzas using 'e:' still parse in that
    namespace, and '</s:stream>' still closes the stream."""
    srv = herald(users=USERS)
    header = ("<?xml version='1.0'?><s:stream xmlns='jabber:client'"
              " xmlns:s='http://etherx.jabber.org/streams' xmlns:e='urn:example:hib'"
              " to='localhost' version='1.0'>")

    async def body():
        b = XClient(srv, "bob@localhost/b", "builder")
        await b.login()
        await b.presence()
        s = RawStream(srv.port)

        def open_prefixed(**_):
            s._new_parser()
            s.send(header)
            s.wait_for(lambda: s.header is not None)
            return s.header
        s.open = open_prefixed
        try:
            s.login("alice", "wonderland", "raw")
            n = wait_hibernations(srv, hibernations(srv) + 1)
            r = s.iq("<ping xmlns='%s'/>" % NS_PING, to="localhost", iq_id="hib-1")
            assert r is not None and r.get("type") == "result", show(r)
            wait_hibernations(srv, n + 1)
            s.send("<message to='bob@localhost/b' type='chat'><body>prefixed</body>"
                   "<e:thing e:level='3'>x</e:thing></message>")
            m = await b.expect_message()
            assert m["body"] == "prefixed"
            thing = m.xml.find("{urn:example:hib}thing")
            assert thing is not None, "payload lost its namespace: %s" % m
            assert thing.get("{urn:example:hib}level") == "3" and thing.text == "x"
            n = wait_hibernations(srv, hibernations(srv) + 1)
            s.send("</s:stream>")
            s.read_until_closed(timeout=5.0, reply_close=False)
            assert s.stream_ended and s.closed, s.text()[-500:]
            assert s.stream_error() is None, s.text()[-500:]
        finally:
            s.close()
    run(body)


@pytest.mark.once
def test_bad_xml_after_hibernation_is_a_stream_error(herald):
    """Waking does not loosen the parser: a wrong close tag after an idle
    period is still not-well-formed, and an oversized stanza still a
    policy-violation."""
    srv = herald(users=USERS, config={"c2s": {"max_stanza_size": "4096"}})
    s = RawStream(srv.port)
    try:
        s.login("alice", "wonderland", "raw")
        wait_hibernations(srv, hibernations(srv) + 1)
        s.send("</stream:other>")
        s.read_until_closed(timeout=5.0)
        assert s.stream_error() == "not-well-formed", s.text()[-500:]
    finally:
        s.close()
    s = RawStream(srv.port)
    try:
        s.login("bob", "builder", "raw")
        wait_hibernations(srv, hibernations(srv) + 1)
        s.send("<message to='alice@localhost'><body>" + "x" * 8000 + "</body></message>")
        s.read_until_closed(timeout=5.0)
        assert s.stream_error() == "policy-violation", s.text()[-500:]
    finally:
        s.close()
