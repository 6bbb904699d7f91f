"""XEP-0060 publish-subscribe, subscriber and owner use cases around
subscriptions and affiliations: subscribe (§6.1), unsubscribe (§6.2), the
last published item (§6.1.7), multi-subscribe (§6.1.6), own subscriptions
and affiliations (§5.6, §5.7), subscription approval (§6.1.4, §8.6), whitelist
and outcast (§6.1.3.4, §6.1.3.8), owner management of subscriptions and
affiliations (§8.8, §8.9)."""
import asyncio
import xml.etree.ElementTree as ET

from e2e_helpers import q, run, show
from pubsub_helpers import (NS_DATA, NS_EVENT, NS_OWNER, NS_PUBSUB, NS_SUB_AUTH, PUBSUB,
                            assert_ps_error, assert_result, call, event_of, find_path,
                            form_xml, get_items, items_event_children, items_of, must_create,
                            must_publish, must_subscribe, my_affiliations, my_subscriptions,
                            next_event, next_message, parse_form, payload_xml, ps, ps_client,
                            ps_iq, publish, pubsub_xml, set_affiliation, subscribe, unsubscribe)

USERS = {"alice": "wonderland", "bob": "builder", "carol": "singer", "dave": "diver"}


def pl(text):
    return payload_xml("urn:example:e2e", "entry", text)


async def barrier(owner, subscriber, marker_node):
    """Publishes to marker_node (subscriber is subscribed to it) and returns
    the pubsub events the subscriber got before the marker's notification;
    the service sends in order, so this shows what did not come."""
    await must_publish(owner, marker_node, None, pl("marker"))
    before = []
    while True:
        m = await next_message(subscriber, lambda m: event_of(m) is not None, what="event")
        items = event_of(m).find(q(NS_EVENT, "items"))
        if items is not None and items.get("node") == marker_node:
            return before
        before.append(m)


async def owner_subscriptions(c, node):
    """XEP-0060 §8.8.1: [(jid, subscription, subid)] of a node."""
    resp = await ps_iq(c, pubsub_xml("<subscriptions node='%s'/>" % node, NS_OWNER))
    el = assert_result(resp, "owner retrieves subscriptions of %s" % node)
    subs = find_path(el, (NS_OWNER, "pubsub"), (NS_OWNER, "subscriptions"))
    assert subs is not None, show(el)
    return [(s.get("jid"), s.get("subscription"), s.get("subid"))
            for s in subs.findall(q(NS_OWNER, "subscription"))]


async def owner_affiliations(c, node):
    """XEP-0060 §8.9.1: {jid: affiliation} of a node."""
    resp = await ps_iq(c, pubsub_xml("<affiliations node='%s'/>" % node, NS_OWNER))
    el = assert_result(resp, "owner retrieves affiliations of %s" % node)
    affs = find_path(el, (NS_OWNER, "pubsub"), (NS_OWNER, "affiliations"))
    assert affs is not None, show(el)
    return {a.get("jid"): a.get("affiliation") for a in affs.findall(q(NS_OWNER, "affiliation"))}


def auth_form_of(msg):
    """The subscribe_authorization form of a message, parsed, or None."""
    x = msg.xml.find(q(NS_DATA, "x"))
    if x is None:
        return None
    f = parse_form(x)
    return f if f.get("FORM_TYPE") == [NS_SUB_AUTH] else None


def answer_authorization(owner, request, allow):
    """XEP-0060 §8.6: the owner submits the authorization form in a message
    to the service, reflecting the request's id."""
    form = auth_form_of(request)
    fields = {"pubsub#node": form["pubsub#node"][0],
              "pubsub#subscriber_jid": form["pubsub#subscriber_jid"][0],
              "pubsub#allow": "true" if allow else "false"}
    if form.get("pubsub#subid"):
        fields["pubsub#subid"] = form["pubsub#subid"][0]
    m = owner.xmpp.Message()
    m["to"] = PUBSUB
    if request["id"]:
        m["id"] = request["id"]
    m.xml.append(ET.fromstring(form_xml(NS_SUB_AUTH, fields)))
    m.send()


# --------------------------------------------------------------------------
# Subscribe / unsubscribe
# --------------------------------------------------------------------------

def test_subscribe_unsubscribe_with_slixmpp(herald):
    """XEP-0060 §6.1.1/§6.1.2: slixmpp's subscribe (bare JID) gets a result
    with <subscription node jid subid subscription='subscribed'/>; a
    notification to the bare JID reaches every available resource (RFC 6121
    §8.5.2.1.1, headline); §6.2.1/§6.2.2: slixmpp's unsubscribe (with the
    subid) gets a result, after which nothing more is notified (§5.6 shows no
    subscription, and a later notification on another node comes first)."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder", resource="one")
        bob2 = await ps_client(srv, "bob", "builder", resource="two")
        await must_create(alice, "news")
        await must_create(alice, "marker")
        res = await call(ps(bob).subscribe(PUBSUB, "news", timeout=10))
        assert_result(res, "slixmpp subscribe")
        sub = res["pubsub"]["subscription"]
        assert sub["node"] == "news" and sub["jid"] == "bob@localhost", res
        assert sub["subscription"] == "subscribed" and sub["subid"], res
        await must_subscribe(bob, "marker", "bob@localhost")

        await must_publish(alice, "news", "n1", pl("hello"))
        for c in (bob, bob2):
            msg = await next_event(c, "items", "news")
            assert [i.get("id") for i in items_event_children(msg)] == ["n1"], show(msg.xml)

        res = await call(ps(bob).unsubscribe(PUBSUB, "news", subid=sub["subid"], timeout=10))
        assert_result(res, "slixmpp unsubscribe")
        assert [s for s in await my_subscriptions(bob) if s[0] == "news"] == []
        await must_publish(alice, "news", "n2", pl("anyone there?"))
        before = await barrier(alice, bob, "marker")
        assert not before, "notified after unsubscribing: %s" % [show(m.xml) for m in before]
    run(body)


def test_subscribe_full_jid_gets_notifications_there(herald):
    """XEP-0060 §6.1.1 and §7.1.2: a subscription for a full JID is notified
    at that full JID (message 'to' the full JID); the subscription JID may
    be any resource of the requester's bare JID (§6.1.3.1 compares bare
    JIDs)."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder", resource="desk")
        await must_create(alice, "news")
        sub = await must_subscribe(bob, "news", bob.jid)
        assert sub.get("jid") == bob.jid and sub.get("node") == "news", show(sub)
        await must_publish(alice, "news", "n1", pl("to the desk"))
        msg = await next_event(bob, "items", "news")
        assert msg["to"] == bob.jid, msg
        await must_subscribe(bob, "news", "bob@localhost/elsewhere")
    run(body)


def test_subscribe_errors(herald):
    """XEP-0060 §6.1.3.1 (JIDs do not match): subscribing another entity's
    JID gives <bad-request/> + <invalid-jid/>; §6.1.3.12 (node does not
    exist): <item-not-found/>. Nothing is subscribed."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "news")
        assert_ps_error(await subscribe(alice, "news", "bob@localhost"), "bad-request",
                        "invalid-jid", what="subscribe someone else")
        assert_ps_error(await subscribe(alice, "news", "bob@localhost/x"), "bad-request",
                        "invalid-jid", what="subscribe someone else's full JID")
        assert_ps_error(await subscribe(alice, "nope"), "item-not-found",
                        what="subscribe to a missing node")
        assert await my_subscriptions(alice) == []
        bob = await ps_client(srv, "bob", "builder")
        assert await my_subscriptions(bob) == []
    run(body)


def test_unsubscribe_errors(herald):
    """XEP-0060 §6.2.3: not subscribed gives <unexpected-request/> +
    <not-subscribed/> (§6.2.3.2); unsubscribing another entity's JID gives
    <forbidden/> (§6.2.3.3: 'If the bare JID portions of the JIDs do not
    match ... the service MUST return a forbidden error'); a missing node
    <item-not-found/> (§6.2.3.4). Bob's subscription survives."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "news")
        await must_subscribe(bob, "news", "bob@localhost")
        assert_ps_error(await unsubscribe(alice, "news", "alice@localhost"), "unexpected-request",
                        "not-subscribed", what="unsubscribe while not subscribed")
        assert_ps_error(await unsubscribe(alice, "news", "bob@localhost"), "forbidden",
                        what="unsubscribe someone else")
        assert_ps_error(await unsubscribe(bob, "nope", "bob@localhost"), "item-not-found",
                        what="unsubscribe from a missing node")
        assert [s[2] for s in await my_subscriptions(bob, "news")] == ["subscribed"]
    run(body)


def test_multi_subscribe_and_subids(herald):
    """XEP-0060 §6.1.6 (multiple subscriptions): subscribing the same JID
    twice gives two subscriptions with distinct SubIDs (§5.6 lists both);
    §6.2.3.1: unsubscribing without SubID then gives <bad-request/> +
    <subid-required/>; §6.2.3.5: an unknown SubID <not-acceptable/> +
    <invalid-subid/>; with a right SubID only that subscription goes; the
    last one can then be removed, and once none is left <not-subscribed/>."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "multi")
        s1 = await must_subscribe(bob, "multi", "bob@localhost")
        s2 = await must_subscribe(bob, "multi", "bob@localhost")
        assert s1.get("subid") and s2.get("subid") and s1.get("subid") != s2.get("subid"), \
            (show(s1), show(s2))
        subs = await my_subscriptions(bob, "multi")
        assert sorted(s[3] for s in subs) == sorted([s1.get("subid"), s2.get("subid")]), subs
        assert_ps_error(await unsubscribe(bob, "multi", "bob@localhost"), "bad-request",
                        "subid-required", what="unsubscribe without subid")
        assert_ps_error(await unsubscribe(bob, "multi", "bob@localhost", subid="bogus"),
                        "not-acceptable", "invalid-subid", what="unsubscribe with a bad subid")
        assert_result(await unsubscribe(bob, "multi", "bob@localhost", subid=s1.get("subid")))
        assert [s[3] for s in await my_subscriptions(bob, "multi")] == [s2.get("subid")]
        assert_result(await unsubscribe(bob, "multi", "bob@localhost", subid=s2.get("subid")))
        assert await my_subscriptions(bob, "multi") == []
        assert_ps_error(await unsubscribe(bob, "multi", "bob@localhost"), "unexpected-request",
                        "not-subscribed", what="unsubscribe with no subscription left")
    run(body)


def test_multi_subscribe_single_notification(herald):
    """XEP-0060 §6.1.6: an entity (the same subscribed JID) with several
    subscriptions SHOULD get one event notification per publish, not one
    per subscription."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "multi")
        await must_create(alice, "marker")
        await must_subscribe(bob, "multi", "bob@localhost")
        await must_subscribe(bob, "multi", "bob@localhost")
        await must_subscribe(bob, "marker", "bob@localhost")
        await must_publish(alice, "multi", "once", pl("once"))
        before = await barrier(alice, bob, "marker")
        assert len(before) == 1, "expected one notification, got %d: %s" % (
            len(before), [show(m.xml) for m in before])
    run(body)


def test_send_last_published_item_on_sub(herald):
    """XEP-0060 §6.1.7 (receiving the last published item) and
    pubsub#send_last_published_item: with 'on_sub' a new subscriber gets the
    last published item (only that one) right after subscribing; with
    'never' it gets nothing."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "marker")
        await must_subscribe(bob, "marker", "bob@localhost")
        await must_create(alice, "last", {"pubsub#send_last_published_item": "on_sub"})
        await must_create(alice, "quiet", {"pubsub#send_last_published_item": "never"})
        for node in ("last", "quiet"):
            await must_publish(alice, node, "old", pl("old"))
            await must_publish(alice, node, "new", pl("newest"))
        await must_subscribe(bob, "last", "bob@localhost")
        msg = await next_event(bob, "items", "last")
        ch = items_event_children(msg)
        assert [c.get("id") for c in ch] == ["new"], show(msg.xml)
        assert msg["from"] == PUBSUB, msg
        await must_subscribe(bob, "quiet", "bob@localhost")
        before = await barrier(alice, bob, "marker")
        assert not before, "unexpected events: %s" % [show(m.xml) for m in before]
    run(body)


# --------------------------------------------------------------------------
# Access models and affiliations on subscribe
# --------------------------------------------------------------------------

def test_whitelist_and_member(herald):
    """XEP-0060 §6.1.3.4 (not on whitelist): subscribing to a whitelist node
    gives <not-allowed/> + <closed-node/>; once the owner makes the entity a
    member (§8.9.2, member affiliation §4.1) it may subscribe and is
    notified."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "wl", {"pubsub#access_model": "whitelist"})
        assert_ps_error(await subscribe(bob, "wl", "bob@localhost"), "not-allowed", "closed-node",
                        what="subscribe to a whitelist node")
        assert await my_subscriptions(bob) == []
        await set_affiliation(alice, "wl", "bob@localhost", "member")
        assert (await my_affiliations(bob)).get("wl") == "member"
        await must_subscribe(bob, "wl", "bob@localhost")
        await must_publish(alice, "wl", "w1", pl("members only"))
        msg = await next_event(bob, "items", "wl")
        assert [c.get("id") for c in items_event_children(msg)] == ["w1"], show(msg.xml)
    run(body)


def test_outcast_blocked(herald):
    """XEP-0060 §6.1.3.8 (blocked): an outcast gets <forbidden/> on
    subscribe, and on item retrieval (§6.5.9.10), even on an open node; an
    existing subscription ends when the entity becomes an outcast (§4.1
    affiliation table: outcasts cannot be subscribed); removing the outcast
    affiliation (affiliation 'none', §8.9.2) lifts the block."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        dave = await ps_client(srv, "dave", "diver")
        await must_create(alice, "open")
        await must_publish(alice, "open", "o1", pl("public"))
        await must_subscribe(dave, "open", "dave@localhost")
        await set_affiliation(alice, "open", "dave@localhost", "outcast")
        # An outcast keeps no subscription (§4.1: outcasts may not subscribe).
        assert await my_subscriptions(dave) == [], "outcast still subscribed"
        assert_ps_error(await subscribe(dave, "open", "dave@localhost"), "forbidden",
                        what="outcast subscribes")
        assert_ps_error(await get_items(dave, "open"), "forbidden", what="outcast retrieves items")
        await set_affiliation(alice, "open", "dave@localhost", "none")
        await must_subscribe(dave, "open", "dave@localhost")
    run(body)


def test_authorize_approve(herald):
    """XEP-0060 §6.1.4 (approval required) and §8.6 (manage subscription
    requests): on an authorize node the subscribe result says
    subscription='pending'; the owner gets a message with a data form of
    FORM_TYPE pubsub#subscribe_authorization naming the node and subscriber
    with a pubsub#allow field; subscribing again meanwhile gives
    <not-authorized/> + <pending-subscription/> (§6.1.3.7); the owner
    submits the form with pubsub#allow = true in a message (same id), after
    which the subscription is 'subscribed' (§5.6, §8.8.1), the subscriber is
    told so by a <subscription subscription='subscribed'/> event (§8.6, the
    advertised 'subscription-notifications') and gets notifications."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "club", {"pubsub#access_model": "authorize"})
        await must_subscribe(bob, "club", "bob@localhost", state="pending")
        req = await next_message(alice, lambda m: auth_form_of(m) is not None,
                                 what="subscription authorization request")
        assert req["from"] == PUBSUB, req
        form = auth_form_of(req)
        assert form.get("pubsub#node") == ["club"], form
        assert form.get("pubsub#subscriber_jid") == ["bob@localhost"], form
        assert "pubsub#allow" in form, form
        assert_ps_error(await subscribe(bob, "club", "bob@localhost"), "not-authorized",
                        "pending-subscription", what="subscribe while pending")
        assert [s[2] for s in await my_subscriptions(bob, "club")] == ["pending"]

        answer_authorization(alice, req, allow=True)
        # Processed in order: once this iq is answered, the message was handled.
        subs = await owner_subscriptions(alice, "club")
        assert ("bob@localhost", "subscribed") in [(j, s) for j, s, _ in subs], subs
        assert [s[2] for s in await my_subscriptions(bob, "club")] == ["subscribed"]
        # §8.6 / 'subscription-notifications' (advertised): bob learns the outcome.
        note = await next_event(bob, "subscription", "club")
        sn = event_of(note).find(q(NS_EVENT, "subscription"))
        assert (sn.get("jid"), sn.get("subscription")) == ("bob@localhost", "subscribed"), \
            show(note.xml)
        await must_publish(alice, "club", "c1", pl("welcome"))
        msg = await next_event(bob, "items", "club")
        assert [c.get("id") for c in items_event_children(msg)] == ["c1"], show(msg.xml)
    run(body)


def test_authorize_deny(herald):
    """XEP-0060 §8.6: the owner denies by submitting pubsub#allow = false;
    the pending subscription is removed (§5.6 shows none), the entity gets a
    <subscription subscription='none'/> event (§8.6) and no notifications of
    publications."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        carol = await ps_client(srv, "carol", "singer")
        await must_create(alice, "club", {"pubsub#access_model": "authorize"})
        await must_create(alice, "marker")
        await must_subscribe(carol, "marker", "carol@localhost")
        await must_subscribe(carol, "club", "carol@localhost", state="pending")
        req = await next_message(alice, lambda m: auth_form_of(m) is not None,
                                 what="subscription authorization request")
        answer_authorization(alice, req, allow=False)
        subs = await owner_subscriptions(alice, "club")
        assert "carol@localhost" not in [j for j, s, _ in subs if s != "none"], subs
        assert [s for s in await my_subscriptions(carol) if s[0] == "club"] == []
        note = await next_event(carol, "subscription", "club")
        sn = event_of(note).find(q(NS_EVENT, "subscription"))
        assert (sn.get("jid"), sn.get("subscription")) == ("carol@localhost", "none"), \
            show(note.xml)
        await must_publish(alice, "club", "c1", pl("members only"))
        before = await barrier(alice, carol, "marker")
        assert not [m for m in before if event_of(m).find(q(NS_EVENT, "items")) is not None], \
            [show(m.xml) for m in before]
    run(body)


# --------------------------------------------------------------------------
# Own subscriptions and affiliations (§5.6, §5.7)
# --------------------------------------------------------------------------

def test_retrieve_own_subscriptions_and_affiliations(herald):
    """XEP-0060 §5.6 (retrieve subscriptions) and §5.7 (retrieve
    affiliations), through slixmpp's get_subscriptions/get_affiliations and
    raw XML: all of the requester's subscriptions (node, jid, subscription,
    subid), or those of one node; its affiliations (owner of what it
    created, publisher where made one); an entity with none gets an empty
    <subscriptions/> / <affiliations/>."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        carol = await ps_client(srv, "carol", "singer")
        await must_create(alice, "n1")
        await must_create(alice, "n2")
        s1 = await must_subscribe(bob, "n1", "bob@localhost")
        s2 = await must_subscribe(bob, "n2", bob.jid)
        res = await call(ps(bob).get_subscriptions(PUBSUB, timeout=10))
        el = assert_result(res, "slixmpp get_subscriptions")
        subs = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "subscriptions"))
        got = sorted((s.get("node"), s.get("jid"), s.get("subscription"), s.get("subid"))
                     for s in subs.findall(q(NS_PUBSUB, "subscription")))
        assert got == sorted([("n1", "bob@localhost", "subscribed", s1.get("subid")),
                              ("n2", bob.jid, "subscribed", s2.get("subid"))]), got
        only = await my_subscriptions(bob, "n2")
        assert [(s[0], s[1]) for s in only] == [("n2", bob.jid)], only
        assert await my_subscriptions(carol) == []

        await set_affiliation(alice, "n1", "bob@localhost", "publisher")
        res = await call(ps(alice).get_affiliations(PUBSUB, timeout=10))
        el = assert_result(res, "slixmpp get_affiliations")
        affs = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "affiliations"))
        got = {a.get("node"): a.get("affiliation") for a in affs.findall(q(NS_PUBSUB,
                                                                            "affiliation"))}
        assert got == {"n1": "owner", "n2": "owner"}, got
        assert await my_affiliations(alice, "n2") == {"n2": "owner"}
        assert await my_affiliations(bob) == {"n1": "publisher"}
        assert await my_affiliations(carol) == {}
    run(body)


# --------------------------------------------------------------------------
# Owner management (§8.8, §8.9)
# --------------------------------------------------------------------------

def test_owner_manage_subscriptions(herald):
    """XEP-0060 §8.8.1 (retrieve subscriptions list, slixmpp's
    get_node_subscriptions) and §8.8.2 (modify subscriptions, slixmpp's
    modify_subscriptions): the owner sees every subscription of the node;
    setting bob's to 'none' removes it; setting carol's to 'subscribed'
    creates one, and carol is notified of the next publication. A non-owner
    gets <forbidden/> for both (§8.8.1.3, §8.8.2.3)."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        carol = await ps_client(srv, "carol", "singer")
        await must_create(alice, "managed")
        sb = await must_subscribe(bob, "managed", "bob@localhost")
        res = await call(ps(alice).get_node_subscriptions(PUBSUB, "managed", timeout=10))
        el = assert_result(res, "slixmpp get_node_subscriptions")
        subs = find_path(el, (NS_OWNER, "pubsub"), (NS_OWNER, "subscriptions"))
        assert subs.get("node") == "managed", show(el)
        got = [(s.get("jid"), s.get("subscription"), s.get("subid"))
               for s in subs.findall(q(NS_OWNER, "subscription"))]
        assert got == [("bob@localhost", "subscribed", sb.get("subid"))], got

        assert_ps_error(await ps_iq(bob, pubsub_xml("<subscriptions node='managed'/>", NS_OWNER)),
                        "forbidden", what="non-owner retrieves subscriptions")
        assert_ps_error(await ps_iq(bob, pubsub_xml(
            "<subscriptions node='managed'><subscription jid='carol@localhost' "
            "subscription='subscribed'/></subscriptions>", NS_OWNER), "set"),
            "forbidden", what="non-owner modifies subscriptions")

        res = await call(ps(alice).modify_subscriptions(PUBSUB, "managed", [
            ("bob@localhost", "none"), ("carol@localhost", "subscribed")], timeout=10))
        assert_result(res, "slixmpp modify_subscriptions")
        subs = await owner_subscriptions(alice, "managed")
        assert [(j, s) for j, s, _ in subs] == [("carol@localhost", "subscribed")], subs
        assert await my_subscriptions(bob, "managed") == []
        await must_publish(alice, "managed", "m1", pl("for carol"))
        msg = await next_event(carol, "items", "managed")
        assert [c.get("id") for c in items_event_children(msg)] == ["m1"], show(msg.xml)
    run(body)


def test_owner_manage_affiliations(herald):
    """XEP-0060 §8.9.1 (retrieve affiliations list, slixmpp's
    get_node_affiliations) and §8.9.2 (modify affiliation, slixmpp's
    modify_affiliations): the creator is listed as owner; making bob a
    publisher lets him publish (§4.1), 'none' takes it back (<forbidden/>
    again, §7.1.3.1); 'outcast' blocks his subscription (§6.1.3.8). A
    non-owner gets <forbidden/> for both (§8.9.1.3, §8.9.2.3)."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "team")
        res = await call(ps(alice).get_node_affiliations(PUBSUB, "team", timeout=10))
        el = assert_result(res, "slixmpp get_node_affiliations")
        affs = find_path(el, (NS_OWNER, "pubsub"), (NS_OWNER, "affiliations"))
        assert affs.get("node") == "team", show(el)
        got = {a.get("jid"): a.get("affiliation") for a in affs.findall(q(NS_OWNER,
                                                                           "affiliation"))}
        assert got == {"alice@localhost": "owner"}, got

        assert_ps_error(await publish(bob, "team", "b0", pl("not yet")), "forbidden",
                        what="publish before being a publisher")
        res = await call(ps(alice).modify_affiliations(PUBSUB, "team",
                                                       [("bob@localhost", "publisher")],
                                                       timeout=10))
        assert_result(res, "slixmpp modify_affiliations")
        assert await owner_affiliations(alice, "team") == {"alice@localhost": "owner",
                                                           "bob@localhost": "publisher"}
        await must_publish(bob, "team", "b1", pl("bob publishes"))
        await set_affiliation(alice, "team", "bob@localhost", "none")
        # §8.9.1.2: entities with affiliation 'none' MUST NOT be listed.
        assert "bob@localhost" not in await owner_affiliations(alice, "team")
        assert_ps_error(await publish(bob, "team", "b2", pl("no longer")), "forbidden",
                        what="publish after affiliation none")
        await set_affiliation(alice, "team", "bob@localhost", "outcast")
        assert_ps_error(await subscribe(bob, "team", "bob@localhost"), "forbidden",
                        what="outcast subscribes")

        assert_ps_error(await ps_iq(bob, pubsub_xml("<affiliations node='team'/>", NS_OWNER)),
                        "forbidden", what="non-owner retrieves affiliations")
        assert_ps_error(await ps_iq(bob, pubsub_xml(
            "<affiliations node='team'><affiliation jid='bob@localhost' affiliation='owner'/>"
            "</affiliations>", NS_OWNER), "set"), "forbidden", what="non-owner modifies")
        assert (await owner_affiliations(alice, "team")).get("bob@localhost") == "outcast"
    run(body)


def test_last_owner_cannot_be_removed(herald):
    """XEP-0060 §8.9.2.4 (multiple simultaneous modifications): making the
    only owner anything but an owner MUST NOT be allowed: the service returns
    an error (SHOULD be <not-acceptable/>) carrying the refused
    <affiliation/> with its existing value 'owner'; the other entries of the
    request are treated as successful; the owner stays owner (§8.9.1)."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "solo")
        resp = await ps_iq(alice, pubsub_xml(
            "<affiliations node='solo'><affiliation jid='alice@localhost' affiliation='none'/>"
            "</affiliations>", NS_OWNER), "set")
        assert_ps_error(resp, "not-acceptable", what="remove the only owner")
        assert (await owner_affiliations(alice, "solo")).get("alice@localhost") == "owner"

        resp = await ps_iq(alice, pubsub_xml(
            "<affiliations node='solo'><affiliation jid='alice@localhost' affiliation='member'/>"
            "<affiliation jid='bob@localhost' affiliation='publisher'/></affiliations>",
            NS_OWNER), "set")
        assert_ps_error(resp, "not-acceptable", what="demote the only owner with another change")
        assert await owner_affiliations(alice, "solo") == {"alice@localhost": "owner",
                                                           "bob@localhost": "publisher"}
        returned = find_path(resp.xml, (NS_OWNER, "pubsub"), (NS_OWNER, "affiliations"))
        assert returned is not None, "the error does not return the refused entry: %s" % show(
            resp.xml)
        assert [(a.get("jid"), a.get("affiliation")) for a in returned.findall(
            q(NS_OWNER, "affiliation"))] == [("alice@localhost", "owner")], show(resp.xml)
    run(body)


def test_presence_access_model(herald):
    """XEP-0060 §4.5 access model 'presence' (feature access-presence):
    only entities subscribed to an owner's presence (RFC 6121 §3: 'from' or
    'both' in the owner's roster) may subscribe or retrieve items; others get
    <not-authorized/> + <presence-subscription-required/> on subscribe
    (§6.1.3.2) and on item retrieval (§6.5.9.6). Once alice approves bob's
    presence subscription, bob may subscribe, is notified and may retrieve;
    carol, without one, still may not."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        carol = await ps_client(srv, "carol", "singer")
        for c in (alice, bob):  # answer presence subscriptions by hand (None = ask)
            c.xmpp.roster.auto_authorize = None
            c.xmpp.roster.auto_subscribe = False
        await must_create(alice, "status", {"pubsub#access_model": "presence"})
        await must_publish(alice, "status", "s1", pl("at home"))
        for c in (bob, carol):
            assert_ps_error(await subscribe(c, "status", c.xmpp.boundjid.bare), "not-authorized",
                            "presence-subscription-required", what="subscribe without presence")
            assert_ps_error(await get_items(c, "status"), "not-authorized",
                            "presence-subscription-required", what="items without presence")

        asked = asyncio.get_running_loop().create_future()
        granted = asyncio.get_running_loop().create_future()
        alice.xmpp.add_event_handler("presence_subscribe", lambda p: asked.done() or
                                     asked.set_result(p))
        bob.xmpp.add_event_handler("presence_subscribed", lambda p: granted.done() or
                                   granted.set_result(p))
        bob.xmpp.send_presence(pto="alice@localhost", ptype="subscribe")
        await asyncio.wait_for(asked, 10)
        alice.xmpp.send_presence(pto="bob@localhost", ptype="subscribed")
        await asyncio.wait_for(granted, 10)

        await must_subscribe(bob, "status", "bob@localhost")
        assert list(await items_of(bob, "status")) == ["s1"]
        await must_publish(alice, "status", "s2", pl("out"))
        msg = await next_event(bob, "items", "status")
        assert [c.get("id") for c in items_event_children(msg)] == ["s2"], show(msg.xml)
        assert_ps_error(await subscribe(carol, "status", "carol@localhost"), "not-authorized",
                        "presence-subscription-required", what="carol still without presence")
    run(body)
