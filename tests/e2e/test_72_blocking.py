"""Blocking Command (XEP-0191 1.3, urn:xmpp:blocking) with two client
libraries: slixmpp's xep_0191 plugin and aioxmpp's BlockingClient, plus raw
iqs for malformed requests. Covered: the disco feature, the list (§3.2),
block with pushes to the resources that asked for the list (§3.3), unblock
and unblock-all (§3.4, §3.5), matching of bare, full and domain JIDs,
stanzas from a blocked entity (§3.6: service-unavailable for messages and
iq requests, nothing delivered, nothing stored offline, presence dropped)
and to one (§3.7: not-acceptable with <blocked/>), presence on block and
unblock, persistence across a restart, the list bound
(im.max_blocklist_items) and errors for malformed requests."""
import asyncio

import aioxmpp
import aioxmpp.blocking

from aioxmpp_helpers import AioClient
from e2e_helpers import DOMAIN, NS_CLIENT, NS_DISCO_INFO, NS_PING, q, run, show
from im_helpers import (bare, body_of, error_condition, im_client, is_presence, mutual,
                        presence_child_text, send_presence, slix_call, users)

NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
ALICE = bare("alice")
BOB = bare("bob")


async def blocking_client(srv, user, resource, get_list=True, **kw):
    """An im_client with slixmpp's xep_0191 plugin; ``block_pushes``
    records every <block/> and <unblock/> push it gets. With get_list it
    asks for the block list (becoming a resource that gets pushes)."""
    c = await im_client(srv, user, resource, **kw)
    c.xmpp.register_plugin("xep_0191")
    c.block_pushes = []
    c.xmpp.add_event_handler("blocked", lambda iq: c.block_pushes.append(("block", iq)))
    c.xmpp.add_event_handler("unblocked", lambda iq: c.block_pushes.append(("unblock", iq)))
    if get_list:
        await blocklist(c)
    return c


async def blocklist(c):
    r = await slix_call(c.xmpp["xep_0191"].get_blocked())
    assert r["type"] == "result", "blocklist get failed: %s" % r
    return sorted(str(j) for j in r["blocklist"]["items"])


async def block(c, *jids):
    r = await slix_call(c.xmpp["xep_0191"].block(list(jids)))
    assert r["type"] == "result", "block %s failed: %s" % (jids, r)


async def unblock(c, *jids):
    r = await slix_call(c.xmpp["xep_0191"].unblock(list(jids)))
    assert r["type"] == "result", "unblock %s failed: %s" % (jids, r)


async def raw(c, xml):
    """A raw iq set with payload xml; the answer's XML."""
    return (await c.iq(xml, itype="set")).xml


async def next_push(c, kind, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for i, (k, iq) in enumerate(c.block_pushes):
            if k == kind:
                del c.block_pushes[i]
                return sorted(str(j) for j in iq[kind]["items"])
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("%s got no %s push within %.0f s" % (c.name, kind, timeout))
        await asyncio.sleep(0.05)


def is_msg(body):
    return lambda el: el.get("type") != "error" and body_of(el) == body


def is_error(cond):
    return lambda el: el.get("type") == "error" and error_condition(el) == cond


def test_list_block_unblock_pushes(herald):
    """The server's disco#info lists urn:xmpp:blocking; the list starts
    empty; block and unblock answer with a result and push the same change
    to each resource that asked for the list (r1, r2), not to one that did
    not (r3); unblock without items empties the list (§3.5)."""
    srv = herald(users=users("alice"))

    async def body():
        r1 = await blocking_client(srv, "alice", "r1")
        r2 = await blocking_client(srv, "alice", "r2")
        r3 = await blocking_client(srv, "alice", "r3", get_list=False)
        info = await r1.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
        feats = [f.get("var") for f in info.xml.iter(q(NS_DISCO_INFO, "feature"))]
        assert NS_BLOCKING in feats, feats
        assert await blocklist(r1) == []

        await block(r1, BOB, "evil.example", "Carol@LOCALHOST/Phone")
        want = sorted([BOB, "carol@localhost/Phone", "evil.example"])
        for c in (r1, r2):
            assert await next_push(c, "block") == want
        assert await blocklist(r2) == want, "the list holds the prepared JIDs"

        await unblock(r2, BOB)
        for c in (r1, r2):
            assert await next_push(c, "unblock") == [BOB]
        assert await blocklist(r1) == sorted(["carol@localhost/Phone", "evil.example"])

        r = await raw(r1, "<unblock xmlns='%s'/>" % NS_BLOCKING)
        assert r.get("type") == "result", show(r)
        for c in (r1, r2):
            assert await next_push(c, "unblock") == []
        assert await blocklist(r1) == []
        await asyncio.sleep(0.3)
        assert r3.block_pushes == [], "r3 never asked for the list: %s" % r3.block_pushes
    run(body)


def test_blocked_traffic_both_ways(herald):
    """§3.6: a message from a blocked bare JID gets service-unavailable and
    is not delivered; an iq request too. §3.7: a message or iq from alice to
    a blocked JID gets not-acceptable with <blocked/> and is not delivered.
    A full-JID entry blocks only that resource; a domain entry blocks all of
    its JIDs. After unblocking, messages flow again."""
    srv = herald(users=users("alice", "bob", "carol"))

    async def body():
        a = await blocking_client(srv, "alice", "r")
        b = await im_client(srv, "bob", "b")
        c1 = await im_client(srv, "carol", "phone")
        c2 = await im_client(srv, "carol", "desk")
        await block(a, BOB, "carol@localhost/phone")

        b.send_message(ALICE + "/r", "from bob")
        e = await b.msgs.expect(is_error("service-unavailable"), what="the bounce")
        assert body_of(e.xml) == "from bob", show(e.xml)
        r = await b.iq("<ping xmlns='%s'/>" % NS_PING, to=ALICE + "/r")
        assert error_condition(r.xml) == "service-unavailable", show(r.xml)

        a.send_message(BOB, "to bob")
        e = await a.msgs.expect(is_error("not-acceptable"), what="not-acceptable")
        assert e.xml.find("%s/%s" % (q(NS_CLIENT, "error"), q(NS_BLOCKING_ERRORS, "blocked"))) \
            is not None, "no <blocked xmlns='%s'/>: %s" % (NS_BLOCKING_ERRORS, show(e.xml))
        r = await a.iq("<ping xmlns='%s'/>" % NS_PING, to=BOB + "/b")
        assert error_condition(r.xml) == "not-acceptable", show(r.xml)

        c1.send_message(ALICE, "from phone")
        await c1.msgs.expect(is_error("service-unavailable"))
        c2.send_message(ALICE, "from desk")
        await a.msgs.expect(is_msg("from desk"), what="a resource that is not blocked")

        await block(a, DOMAIN)
        c2.send_message(ALICE, "domain blocked")
        await c2.msgs.expect(is_error("service-unavailable"), what="domain-wide block")
        await a.msgs.expect_none(lambda el: body_of(el) in ("from bob", "from phone",
                                                              "domain blocked"),
                                 what="a blocked message")
        await b.msgs.expect_none(is_msg("to bob"), what="a message alice sent to a blocked JID")

        await unblock(a, BOB, DOMAIN)
        b.send_message(ALICE, "again")
        await a.msgs.expect(is_msg("again"), what="a message after unblocking")
    run(body)


def test_domain_resource_entry(herald):
    """Matching as privacy lists: an entry domain/resource blocks that
    resource of every account of the domain, and no other resource."""
    srv = herald(users=users("alice", "bob", "carol"))

    async def body():
        a = await blocking_client(srv, "alice", "r")
        await block(a, DOMAIN + "/evil")
        for user in ("bob", "carol"):
            evil = await im_client(srv, user, "evil")
            good = await im_client(srv, user, "good")
            evil.send_message(ALICE, "evil " + user)
            await evil.msgs.expect(is_error("service-unavailable"))
            good.send_message(ALICE, "good " + user)
            await a.msgs.expect(is_msg("good " + user))
        await a.msgs.expect_none(lambda el: (body_of(el) or "").startswith("evil"))
    run(body)


def test_offline_from_blocked_not_stored(herald):
    """§3.6 with XEP-0160: while alice is offline, a message from a blocked
    JID is bounced and not stored; an unblocked sender's message is."""
    srv = herald(users=users("alice", "bob", "carol"))

    async def body():
        a = await blocking_client(srv, "alice", "r", presence=False)
        await block(a, BOB)
        await a.close()
        b = await im_client(srv, "bob", "b")
        c = await im_client(srv, "carol", "c")
        b.send_message(ALICE, "stored?")
        await b.msgs.expect(is_error("service-unavailable"))
        c.send_message(ALICE, "stored")
        await c.sync()
        a = await im_client(srv, "alice", "r2")
        await a.msgs.expect(is_msg("stored"), what="carol's offline message")
        await a.msgs.expect_none(is_msg("stored?"), what="bob's message")
    run(body)


def test_presence_on_block_and_unblock(herald):
    """§3.3: blocking a contact with a subscription sends it unavailable
    presence from alice's available resource, and later presence changes do
    not reach it (nor does its presence reach alice); §3.4: unblocking sends
    alice's current presence again."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await blocking_client(srv, "alice", "r")
        b = await im_client(srv, "bob", "b")
        await mutual(a, b)
        await send_presence(a, status="here")
        await b.presences.expect(is_presence("available", frm=ALICE + "/r"))
        await block(a, BOB)
        await b.presences.expect(is_presence("unavailable", frm=ALICE + "/r"),
                                 what="unavailable on block")
        await a.sync()
        a.presences.clear()
        b.presences.clear()
        await send_presence(a, status="still here")
        await send_presence(b, status="bob here")
        await b.presences.expect_none(is_presence(frm_bare=ALICE), what="alice's presence")
        await a.presences.expect_none(is_presence(frm_bare=BOB), what="bob's presence")
        await unblock(a, BOB)
        p = await b.presences.expect(is_presence("available", frm=ALICE + "/r"),
                                     what="current presence on unblock")
        assert presence_child_text(p.xml, "status") == "still here", show(p.xml)
    run(body)


def test_list_survives_restart(herald):
    """The list is stored: after a restart it is the same and enforced."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await blocking_client(srv, "alice", "r")
        await block(a, BOB, "x.example")
    run(body)
    srv.restart()

    async def after():
        a = await blocking_client(srv, "alice", "r")
        assert await blocklist(a) == [BOB, "x.example"]
        b = await im_client(srv, "bob", "b")
        b.send_message(ALICE + "/r", "after restart")
        await b.msgs.expect(is_error("service-unavailable"))
        await a.msgs.expect_none(is_msg("after restart"))
    run(after)


def test_bound_and_malformed(herald):
    """im.max_blocklist_items bounds the list: a block that would go beyond
    it is refused whole with policy-violation. Malformed requests: an empty
    <block/> and an item without jid are bad-request, an unpreparable JID
    jid-malformed; the list is unchanged by all of them."""
    srv = herald(config={"im": {"max_blocklist_items": 3}}, users=users("alice"))

    async def body():
        a = await blocking_client(srv, "alice", "r")
        await block(a, "a.example", "b.example")
        r = await raw(a, "<block xmlns='%s'><item jid='c.example'/><item jid='d.example'/>"
                         "</block>" % NS_BLOCKING)
        assert error_condition(r) == "policy-violation", show(r)
        await block(a, "a.example", "c.example")  # one new: exactly at the bound
        r = await raw(a, "<block xmlns='%s'><item jid='e.example'/></block>" % NS_BLOCKING)
        assert error_condition(r) == "policy-violation", show(r)
        for xml, cond in (("<block xmlns='%s'/>", "bad-request"),
                          ("<block xmlns='%s'><item/></block>", "bad-request"),
                          ("<block xmlns='%s'><item jid='a@b@c'/></block>", "jid-malformed"),
                          ("<unblock xmlns='%s'><item jid=''/></unblock>", "jid-malformed"),
                          ("<block xmlns='%s'><other jid='z.example'/></block>", "bad-request")):
            r = await raw(a, xml % NS_BLOCKING)
            assert r.get("type") == "error" and error_condition(r) == cond, (xml, show(r))
        assert await blocklist(a) == ["a.example", "b.example", "c.example"]
        r = (await a.iq("<blocklist xmlns='%s'/>" % NS_BLOCKING, to=bare("bob"))).xml
        assert r.get("type") == "error", show(r)
    run(body)


def test_aioxmpp_blocking(herald):
    """aioxmpp's BlockingClient (which fetches the list at login and follows
    pushes): block_jids on one resource shows up in both resources' lists
    through the pushes and its signals; messages from the blocked JID are
    refused; unblock_all empties both lists."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        clients = []
        try:
            lists = []
            for res in ("a1", "a2"):
                c = AioClient(srv, "alice", res)
                bl = c.client.summon(aioxmpp.blocking.BlockingClient)
                blocked = asyncio.get_running_loop().create_future()
                bl.on_jids_blocked.connect(
                    lambda jids, f=blocked: f.done() or f.set_result(jids))
                await c.login()
                clients.append(c)
                lists.append((bl, blocked))
                assert bl.blocklist == frozenset(), bl.blocklist
            b = await AioClient(srv, "bob", "b").login()
            clients.append(b)
            await clients[0].presence()
            bob = aioxmpp.JID.fromstr(BOB)
            await lists[0][0].block_jids([bob])
            for bl, blocked in lists:
                assert await asyncio.wait_for(blocked, 5) == frozenset([bob])
                assert bl.blocklist == frozenset([bob])
            m = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT,
                                to=aioxmpp.JID.fromstr(ALICE + "/a1"))
            m.body[None] = "blocked?"
            await b.client.send(m)
            e = await b.msgs.expect(is_error("service-unavailable"))
            assert e.xml.get("from") == ALICE + "/a1", show(e.xml)
            await clients[0].msgs.expect_none(is_msg("blocked?"))
            await lists[1][0].unblock_all()
            await clients[0].sync()
            for _ in range(50):
                if all(bl.blocklist == frozenset() for bl, _ in lists):
                    break
                await asyncio.sleep(0.1)
            assert [bl.blocklist for bl, _ in lists] == [frozenset()] * 2
        finally:
            for c in clients:
                await c.close()
    run(body)
