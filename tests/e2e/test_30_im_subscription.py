"""Presence subscriptions (RFC 6121 section 3): request, approval, denial,
cancellation, unsubscription, requests to offline contacts, the automatic
answer to a repeated request, pre-approval (3.4), and removal of a roster
item with subscriptions (2.5.2)."""
import asyncio

from e2e_helpers import run
from im_helpers import (im_client, is_presence, is_push_for, mutual, presence_child_text,
                        push_from_ok, push_item, push_item_el, roster_items, roster_set,
                        send_presence, show, sub_of, subscribe, users)

ALICE = "alice@localhost"
BOB = "bob@localhost"


def _event_future(c, name):
    """A future resolved by the first slixmpp event ``name`` on client c."""
    fut = asyncio.get_running_loop().create_future()

    def handler(stanza):
        if not fut.done():
            fut.set_result(stanza)
    c.xmpp.add_event_handler(name, handler)
    return fut


def test_subscribe_and_approve(herald):
    """RFC 6121 3.1.2: the user's outbound subscribe sets ask='subscribe'
    (pushed) and reaches the contact stamped with the user's bare JID
    (3.1.3); RFC 6121 3.1.5: the contact's 'subscribed' changes the
    contact's item to 'from' (pushed) and the user's to 'to' without ask
    (3.1.6, pushed), the user gets 'subscribed' and then the contact's
    current presence; afterwards the contact's presence updates reach the
    user (4.4.2) and the user's do not reach the contact."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1", status="at work", show_="dnd")
        got_request = _event_future(b, "presence_subscribe")
        got_subscribed = _event_future(a, "presence_subscribed")

        a.xmpp.send_presence(pto=BOB, ptype="subscribe")
        push = await a.pushes.expect(is_push_for(BOB), what="push with ask='subscribe'")
        item = push_item(push)
        assert sub_of(item) == "none" and item.get("ask") == "subscribe", show(push.xml)
        assert push_from_ok(push, ALICE), show(push.xml)
        req = await asyncio.wait_for(got_request, 5)
        assert req.xml.get("from") == ALICE, "request must come from the bare JID: %s" % req
        await b.presences.expect(is_presence("subscribe", frm=ALICE))
        assert a.xmpp.client_roster[BOB]["pending_out"] is True

        b.xmpp.send_presence(pto=ALICE, ptype="subscribed")
        bpush = await b.pushes.expect(is_push_for(ALICE), what="bob's push for alice")
        assert sub_of(push_item(bpush)) == "from", show(bpush.xml)
        apush = await a.pushes.expect(is_push_for(BOB, "to"), what="alice's push 'to'")
        assert push_item(apush).get("ask") is None, show(apush.xml)
        sub = await asyncio.wait_for(got_subscribed, 5)
        assert sub.xml.get("from") == BOB, "subscribed must come from the bare JID: %s" % sub
        await a.presences.expect(is_presence("subscribed", frm=BOB))
        avail = await a.presences.expect(is_presence("available", frm=BOB + "/b1"),
                                         what="bob's current presence after approval")
        assert presence_child_text(avail.xml, "status") == "at work", show(avail.xml)
        assert presence_child_text(avail.xml, "show") == "dnd", show(avail.xml)
        order = a.presences.all
        assert order.index(sub) < order.index(avail), \
            "the contact's presence must follow the 'subscribed' (RFC 6121 3.1.5)"

        assert a.xmpp.client_roster[BOB]["subscription"] == "to"
        assert b.xmpp.client_roster[ALICE]["subscription"] == "from"
        aitems, bitems = await roster_items(a), await roster_items(b)
        assert sub_of(aitems[BOB]) == "to" and aitems[BOB].get("ask") is None, show(aitems[BOB])
        assert sub_of(bitems[ALICE]) == "from", show(bitems[ALICE])

        changed = _event_future(a, "changed_status")
        await send_presence(b, status="lunch")
        upd = await asyncio.wait_for(changed, 5)
        assert upd["from"] == BOB + "/b1" and upd["status"] == "lunch", upd
        await send_presence(a, status="not for bob")
        await b.presences.expect_none(is_presence(frm_bare=ALICE), wait=0.7,
                                      what="alice's presence (bob has no subscription)")
    run(body)


def test_mutual_subscription_is_both(herald):
    """RFC 6121 3.1 twice, in both directions: both items end with
    subscription 'both' (pushed), and presence flows both ways (4.4.2)."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        await subscribe(a, b)
        await subscribe(b, a)
        assert sub_of((await roster_items(a))[BOB]) == "both"
        assert sub_of((await roster_items(b))[ALICE]) == "both"
        a.presences.clear()
        b.presences.clear()
        await send_presence(a, status="hi bob")
        p = await b.presences.expect(is_presence("available", frm=ALICE + "/a1"))
        assert presence_child_text(p.xml, "status") == "hi bob"
        await send_presence(b, status="hi alice")
        p = await a.presences.expect(is_presence("available", frm=BOB + "/b1"))
        assert presence_child_text(p.xml, "status") == "hi alice"
    run(body)


def test_request_goes_to_every_available_resource_only(herald):
    """RFC 6121 3.1.3: a subscription request is delivered to every
    available resource of the contact, and not to a connected resource
    that has not sent initial presence."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b1 = await im_client(srv, "bob", "b1")
        b2 = await im_client(srv, "bob", "b2", roster=False)
        b3 = await im_client(srv, "bob", "b3", presence=False)
        a.xmpp.send_presence(pto=BOB, ptype="subscribe")
        for c in (b1, b2):
            await c.presences.expect(is_presence("subscribe", frm=ALICE))
        await b3.presences.expect_none(is_presence("subscribe"), wait=0.7,
                                       what="a request while not available")
    run(body)


def test_denied_request(herald):
    """RFC 6121 3.2 used to deny a request (3.1.4): the contact's
    'unsubscribed' reaches the user (3.2.3), whose item goes back to 'none'
    without ask (pushed); the request is then forgotten: another resource of
    the contact that becomes available does not get it again (3.1.3)."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        a.xmpp.send_presence(pto=BOB, ptype="subscribe")
        await a.pushes.expect(is_push_for(BOB))
        await b.presences.expect(is_presence("subscribe", frm=ALICE))
        b.xmpp.send_presence(pto=ALICE, ptype="unsubscribed")
        await a.presences.expect(is_presence("unsubscribed", frm=BOB),
                                 what="the denial")
        push = await a.pushes.expect(is_push_for(BOB, "none"), what="push 'none'")
        assert push_item(push).get("ask") is None, show(push.xml)
        item = (await roster_items(a))[BOB]
        assert sub_of(item) == "none" and item.get("ask") is None, show(item)
        b2 = await im_client(srv, "bob", "b2")
        await b2.presences.expect_none(is_presence("subscribe"), wait=0.7,
                                       what="a request that was denied")
        assert ALICE not in (await roster_items(b2)) or \
            sub_of((await roster_items(b2))[ALICE]) == "none"
    run(body)


def test_contact_cancels_subscription(herald):
    """RFC 6121 3.2.2 / 3.2.3: the contact's 'unsubscribed' for an existing
    subscription sets the contact's item to 'none' and the user's to
    'none' (both pushed), delivers 'unsubscribed' to the user and
    unavailable presence from each of the contact's available resources;
    later contact presence no longer reaches the user."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b1 = await im_client(srv, "bob", "b1")
        await subscribe(a, b1)
        b2 = await im_client(srv, "bob", "b2")
        await a.presences.expect(is_presence("available", frm=BOB + "/b2"))
        a.presences.clear()
        b1.xmpp.send_presence(pto=ALICE, ptype="unsubscribed")
        for c in (b1, b2):
            await c.pushes.expect(is_push_for(ALICE, "none"), what="bob's push 'none'")
        await a.pushes.expect(is_push_for(BOB, "none"), what="alice's push 'none'")
        await a.presences.expect(is_presence("unsubscribed", frm=BOB))
        for res in ("b1", "b2"):
            await a.presences.expect(is_presence("unavailable", frm=BOB + "/" + res),
                                     what="unavailable from bob/%s" % res)
        await send_presence(b1, status="private again")
        await a.presences.expect_none(is_presence(frm_bare=BOB), wait=0.7,
                                      what="bob's presence after cancellation")
        assert sub_of((await roster_items(a))[BOB]) == "none"
        assert sub_of((await roster_items(b1))[ALICE]) == "none"
    run(body)


def test_user_unsubscribes_from_both(herald):
    """RFC 6121 3.3.2 / 3.3.3: with subscription 'both', the user's
    'unsubscribe' turns the user's item into 'from' and the contact's into
    'to' (both pushed), delivers 'unsubscribe' to the contact, and the
    contact's server sends unavailable presence from the contact's
    resources to the user; afterwards only the user's presence still flows
    (to the contact)."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        await mutual(a, b)
        a.presences.clear()
        b.presences.clear()
        a.xmpp.send_presence(pto=BOB, ptype="unsubscribe")
        await a.pushes.expect(is_push_for(BOB, "from"), what="alice's push 'from'")
        await b.pushes.expect(is_push_for(ALICE, "to"), what="bob's push 'to'")
        await b.presences.expect(is_presence("unsubscribe", frm=ALICE))
        await a.presences.expect(is_presence("unavailable", frm=BOB + "/b1"),
                                 what="unavailable from bob/b1")
        await send_presence(b, status="bob only to himself")
        await a.presences.expect_none(is_presence("available", frm_bare=BOB), wait=0.7,
                                      what="bob's presence after unsubscribing")
        await send_presence(a, status="still for bob")
        p = await b.presences.expect(is_presence("available", frm=ALICE + "/a1"))
        assert presence_child_text(p.xml, "status") == "still for bob"
        assert sub_of((await roster_items(a))[BOB]) == "from"
        assert sub_of((await roster_items(b))[ALICE]) == "to"
    run(body)


def test_request_to_offline_contact_is_stored(herald):
    """RFC 6121 3.1.3: when the contact has no available resource the
    request is kept and delivered when the contact next sends initial
    presence, again at each new available session until the contact
    answers, and never after the answer; 2.1.2.2: meanwhile the user's item
    shows ask='subscribe'."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        a.xmpp.send_presence(pto=BOB, ptype="subscribe")
        await a.pushes.expect(is_push_for(BOB))
        assert (await roster_items(a))[BOB].get("ask") == "subscribe"

        b0 = await im_client(srv, "bob", "b0", presence=False)
        await b0.presences.expect_none(is_presence("subscribe"), wait=0.7,
                                       what="a request before initial presence")
        await send_presence(b0)
        await b0.presences.expect(is_presence("subscribe", frm=ALICE),
                                  what="the stored request on initial presence")
        await b0.close()

        b1 = await im_client(srv, "bob", "b1")
        await b1.presences.expect(is_presence("subscribe", frm=ALICE),
                                  what="the stored request again (not answered yet)")
        b1.xmpp.send_presence(pto=ALICE, ptype="subscribed")
        await a.pushes.expect(is_push_for(BOB, "to"))
        await a.presences.expect(is_presence("subscribed", frm=BOB))
        await a.presences.expect(is_presence("available", frm=BOB + "/b1"))
        await b1.close()

        b2 = await im_client(srv, "bob", "b2")
        await b2.presences.expect_none(is_presence("subscribe"), wait=0.7,
                                       what="a request already approved")
    run(body)


def test_pending_request_survives_restart(herald):
    """RFC 6121 3.1.3 (the server keeps a record of the request until the
    contact answers) with 2.1 (stored roster): after a restart the request
    is still delivered on the contact's initial presence, and the user's
    item still has ask='subscribe'."""
    srv = herald(users=users("alice", "bob"))

    async def first():
        a = await im_client(srv, "alice", "a1")
        a.xmpp.send_presence(pto=BOB, ptype="subscribe")
        await a.pushes.expect(is_push_for(BOB))
    run(first)
    srv.restart()

    async def second():
        a = await im_client(srv, "alice", "a1", presence=False)
        item = (await roster_items(a))[BOB]
        assert sub_of(item) == "none" and item.get("ask") == "subscribe", show(item)
        b = await im_client(srv, "bob", "b1")
        await b.presences.expect(is_presence("subscribe", frm=ALICE))
    run(second)


def test_user_cancels_pending_request(herald):
    """RFC 6121 3.3 (unsubscribe while 'None + Pending Out', table A.2.3):
    the user's item goes to 'none' without ask (pushed) and the contact's
    server forgets the pending request: the contact's next initial presence
    brings no request."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        a.xmpp.send_presence(pto=BOB, ptype="subscribe")
        await a.pushes.expect(is_push_for(BOB))
        a.xmpp.send_presence(pto=BOB, ptype="unsubscribe")
        push = await a.pushes.expect(is_push_for(BOB, "none"))
        assert push_item(push).get("ask") is None, show(push.xml)
        b = await im_client(srv, "bob", "b1")
        await b.presences.expect_none(is_presence("subscribe"), wait=0.7,
                                      what="a request the user withdrew")
    run(body)


def test_repeated_subscribe_changes_nothing(herald):
    """RFC 6121 3.1.3: when the user is already subscribed, the contact's
    server answers a new subscribe itself with 'subscribed' and does not
    deliver the request to the contact; RFC 6121 3.1.6: the user's server
    silently ignores a 'subscribed' for an item without ask='subscribe',
    and A.2.1: an outbound subscribe from state 'To' changes nothing. On one
    server the net effect is: no request reaches bob, alice's item stays
    'to' without ask, and nobody gets a roster push."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        await subscribe(a, b)
        for c in (a, b):
            c.presences.clear()
            c.pushes.clear()
        a.xmpp.send_presence(pto=BOB, ptype="subscribe")
        await a.sync()
        await b.presences.expect_none(is_presence("subscribe"), wait=0.7,
                                      what="a request already granted")
        await b.pushes.expect_none(wait=0.0, what="a push (bob's item is unchanged)")
        await a.pushes.expect_none(wait=0.0, what="a push (alice's item is unchanged)")
        item = (await roster_items(a))[BOB]
        assert sub_of(item) == "to" and item.get("ask") is None, show(item)
        assert sub_of((await roster_items(b))[ALICE]) == "from"
    run(body)


def test_preapproval(herald):
    """RFC 6121 3.4.1: 'subscribed' sent with no pending request
    pre-approves: the contact-to-be appears in the sender's roster with
    subscription 'none' and approved='true' (pushed), and the presence is
    not routed; 3.4 / 3.1.3: a later request from that contact is approved
    by the server without reaching the user: the requester gets
    'subscribed' and the user's item becomes 'from'."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1", status="bob here")
        b.xmpp.send_presence(pto=ALICE, ptype="subscribed")
        push = await b.pushes.expect(is_push_for(ALICE), what="pre-approval push")
        item = push_item(push)
        assert sub_of(item) == "none" and item.get("approved") == "true", show(push.xml)
        await a.presences.expect_none(is_presence(frm_bare=BOB), wait=0.7,
                                      what="a pre-approval (it must not be routed)")
        await a.pushes.expect_none(wait=0.1, what="a push caused by bob's pre-approval")
        assert (await roster_items(b))[ALICE].get("approved") == "true"

        a.xmpp.send_presence(pto=BOB, ptype="subscribe")
        await a.pushes.expect(is_push_for(BOB, "to"), what="alice's push 'to'")
        await a.presences.expect(is_presence("subscribed", frm=BOB))
        await a.presences.expect(is_presence("available", frm=BOB + "/b1"))
        await b.pushes.expect(is_push_for(ALICE, "from"), what="bob's push 'from'")
        await b.presences.expect_none(is_presence("subscribe"), wait=0.7,
                                      what="a pre-approved request")
        assert sub_of((await roster_items(a))[BOB]) == "to"
        assert sub_of((await roster_items(b))[ALICE]) == "from"
    run(body)


def test_remove_item_cancels_subscriptions(herald):
    """RFC 6121 2.5.2: removing an item with subscription 'both' makes the
    server send 'unsubscribe' and 'unsubscribed' to the contact, whose item
    ends at 'none' (pushed); the contact gets unavailable presence from the
    user (3.2.2) and the user from the contact (3.3.3); no presence flows
    afterwards in either direction."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        await mutual(a, b)
        a.presences.clear()
        b.presences.clear()
        el = await roster_set(a, "<item jid='%s' subscription='remove'/>" % BOB)
        assert el.get("type") == "result", show(el)
        await a.pushes.expect(is_push_for(BOB, "remove"))
        await b.presences.expect(is_presence("unsubscribe", frm=ALICE))
        await b.presences.expect(is_presence("unsubscribed", frm=ALICE))
        await b.pushes.expect(is_push_for(ALICE, "none"), what="bob's push 'none'")
        await b.presences.expect(is_presence("unavailable", frm=ALICE + "/a1"))
        await a.presences.expect(is_presence("unavailable", frm=BOB + "/b1"))
        assert BOB not in await roster_items(a)
        assert sub_of((await roster_items(b))[ALICE]) == "none"
        await send_presence(a, status="gone")
        await send_presence(b, status="gone too")
        await a.presences.expect_none(is_presence("available", frm_bare=BOB), wait=0.5)
        await b.presences.expect_none(is_presence("available", frm_bare=ALICE), wait=0.2)
    run(body)


def test_jids_are_prepared(herald):
    """RFC 7622 3.2 / RFC 6121 2.1.2.3: roster JIDs are compared after
    preparation: an item added as 'Bob@LOCALHOST' and a subscribe sent to
    'BOB@LocalHost' concern the one contact bob@localhost; the approval
    leaves exactly one item, 'bob@localhost', with subscription 'to'."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        el = await roster_set(a, "<item jid='Bob@LOCALHOST' name='Bob'/>")
        assert el.get("type") == "result", show(el)
        push = await a.pushes.expect(lambda el: True, what="the add push")
        assert push_item(push).get("jid") == BOB, show(push.xml)
        a.xmpp.send_presence(pto="BOB@LocalHost", ptype="subscribe")
        await b.presences.expect(is_presence("subscribe", frm=ALICE))
        b.xmpp.send_presence(pto="Alice@LOCALHOST", ptype="subscribed")
        await a.pushes.expect(is_push_for(BOB, "to"))
        items = await roster_items(a)
        assert list(items) == [BOB], list(items)
        assert sub_of(items[BOB]) == "to" and items[BOB].get("name") == "Bob", show(items[BOB])
        assert list(await roster_items(b)) == [ALICE]
    run(body)


def test_subscribe_to_nonexistent_account(herald):
    """RFC 6121 3.1.3: a request for an account that does not exist is
    answered by the server with 'unsubscribed' from that JID, and the
    user's pending ask is cleared (3.2.3, pushed)."""
    srv = herald(users=users("alice"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        a.xmpp.send_presence(pto="nobody@localhost", ptype="subscribe")
        await a.presences.expect(is_presence("unsubscribed", frm="nobody@localhost"),
                                 what="'unsubscribed' for a missing account")
        push = await a.pushes.expect(
            lambda el: is_push_for("nobody@localhost")(el) and
            push_item_el(el).get("ask") is None, what="push clearing the ask")
        assert sub_of(push_item(push)) == "none", show(push.xml)
        item = (await roster_items(a))["nobody@localhost"]
        assert item.get("ask") is None, show(item)
    run(body)


def test_approval_while_requester_offline(herald):
    """RFC 6121 3.1.6: the 'subscribed' reaching the user's server while the
    user has no available resource still updates the user's roster ('to',
    ask cleared); RFC 6121 4.3.2: at the user's next login the probe brings
    the contact's current presence."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1", status="bob is here")
        a.xmpp.send_presence(pto=BOB, ptype="subscribe")
        await b.presences.expect(is_presence("subscribe", frm=ALICE))
        await a.close()
        b.xmpp.send_presence(pto=ALICE, ptype="subscribed")
        await b.pushes.expect(is_push_for(ALICE, "from"))
        a2 = await im_client(srv, "alice", "a2")
        item = (await roster_items(a2))[BOB]
        assert sub_of(item) == "to" and item.get("ask") is None, show(item)
        p = await a2.presences.expect(is_presence("available", frm=BOB + "/b1"),
                                      what="bob's presence from the login probe")
        assert presence_child_text(p.xml, "status") == "bob is here", show(p.xml)
    run(body)


def test_request_content_is_kept(herald):
    """RFC 6120 8.1.3 / 10.1 (a routed stanza keeps its 'id' and content)
    with XEP-0172 4.2 (a nickname in the subscription request): the request
    reaches the contact with its id, <status/> and <nick/>, live and when
    stored for an offline contact (RFC 6121 3.1.3: the server delivers
    "the request")."""
    srv = herald(users=users("alice", "bob", "carol"))
    req = ("<presence to='%s' type='subscribe' id='sub-%s'><status>please</status>"
           "<nick xmlns='http://jabber.org/protocol/nick'>Ally</nick></presence>")

    def check(p, target):
        el = p.xml
        problems = []
        if el.get("id") != "sub-" + target:
            problems.append("id %r" % el.get("id"))
        if presence_child_text(el, "status") != "please":
            problems.append("status lost")
        nick = el.find("{http://jabber.org/protocol/nick}nick")
        if nick is None or nick.text != "Ally":
            problems.append("nick lost")
        return ["%s (%s): %s" % (target, ", ".join(problems), show(el))] if problems else []

    async def body():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        a.xmpp.send_raw(req % (BOB, "bob"))
        a.xmpp.send_raw(req % ("carol@localhost", "carol"))
        p = await b.presences.expect(is_presence("subscribe", frm=ALICE))
        c = await im_client(srv, "carol", "c1")
        pc = await c.presences.expect(is_presence("subscribe", frm=ALICE))
        problems = check(p, "bob") + check(pc, "carol")
        assert not problems, "; ".join(problems)
    run(body)


def test_denial_reveals_no_presence(herald):
    """RFC 6121 3.2.2: the contact's server sends unavailable presence from
    the contact's resources to the user only when the user's subscription
    state was 'From' or 'Both' there; denying a request (3.1.4: the user
    never had a subscription) sends 'unsubscribed' and no presence, so the
    refused user does not learn the contact's resources."""
    srv = herald(users=users("alice", "bob"))

    async def body():
        a = await im_client(srv, "alice", "a1")
        b = await im_client(srv, "bob", "b1")
        a.xmpp.send_presence(pto=BOB, ptype="subscribe")
        await b.presences.expect(is_presence("subscribe", frm=ALICE))
        b.xmpp.send_presence(pto=ALICE, ptype="unsubscribed")
        await a.presences.expect(is_presence("unsubscribed", frm=BOB))
        await a.presences.expect_none(is_presence(frm_bare=BOB), wait=0.7,
                                      what="presence from bob after he refused")
    run(body)
