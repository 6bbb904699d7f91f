"""Message carbons (XEP-0280 1.0, urn:xmpp:carbons:2) with two client
libraries: slixmpp's xep_0280 plugin (whose carbon_received/carbon_sent
events fire only for a wrapper from the account's own bare JID, the §11
check) and aioxmpp's CarbonsClient. Covered: the disco feature, enable and
disable (twice each, §10.1), <received/> copies for messages to a full and
to the bare JID (§7), <sent/> copies (§8) among two and three resources,
which messages are eligible (§6: chat, normal with a body; not headline,
groupchat, error, normal without body), <private/> (§9: not copied, removed
at delivery), and a client-forged wrapper that is never wrapped again."""
import xml.etree.ElementTree as ET

import aioxmpp
import aioxmpp.carbons

from aioxmpp_helpers import AioClient
from e2e_helpers import DOMAIN, NS_CLIENT, NS_DISCO_INFO, q, run, show
from im_helpers import Inbox, bare, body_of, error_condition, im_client, slix_call, users

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
ALICE = bare("alice")


async def carbon_client(srv, user, resource, enable=True):
    """An available im_client with slixmpp's xep_0280 plugin; ``rcv`` and
    ``snt`` record its carbon_received and carbon_sent events."""
    c = await im_client(srv, user, resource)
    x = c.xmpp
    x.register_plugin("xep_0280")
    c.rcv = Inbox(c, "carbon received")
    c.snt = Inbox(c, "carbon sent")
    x.add_event_handler("carbon_received", c.rcv.put)
    x.add_event_handler("carbon_sent", c.snt.put)
    if enable:
        r = await slix_call(x["xep_0280"].enable())
        assert r["type"] == "result", "enable failed: %s" % r
    return c


def forwarded(el, wrapper):
    """The original message inside a carbon wrapper, or None."""
    return el.find("%s/%s/%s" % (q(NS_CARBONS, wrapper), q(NS_FORWARD, "forwarded"),
                                 q(NS_CLIENT, "message")))


def is_plain(body):
    """Predicate: an original (not a carbon) message with that body."""
    return lambda el: body_of(el) == body and el.find(q(NS_CARBONS, "received")) is None \
        and el.find(q(NS_CARBONS, "sent")) is None


def is_carbon(wrapper, body):
    def pred(el):
        inner = forwarded(el, wrapper)
        return inner is not None and body_of(inner) == body
    return pred


def any_carbon(el):
    return el.find(q(NS_CARBONS, "received")) is not None or \
        el.find(q(NS_CARBONS, "sent")) is not None


def check_wrapper(el, to, mtype, wrapper, inner_from, inner_to):
    """XEP-0280 §7/§8: from the bare JID, to the copy's full JID, same type,
    the original with its from/to inside <forwarded/>."""
    assert el.get("from") == ALICE, "a carbon must come from the bare JID: %s" % show(el)
    assert el.get("to") == to, "carbon 'to' must be %s: %s" % (to, show(el))
    assert el.get("type") == mtype, "carbon keeps the type %s: %s" % (mtype, show(el))
    inner = forwarded(el, wrapper)
    assert inner is not None, "no <%s><forwarded><message/>: %s" % (wrapper, show(el))
    assert inner.get("from") == inner_from and inner.get("to") == inner_to, show(el)


def test_disco_and_enable_disable(herald):
    """§3: the server lists urn:xmpp:carbons:2; §4-5, §10.1: enable and
    disable answer with a result, also when repeated; a <enable/> iq-get is
    not a request the server knows."""
    srv = herald(users=users("alice"))

    async def body():
        a = await carbon_client(srv, "alice", "a1", enable=False)
        info = await a.iq("<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
        feats = [f.get("var") for f in info.xml.iter(q(NS_DISCO_INFO, "feature"))]
        assert NS_CARBONS in feats, feats
        for op in ("enable", "enable", "disable", "disable"):
            r = await a.iq("<%s xmlns='%s'/>" % (op, NS_CARBONS), itype="set")
            assert r["type"] == "result", "%s: %s" % (op, r)
        r = await a.iq("<enable xmlns='%s'/>" % NS_CARBONS, itype="get")
        assert r["type"] == "error" and error_condition(r.xml) == "service-unavailable", r
        r = await a.iq("<enable xmlns='%s'/>" % NS_CARBONS, itype="set", to=bare("bob"))
        assert r["type"] == "error", "carbons of another account: %s" % r
        r = await a.iq("<enable xmlns='%s'/>" % NS_CARBONS, itype="set", to=ALICE)
        assert r["type"] == "result", "to one's own bare JID: %s" % r
    run(body)


def test_between_own_resources(herald):
    """A message from alice/a1 to alice/a2 reaches a2 as the original and
    a3 as a <received/> copy; the sender gets no copy of its own message
    (neither sent nor received)."""
    srv = herald(users=users("alice"))

    async def body():
        a1 = await carbon_client(srv, "alice", "a1")
        a2 = await carbon_client(srv, "alice", "a2")
        a3 = await carbon_client(srv, "alice", "a3")
        a1.send_message(ALICE + "/a2", "note to self")
        await a2.msgs.expect(is_plain("note to self"))
        m = await a3.rcv.expect(is_carbon("received", "note to self"))
        check_wrapper(m.xml, ALICE + "/a3", "chat", "received", ALICE + "/a1", ALICE + "/a2")
        await a1.msgs.expect_none(what="a copy of its own message")
        await a2.msgs.expect_none(any_carbon, wait=0.1, what="a copy of what it got")
    run(body)


def test_received_and_sent_three_resources(herald):
    """§7: a message to alice/a1 is copied as <received/> to a2 (enabled)
    but not to a3 (not enabled) nor back to a1; to the bare JID, where every
    resource gets the original, nobody gets a copy. §8: what a1 sends is
    copied as <sent/> to a2 only (not to the sender)."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a1 = await carbon_client(srv, "alice", "a1")
        a2 = await carbon_client(srv, "alice", "a2")
        a3 = await carbon_client(srv, "alice", "a3", enable=False)
        b = await im_client(srv, "bob", "b")

        b.send_message(ALICE + "/a1", "to a1")
        await a1.msgs.expect(is_plain("to a1"), what="the original")
        m = await a2.rcv.expect(is_carbon("received", "to a1"), what="a received carbon")
        check_wrapper(m.xml, ALICE + "/a2", "chat", "received", bare("bob") + "/b", ALICE + "/a1")

        b.send_message(ALICE, "to bare")
        for c in (a1, a2, a3):
            await c.msgs.expect(is_plain("to bare"), what="the original to the bare JID")

        a1.send_message(bare("bob"), "from a1")
        await b.msgs.expect(is_plain("from a1"), what="alice's message")
        m = await a2.snt.expect(is_carbon("sent", "from a1"), what="a sent carbon")
        check_wrapper(m.xml, ALICE + "/a2", "chat", "sent", ALICE + "/a1", bare("bob"))

        for c in (a1, a3):
            await c.msgs.expect_none(any_carbon, what="a carbon")
        await a2.msgs.expect_none(lambda el: forwarded(el, "received") is not None
                                  and body_of(forwarded(el, "received")) == "to bare",
                                  wait=0.1, what="a copy of what it received itself")
    run(body)


def test_eligibility(herald):
    """§6: chat and normal-with-body are copied; headline, normal without
    a body, error and groupchat (to a full JID: delivered) are not."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a1 = await carbon_client(srv, "alice", "a1")
        a2 = await carbon_client(srv, "alice", "a2")
        b = await im_client(srv, "bob", "b")
        to = ALICE + "/a1"
        b.send_message(to, "normal", mtype="normal")
        await a2.rcv.expect(is_carbon("received", "normal"), what="carbon of a normal message")
        a2.msgs.clear()
        b.send_message(to, "headline", mtype="headline")
        await a1.msgs.expect(is_plain("headline"))
        m = b.xmpp.make_message(mto=to, mtype="normal")
        m.xml.append(ET.fromstring("<active xmlns='http://jabber.org/protocol/chatstates'/>"))
        m.send()
        err = b.xmpp.make_message(mto=to, mbody="error", mtype="error")
        err.send()
        b.send_message(to, "groupchat", mtype="groupchat")
        for text in ("error", "groupchat"):
            await a1.msgs.expect(is_plain(text), what="the %s message itself" % text)
        await a2.msgs.expect_none(any_carbon, what="a carbon of an ineligible message")
    run(body)


def test_private_and_forged(herald):
    """§9: <private/> (with the <no-copy/> hint) is copied neither as sent
    nor as received, and the receiving server removes it from what it
    delivers. §11: a message that already carries a carbon wrapper (forged
    by bob) is delivered as it is and never wrapped again."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a1 = await carbon_client(srv, "alice", "a1")
        a2 = await carbon_client(srv, "alice", "a2")
        b1 = await carbon_client(srv, "bob", "b1")
        b2 = await carbon_client(srv, "bob", "b2")

        m = a1.xmpp.make_message(mto=bare("bob") + "/b1", mbody="secret", mtype="chat")
        m.xml.append(ET.fromstring("<private xmlns='%s'/>" % NS_CARBONS))
        m.xml.append(ET.fromstring("<no-copy xmlns='%s'/>" % NS_HINTS))
        m.send()
        got = await b1.msgs.expect(is_plain("secret"), what="the private message")
        assert got.xml.find(q(NS_CARBONS, "private")) is None, (
            "<private/> must be removed before delivery: %s" % show(got.xml))

        forged = ("<message xmlns='jabber:client' to='%s/a1' type='chat'>"
                  "<received xmlns='%s'><forwarded xmlns='%s'>"
                  "<message xmlns='jabber:client' from='eve@localhost/x' to='%s/a1' type='chat'>"
                  "<body>forged</body></message></forwarded></received></message>"
                  % (ALICE, NS_CARBONS, NS_FORWARD, ALICE))
        b1.xmpp.send_raw(forged)
        f = await a1.msgs.expect(lambda el: forwarded(el, "received") is not None,
                                 what="the forged wrapper as sent")
        assert f.xml.get("from") == bare("bob") + "/b1", show(f.xml)
        await a1.rcv.expect_none(what="a carbon event for a wrapper not from the bare JID",
                                 wait=0.1)
        b1.send_message(ALICE + "/a1", "after")
        await a2.rcv.expect(is_carbon("received", "after"), what="the next normal carbon")
        for c in (a2, b2):
            await c.msgs.expect_none(lambda el: body_of(forwarded(el, "received") or
                                                        forwarded(el, "sent") or el) in
                                     ("secret", "forged"), wait=0.1, what="a copy")
    run(body)


def test_disable_stops_copies(herald):
    """§5: after <disable/> a resource gets no more copies."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a1 = await carbon_client(srv, "alice", "a1")
        a2 = await carbon_client(srv, "alice", "a2")
        b = await im_client(srv, "bob", "b")
        b.send_message(ALICE + "/a1", "one")
        await a2.rcv.expect(is_carbon("received", "one"))
        a2.msgs.clear()
        r = await slix_call(a2.xmpp["xep_0280"].disable())
        assert r["type"] == "result", r
        b.send_message(ALICE + "/a1", "two")
        a1.send_message(bare("bob"), "three")
        await a1.msgs.expect(is_plain("two"))
        await b.msgs.expect(is_plain("three"))
        await a2.msgs.expect_none(any_carbon, what="a carbon after disable")
    run(body)


def test_aioxmpp_carbons(herald):
    """aioxmpp's CarbonsClient enables carbons on two resources; a message
    from bob to a1 reaches a2 as Message.xep0280_received, one from a1 to
    bob reaches a2 as xep0280_sent, each wrapping the original, from the
    bare JID."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a1 = await AioClient(srv, "alice", "a1").login()
        a2 = await AioClient(srv, "alice", "a2").login()
        b = await AioClient(srv, "bob", "b").login()
        try:
            for c in (a1, a2, b):
                await c.presence()
            for c in (a1, a2):
                await c.client.summon(aioxmpp.carbons.CarbonsClient).enable()
            async def copy_at_a2(sender, to, text, attr):
                """sender sends text to `to`; a2's copy, as aioxmpp parsed it."""
                m = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT, to=aioxmpp.JID.fromstr(to))
                m.body[None] = text
                await sender.client.send(m)
                got = await a2.msgs.expect(lambda el: any_carbon(el), what="a copy of %r" % text)
                wrapper = getattr(got.stanza, attr)
                assert str(got.stanza.from_) == ALICE and wrapper is not None, show(got.xml)
                assert wrapper.stanza.body.any() == text, show(got.xml)
                return wrapper.stanza

            inner = await copy_at_a2(b, ALICE + "/a1", "hello a1", "xep0280_received")
            assert str(inner.from_) == bare("bob") + "/b", inner
            inner = await copy_at_a2(a1, bare("bob"), "hello bob", "xep0280_sent")
            assert str(inner.to) == bare("bob"), inner
            await b.msgs.expect(is_plain("hello bob"))
            await a1.msgs.expect_none(any_carbon, what="a copy of its own message")
        finally:
            for c in (a1, a2, b):
                await c.close()
    run(body)
