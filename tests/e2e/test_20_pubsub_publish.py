"""XEP-0060 publish-subscribe, publisher use cases (XEP-0060 §7) and item
retrieval (§6.5): publish with and without ItemID, overwrite, event
notifications, publish errors, publish-options, auto-create, retract,
retrieving all / the most recent / particular items, max_items."""
import xml.etree.ElementTree as ET

from e2e_helpers import q, run, show
from pubsub_helpers import (NS_DISCO_ITEMS, NS_EVENT, NS_PUBLISH_OPTIONS, NS_PUBSUB, PUBSUB,
                            assert_ps_error, assert_result, call, canon, configure_node, disco,
                            error_parts, event_of, find_path, get_config, get_items,
                            items_event_children, items_of, must_create, must_publish,
                            must_subscribe, my_affiliations, my_subscriptions, next_event,
                            next_message, payload_xml, ps, ps_client, ps_iq, publish,
                            pubsub_xml, set_affiliation, slix_form)

USERS = {"alice": "wonderland", "bob": "builder", "carol": "singer"}
ATOM = "http://www.w3.org/2005/Atom"


def pl(text, ns="urn:example:e2e", tag="entry"):
    return payload_xml(ns, tag, text)


def parsed(xml):
    return canon(ET.fromstring(xml))


async def retract(c, node, item_id, notify=None):
    na = " notify='%s'" % notify if notify is not None else ""
    return await ps_iq(c, pubsub_xml("<retract node='%s'%s><item id='%s'/></retract>"
                                     % (node, na, item_id)), "set")


async def barrier(owner, subscriber, marker_node):
    """Publishes to marker_node (to which subscriber is subscribed) and
    returns every event the subscriber got before the marker's notification:
    the service sends in order, so this proves what did *not* come."""
    await must_publish(owner, marker_node, None, pl("marker"))
    before = []
    while True:
        m = await next_message(subscriber, lambda m: event_of(m) is not None, what="event")
        ev = event_of(m)
        items = ev.find(q(NS_EVENT, "items"))
        if items is not None and items.get("node") == marker_node:
            return before
        before.append(m)


# --------------------------------------------------------------------------
# Publish (§7.1)
# --------------------------------------------------------------------------

def test_publish_and_notify_with_slixmpp(herald):
    """XEP-0060 §7.1.1/§7.1.2 and §7.1.2.1 (notification with payload), main
    flow through slixmpp's xep_0060: bob subscribes, alice publishes an Atom
    entry with ItemID; the result echoes <publish node><item id/></publish>;
    bob receives a headline <message/> from pubsub.localhost, to his
    subscribed (bare) JID, with <event><items node><item id>payload
    </item></items></event>, the payload identical to what was published;
    slixmpp's pubsub_publish event sees it too."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        seen = []
        bob.xmpp.add_event_handler("pubsub_publish", lambda m: seen.append(m))
        assert_result(await call(ps(alice).create_node(PUBSUB, "princely_musings", timeout=10)))
        sub = await call(ps(bob).subscribe(PUBSUB, "princely_musings", timeout=10))
        assert_result(sub, "slixmpp subscribe")
        assert sub["pubsub"]["subscription"]["subscription"] == "subscribed", sub

        entry = ("<entry xmlns='%s'><title>Soliloquy</title><summary>To be, or not to be: "
                 "that is the question</summary><link rel='alternate' type='text/html' "
                 "href='http://denmark.lit/2003/12/13/atom03'/></entry>" % ATOM)
        res = await call(ps(alice).publish(PUBSUB, "princely_musings", id="bnd81g37d61f49fgn581",
                                           payload=ET.fromstring(entry), timeout=10))
        el = assert_result(res, "slixmpp publish")
        pub = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "publish"))
        assert pub is not None and pub.get("node") == "princely_musings", show(el)
        item = pub.find(q(NS_PUBSUB, "item"))
        assert item is not None and item.get("id") == "bnd81g37d61f49fgn581", show(el)

        msg = await next_event(bob, "items", "princely_musings")
        assert msg["type"] == "headline", msg
        assert msg["from"] == PUBSUB, msg
        assert msg["to"] == "bob@localhost", msg
        assert msg["pubsub_event"]["items"]["node"] == "princely_musings"
        children = items_event_children(msg)
        assert len(children) == 1 and children[0].tag == q(NS_EVENT, "item"), show(msg.xml)
        assert children[0].get("id") == "bnd81g37d61f49fgn581", show(msg.xml)
        payload = list(children[0])
        assert len(payload) == 1 and canon(payload[0]) == parsed(entry), show(msg.xml)
        assert seen, "slixmpp raised no pubsub_publish event"

        # Stored as published (§7.1.2 note on persistent items).
        got = await call(ps(bob).get_item(PUBSUB, "princely_musings", "bnd81g37d61f49fgn581",
                                          timeout=10))
        items = find_path(assert_result(got), (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "items"))
        its = items.findall(q(NS_PUBSUB, "item"))
        assert len(its) == 1 and canon(list(its[0])[0]) == parsed(entry), show(got.xml)
    run(body)


def test_publish_without_item_id(herald):
    """XEP-0060 §7.1.1/§7.1.2: without an ItemID the service MUST generate
    one, unique for the node, and SHOULD return it in the result's <item
    id/>; the item is stored under it and notified with it."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "anon")
        await must_subscribe(bob, "anon")
        ids = []
        for i in range(3):
            resp = await must_publish(alice, "anon", None, pl("generated %d" % i))
            item = find_path(resp.xml, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "publish"),
                             (NS_PUBSUB, "item"))
            assert item is not None and item.get("id"), \
                "no generated ItemID in the result: %s" % show(resp.xml)
            ids.append(item.get("id"))
            msg = await next_event(bob, "items", "anon")
            assert [c.get("id") for c in items_event_children(msg)] == [item.get("id")], \
                show(msg.xml)
        assert len(set(ids)) == 3, ids
        stored = await items_of(alice, "anon")
        assert set(stored) == set(ids), stored
        for i, item_id in enumerate(ids):
            assert canon(stored[item_id]) == parsed(pl("generated %d" % i))
    run(body)


def test_publish_same_id_overwrites(herald):
    """XEP-0060 §7.1.2 (note) and §7.1.3: publishing an existing ItemID MUST
    NOT fail; it overwrites the item (same number of items, new content) and
    generates a new notification."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "ow")
        await must_subscribe(bob, "ow")
        await must_publish(alice, "ow", "same", pl("first"))
        await must_publish(alice, "ow", "other", pl("other"))
        await next_event(bob, "items", "ow")
        await next_event(bob, "items", "ow")
        await must_publish(alice, "ow", "same", pl("second"))
        msg = await next_event(bob, "items", "ow")
        ch = items_event_children(msg)
        assert [c.get("id") for c in ch] == ["same"], show(msg.xml)
        assert canon(list(ch[0])[0]) == parsed(pl("second")), show(msg.xml)
        stored = await items_of(alice, "ow")
        assert sorted(stored) == ["other", "same"], stored
        assert canon(stored["same"]) == parsed(pl("second"))
    run(body)


def test_notification_without_payload_and_type(herald):
    """XEP-0060 §7.1.2.2 (notification without payload): with
    pubsub#deliver_payloads = 0 the notification's <item id/> is empty
    while the stored item keeps its payload (§6.5.6); with
    pubsub#notification_type = normal the message is of type normal."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "light", {"pubsub#deliver_payloads": "0",
                                           "pubsub#notification_type": "normal"})
        await must_subscribe(bob, "light")
        await must_publish(alice, "light", "i1", pl("heavy payload"))
        msg = await next_event(bob, "items", "light")
        ch = items_event_children(msg)
        assert len(ch) == 1 and ch[0].get("id") == "i1", show(msg.xml)
        assert len(ch[0]) == 0, "payload delivered despite deliver_payloads=0: %s" % show(msg.xml)
        assert msg["type"] == "normal", msg
        stored = await items_of(bob, "light", ids=["i1"])
        assert canon(stored["i1"]) == parsed(pl("heavy payload"))
    run(body)


def test_publisher_attribute_not_spoofable(herald):
    """XEP-0060 §7.1.2.3 (item publisher): a 'publisher' attribute, if the
    service adds one, MUST be generated by the service (the publisher's JID),
    never taken from the published item."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "signed")
        await must_subscribe(bob, "signed")
        resp = await ps_iq(alice, pubsub_xml(
            "<publish node='signed'><item id='s1' publisher='mallory@evil.example'>%s</item>"
            "</publish>" % pl("signed")), "set")
        assert_result(resp, "publish with a forged publisher")
        msg = await next_event(bob, "items", "signed")
        item = items_event_children(msg)[0]
        assert item.get("publisher") in (None, "alice@localhost", alice.jid), show(msg.xml)
        resp = await get_items(bob, "signed")
        it = find_path(resp.xml, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "items"), (NS_PUBSUB, "item"))
        assert it.get("publisher") in (None, "alice@localhost", alice.jid), show(resp.xml)
    run(body)


def test_publish_errors(herald):
    """XEP-0060 §7.1.3: a missing node gives <item-not-found/> (§7.1.3.3,
    auto-create off); an entity the publish model does not allow gets
    <forbidden/> (§7.1.3.1); a payload over pubsub#max_payload_size gets
    <not-acceptable/> + <payload-too-big/> (§7.1.3.5); two payload elements
    <bad-request/> + <invalid-payload/> (§7.1.3.6). None of them stores
    anything."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        assert_ps_error(await publish(alice, "missing", "x", pl("x")), "item-not-found",
                        what="publish to a missing node")
        await must_create(alice, "strict", {"pubsub#max_payload_size": "200"})
        assert_ps_error(await publish(bob, "strict", "b", pl("from bob")), "forbidden",
                        what="publish by an entity with no affiliation")
        big = pl("x" * 400)
        assert_ps_error(await publish(alice, "strict", "big", big), "not-acceptable",
                        "payload-too-big", what="publish over max_payload_size")
        assert_ps_error(await publish(alice, "strict", "two",
                                      pl("one") + pl("two", ns="urn:example:other")),
                        "bad-request", "invalid-payload", what="publish two payloads")
        assert await items_of(alice, "strict") == {}
        await must_publish(alice, "strict", "small", pl("x" * 50))
        assert list(await items_of(alice, "strict")) == ["small"]
        assert_ps_error(await publish(alice, "missing", "x", pl("x")), "item-not-found",
                        what="publish to a missing node (again)")
    run(body)


def test_publish_without_item_or_payload(herald):
    """XEP-0060 §7.1.3.7 (request does not match configuration): on a
    persistent node a <publish/> without <item/> MUST be bounced with
    <bad-request/> + <item-required/>; and an <item/> without payload is
    bounced with <bad-request/> (§7.1.3.6 'not exactly one payload element':
    <invalid-payload/>, or <payload-required/> of §7.1.3.7). Nothing is
    stored."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "persistent")
        resp = await ps_iq(alice, pubsub_xml("<publish node='persistent'/>"), "set")
        assert_ps_error(resp, "bad-request", "item-required", what="publish without item")
        resp = await ps_iq(alice, pubsub_xml("<publish node='persistent'><item id='e'/>"
                                             "</publish>"), "set")
        assert_ps_error(resp, "bad-request", what="publish an empty item")
        _, app, _ = error_parts(resp)
        assert app is not None and app.tag.endswith(("}invalid-payload", "}payload-required")), \
            show(resp.xml)
        assert await items_of(alice, "persistent") == {}
    run(body)


def test_publish_model(herald):
    """XEP-0060 §4.1 affiliations and pubsub#publish_model (§16.4.4):
    'publishers' (default) admits owners and publishers only, others get
    <forbidden/> (§7.1.3.1); 'subscribers' also admits subscribers;
    'open' admits anyone."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        carol = await ps_client(srv, "carol", "singer")
        await must_create(alice, "subs-pub", {"pubsub#publish_model": "subscribers"})
        await must_create(alice, "open-pub", {"pubsub#publish_model": "open"})
        await must_subscribe(bob, "subs-pub")
        await must_publish(bob, "subs-pub", "b1", pl("bob, a subscriber"))
        assert_ps_error(await publish(carol, "subs-pub", "c1", pl("carol")), "forbidden",
                        what="non-subscriber publishes to a subscribers node")
        await must_publish(carol, "open-pub", "c1", pl("carol on an open node"))
        assert sorted(await items_of(alice, "subs-pub")) == ["b1"]
        assert_result(await configure_node(alice, "open-pub", {"pubsub#publish_model":
                                                               "publishers"}))
        assert_ps_error(await publish(carol, "open-pub", "c2", pl("carol again")), "forbidden",
                        what="publish after the model became publishers")
    run(body)


def test_publish_options(herald):
    """XEP-0060 §7.1.5 (publishing options): each field of the
    pubsub#publish-options form is a precondition checked against the
    node configuration: a mismatch fails with <conflict/> +
    <precondition-not-met/> and stores nothing; matching values (booleans
    compared as booleans, '1' = 'true') publish; an unknown field MUST be
    rejected. Also through slixmpp's publish(options=form)."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "po", {"pubsub#access_model": "open",
                                        "pubsub#persist_items": "1"})
        resp = await publish(alice, "po", "no", pl("no"),
                             options={"pubsub#access_model": "whitelist"})
        assert_ps_error(resp, "conflict", "precondition-not-met", what="mismatching option")
        resp = await publish(alice, "po", "unknown", pl("unknown"),
                             options={"pubsub#no_such_option": "1"})
        assert resp["type"] == "error", "publish with an unknown option accepted: %s" % resp
        assert await items_of(alice, "po") == {}
        await must_publish_opts(alice, "po", "yes", pl("yes"),
                                {"pubsub#access_model": "open", "pubsub#persist_items": "true"})
        f = slix_form(alice, NS_PUBLISH_OPTIONS, {"pubsub#access_model": "open"})
        res = await call(ps(alice).publish(PUBSUB, "po", id="slix", payload=ET.fromstring(
            pl("slix")), options=f, timeout=10))
        assert_result(res, "slixmpp publish with matching options")
        f = slix_form(alice, NS_PUBLISH_OPTIONS, {"pubsub#access_model": "authorize"})
        res = await call(ps(alice).publish(PUBSUB, "po", id="slix2", payload=ET.fromstring(
            pl("slix2")), options=f, timeout=10))
        assert_ps_error(res, "conflict", "precondition-not-met", what="slixmpp mismatching")
        assert sorted(await items_of(alice, "po")) == ["slix", "yes"]
    run(body)


async def must_publish_opts(c, node, item_id, payload, options):
    resp = await publish(c, node, item_id, payload, options=options)
    assert_result(resp, "publish with options %r" % options)
    return resp


def test_auto_create(herald):
    """XEP-0060 §7.1.4 (automatic node creation): with [pubsub] auto_create
    on, publishing to a missing node creates it with the default
    configuration, the publisher as owner, and stores the item."""
    srv = herald(users=USERS, config={"pubsub": {"auto_create": True}})

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_publish(alice, "made-on-the-fly", "first", pl("first"))
        assert (await my_affiliations(alice)).get("made-on-the-fly") == "owner"
        stored = await items_of(alice, "made-on-the-fly")
        assert list(stored) == ["first"] and canon(stored["first"]) == parsed(pl("first"))
    run(body)


def test_auto_create_with_publish_options(herald):
    """XEP-0060 §7.1.5 rule 3: if the node does not exist and the service
    supports auto-create, the node is created with the default configuration
    except for the publish-options preconditions, and the publish succeeds."""
    srv = herald(users=USERS, config={"pubsub": {"auto_create": True}})

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_publish_opts(alice, "auto-wl", "p", pl("private"),
                                {"pubsub#access_model": "whitelist", "pubsub#max_items": "3"})
        _, form = await get_config(alice, "auto-wl")
        assert form["pubsub#access_model"] == ["whitelist"], form
        assert form["pubsub#max_items"] == ["3"], form
    run(body)


# --------------------------------------------------------------------------
# Retract (§7.2)
# --------------------------------------------------------------------------

def test_retract_with_and_without_notify(herald):
    """XEP-0060 §7.2.1/§7.2.2, on a node with pubsub#notify_retract = 0: the
    owner retracts an item with slixmpp's retract(notify=True); the item is
    gone and, notify being 'true', subscribers MUST get <items node><retract
    id/></items> (§7.2.2.1); notify='1' likewise; without 'notify' (and
    notify_retract off) the item is deleted and no retraction is sent
    (checked by a later notification on another node arriving first). With
    notify_retract = 1 (the default) a retraction is notified even without
    the attribute (§16.4.4 pubsub#notify_retract)."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "r", {"pubsub#notify_retract": "0"})
        await must_create(alice, "loud")
        await must_create(alice, "marker")
        await must_subscribe(bob, "r")
        await must_subscribe(bob, "loud")
        await must_subscribe(bob, "marker")
        for i in ("a", "b", "c"):
            await must_publish(alice, "r", i, pl(i))
            await next_event(bob, "items", "r")
        res = await call(ps(alice).retract(PUBSUB, "r", "a", notify=True, timeout=10))
        assert_result(res, "slixmpp retract notify=true")
        msg = await next_event(bob, "items", "r")
        ch = items_event_children(msg)
        assert len(ch) == 1 and ch[0].tag == q(NS_EVENT, "retract") and ch[0].get("id") == "a", \
            show(msg.xml)
        assert_result(await retract(alice, "r", "b", notify="1"), "retract notify=1")
        msg = await next_event(bob, "items", "r")
        ch = items_event_children(msg)
        assert [(c.tag, c.get("id")) for c in ch] == [(q(NS_EVENT, "retract"), "b")], show(msg.xml)
        assert_result(await retract(alice, "r", "c"), "retract without notify")
        before = await barrier(alice, bob, "marker")
        assert not before, "events sent for a retraction without notify: %s" % [
            show(m.xml) for m in before]
        assert await items_of(alice, "r") == {}

        await must_publish(alice, "loud", "x", pl("x"))
        await next_event(bob, "items", "loud")
        assert_result(await retract(alice, "loud", "x"), "retract on a notify_retract node")
        msg = await next_event(bob, "items", "loud")
        ch = items_event_children(msg)
        assert [(c.tag, c.get("id")) for c in ch] == [(q(NS_EVENT, "retract"), "x")], show(msg.xml)
    run(body)


def test_retract_errors(herald):
    """XEP-0060 §7.2.3: an entity that is neither owner nor publisher gets
    <forbidden/> (§7.2.3.1); a missing item or node <item-not-found/>
    (§7.2.3.2); no node attribute <bad-request/> + <nodeid-required/>
    (§7.2.3.3); no item or no ItemID <bad-request/> + <item-required/>
    (§7.2.3.4). A publisher (§4.1) may retract. The item survives the
    refused requests."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "r")
        await must_publish(alice, "r", "keep", pl("keep"))
        assert_ps_error(await retract(bob, "r", "keep"), "forbidden", what="retract by outsider")
        assert_ps_error(await retract(alice, "r", "nope"), "item-not-found",
                        what="retract a missing item")
        assert_ps_error(await retract(alice, "no-node", "keep"), "item-not-found",
                        what="retract from a missing node")
        resp = await ps_iq(alice, pubsub_xml("<retract><item id='keep'/></retract>"), "set")
        assert_ps_error(resp, "bad-request", "nodeid-required", what="retract without node")
        resp = await ps_iq(alice, pubsub_xml("<retract node='r'/>"), "set")
        assert_ps_error(resp, "bad-request", "item-required", what="retract without item")
        resp = await ps_iq(alice, pubsub_xml("<retract node='r'><item/></retract>"), "set")
        assert_ps_error(resp, "bad-request", "item-required", what="retract item without id")
        assert list(await items_of(alice, "r")) == ["keep"]
        await set_affiliation(alice, "r", "bob@localhost", "publisher")
        assert_result(await retract(bob, "r", "keep"), "retract by a publisher")
        assert await items_of(alice, "r") == {}
    run(body)


# --------------------------------------------------------------------------
# Retrieve items (§6.5)
# --------------------------------------------------------------------------

def test_retrieve_items(herald):
    """XEP-0060 §6.5.2/§6.5.3 all items, §6.5.7 max_items='2' gives the 2
    most recent, §6.5.6/§6.5.8 particular items by ItemID (several in one
    request), §6.5.9.12 unknown ItemIDs give an empty <items/> result,
    §6.5.9.11 a missing node <item-not-found/>. Payloads come back as
    published. Also with slixmpp's get_items(max_items=...)."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "hist")
        for i in range(1, 6):
            await must_publish(alice, "hist", "a%d" % i, pl("entry %d" % i))
        stored = await items_of(bob, "hist")
        assert sorted(stored) == ["a1", "a2", "a3", "a4", "a5"], stored
        for i in range(1, 6):
            assert canon(stored["a%d" % i]) == parsed(pl("entry %d" % i))
        assert sorted(await items_of(bob, "hist", max_items=2)) == ["a4", "a5"]
        some = await items_of(bob, "hist", ids=["a1", "a3"])
        assert sorted(some) == ["a1", "a3"] and canon(some["a3"]) == parsed(pl("entry 3")), some
        assert await items_of(bob, "hist", ids=["nope"]) == {}
        assert_ps_error(await get_items(bob, "nope"), "item-not-found",
                        what="items of missing node")

        res = await call(ps(bob).get_items(PUBSUB, "hist", max_items=3, timeout=10))
        items = find_path(assert_result(res), (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "items"))
        assert sorted(i.get("id") for i in items.findall(q(NS_PUBSUB, "item"))) == \
            ["a3", "a4", "a5"], show(res.xml)
    run(body)


def test_max_items_keeps_most_recent(herald):
    """XEP-0060 §7.1.2.5 (node is full): with pubsub#max_items = 3, publishing
    a 4th and 5th item removes the oldest ones (retract-oldest, the default);
    the 3 most recent stay, in retrieval and in disco#items (§5.5)."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "small", {"pubsub#max_items": "3"})
        for i in range(1, 6):
            await must_publish(alice, "small", "m%d" % i, pl("m%d" % i))
        assert sorted(await items_of(alice, "small")) == ["m3", "m4", "m5"]
        resp = await disco(alice, NS_DISCO_ITEMS, node="small")
        names = sorted(i.get("name") for i in assert_result(resp).find(
            q(NS_DISCO_ITEMS, "query")).findall(q(NS_DISCO_ITEMS, "item")))
        assert names == ["m3", "m4", "m5"], show(resp.xml)
        # Lowering max_items applies to what is kept from then on.
        assert_result(await configure_node(alice, "small", {"pubsub#max_items": "1"}))
        await must_publish(alice, "small", "m6", pl("m6"))
        assert list(await items_of(alice, "small")) == ["m6"]
    run(body)


def test_retrieve_items_access_control(herald):
    """XEP-0060 §6.5.1 (permissions): on a whitelist node a non-member gets
    <not-allowed/> + <closed-node/> (§6.5.9.8) while the owner and, once
    made a member (§8.9.2), the entity may retrieve; on an authorize node an
    unsubscribed entity gets <not-authorized/> + <not-subscribed/>
    (§6.5.9.3)."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "wl", {"pubsub#access_model": "whitelist"})
        await must_publish(alice, "wl", "s", pl("secret"))
        assert_ps_error(await get_items(bob, "wl"), "not-allowed", "closed-node",
                        what="non-member retrieves from a whitelist node")
        assert list(await items_of(alice, "wl")) == ["s"]
        await set_affiliation(alice, "wl", "bob@localhost", "member")
        assert list(await items_of(bob, "wl")) == ["s"]

        await must_create(alice, "auth", {"pubsub#access_model": "authorize"})
        await must_publish(alice, "auth", "s", pl("secret"))
        assert_ps_error(await get_items(bob, "auth"), "not-authorized", "not-subscribed",
                        what="unsubscribed entity retrieves from an authorize node")
    run(body)


def test_malformed_requests(herald):
    """XEP-0060 §14 (XML schema: <pubsub/> holds one request, with only
    <options/>, <configure/> or <publish-options/> beside it; max_items is
    a positiveInteger) and RFC 6120 §8.3.3.1: a request that breaks the
    schema gets <bad-request/> and has no effect: an empty <pubsub/>, a
    <subscribe/> and a <publish/> in one <pubsub/>, max_items='0' or '-1'."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "n")
        await must_publish(alice, "n", "only", pl("only"))
        assert_ps_error(await ps_iq(alice, pubsub_xml(""), "set"), "bad-request",
                        what="empty <pubsub/>")
        resp = await ps_iq(alice, pubsub_xml(
            "<subscribe node='n' jid='alice@localhost'/><publish node='n'><item id='sneaky'>%s"
            "</item></publish>" % pl("sneaky")), "set")
        assert_ps_error(resp, "bad-request", what="subscribe and publish in one <pubsub/>")
        for mi in ("0", "-1"):
            resp = await ps_iq(alice, pubsub_xml("<items node='n' max_items='%s'/>" % mi))
            assert_ps_error(resp, "bad-request", what="max_items='%s'" % mi)
        assert list(await items_of(alice, "n")) == ["only"]
        assert await my_subscriptions(alice) == []
    run(body)
