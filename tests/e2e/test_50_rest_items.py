"""REST bridge, items (docs/rest-api.md "Items on the wire" and "Routes"):
POST with a server-chosen id, idempotent PUT, reading one item and pages of
items newest first with "next" cursors, max_items eviction, retraction, JSON
and XML payloads read back, percent-encoded item ids. Driven with curl."""
import json
import xml.etree.ElementTree as ET

from pubsub_helpers import canon
from rest_helpers import (TIME_RE, Rest, assert_problem, enc, expect,
                          item_path, items_path, new_token, rest_server)
from rest_helpers import _rest_streams  # noqa: F401 (autouse: ends curl -N streams)


def test_post_item_returns_id_and_location(herald):
    """POST /v1/nodes/{node}/items answers 201 with {"node", "id", "seq"} (a
    server-chosen id, and the seq it reads back with) and a Location that reads the item back: id, seq,
    published (RFC 3339 UTC), publisher (the token's JID) and the JSON."""
    srv, alice = rest_server(herald)
    alice.create("sensors")
    value = {"kW": 3.5, "phase": [1, 2, 3], "ok": True, "site": "north"}
    r = expect(alice.post(items_path("sensors"), value), 201)
    assert r.ctype == "application/json", r
    body = r.json()
    assert set(body) == {"node", "id", "seq"}, body
    assert body["node"] == "sensors" and isinstance(body["id"], str) and body["id"], body
    assert r.header("Location") == item_path("sensors", body["id"]), r
    got = expect(alice.get(r.header("Location")), 200).json()
    assert got["id"] == body["id"], got
    assert isinstance(got["seq"], int) and got["seq"] >= 1, got
    assert body["seq"] == got["seq"], (body, got)
    assert TIME_RE.match(got["published"]), got
    assert got["publisher"] == "alice@localhost", got
    assert got["json"] == value, got
    assert "xml" not in got, got
    # A second POST gets another id and a higher seq.
    second = alice.publish("sensors", {"kW": 4})
    assert second != body["id"]
    assert alice.item("sensors", second)["seq"] > got["seq"]


def test_put_is_idempotent(herald):
    """PUT /v1/nodes/{node}/items/{id}: 201 for a new id, 200 when it
    replaces the item; the same body twice leaves exactly one item, with a
    new, higher seq (docs: "an item republished with the same id gets a
    new, higher seq")."""
    srv, alice = rest_server(herald)
    alice.create("meters")
    value = {"reading": 1234, "unit": "kWh"}
    r1 = alice.put(item_path("meters", "m-1"), value)
    expect(r1, 201, "first PUT")
    seq1 = alice.item("meters", "m-1")["seq"]
    assert r1.json() == {"node": "meters", "id": "m-1", "seq": seq1}, r1
    assert r1.header("Location") == item_path("meters", "m-1"), r1
    r2 = alice.put(item_path("meters", "m-1"), value)
    expect(r2, 200, "second PUT of the same id")
    assert r2.json() == {"node": "meters", "id": "m-1",
                         "seq": alice.item("meters", "m-1")["seq"]}, r2
    assert r2.json()["seq"] > seq1, r2
    items = alice.items("meters")["items"]
    assert [i["id"] for i in items] == ["m-1"], items
    assert items[0]["json"] == value and items[0]["seq"] > seq1, items
    # A different body under the same id replaces the content.
    expect(alice.put(item_path("meters", "m-1"), {"reading": 1240}), 200)
    items = alice.items("meters")["items"]
    assert len(items) == 1 and items[0]["json"] == {"reading": 1240}, items
    node = expect(alice.get("/v1/nodes/meters"), 200).json()
    assert node["items"] == 1, node


def test_paging_newest_first_with_cursor(herald):
    """GET items?max=3 pages newest first; "next" is the cursor for the
    following (older) page and null on the last one: following it sees all
    7 items exactly once, in order."""
    srv, alice = rest_server(herald)
    alice.create("paged", {"max_items": 50})
    ids = [alice.publish("paged", {"n": i}, "p%d" % i) for i in range(7)]
    pages, before, seen = [], None, []
    while True:
        q = "?max=3" + ("&before=%s" % before if before is not None else "")
        body = expect(alice.get(items_path("paged") + q), 200).json()
        assert set(body) == {"items", "next"}, body
        pages.append(body)
        assert len(body["items"]) <= 3, body
        seen += body["items"]
        if body["next"] is None:
            break
        assert isinstance(body["next"], str) and body["next"], body
        assert len(pages) < 10, "paging does not end: %r" % pages
        before = body["next"]
    assert [len(p["items"]) for p in pages] == [3, 3, 1], pages
    assert [i["id"] for i in seen] == list(reversed(ids)), seen
    assert [i["json"]["n"] for i in seen] == [6, 5, 4, 3, 2, 1, 0]
    seqs = [i["seq"] for i in seen]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 7, seqs
    # Without max: the default page (20) holds all 7 and there is no next.
    body = alice.items("paged")
    assert [i["id"] for i in body["items"]] == list(reversed(ids)) and body["next"] is None, body
    # max equal to the count: no further page.
    assert alice.items("paged", max=7)["next"] is None
    assert alice.items("paged", max=500)["next"] is None
    # max=1 pages one at a time.
    assert [i["id"] for i in alice.all_items("paged", page=1)] == list(reversed(ids))


def test_max_items_eviction_visible(herald):
    """A node with max_items 3 keeps the 3 most recent items: the older ones
    are gone from the list and from GET by id (404)."""
    srv, alice = rest_server(herald)
    alice.create("ring", {"max_items": 3})
    ids = [alice.publish("ring", {"n": i}) for i in range(5)]
    items = alice.items("ring")["items"]
    assert [i["id"] for i in items] == [ids[4], ids[3], ids[2]], items
    for gone in ids[:2]:
        assert_problem(alice.get(item_path("ring", gone)), 404, "item-not-found")
    assert expect(alice.get("/v1/nodes/ring"), 200).json()["items"] == 3


def test_retract_item(herald):
    """DELETE /v1/nodes/{node}/items/{id} answers 204 without a body; the
    item is gone (404), and retracting it again is 404 item-not-found."""
    srv, alice = rest_server(herald)
    alice.create("r")
    keep = alice.publish("r", {"keep": True})
    drop = alice.publish("r", {"keep": False})
    r = alice.delete(item_path("r", drop))
    expect(r, 204)
    assert r.body == b"", r
    assert_problem(alice.get(item_path("r", drop)), 404, "item-not-found")
    assert [i["id"] for i in alice.items("r")["items"]] == [keep]
    assert_problem(alice.delete(item_path("r", drop)), 404, "item-not-found")


def test_xml_payloads(herald):
    """An application/xml or text/xml body that is one namespaced element
    becomes the payload as is: it reads back as an "xml" string holding
    the same element (structurally), with no "json" key."""
    srv, alice = rest_server(herald)
    alice.create("atom")
    entry = ("<entry xmlns='http://www.w3.org/2005/Atom' xml:lang='en'>"
             "<title type='text'>Fuse &amp; breaker &lt;7&gt;</title>"
             "<x:ext xmlns:x='urn:example:ext' level='2'>caf\u00e9</x:ext></entry>")
    r = expect(alice.put(item_path("atom", "e1"), entry, ctype="application/xml"), 201)
    assert r.json()["id"] == "e1"
    other = "<reading xmlns=\"urn:example:meter\" v=\"1\"/>"
    expect(alice.put(item_path("atom", "e2"), other, ctype="text/xml; charset=utf-8"), 201)
    got = alice.item("atom", "e1")
    assert "json" not in got and isinstance(got["xml"], str), got
    assert canon(ET.fromstring(got["xml"])) == canon(ET.fromstring(entry)), got
    got2 = alice.item("atom", "e2")
    assert canon(ET.fromstring(got2["xml"])) == canon(ET.fromstring(other)), got2
    # An XML element in the JSON namespace whose text is not JSON reads back as xml.
    odd = "<json xmlns='urn:xmpp:json:0'>not json at all</json>"
    expect(alice.put(item_path("atom", "e3"), odd, ctype="application/xml"), 201)
    got3 = alice.item("atom", "e3")
    assert "json" not in got3, got3
    assert canon(ET.fromstring(got3["xml"])) == canon(ET.fromstring(odd)), got3


def test_json_values_round_trip(herald):
    """Any JSON value (object, array, string, number, null) travels in the
    XEP-0335 container and reads back as the same value, including
    characters that XML must escape and text that looks like markup."""
    srv, alice = rest_server(herald)
    alice.create("values")
    values = {
        "obj": {"s": "a<b>&c\"d'e ]]> </json>", "nl": "l1\nl2\tt\r", "u": "\u00e9\u4e2d\U0001F600",
                "n": [0, -1, 2.5, 1e-7, 123456789012345], "t": True, "f": False, "z": None,
                "deep": {"a": {"b": {"c": [[[]]]}}}},
        "arr": [1, "two", {"three": 3}],
        "str": "just a string",
        "num": 42,
        "null": None,
        "ctl": {"c": "\u0001\u001f"},
    }
    for key, value in values.items():
        r = expect(alice.put(item_path("values", key), json.dumps(value),
                             ctype="application/json"), 201, key)
        assert r.json()["id"] == key
    for key, value in values.items():
        got = alice.item("values", key)
        assert "json" in got, got
        assert got["json"] == value, "%s: %r != %r" % (key, got["json"], value)
    # Content-Type parameters are allowed.
    expect(alice.put(item_path("values", "cs"), {"k": 1},
                     ctype="application/json; charset=utf-8"), 201)
    assert alice.item("values", "cs")["json"] == {"k": 1}


def test_item_ids_percent_encoded(herald):
    """Item ids are one percent-encoded path segment: an id with '/', space
    and non-ASCII characters round-trips through PUT, Location, GET and
    DELETE, and is listed decoded."""
    srv, alice = rest_server(herald)
    alice.create("ids/odd")
    item_id = "a b/c?d#e%f\u00e9"
    r = expect(alice.put(item_path("ids/odd", item_id), {"v": 1}), 201)
    assert r.json() == {"node": "ids/odd", "id": item_id,
                        "seq": alice.item("ids/odd", item_id)["seq"]}, r
    loc = r.header("Location")
    assert loc == "/v1/nodes/ids%2Fodd/items/" + enc(item_id), r
    assert alice.get(loc).json()["id"] == item_id
    assert [i["id"] for i in alice.items("ids/odd")["items"]] == [item_id]
    # Lower-case escapes name the same item.
    lower = "/v1/nodes/ids%2fodd/items/" + enc(item_id).lower()
    assert expect(alice.get(lower), 200).json()["id"] == item_id
    expect(alice.delete(loc), 204)
    assert alice.items("ids/odd")["items"] == []


def test_node_item_count_and_reader_token(herald):
    """A token acting for another account with only the read scope reads
    the items of an open node exactly as the owner sees them."""
    srv, alice = rest_server(herald)
    alice.create("shared")
    a = alice.publish("shared", {"a": 1})
    b = alice.publish("shared", {"b": 2})
    bob = Rest(srv, new_token(srv, "bob@localhost", scope="read"))
    assert bob.items("shared") == alice.items("shared")
    assert [i["id"] for i in bob.items("shared")["items"]] == [b, a]
    assert bob.item("shared", a)["json"] == {"a": 1}
    node = expect(bob.get("/v1/nodes/shared"), 200).json()
    assert node["items"] == 2 and node["affiliation"] == "none", node
