"""XEP-0060 publish-subscribe, options that change delivery and storage:
subscription options (§6.3, §6.4), pubsub#subscribe, deliver_notifications,
persist_items, notify_delete, the fixed node type, and paging through items
with XEP-0059 (§6.5.4)."""
from e2e_helpers import q, run, show
from pubsub_helpers import (NS_DATA, NS_EVENT, NS_OWNER, NS_PUBSUB, assert_ps_error,
                            assert_result, configure_node, event_of, find_path, form_xml,
                            get_config, items_of, must_create, must_publish, must_subscribe,
                            next_event, next_message, parse_form, payload_xml, ps_client, ps_iq,
                            pubsub_xml, subscribe)

USERS = {"alice": "wonderland", "bob": "builder"}
NS_SUB_OPTIONS = NS_PUBSUB + "#subscribe_options"
NS_RSM = "http://jabber.org/protocol/rsm"


def pl(text):
    return payload_xml("urn:example:e2e", "entry", text)


async def barrier(owner, subscriber, marker_node):
    """Publishes to marker_node and returns the events the subscriber got
    before the marker's notification (the service sends in order)."""
    await must_publish(owner, marker_node, None, pl("marker"))
    before = []
    while True:
        m = await next_message(subscriber, lambda m: event_of(m) is not None, what="event")
        items = event_of(m).find(q(NS_EVENT, "items"))
        if items is not None and items.get("node") == marker_node:
            return before
        before.append(m)


def test_subscription_options_deliver(herald):
    """XEP-0060 §6.3 (configure subscription options, advertised as
    'subscription-options'): <options node jid/> returns a form of
    FORM_TYPE pubsub#subscribe_options with pubsub#deliver (§6.3.4);
    submitting pubsub#deliver = 0 gets a result (§6.3.5, §6.3.6.1) and stops
    notifications for that subscription; 1 restarts them. §6.4: <default/>
    (in the pubsub namespace) returns the default subscription options."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "opt")
        await must_create(alice, "marker")
        await must_subscribe(bob, "marker", "bob@localhost")
        await must_subscribe(bob, "opt", "bob@localhost")

        resp = await ps_iq(bob, pubsub_xml("<default node='opt'/>"))
        x = find_path(assert_result(resp, "default subscription options"), (NS_PUBSUB, "pubsub"),
                      (NS_PUBSUB, "default"), (NS_DATA, "x"))
        assert x is not None and parse_form(x).get("FORM_TYPE") == [NS_SUB_OPTIONS], \
            show(resp.xml)

        resp = await ps_iq(bob, pubsub_xml("<options node='opt' jid='bob@localhost'/>"))
        el = assert_result(resp, "get subscription options")
        opts = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "options"))
        form = parse_form(opts.find(q(NS_DATA, "x")))
        assert form.get("FORM_TYPE") == [NS_SUB_OPTIONS], form
        assert form.get("pubsub#deliver") in (["1"], ["true"]), form

        def set_deliver(v):
            return ps_iq(bob, pubsub_xml("<options node='opt' jid='bob@localhost'>%s</options>"
                                         % form_xml(NS_SUB_OPTIONS, {"pubsub#deliver": v})),
                         "set")
        assert_result(await set_deliver("0"), "deliver=0")
        await must_publish(alice, "opt", "quiet", pl("not delivered"))
        before = await barrier(alice, bob, "marker")
        assert not before, "delivered despite pubsub#deliver=0: %s" % [show(m.xml) for m in before]
        assert_result(await set_deliver("1"), "deliver=1")
        await must_publish(alice, "opt", "loud", pl("delivered"))
        msg = await next_event(bob, "items", "opt")
        assert [i.get("id") for i in event_of(msg).find(q(NS_EVENT, "items"))] == ["loud"], \
            show(msg.xml)

        resp = await ps_iq(alice, pubsub_xml("<options node='opt' jid='bob@localhost'/>"))
        assert_ps_error(resp, "forbidden", what="options of another entity's subscription")
        resp = await ps_iq(alice, pubsub_xml("<options node='opt' jid='alice@localhost'/>"))
        assert_ps_error(resp, "unexpected-request", "not-subscribed",
                        what="options without a subscription")
    run(body)


def test_subscriptions_disabled(herald):
    """XEP-0060 §6.1.3.10 (subscriptions not supported): with
    pubsub#subscribe = 0 a subscription request gets
    <feature-not-implemented/> + <unsupported feature='subscribe'/>."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "nosub", {"pubsub#subscribe": "0"})
        assert_ps_error(await subscribe(bob, "nosub", "bob@localhost"), "feature-not-implemented",
                        "unsupported", "subscribe", what="subscribe with pubsub#subscribe=0")
    run(body)


def test_deliver_notifications_off_and_persist_items_off(herald):
    """XEP-0060 §16.4.4: pubsub#deliver_notifications = 0 publishes without
    notifying anyone (items are still stored); pubsub#persist_items = 0 keeps
    no history beyond the last item (§6.5.5 'returning the last published
    item')."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "silent", {"pubsub#deliver_notifications": "0"})
        await must_create(alice, "transient", {"pubsub#persist_items": "0"})
        await must_create(alice, "marker")
        await must_subscribe(bob, "silent", "bob@localhost")
        await must_subscribe(bob, "marker", "bob@localhost")
        await must_publish(alice, "silent", "s1", pl("shh"))
        before = await barrier(alice, bob, "marker")
        assert not before, "notified despite deliver_notifications=0: %s" % [
            show(m.xml) for m in before]
        assert list(await items_of(bob, "silent")) == ["s1"]
        for i in range(3):
            await must_publish(alice, "transient", "t%d" % i, pl("t%d" % i))
        assert list(await items_of(bob, "transient")) in ([], ["t2"])
    run(body)


def test_notify_delete_off(herald):
    """XEP-0060 §16.4.4 pubsub#notify_delete = 0: deleting the node sends no
    <delete/> event (compare §8.4.2, where it is on)."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "hush", {"pubsub#notify_delete": "0"})
        await must_create(alice, "marker")
        await must_subscribe(bob, "hush", "bob@localhost")
        await must_subscribe(bob, "marker", "bob@localhost")
        assert_result(await ps_iq(alice, pubsub_xml("<delete node='hush'/>", NS_OWNER), "set"))
        before = await barrier(alice, bob, "marker")
        assert not before, "events despite notify_delete=0: %s" % [show(m.xml) for m in before]
    run(body)


def test_node_type_fixed(herald):
    """XEP-0060 §8.2.5.2: the node type cannot be changed by configuration
    (pubsub#node_type is fixed at creation here); the request gets
    <not-acceptable/> and the node stays a leaf."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "leafy")
        assert_ps_error(await configure_node(alice, "leafy", {"pubsub#node_type": "collection"}),
                        "not-acceptable", what="change node_type")
        _, form = await get_config(alice, "leafy")
        assert form.get("pubsub#node_type") in (["leaf"], None), form
    run(body)


async def _walk_pages(c, node, direction):
    """Pages through node's items 2 at a time (XEP-0059): 'after' starts
    with no <after/> and continues with <after>last</after> (§2.2);
    'before' starts with an empty <before/> (the last page, §2.5) and
    continues with <before>first</before> (§2.4). Returns the ItemIDs seen,
    page by page."""
    pages, cursor = [], None
    for _ in range(10):
        if direction == "after":
            rsm = "<max>2</max>" + ("<after>%s</after>" % cursor if cursor else "")
        else:
            rsm = "<max>2</max><before>%s</before>" % (cursor or "")
        resp = await ps_iq(c, pubsub_xml("<items node='%s'/><set xmlns='%s'>%s</set>"
                                         % (node, NS_RSM, rsm)))
        el = assert_result(resp, "paged items (%s)" % rsm)
        page = find_path(el, (NS_PUBSUB, "pubsub"), (NS_PUBSUB, "items"))
        got = [i.get("id") for i in page.findall(q(NS_PUBSUB, "item"))]
        assert len(got) <= 2, "page larger than <max/>: %s" % show(el)
        if not got:
            break
        pages.append(got)
        st = find_path(el, (NS_PUBSUB, "pubsub"), (NS_RSM, "set"))
        assert st is not None, "no RSM <set/> in a page: %s" % show(el)
        assert (st.findtext(q(NS_RSM, "first")), st.findtext(q(NS_RSM, "last"))) == \
            (got[0], got[-1]), show(el)
        cursor = got[-1] if direction == "after" else got[0]
    return pages


def test_items_paging_rsm_backward(herald):
    """XEP-0060 §6.5.4 (returning some items) with XEP-0059 result set
    management, paging backwards: <set><max>2</max><before/></set> next to
    <items/> returns the last page (§2.5) with <first/>/<last/>, and
    <before>first</before> (§2.4) walks back through every item exactly
    once."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "paged", {"pubsub#max_items": "20"})
        ids = ["p%02d" % i for i in range(7)]
        for i in ids:
            await must_publish(alice, "paged", i, pl(i))
        pages = await _walk_pages(alice, "paged", "before")
        seen = [i for p in pages for i in p]
        assert sorted(seen) == ids, "pages did not cover every item exactly once: %s" % pages
        assert pages[0] == ["p05", "p06"], "the last page is not the newest items: %s" % pages
    run(body)


def test_items_paging_rsm_forward(herald):
    """XEP-0060 §6.5.4 with XEP-0059 paging forwards: <set><max>2</max></set>
    with neither <after/> nor <before/> returns the first page of the
    result set (§2.1: 'the first N items'), in the order an unpaged items
    request lists them, and <after>last</after> (§2.2) walks forward through
    every item exactly once: a client paging the XEP-0059 way sees every
    item."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "paged", {"pubsub#max_items": "20"})
        ids = ["p%02d" % i for i in range(7)]
        for i in ids:
            await must_publish(alice, "paged", i, pl(i))
        resp = await ps_iq(alice, pubsub_xml("<items node='paged'/>"))
        full = [i.get("id") for i in find_path(assert_result(resp), (NS_PUBSUB, "pubsub"),
                                               (NS_PUBSUB, "items")).findall(q(NS_PUBSUB,
                                                                               "item"))]
        pages = await _walk_pages(alice, "paged", "after")
        seen = [i for p in pages for i in p]
        assert seen == full, "forward pages %s do not walk the item list %s" % (pages, full)
    run(body)
