"""REST bridge and XMPP clients on the same pubsub service
(docs/rest-api.md: "It calls the same pubsub service as XMPP clients"):
items POSTed over HTTP reach slixmpp subscribers as XEP-0335 JSON
containers; items published with slixmpp read back over HTTP and arrive on
open event streams; node changes made over HTTP are visible over XMPP; a
token acts as its JID under the affiliations set over XMPP."""
import json
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from e2e_helpers import q, run, show
from pubsub_helpers import (NS_DISCO_ITEMS, NS_EVENT, PUBSUB, assert_result, canon, disco,
                            event_of, get_config, items_event_children, items_of, must_create,
                            must_publish, must_subscribe, next_event, ps_client, publish,
                            set_affiliation, subscribe)
from rest_helpers import (EventStream, Rest, assert_problem, expect,
                          in_thread, item_path, items_path, new_token, node_path, rest_server)
from rest_helpers import _rest_streams  # noqa: F401 (autouse: ends curl -N streams)

NS_JSON = "urn:xmpp:json:0"
ATOM = "http://www.w3.org/2005/Atom"


def json_payload(value):
    return "<json xmlns='%s'>%s</json>" % (NS_JSON, escape(json.dumps(value)))


def only_item(msg):
    children = [c for c in items_event_children(msg) if c.tag == q(NS_EVENT, "item")]
    assert len(children) == 1, "expected one <item/> in %s" % show(msg.xml)
    return children[0]


def test_http_json_item_notifies_xmpp_subscriber(herald):
    """An item POSTed as application/json reaches a slixmpp subscriber as a
    pubsub notification (from the pubsub service, with the item id the POST
    returned) whose payload is <json xmlns='urn:xmpp:json:0'> carrying the
    same JSON value; an XML item arrives as that element; a DELETE over
    HTTP is a <retract/> notification."""
    srv, alice = rest_server(herald)
    value = {"kW": 3.5, "feeder": "grid/feeder-7", "tags": ["a<b", "c&d", "\"q\""],
             "nested": {"ok": True, "none": None, "n": -12.25}, "text": "caf\u00e9 \u2603"}

    async def body():
        bob = await ps_client(srv, "bob", "builder")
        await in_thread(alice.create, "grid/feeder-7")
        await must_subscribe(bob, "grid/feeder-7", "bob@localhost")
        r = await in_thread(alice.post, items_path("grid/feeder-7"), value)
        expect(r, 201)
        item_id = r.json()["id"]
        msg = await next_event(bob, "items", "grid/feeder-7")
        assert msg.xml.get("from") == PUBSUB, show(msg.xml)
        item = only_item(msg)
        assert item.get("id") == item_id, show(msg.xml)
        payload = list(item)
        assert len(payload) == 1 and payload[0].tag == q(NS_JSON, "json"), show(msg.xml)
        assert json.loads(payload[0].text) == value, show(payload[0])
        # An XML item arrives as the same element.
        atom = ("<entry xmlns='%s'><title>Breaker &amp; fuse</title>"
                "<link href='http://example.org/x?a=1&amp;b=2'/></entry>" % ATOM)
        r = await in_thread(lambda: alice.put(item_path("grid/feeder-7", "atom-1"), atom,
                                              ctype="application/xml"))
        expect(r, 201)
        msg = await next_event(bob, "items", "grid/feeder-7")
        item = only_item(msg)
        assert item.get("id") == "atom-1"
        assert canon(list(item)[0]) == canon(ET.fromstring(atom)), show(msg.xml)
        # Retraction over HTTP.
        expect(await in_thread(alice.delete, item_path("grid/feeder-7", item_id)), 204)
        msg = await next_event(bob, "items", "grid/feeder-7")
        retracts = [c for c in items_event_children(msg) if c.tag == q(NS_EVENT, "retract")]
        assert [c.get("id") for c in retracts] == [item_id], show(msg.xml)
        # And XMPP item retrieval sees what HTTP published.
        stored = await items_of(bob, "grid/feeder-7")
        assert list(stored) == ["atom-1"], stored
    run(body)


def test_xmpp_items_read_over_http_and_streamed(herald):
    """Items published with slixmpp, one a <json xmlns='urn:xmpp:json:0'>
    payload and one an arbitrary namespaced element, are returned by GET
    items and GET items/{id} ("json" value / "xml" string) and pushed on an
    event stream opened before they were published (event: item, id: seq,
    data: the item)."""
    srv, alice_rest = rest_server(herald)
    bob = Rest(srv, new_token(srv, "bob@localhost", scope="read"))
    value = {"temp": 21.5, "unit": "\u00b0C", "s": "<not markup> & \"quoted\"", "l": [1, [2]]}
    atom = ("<entry xmlns='%s' xmlns:geo='urn:example:geo'><title type='html'>"
            "&lt;b&gt;hot&lt;/b&gt;</title><geo:pos lat='1.5' lon='-2'>here</geo:pos></entry>"
            % ATOM)
    state = {}

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "weather")
        s = await in_thread(lambda: EventStream(srv, "weather", bob.tok).wait_ready())
        state["stream"] = s
        await must_publish(alice, "weather", "j1", json_payload(value))
        await must_publish(alice, "weather", "x1", atom)
        resp = await publish(alice, "weather", None, json_payload([1, 2, 3]))
        el = assert_result(resp)
        state["generated"] = el.find(".//{http://jabber.org/protocol/pubsub}item").get("id")
    run(body)
    s = state["stream"]
    gen = state["generated"]
    page = bob.items("weather")
    assert [i["id"] for i in page["items"]] == [gen, "x1", "j1"], page
    j1 = bob.item("weather", "j1")
    assert j1["json"] == value and "xml" not in j1, j1
    assert j1["publisher"] == "alice@localhost", j1
    x1 = bob.item("weather", "x1")
    assert "json" not in x1 and canon(ET.fromstring(x1["xml"])) == canon(ET.fromstring(atom)), x1
    assert bob.item("weather", gen)["json"] == [1, 2, 3]
    assert x1["seq"] > j1["seq"]
    evs = s.take(3)
    assert [e.type for e in evs] == ["item"] * 3, evs
    assert [e.json()["id"] for e in evs] == ["j1", "x1", gen]
    for e in evs:
        data = e.json()
        assert e.id == str(data["seq"]), e
        assert data == bob.item("weather", data["id"]), e
    assert s.pending() == []


def test_json_container_forms_from_xmpp(herald):
    """A urn:xmpp:json:0 container reads back as "json" however the XMPP
    client wrote it (a namespace prefix, CDATA, character references,
    surrounding whitespace); one whose text is not JSON reads back as
    "xml"."""
    srv, alice_rest = rest_server(herald)
    value = {"a": "<b>&", "n": 1}
    forms = {
        "prefixed": "<j:json xmlns:j='%s'>%s</j:json>" % (NS_JSON, escape(json.dumps(value))),
        "cdata": "<json xmlns='%s'><![CDATA[%s]]></json>" % (NS_JSON, json.dumps(value)),
        "charrefs": "<json xmlns='%s'>{&#34;a&#34;:&#x22;&lt;b>&amp;&#34;,&#x22;n&#x22;:1}</json>"
                    % NS_JSON,
        "spaces": "<json xmlns='%s'>\n  %s\n</json>" % (NS_JSON, escape(json.dumps(value))),
    }

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "forms")
        for item_id, payload in forms.items():
            await must_publish(alice, "forms", item_id, payload)
        await must_publish(alice, "forms", "notjson",
                           "<json xmlns='%s'>{not json</json>" % NS_JSON)
    run(body)
    for item_id in forms:
        got = alice_rest.item("forms", item_id)
        assert got.get("json") == value, "%s: %r" % (item_id, got)
    got = alice_rest.item("forms", "notjson")
    assert "json" not in got and "{not json" in got["xml"], got


def test_token_acts_as_its_jid(herald):
    """Affiliations set over XMPP apply to a token exactly as to its JID: a
    token of bob cannot publish to alice's node (publish_model publishers,
    403) until alice makes bob a publisher; then his item's publisher is
    bob. As an outcast he can no longer read it (403); a member may read a
    whitelist node that others may not."""
    srv, alice_rest = rest_server(herald)
    bob = Rest(srv, new_token(srv, "bob@localhost"))
    carol = Rest(srv, new_token(srv, "carol@localhost"))

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "team")
        await must_create(alice, "club", {"pubsub#access_model": "whitelist"})
        r = await in_thread(bob.post, items_path("team"), {"by": "bob"})
        assert_problem(r, 403, "forbidden")
        await set_affiliation(alice, "team", "bob@localhost", "publisher")
        r = await in_thread(bob.post, items_path("team"), {"by": "bob"})
        expect(r, 201)
        got = await in_thread(bob.item, "team", r.json()["id"])
        assert got["publisher"] == "bob@localhost", got
        node = expect(await in_thread(bob.get, node_path("team")), 200).json()
        assert node["affiliation"] == "publisher", node
        await set_affiliation(alice, "team", "bob@localhost", "outcast")
        assert_problem(await in_thread(bob.get, items_path("team")), 403, "forbidden")
        assert_problem(await in_thread(bob.post, items_path("team"), {"x": 1}), 403, "forbidden")
        # whitelist: members read, others get not-allowed/closed-node.
        assert_problem(await in_thread(carol.get, items_path("club")), 403, "not-allowed",
                       "closed-node")
        nodes = [n["node"] for n in expect(await in_thread(carol.get, "/v1/nodes"), 200)
                 .json()["nodes"]]
        assert "club" not in nodes and "team" in nodes, nodes
        await set_affiliation(alice, "club", "carol@localhost", "member")
        expect(await in_thread(carol.get, items_path("club")), 200)
        nodes = [n["node"] for n in expect(await in_thread(carol.get, "/v1/nodes"), 200)
                 .json()["nodes"]]
        assert "club" in nodes, nodes
    run(body)


def test_http_node_changes_seen_over_xmpp(herald):
    """A node created over HTTP with a configuration is an XMPP node with
    that configuration (disco#items, the owner's configuration form); a
    PATCH changes it; purge and delete over HTTP notify XMPP subscribers;
    GET subscriptions (owner only) lists the XMPP subscriptions."""
    srv, alice = rest_server(herald)

    async def body():
        xalice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await in_thread(alice.create, "grid/substation-2",
                        {"title": "Substation 2", "max_items": 7, "notify_config": True})
        resp = await disco(bob, NS_DISCO_ITEMS)
        nodes = [i.get("node") for i in assert_result(resp).iter(q(NS_DISCO_ITEMS, "item"))]
        assert "grid/substation-2" in nodes, show(resp.xml)
        _, form = await get_config(xalice, "grid/substation-2")
        assert form["pubsub#title"] == ["Substation 2"], form
        assert form["pubsub#max_items"] == ["7"], form
        sub = await must_subscribe(bob, "grid/substation-2", "bob@localhost")
        subs = expect(await in_thread(alice.get, node_path("grid/substation-2", "subscriptions")),
                      200).json()
        assert subs == {"subscriptions": [{"jid": "bob@localhost", "subid": sub.get("subid"),
                                           "state": "subscribed"}]}, subs
        r = await in_thread(alice.patch, node_path("grid/substation-2"),
                            {"config": {"title": "Substation II"}})
        expect(r, 200)
        msg = await next_event(bob, "configuration", "grid/substation-2")
        assert event_of(msg) is not None
        _, form = await get_config(xalice, "grid/substation-2")
        assert form["pubsub#title"] == ["Substation II"], form
        await in_thread(alice.publish, "grid/substation-2", {"v": 1})
        await next_event(bob, "items", "grid/substation-2")
        expect(await in_thread(alice.post, node_path("grid/substation-2", "purge")), 204)
        await next_event(bob, "purge", "grid/substation-2")
        assert await items_of(bob, "grid/substation-2") == {}
        expect(await in_thread(alice.delete, node_path("grid/substation-2")), 204)
        await next_event(bob, "delete", "grid/substation-2")
        resp = await subscribe(bob, "grid/substation-2")
        assert resp["type"] == "error", show(resp.xml)
    run(body)


def test_subscriptions_list_states(herald):
    """GET /v1/nodes/{node}/subscriptions shows subscribed and pending
    (authorize access model) subscriptions made over XMPP; a non-owner gets
    403."""
    srv, alice = rest_server(herald)
    bob_rest = Rest(srv, new_token(srv, "bob@localhost"))

    async def body():
        bob = await ps_client(srv, "bob", "builder")
        carol = await ps_client(srv, "carol", "singer")
        await in_thread(alice.create, "vip", {"access_model": "authorize"})
        await in_thread(alice.create, "pub")
        await must_subscribe(bob, "vip", "bob@localhost", state="pending")
        await must_subscribe(carol, "pub", "carol@localhost")
        await must_subscribe(bob, "pub", "bob@localhost")
        vip = expect(await in_thread(alice.get, node_path("vip", "subscriptions")), 200).json()
        assert [(s["jid"], s["state"]) for s in vip["subscriptions"]] == \
            [("bob@localhost", "pending")], vip
        pub = expect(await in_thread(alice.get, node_path("pub", "subscriptions")), 200).json()
        assert sorted((s["jid"], s["state"]) for s in pub["subscriptions"]) == \
            [("bob@localhost", "subscribed"), ("carol@localhost", "subscribed")], pub
        assert all(s["subid"] for s in pub["subscriptions"]), pub
        assert_problem(await in_thread(bob_rest.get, node_path("pub", "subscriptions")), 403,
                       "forbidden")
    run(body)


def test_outcast_stream_gets_no_more_items(herald):
    """A token acts as its JID "exactly as an XMPP client": when alice makes
    bob an outcast, his XMPP subscription stops receiving items, and so
    must the event stream bob's token opened before (ended, or at least no
    items any more). Checked without waiting on silence: after the item
    published while he is an outcast, bob's affiliation is set back to
    none and a marker item published; the stream may carry the marker but
    never the item published while he was an outcast."""
    srv, alice_rest = rest_server(herald)
    bob = Rest(srv, new_token(srv, "bob@localhost", scope="read"))
    state = {}

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        xbob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "team")
        await must_subscribe(xbob, "team", "bob@localhost")
        s = await in_thread(lambda: EventStream(srv, "team", bob.tok).wait_ready())
        await must_publish(alice, "team", "before", json_payload({"n": 0}))
        ev = await in_thread(s.next)
        assert ev.json()["id"] == "before", ev
        await next_event(xbob, "items", "team")
        await set_affiliation(alice, "team", "bob@localhost", "outcast")
        await must_publish(alice, "team", "secret", json_payload({"n": 1}))
        await set_affiliation(alice, "team", "bob@localhost", "none")
        await must_publish(alice, "team", "marker", json_payload({"n": 2}))
        seen = []
        while "marker" not in seen:
            try:
                ev = await in_thread(s.next, 5.0)
            except AssertionError:
                break  # the stream ended (or was silent): nothing leaked
            seen.append(ev.json().get("id") if ev.type == "item" else ev.type)
        state["seen"] = seen
        xmpp_ids = []
        for m in await drain(xbob):
            for it in items_event_children(m):
                xmpp_ids.append(it.get("id"))
        state["xmpp"] = xmpp_ids
    run(body)
    assert "secret" not in state["xmpp"], "the XMPP outcast was notified: %r" % state["xmpp"]
    assert "secret" not in state["seen"], (
        "bob's event stream carried an item published while bob was an outcast of the node "
        "(events after the change: %r)" % state["seen"])


async def drain(c):
    from pubsub_helpers import drain_events
    return await drain_events(c)
