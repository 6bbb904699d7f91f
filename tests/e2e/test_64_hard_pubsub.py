"""Issue 11, findings 5, 7 and 11: the pubsub service under abuse
(docs/security.md, docs/pubsub.md).

* Finding 5, authorization after a change: when a node's access model
  changes, subscriptions the new model does not admit are removed in the
  same operation and their holders get a <subscription subscription='none'/>
  notification (XEP-0060 §8.8.4), and no payload published afterwards.
  Associating a node with a collection needs ownership of the collection
  (XEP-0248 children_association_policy "owners").
* Finding 7, no quota on nodes: pubsub.max_nodes_per_account bounds the
  nodes one account owns (policy-violation / HTTP 403); disco#items on the
  service and on a collection answers one XEP-0059 page at a time (at most
  pubsub.node_page_size nodes), GET /v1/nodes likewise with ?max=&after= and
  a "next" cursor; paging collects every node exactly once.
* Finding 11, a full store cannot be emptied: at the map's ceiling the last
  storage.reserve_mb (at most 1/8 of the ceiling) is kept for operations
  that remove data, so once publishing gets resource-constraint / 507, node
  delete, purge and a lower max_items still succeed (XMPP and REST), and
  publishing works again afterwards, with no acknowledged item lost.

Every attack runs while a Witness session pings the server.
"""
import time
import xml.etree.ElementTree as ET

from e2e_helpers import DOMAIN, NS_CLIENT, RawStream, q, run, show
from hardening_helpers import SLOWDOWN, Witness, cpu_seconds
from pubsub_helpers import NS_EVENT, NS_OWNER, NS_PUBSUB, PUBSUB, _esc, config_form, ps_client
from rest_helpers import Rest, assert_problem, expect, new_token
from rest_helpers import _rest_streams  # noqa: F401 (autouse: ends curl -N streams)

NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_RSM = "http://jabber.org/protocol/rsm"
USERS = {"alice": "wonderland", "bob": "builder", "carol": "singer", "dave": "diver",
         "erin": "eraser", "walter": "witness"}
DEFAULT_QUOTA = 1000  # pubsub.max_nodes_per_account


def bare(user):
    return "%s@%s" % (user, DOMAIN)


class Session:
    """A RawStream logged in and available, with iq helpers that keep other
    stanzas (notifications) for later inspection."""

    def __init__(self, srv, user, resource="hard"):
        self.s = RawStream(srv.port, timeout=30.0)
        self.jid = self.s.login(user, USERS[user], resource=resource)
        self.s.send("<presence/>")
        self.n = 0

    def new_id(self):
        self.n += 1
        return "h%d" % self.n

    def iq(self, payload, itype="get", to=PUBSUB, timeout=15.0):
        iq_id = self.new_id()
        self.s.send("<iq type='%s' id='%s' to='%s'>%s</iq>" % (itype, iq_id, to, payload))
        el = self.s.wait_element(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == iq_id,
                                 timeout * SLOWDOWN)
        assert el is not None, "no answer to %s within %.0f s" % (payload[:120], timeout)
        return el

    def ps(self, inner, itype="set", ns=NS_PUBSUB):
        return self.iq("<pubsub xmlns='%s'>%s</pubsub>" % (ns, inner), itype)

    def messages(self):
        return [e for e in self.s.elements if e.tag == q(NS_CLIENT, "message")]

    def pump(self, seconds):
        """Reads whatever arrives during `seconds`."""
        self.s.wait_for(lambda: False, seconds)

    def close(self):
        self.s.close()


def ok(el, what):
    assert el.get("type") == "result", "%s failed: %s" % (what, show(el))
    return el


def condition(el):
    assert el.get("type") == "error", "expected an error, got %s" % show(el)
    err = el.find(q(NS_CLIENT, "error"))
    assert err is not None, show(el)
    for c in err:
        if c.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}") and not c.tag.endswith("}text"):
            return c.tag.split("}", 1)[1]
    raise AssertionError("no condition in %s" % show(el))


def create(sess, node, fields=None):
    conf = "<configure>%s</configure>" % config_form(fields) if fields else ""
    return sess.ps("<create node='%s'/>%s" % (_esc(node), conf))


def configure(sess, node, fields):
    return sess.ps("<configure node='%s'>%s</configure>" % (_esc(node), config_form(fields)),
                   ns=NS_OWNER)


def publish(sess, node, item_id, text):
    return sess.ps("<publish node='%s'><item id='%s'><entry xmlns='urn:example:hard'>%s</entry>"
                   "</item></publish>" % (_esc(node), _esc(item_id), _esc(text)))


def subscribe(sess, node):
    return ok(sess.ps("<subscribe node='%s' jid='%s'/>" % (_esc(node), sess.jid)),
              "subscribe to %s" % node)


def event_items(msg):
    ev = msg.find(q(NS_EVENT, "event"))
    return None if ev is None else ev.find(q(NS_EVENT, "items"))


def payload_items(sess, node):
    """(message, item id) of every item notification of node received."""
    out = []
    for m in sess.messages():
        items = event_items(m)
        if items is not None and items.get("node") == node:
            out += [(m, it.get("id")) for it in items.findall(q(NS_EVENT, "item"))]
    return out


def subscription_events(sess, node):
    out = []
    for m in sess.messages():
        ev = m.find(q(NS_EVENT, "event"))
        sub = ev.find(q(NS_EVENT, "subscription")) if ev is not None else None
        if sub is not None and sub.get("node") == node:
            out.append(sub)
    return out


# --------------------------------------------------------------------------
# Finding 5: authorization after a change
# --------------------------------------------------------------------------

def test_whitelist_switch_cancels_outsiders(herald):
    """bob (no affiliation) and carol (member) subscribe to an open node;
    alice switches it to whitelist: bob gets subscription='none' and not the
    next item; carol keeps receiving; bob's subscription is gone."""
    srv = herald(users=USERS)
    alice, bob, carol = Session(srv, "alice"), Session(srv, "bob"), Session(srv, "carol")
    with Witness(srv, "walter", USERS["walter"]) as w:
        ok(create(alice, "wl"), "create")
        subscribe(bob, "wl")
        subscribe(carol, "wl")
        ok(alice.ps("<affiliations node='wl'><affiliation jid='%s' affiliation='member'/>"
                    "</affiliations>" % bare("carol"), ns=NS_OWNER), "make carol a member")
        ok(configure(alice, "wl", {"pubsub#access_model": "whitelist"}), "switch to whitelist")
        ok(publish(alice, "wl", "secret-1", "after the switch"), "publish")
        assert carol.s.wait_for(lambda: payload_items(carol, "wl"), 10 * SLOWDOWN), \
            "the member on the whitelist got no notification"
        assert bob.s.wait_for(lambda: subscription_events(bob, "wl"), 10 * SLOWDOWN), \
            "the removed subscriber was not told: %s" % [show(m) for m in bob.messages()]
        bob.pump(1.0)  # the item went out with carol's; give bob's a chance to arrive
        subs = subscription_events(bob, "wl")
        assert [s.get("subscription") for s in subs] == ["none"], [show(s) for s in subs]
        assert subs[0].get("jid") == bob.jid, show(subs[0])
        assert payload_items(bob, "wl") == [], \
            "a subscriber outside the whitelist still received the payload: %s" % (
                [show(m) for m, _ in payload_items(bob, "wl")])
        mine = ok(bob.ps("<subscriptions node='wl'/>", itype="get"), "own subscriptions")
        assert mine.findall(".//{%s}subscription" % NS_PUBSUB) == [], show(mine)
        # Removing a member's affiliation on a whitelist node cancels its
        # subscription the same way.
        ok(alice.ps("<affiliations node='wl'><affiliation jid='%s' affiliation='none'/>"
                    "</affiliations>" % bare("carol"), ns=NS_OWNER), "drop carol")
        assert carol.s.wait_for(lambda: subscription_events(carol, "wl"), 10 * SLOWDOWN), \
            "the former member was not told"
        ok(publish(alice, "wl", "secret-2", "after the affiliation change"), "publish again")
        carol.pump(1.0)
        assert [i for _, i in payload_items(carol, "wl")] == ["secret-1"], \
            [i for _, i in payload_items(carol, "wl")]
    w.check()
    for s in (alice, bob, carol):
        s.close()


def test_authorize_switch_cancels_unapproved(herald):
    """Subscriptions made while a node was open were never approved: a
    switch to authorize removes them too (the owner keeps receiving)."""
    srv = herald(users=USERS)
    alice, bob = Session(srv, "alice"), Session(srv, "bob")
    ok(create(alice, "auth"), "create")
    subscribe(bob, "auth")
    subscribe(alice, "auth")
    ok(configure(alice, "auth", {"pubsub#access_model": "authorize"}), "switch to authorize")
    ok(publish(alice, "auth", "i1", "x"), "publish")
    assert alice.s.wait_for(lambda: payload_items(alice, "auth"), 10 * SLOWDOWN), "owner got nothing"
    assert bob.s.wait_for(lambda: subscription_events(bob, "auth"), 10 * SLOWDOWN), "bob not told"
    bob.pump(0.5)
    assert payload_items(bob, "auth") == []
    assert subscription_events(alice, "auth") == [], "the owner's own subscription was cancelled"
    alice.close()
    bob.close()


def test_collection_child_needs_collection_owner(herald):
    """bob may not put a leaf into alice's collection, at create nor at
    configure, over XMPP nor REST; the collection's subscribers get nothing
    of bob's; alice (the owner) may."""
    srv = herald(users=USERS)
    alice, bob, carol = Session(srv, "alice"), Session(srv, "bob"), Session(srv, "carol")
    with Witness(srv, "walter", USERS["walter"]) as w:
        ok(create(alice, "coll", {"pubsub#node_type": "collection"}), "create collection")
        subscribe(carol, "coll")
        r = create(bob, "intruder", {"pubsub#collection": "coll"})
        assert condition(r) == "forbidden", show(r)
        ok(create(bob, "bobleaf"), "bob's own leaf")
        r = configure(bob, "bobleaf", {"pubsub#collection": "coll"})
        assert condition(r) == "forbidden", show(r)
        rest_bob = Rest(srv, new_token(srv, bare("bob")))
        resp = rest_bob.post("/v1/nodes", {"node": "rest-intruder",
                                           "config": {"collection": "coll"}})
        assert_problem(resp, 403, what="REST create into another's collection")
        ok(publish(bob, "bobleaf", "spam", "injected"), "bob publishes to his own leaf")
        # The owner may add children, and carol gets their items.
        ok(create(alice, "child", {"pubsub#collection": "coll"}), "owner adds a child")
        ok(publish(alice, "child", "good", "legit"), "publish to the child")
        assert carol.s.wait_for(lambda: payload_items(carol, "child"), 10 * SLOWDOWN)
        carol.pump(0.5)
        assert payload_items(carol, "bobleaf") == [], "bob's item reached the collection"
        names = disco_names(carol, "coll")
        assert names == ["child"], names
    w.check()
    for s in (alice, bob, carol):
        s.close()


# --------------------------------------------------------------------------
# Finding 7: node quota and paging
# --------------------------------------------------------------------------

def test_node_quota_xmpp_and_rest(herald):
    """The default quota (no configuration): alice creates 1000 nodes (the
    attack made 20,000 with one account); the next is refused over XMPP and
    REST, also as an instant node and as ownership given by someone else;
    other accounts are unaffected; a delete makes room."""
    srv = herald(users=USERS)
    alice, bob = Session(srv, "alice"), Session(srv, "bob")
    rest = Rest(srv, new_token(srv, bare("alice")))
    with Witness(srv, "walter", USERS["walter"]) as w:
        t0 = time.monotonic()
        create_many(alice, "q", DEFAULT_QUOTA)
        took = time.monotonic() - t0
        r = create(alice, "over")
        assert condition(r) == "policy-violation", show(r)
        assert_problem(rest.post("/v1/nodes", {"node": "rest-over"}), 403, "policy-violation",
                       what="REST create over the quota")
        assert condition(alice.ps("<create/>")) == "policy-violation"
        ok(create(bob, "b0"), "bob's node")
        r = bob.ps("<affiliations node='b0'><affiliation jid='%s' affiliation='owner'/>"
                   "</affiliations>" % bare("alice"), ns=NS_OWNER)
        assert condition(r) == "policy-violation", show(r)
        ok(alice.ps("<delete node='q00000'/>", ns=NS_OWNER), "delete")
        ok(create(alice, "after-delete"), "create after a delete")
        assert condition(create(alice, "over-again")) == "policy-violation"
    w.check()
    print("%d creates in %.2f s" % (DEFAULT_QUOTA, took))
    assert "max_nodes_per_account" in srv.log_text()
    alice.close()
    bob.close()


def create_many(sess, prefix, n, chunk=500):
    """n nodes through pipelined creates (chunk per write); returns names."""
    names = []
    for start in range(0, n, chunk):
        batch = []
        for i in range(start, min(n, start + chunk)):
            name = "%s%05d" % (prefix, i)
            names.append(name)
            batch.append("<iq type='set' id='c%d' to='%s'><pubsub xmlns='%s'><create node='%s'/>"
                         "</pubsub></iq>" % (i, PUBSUB, NS_PUBSUB, name))
        sess.s.send("".join(batch))
        last = "c%d" % (min(n, start + chunk) - 1)
        assert sess.s.wait_for(lambda: any(e.get("id") == last for e in sess.s.elements),
                               60 * SLOWDOWN), "creates unanswered"
        bad = [show(e) for e in sess.s.elements
               if e.tag == q(NS_CLIENT, "iq") and e.get("type") != "result"]
        assert not bad, bad[:3]
        sess.s.elements.clear()
    return names


def disco_page(sess, node=None, rsm=""):
    node_attr = " node='%s'" % _esc(node) if node else ""
    set_el = "<set xmlns='%s'>%s</set>" % (NS_RSM, rsm) if rsm is not None else ""
    r = sess.iq("<query xmlns='%s'%s>%s</query>" % (NS_DISCO_ITEMS, node_attr, set_el))
    ok(r, "disco#items")
    query = r.find(q(NS_DISCO_ITEMS, "query"))
    names = [i.get("node") for i in query.findall(q(NS_DISCO_ITEMS, "item"))]
    s = query.find(q(NS_RSM, "set"))
    info = {}
    if s is not None:
        for k in ("first", "last", "count"):
            e = s.find(q(NS_RSM, k))
            info[k] = e.text if e is not None else None
    return names, info, len(ET.tostring(r))


def disco_names(sess, node=None):
    names, info, _ = disco_page(sess, node, rsm=None)
    return names


def test_disco_and_rest_paging_5000_nodes(herald):
    """5,000 nodes (five accounts at the default quota, no configuration):
    disco#items answers a page and keeps the requester connected; paging
    with <after/> and GET /v1/nodes?after= each collect every node once."""
    n = 5000
    srv = herald(users=USERS)
    owners = [Session(srv, u) for u in ("alice", "carol", "dave", "erin", "bob")]
    bob = owners[-1]
    t0 = time.monotonic()
    names = []
    for k, sess in enumerate(owners):
        names += create_many(sess, "n%d-" % k, n // len(owners))
    created_in = time.monotonic() - t0
    with Witness(srv, "walter", USERS["walter"]) as w:
        # No <set/>: one page, with a <set/> telling the total; no disconnect.
        first, info, size = disco_page(bob, rsm=None)
        assert 0 < len(first) <= 100, len(first)
        assert info.get("count") == str(n), info
        assert size < 64 * 1024, "a page of %d bytes" % size
        assert not bob.s.closed and bob.s.stream_error() is None
        # Page forward with <after/> (raw XML), each node exactly once.
        seen, after, pages = [], None, 0
        cpu0 = cpu_seconds(srv.proc.pid)
        t1 = time.monotonic()
        while True:
            rsm = "<max>100</max>" + ("<after>%s</after>" % after if after else "")
            page, info, _ = disco_page(bob, rsm=rsm)
            pages += 1
            assert pages <= n // 100 + 2, "paging does not end"
            if not page:
                break
            seen += page
            after = info["last"]
        walk_s = time.monotonic() - t1
        cpu_per_page = (cpu_seconds(srv.proc.pid) - cpu0) / pages
        assert sorted(seen) == sorted(names) and len(seen) == len(set(seen)) == n
        assert seen == names, "pages are not in creation order"
        # The last page (empty <before/>) and the page before it.
        last, info, _ = disco_page(bob, rsm="<max>10</max><before/>")
        assert last == names[-10:], last
        prev, _, _ = disco_page(bob, rsm="<max>10</max><before>%s</before>" % info["first"])
        assert prev == names[-20:-10], prev
        # <max>0</max>: the count alone.
        zero, info, _ = disco_page(bob, rsm="<max>0</max>")
        assert zero == [] and info["count"] == str(n), info
        # A cursor that is no node id: item-not-found (XEP-0059 §2.5).
        r = bob.iq("<query xmlns='%s'><set xmlns='%s'><after>bogus</after></set></query>"
                   % (NS_DISCO_ITEMS, NS_RSM))
        assert condition(r) == "item-not-found", show(r)
        # REST: ?max=&after= with "next", every node exactly once.
        rest = Rest(srv, new_token(srv, bare("bob")))
        got, cursor, rpages = [], None, 0
        while True:
            path = "/v1/nodes?max=100" + ("&after=%s" % cursor if cursor else "")
            body = expect(rest.get(path), 200, path).json()
            rpages += 1
            assert rpages <= n // 100 + 2
            assert len(body["nodes"]) <= 100
            got += [x["node"] for x in body["nodes"]]
            cursor = body["next"]
            if cursor is None:
                break
        assert got == names, (len(got), len(set(got)))
        default = expect(rest.get("/v1/nodes"), 200).json()
        assert len(default["nodes"]) == 100 and default["next"] is not None
        assert_problem(rest.get("/v1/nodes?max=100000"), 400, what="a page over the bound")
        assert_problem(rest.get("/v1/nodes?after=x"), 400, what="a bad cursor")
    w.check()
    print("created %d nodes in %.2f s; %d disco pages in %.2f s, %.2f ms CPU per page"
          % (n, created_in, pages, walk_s, cpu_per_page * 1000))
    assert cpu_per_page < 0.05 * SLOWDOWN, "%.1f ms CPU per page" % (cpu_per_page * 1000)
    for sess in owners:
        sess.close()


def test_collection_disco_is_paged(herald):
    srv = herald(users=USERS)
    alice, bob = Session(srv, "alice"), Session(srv, "bob")
    ok(create(alice, "big", {"pubsub#node_type": "collection"}), "collection")
    payload = "".join(
        "<iq type='set' id='k%d' to='%s'><pubsub xmlns='%s'><create node='kid%04d'/><configure>%s"
        "</configure></pubsub></iq>" % (i, PUBSUB, NS_PUBSUB, i,
                                        config_form({"pubsub#collection": "big"}))
        for i in range(300))
    alice.s.send(payload)
    assert alice.s.wait_for(lambda: any(e.get("id") == "k299" for e in alice.s.elements),
                            60 * SLOWDOWN)
    assert all(e.get("type") == "result" for e in alice.s.elements
               if e.tag == q(NS_CLIENT, "iq"))
    alice.s.elements.clear()
    create_many(alice, "other", 200)
    seen, after = [], None
    for _ in range(20):
        page, info, _ = disco_page(bob, "big", "<max>500</max>" + (
            "<after>%s</after>" % after if after else ""))
        assert len(page) <= 100, len(page)  # the server's bound wins over <max/>
        if not page:
            break
        assert info["count"] == "300", info
        seen += page
        after = info["last"]
    assert seen == ["kid%04d" % i for i in range(300)], seen[:5]

    async def slix_pages():
        # slixmpp's XEP-0059 iterator over disco#items pages of 10
        # (<after/> = the previous <last/>); it stops at an empty page or
        # when <first index/> plus the page reaches <count/>.
        c = await ps_client(srv, "carol", USERS["carol"])
        c.xmpp.register_plugin("xep_0059")
        got, npages = [], 0
        it = await c.xmpp["xep_0030"].get_items(jid=PUBSUB, node="big", iterator=True)
        async for page in it:
            npages += 1
            assert npages <= 40, "the iterator does not stop"
            got += [n for _j, n, _name in page["disco_items"]["items"]]
        await c.close()
        return got, npages

    got, npages = run(slix_pages)
    # slixmpp gives a page's items as a set: each node exactly once.
    assert sorted(got) == ["kid%04d" % i for i in range(300)], (len(got), got[:3])
    assert npages == 30, npages  # its <max/> is 10; it stops on <first index/> + count
    alice.close()
    bob.close()


# --------------------------------------------------------------------------
# Finding 11: a full store can be emptied
# --------------------------------------------------------------------------

FULL_CONFIG = {"storage": {"map_size_mb": 2, "max_map_size_mb": 2},
               "pubsub": {"max_items_cap": 100000}}


def fill(sess, nodes, size=3000, limit=2000):
    """Publishes size-byte items round-robin over nodes (pipelined, 20 per
    write) until one is refused; returns ({node: [acked ids]}, the refusal)."""
    acked = {n: [] for n in nodes}
    text = "x" * size
    i = 0
    while i < limit:
        batch, ids = [], []
        for _ in range(20):
            node = nodes[i % len(nodes)]
            iq_id = "f%d" % i
            ids.append((iq_id, node, "it%d" % i))
            batch.append("<iq type='set' id='%s' to='%s'><pubsub xmlns='%s'><publish node='%s'>"
                         "<item id='it%d'><entry xmlns='urn:example:hard'>%s</entry></item>"
                         "</publish></pubsub></iq>" % (iq_id, PUBSUB, NS_PUBSUB, node, i, text))
            i += 1
        sess.s.send("".join(batch))
        last = ids[-1][0]
        assert sess.s.wait_for(lambda: any(e.get("id") == last for e in sess.s.elements),
                               30 * SLOWDOWN), "publishes unanswered"
        answers = {e.get("id"): e for e in sess.s.elements if e.tag == q(NS_CLIENT, "iq")}
        sess.s.elements.clear()
        refused = None
        for iq_id, node, item in ids:
            el = answers[iq_id]
            if el.get("type") == "result":
                acked[node].append(item)
            elif refused is None:
                refused = el
        if refused is not None:
            return acked, refused
    raise AssertionError("the store never filled after %d publishes" % limit)


def item_ids(sess, node):
    r = ok(sess.ps("<items node='%s'/>" % node, itype="get"), "items of %s" % node)
    return {i.get("id") for i in r.iter(q(NS_PUBSUB, "item"))}


def test_full_store_can_be_emptied(herald):
    srv = herald(config=FULL_CONFIG, users=USERS)
    alice = Session(srv, "alice")
    rest = Rest(srv, new_token(srv, bare("alice")))
    nodes = ["keep", "trim", "purge", "delete", "rpurge", "rdelete"]
    for node in nodes:
        ok(create(alice, node, {"pubsub#max_items": "max"}), "create %s" % node)
    with Witness(srv, "walter", USERS["walter"]) as w:
        acked, refused = fill(alice, nodes)
        assert condition(refused) == "resource-constraint", show(refused)
        # A pipelined turn is refused on its estimate; single publishes
        # (one per turn) go on until the store is really down to its reserve.
        for k in range(200):
            r = publish(alice, "keep", "single%d" % k, "y" * 3000)
            if r.get("type") != "result":
                break
            acked["keep"].append("single%d" % k)
        assert condition(r) == "resource-constraint", show(r)
        total = sum(len(v) for v in acked.values())
        assert total > 100, acked
        # Still full: another publish is refused, over both protocols.
        assert condition(publish(alice, "keep", "more", "y" * 3000)) == "resource-constraint"
        assert_problem(rest.put("/v1/nodes/keep/items/more", {"v": "y" * 3000}), 507,
                       what="REST publish into a full store")
        # Removals all work while full.
        ok(configure(alice, "trim", {"pubsub#max_items": "2"}), "lower max_items")
        ok(alice.ps("<purge node='purge'/>", ns=NS_OWNER), "purge")
        ok(alice.ps("<delete node='delete'/>", ns=NS_OWNER), "delete")
        expect(rest.post("/v1/nodes/rpurge/purge"), 204, "REST purge")
        expect(rest.delete("/v1/nodes/rdelete"), 204, "REST delete")
        # Space is back: publishing works again, both ways.
        ok(publish(alice, "keep", "after", "z" * 3000), "publish after the removals")
        expect(rest.put("/v1/nodes/keep/items/after-rest", {"v": "z"}), 201, "REST publish after")
    w.check()
    expected = set(acked["keep"]) | {"after", "after-rest"}
    assert item_ids(alice, "keep") == expected
    assert item_ids(alice, "trim") == set(acked["trim"][-2:])
    assert item_ids(alice, "purge") == set()
    alice.close()
    srv.restart()
    alice = Session(srv, "alice")
    assert item_ids(alice, "keep") == expected, "acknowledged items lost across a restart"
    assert item_ids(alice, "trim") == set(acked["trim"][-2:])
    r = alice.ps("<items node='delete'/>", itype="get")
    assert condition(r) == "item-not-found"
    alice.close()
    assert "reserve" in srv.log_text(), "the refusal was not logged"
