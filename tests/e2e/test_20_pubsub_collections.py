"""XEP-0060 publish-subscribe with collection nodes (the XEP-0248 subset the
service implements): a collection holds nodes, not items; its subscribers
are notified of its children's items."""
from e2e_helpers import q, run, show
from pubsub_helpers import (NS_DISCO_INFO, NS_DISCO_ITEMS, PUBSUB, assert_ps_error,
                            assert_result, create_node, disco, disco_features, disco_identities,
                            get_config, get_items, items_event_children, must_create,
                            must_publish, must_subscribe, next_event, payload_xml, ps_client,
                            publish)

USERS = {"alice": "wonderland", "bob": "builder"}
NS_SHIM = "http://jabber.org/protocol/shim"


def test_collection_node(herald):
    """XEP-0060 §5.1 ('collections' advertised), §5.3 (disco#info of a
    collection: identity pubsub/collection), §5.2/XEP-0248 (disco#items of a
    collection lists its child nodes), §7.1.3.2 (publishing to a collection:
    <feature-not-implemented/> + <unsupported feature='publish'/>),
    §6.5.9.5 (retrieving items of a collection: <unsupported
    feature='retrieve-items'/>); XEP-0248: a leaf joins a collection with
    pubsub#collection, and a subscriber of the collection receives the
    leaf's notifications with a SHIM 'Collection' header (XEP-0131) naming
    the collection."""
    srv = herald(users=USERS)

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        feats = disco_features(await disco(alice, NS_DISCO_INFO))
        assert "http://jabber.org/protocol/pubsub#collections" in feats, feats
        await must_create(alice, "blogs", {"pubsub#node_type": "collection"})
        await must_create(alice, "hamlet", {"pubsub#collection": "blogs"})
        _, form = await get_config(alice, "hamlet")
        assert form.get("pubsub#collection") == ["blogs"], form

        resp = await disco(bob, NS_DISCO_INFO, node="blogs")
        assert_result(resp, "disco#info of a collection")
        assert ("pubsub", "collection") in disco_identities(resp), show(resp.xml)
        resp = await disco(bob, NS_DISCO_ITEMS, node="blogs")
        items = assert_result(resp).find(q(NS_DISCO_ITEMS, "query")).findall(
            q(NS_DISCO_ITEMS, "item"))
        assert [(i.get("jid"), i.get("node")) for i in items] == [(PUBSUB, "hamlet")], \
            show(resp.xml)

        assert_ps_error(await publish(alice, "blogs", "x", payload_xml("urn:example:e2e", "e",
                                                                       "x")),
                        "feature-not-implemented", "unsupported", "publish",
                        what="publish to a collection")

        await must_subscribe(bob, "blogs", "bob@localhost")
        await must_publish(alice, "hamlet", "h1", payload_xml("urn:example:e2e", "e", "h1"))
        msg = await next_event(bob, "items", "hamlet")
        assert [i.get("id") for i in items_event_children(msg)] == ["h1"], show(msg.xml)
        headers = msg.xml.find(q(NS_SHIM, "headers"))
        assert headers is not None, "no SHIM headers: %s" % show(msg.xml)
        coll = [h.text for h in headers.findall(q(NS_SHIM, "header"))
                if h.get("name") == "Collection"]
        assert coll == ["blogs"], show(msg.xml)

        # A leaf cannot join a collection that does not exist.
        resp = await create_node(alice, "orphan", {"pubsub#collection": "no-such-collection"})
        assert resp["type"] == "error", "joined a missing collection: %s" % show(resp.xml)
        assert_ps_error(await get_items(alice, "blogs"), "feature-not-implemented",
                        "unsupported", "retrieve-items", what="items of a collection")
    run(body)
