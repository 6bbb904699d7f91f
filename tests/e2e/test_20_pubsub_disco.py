"""XEP-0060 publish-subscribe, service discovery (XEP-0060 §5, with
XEP-0030): the service's identity and features, the feature list against
the C table it is built from, nodes and items as disco items, node
meta-data."""
from e2e_helpers import q, run, show
from pubsub_helpers import (NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_META_DATA, NS_PUBSUB,
                            PUBSUB, assert_ps_error, assert_result, disco, disco_features,
                            disco_identities, must_create, must_publish, parse_form,
                            payload_xml, ps, ps_client, pubsub_feature_table)

USERS = {"alice": "wonderland", "bob": "builder"}
P = NS_PUBSUB + "#"

# What the service implements (the service contract) and must advertise.
CORE_FEATURES = [
    "create-nodes", "instant-nodes", "create-and-configure", "config-node", "delete-nodes",
    "purge-nodes", "publish", "publish-options", "retract-items", "retrieve-items", "item-ids",
    "persistent-items", "subscribe", "multi-subscribe", "retrieve-subscriptions",
    "retrieve-affiliations", "manage-subscriptions", "modify-affiliations", "access-open",
    "access-whitelist", "access-authorize", "retrieve-default", "meta-data", "last-published",
    "publisher-affiliation", "outcast-affiliation", "member-affiliation", "delete-items",
]
# Not implemented yet: advertising them would make clients rely on them.
# ('collections' and 'access-presence' were in this list until collection
# nodes and rosters landed.)
NOT_IMPLEMENTED = ["access-roster", "presence-notifications"]


def test_service_identity_and_features(herald):
    """XEP-0060 §5.1 (discover features) and XEP-0030 §3.1: disco#info to
    pubsub.localhost answers from that JID with identity pubsub/service, the
    'http://jabber.org/protocol/pubsub' feature and one
    'http://jabber.org/protocol/pubsub#<feature>' per implemented feature
    (§10 registrar list); features that are not implemented (access-roster,
    presence-notifications) and auto-create (disabled by default, §7.1.4)
    are not advertised."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        resp = await disco(alice, NS_DISCO_INFO)
        feats = disco_features(resp)
        assert resp["from"] == PUBSUB, resp
        assert ("pubsub", "service") in disco_identities(resp), show(resp.xml)
        assert NS_PUBSUB in feats, feats
        missing = [f for f in CORE_FEATURES if P + f not in feats]
        assert not missing, "pubsub features not advertised: %s (got %s)" % (missing, feats)
        wrong = [f for f in NOT_IMPLEMENTED + ["auto-create"] if P + f in feats]
        assert not wrong, "unimplemented features advertised: %s" % wrong
        assert len(feats) == len(set(feats)), "duplicate features: %s" % feats
    run(body)


def test_auto_create_advertised_only_when_enabled(herald):
    """XEP-0060 §7.1.4: a service that creates nodes on publish MUST
    advertise 'pubsub#auto-create'; with [pubsub] auto_create = true it does."""
    srv = herald(users=USERS, config={"pubsub": {"auto_create": True}})

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        feats = disco_features(await disco(alice, NS_DISCO_INFO))
        assert P + "auto-create" in feats, feats
        assert P + "publish" in feats, feats
    run(body)


def test_features_match_the_code_table(herald):
    """XEP-0060 §5.1: what disco#info advertises must be exactly the
    features of the dispatch table compiled into the server (the FEATURES
    column of `pubsub_iq_table` in broker/pubsub/pubsub_iq.c, each feature on the
    row of the handler that implements it), so a feature is never
    advertised by one list and implemented by another. auto-create appears
    only when enabled (§7.1.4), whether the table lists it or the code adds
    it."""
    table = pubsub_feature_table()
    assert table is not None, ("no dispatch table named pubsub_iq_table in broker/pubsub/pubsub_iq.c "
                               "(the table disco#info features must be built from)")
    assert table, "pubsub_iq_table lists no feature"
    assert len(table) == len(set(table)), "duplicates in pubsub_iq_table: %s" % table
    base = set(table) - {"auto-create"}
    for auto, expected in ((False, base), (True, base | {"auto-create"})):
        srv = herald(users=USERS, config={"pubsub": {"auto_create": auto}})

        async def body():
            alice = await ps_client(srv, "alice", "wonderland")
            feats = disco_features(await disco(alice, NS_DISCO_INFO))
            advertised = {f[len(P):] for f in feats if f.startswith(P)}
            assert advertised == expected, (
                "auto_create=%s: advertised but not in the table: %s; in the table but not "
                "advertised: %s" % (auto, sorted(advertised - expected),
                                    sorted(expected - advertised)))
        run(body)


def test_disco_items_lists_nodes(herald):
    """XEP-0060 §5.2 (discover nodes): disco#items on the service lists each
    node as <item jid='pubsub.localhost' node='name'/>, including nodes of
    other owners; a deleted node disappears. Read once with slixmpp's
    xep_0060 get_nodes and once as raw XML."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "disco-a")
        await must_create(alice, "disco-b")
        await must_create(bob, "disco-c")
        res = await ps(bob).get_nodes(jid=PUBSUB, timeout=10)
        got = {(str(j), n) for j, n, _name in res["disco_items"]["items"]}
        for n in ("disco-a", "disco-b", "disco-c"):
            assert (PUBSUB, n) in got, "node %s not in disco#items: %s" % (n, got)

        resp = await alice.iq("<pubsub xmlns='%s#owner'><delete node='disco-b'/></pubsub>"
                              % NS_PUBSUB, to=PUBSUB, itype="set")
        assert_result(resp, "delete disco-b")
        resp = await disco(alice, NS_DISCO_ITEMS)
        el = assert_result(resp, "disco#items")
        items = el.find(q(NS_DISCO_ITEMS, "query")).findall(q(NS_DISCO_ITEMS, "item"))
        nodes = {i.get("node") for i in items}
        assert {"disco-a", "disco-c"} <= nodes and "disco-b" not in nodes, show(el)
        assert all(i.get("jid") == PUBSUB for i in items), show(el)
    run(body)


def test_node_disco_info_meta_data(herald):
    """XEP-0060 §5.3 (discover node information) and §5.4 (node meta-data):
    disco#info with node='name' gives identity pubsub/leaf and a data form of
    FORM_TYPE 'http://jabber.org/protocol/pubsub#meta-data' (type result)
    describing the node: its title and its owner; the service advertises
    'pubsub#meta-data'. A node that does not exist gives <item-not-found/>
    (XEP-0030 §3.1 error cases)."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "meta", {"pubsub#title": "Princely Musings"})
        resp = await disco(bob, NS_DISCO_INFO, node="meta")
        el = assert_result(resp, "disco#info node=meta")
        qel = el.find(q(NS_DISCO_INFO, "query"))
        assert qel.get("node") == "meta", show(el)
        assert ("pubsub", "leaf") in disco_identities(resp), show(el)
        forms = qel.findall(q(NS_DATA, "x"))
        metas = [parse_form(x) for x in forms]
        metas = [m for m in metas if m.get("FORM_TYPE") == [NS_META_DATA]]
        assert len(metas) == 1, "expected one pubsub#meta-data form: %s" % show(el)
        meta = metas[0]
        assert meta.get("pubsub#title") == ["Princely Musings"], meta
        assert "alice@localhost" in meta.get("pubsub#owner", []), meta
        x = [x for x in forms if parse_form(x).get("FORM_TYPE") == [NS_META_DATA]][0]
        assert x.get("type") == "result", show(x)

        resp = await disco(bob, NS_DISCO_INFO, node="no-such-node")
        assert_ps_error(resp, "item-not-found", what="disco#info on a missing node")
    run(body)


def test_node_disco_items_lists_item_ids(herald):
    """XEP-0060 §5.5 (discover items for a node) and the 'item-ids' feature:
    disco#items with node='name' lists one <item jid='pubsub.localhost'
    name='ItemID'/> per item, after a replace (same id) still once, and not a
    retracted one."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "ids")
        for i in ("one", "two", "three", "two"):
            await must_publish(alice, "ids", i, payload_xml("urn:example:e2e", "n", i))
        resp = await alice.iq("<pubsub xmlns='%s'><retract node='ids'><item id='one'/>"
                              "</retract></pubsub>" % NS_PUBSUB, to=PUBSUB, itype="set")
        assert_result(resp, "retract one")
        resp = await disco(alice, NS_DISCO_ITEMS, node="ids")
        el = assert_result(resp, "disco#items node=ids")
        qel = el.find(q(NS_DISCO_ITEMS, "query"))
        assert qel.get("node") == "ids", show(el)
        items = qel.findall(q(NS_DISCO_ITEMS, "item"))
        names = sorted(i.get("name") for i in items)
        assert names == ["three", "two"], show(el)
        assert all(i.get("jid") == PUBSUB for i in items), show(el)
    run(body)
