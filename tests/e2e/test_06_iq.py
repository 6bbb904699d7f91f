"""IQ handling: routing errors, XEP-0199 ping and XEP-0030 disco#info."""
from e2e_helpers import (DOMAIN, NS_CLIENT, NS_DISCO_INFO, NS_PING, RawStream, XClient, q,
                         run, show, stanza_error_condition)

USERS = {"alice": "wonderland", "bob": "builder"}


def assert_error(resp, condition, frm=None):
    assert resp["type"] == "error", "expected an error, got %s" % resp
    got = stanza_error_condition(resp.xml)
    assert got == condition, "expected <%s/>, got %s in %s" % (condition, got, resp)
    if frm is not None:
        assert resp["from"] == frm, "error from %r, expected %r" % (str(resp["from"]), frm)


def test_iq_to_unknown_user_service_unavailable(herald):
    """RFC 6121 8.5.1 (no such user, IQ): <service-unavailable/>."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        await alice.login()
        for to in ("nobody@localhost", "nobody@localhost/res"):
            resp = await alice.iq("<query xmlns='jabber:iq:version'/>", to=to)
            assert_error(resp, "service-unavailable", frm=to)
    run(body)


def test_iq_to_offline_full_jid_service_unavailable(herald):
    """RFC 6121 8.5.3.2.2 (IQ to a full JID with no such resource): the server
    answers <service-unavailable/> for an existing user who is offline, and
    for an online user's unknown resource; a known resource gets the iq."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        await alice.login()
        resp = await alice.iq("<query xmlns='jabber:iq:version'/>", to="bob@localhost/offline")
        assert_error(resp, "service-unavailable", frm="bob@localhost/offline")
        bob = XClient(srv, "bob@localhost/b", "builder")
        await bob.login()
        await bob.presence()
        resp = await alice.iq("<query xmlns='jabber:iq:version'/>", to="bob@localhost/other")
        assert_error(resp, "service-unavailable", frm="bob@localhost/other")
        # Delivered to a bound resource: slixmpp answers (with its own error
        # or a result), and the answer comes back from bob's full JID.
        resp = await alice.iq("<query xmlns='urn:example:e2e'/>", to="bob@localhost/b")
        assert resp["from"] == "bob@localhost/b", resp
    run(body)


def test_iq_to_server_unknown_child_service_unavailable(herald):
    """RFC 6120 8.4 (unknown IQ child) and RFC 6121 8.5 default: an iq get to
    the server with an unsupported payload gets <service-unavailable/>,
    keeping its id; an iq 'set' likewise."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        await alice.login()
        resp = await alice.iq("<frobnicate xmlns='urn:example:no-such-thing'/>", to=DOMAIN)
        assert_error(resp, "service-unavailable", frm=DOMAIN)
        resp = await alice.iq("<frobnicate xmlns='urn:example:no-such-thing'/>", to=DOMAIN,
                              itype="set")
        assert_error(resp, "service-unavailable")
    run(body)


def test_ping_server(herald):
    """XEP-0199 section 4.2 (client-to-server ping): the server answers
    type='result' with the same id, from the server's JID."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        await alice.login()
        resp = await alice.iq("<ping xmlns='%s'/>" % NS_PING, to=DOMAIN)
        assert resp["type"] == "result", resp
        assert resp["from"] == DOMAIN or resp["from"] == "", resp
    run(body)


def test_ping_raw_ids_and_no_to(herald):
    """XEP-0199 4.2 and RFC 6120 8.1.1.1 (no 'to' means the account's server):
    a ping without 'to' is answered by the server; the result echoes the id
    and is addressed to the full JID."""
    srv = herald(users=USERS)
    s = RawStream(srv.port)
    try:
        jid = s.login("alice", "wonderland", "raw")
        resp = s.iq("<ping xmlns='%s'/>" % NS_PING, iq_id="p-1")
        assert resp is not None and resp.get("type") == "result", show(resp)
        assert resp.get("to") in (None, jid), show(resp)
        resp = s.iq("<ping xmlns='%s'/>" % NS_PING, to=DOMAIN, iq_id="p-2")
        assert resp is not None and resp.get("type") == "result" and resp.get("id") == "p-2"
    finally:
        s.close()


def test_disco_info_server(herald):
    """XEP-0030 section 3.1 (disco#info) and XEP-0199 section 6 (ping feature):
    the server reports identity category='server' type='im' and features
    urn:xmpp:ping and http://jabber.org/protocol/disco#info."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        await alice.login()
        resp = await alice.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
        assert resp["type"] == "result", resp
        query = resp.xml.find(q(NS_DISCO_INFO, "query"))
        assert query is not None, resp
        idents = [(i.get("category"), i.get("type")) for i in query.findall(q(NS_DISCO_INFO, "identity"))]
        assert ("server", "im") in idents, idents
        feats = {f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))}
        assert {NS_PING, NS_DISCO_INFO} <= feats, feats
    run(body)


def test_iq_to_remote_domain_remote_server_not_found(herald):
    """RFC 6120 8.3.3.16 <remote-server-not-found/>: an iq to another domain
    (no server-to-server) bounces with that error."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        await alice.login()
        resp = await alice.iq("<ping xmlns='%s'/>" % NS_PING, to="example.org")
        assert_error(resp, "remote-server-not-found", frm="example.org")
    run(body)


def test_iq_between_users_round_trip(herald):
    """RFC 6120 8.2.3 (IQ semantics) and 8.1.2.1: an iq to a full JID is routed
    to it with the sender's full JID as 'from', and the answer comes back."""
    srv = herald(users=USERS)

    async def body():
        alice = XClient(srv, "alice@localhost/a", "wonderland")
        bob = XClient(srv, "bob@localhost/b", "builder")
        await alice.login()
        await bob.login()
        seen = []

        def on_iq(iq):
            seen.append(str(iq["from"]))
            reply = iq.reply()
            reply.send()
        from slixmpp.xmlstream.handler import Callback
        from slixmpp.xmlstream.matcher import MatchXPath
        bob.xmpp.register_handler(Callback(
            "e2e-custom", MatchXPath("{%s}iq/{urn:example:e2e}q" % NS_CLIENT), on_iq))
        resp = await alice.iq("<q xmlns='urn:example:e2e'/>", to="bob@localhost/b")
        assert resp["type"] == "result", resp
        assert resp["from"] == "bob@localhost/b"
        assert seen == ["alice@localhost/a"], seen
    run(body)
