"""REST bridge, nodes (docs/rest-api.md "Routes"): create with a
configuration (short and pubsub#-prefixed field names) or a server-chosen
name, Location headers, GET of one node and of the list, PATCH (owner
only), DELETE (204 then 404), purge (204, no items left), node names with
'/' percent-encoded."""
from rest_helpers import (TIME_RE, Rest, assert_problem, expect,
                          items_path, new_token, node_path, rest_server)
from rest_helpers import _rest_streams  # noqa: F401 (autouse: ends curl -N streams)


def test_create_with_config_and_read_back(herald):
    """POST /v1/nodes with {"node", "config"} answers 201 with the node
    object and Location /v1/nodes/grid%2Ffeeder-7; GET of that Location
    returns the configuration given (max_items, title, access_model) with
    the documented value types, type leaf, created, items 0, affiliation
    owner."""
    srv, alice = rest_server(herald)
    r = expect(alice.post("/v1/nodes", {"node": "grid/feeder-7",
                                        "config": {"max_items": 5, "title": "Feeder 7",
                                                   "access_model": "open",
                                                   "pubsub#deliver_payloads": True,
                                                   "notify_retract": False}}), 201)
    assert r.header("Location") == "/v1/nodes/grid%2Ffeeder-7", r
    assert r.ctype == "application/json"
    created = r.json()
    got = expect(alice.get(r.header("Location")), 200).json()
    assert got == created, (got, created)
    assert got["node"] == "grid/feeder-7" and got["type"] == "leaf", got
    assert TIME_RE.match(got["created"]), got
    assert got["items"] == 0 and got["affiliation"] == "owner", got
    cfg = got["config"]
    assert cfg["max_items"] == 5 and cfg["title"] == "Feeder 7", cfg
    assert cfg["access_model"] == "open" and cfg["publish_model"] == "publishers", cfg
    assert cfg["deliver_payloads"] is True and cfg["notify_retract"] is False, cfg
    assert not any(k.startswith("pubsub#") for k in cfg), cfg
    # Lower-case percent-encoding names the same node.
    expect(alice.get("/v1/nodes/grid%2ffeeder-7"), 200)
    # The list holds it.
    nodes = expect(alice.get("/v1/nodes"), 200).json()["nodes"]
    assert {"node": "grid/feeder-7", "type": "leaf", "items": 0} in nodes or \
        any(n["node"] == "grid/feeder-7" and n["type"] == "leaf" for n in nodes), nodes
    # Items published count.
    alice.publish("grid/feeder-7", {"v": 1})
    assert expect(alice.get(node_path("grid/feeder-7")), 200).json()["items"] == 1


def test_server_chosen_node_name(herald):
    """POST /v1/nodes without "node" (empty object or no body at all)
    creates a node with a server-chosen name, returned in the body and in
    Location; two such nodes get different names."""
    srv, alice = rest_server(herald)
    a = alice.create(None)
    r = expect(alice.post("/v1/nodes"), 201)
    b = r.json()
    assert a["node"] and b["node"] and a["node"] != b["node"], (a, b)
    assert r.header("Location") == node_path(b["node"]), r
    c = alice.create(None, {"title": "anonymous"})
    assert c["config"]["title"] == "anonymous", c
    for n in (a, b, c):
        assert expect(alice.get(node_path(n["node"])), 200).json()["node"] == n["node"]
    listed = {n["node"] for n in alice.get("/v1/nodes").json()["nodes"]}
    assert {a["node"], b["node"], c["node"]} <= listed, listed


def test_node_names_round_trip(herald):
    """Node names are one percent-encoded path segment: names with '/',
    spaces, '%', '?' and non-ASCII characters round-trip through create,
    Location, GET, items and DELETE."""
    srv, alice = rest_server(herald)
    names = ["grid/feeder-7", "a b", "100%/x?y#z", "caf\u00e9/\u2603", "a/b/c/"]
    for name in names:
        r = expect(alice.post("/v1/nodes", {"node": name}), 201, name)
        assert r.json()["node"] == name
        loc = r.header("Location")
        assert loc == node_path(name), (loc, name)
        got = expect(alice.get(loc), 200).json()
        assert got["node"] == name, got
        item = alice.publish(name, {"in": name})
        assert alice.item(name, item)["json"] == {"in": name}
    listed = {n["node"] for n in alice.get("/v1/nodes").json()["nodes"]}
    assert set(names) <= listed, listed
    for name in names:
        expect(alice.delete(node_path(name)), 204)
    assert alice.get("/v1/nodes").json()["nodes"] == []


def test_patch_reconfigures_owner_only(herald):
    """PATCH /v1/nodes/{node} with {"config": {...}} answers 200 with the
    node object; the change is visible on GET and takes effect (max_items
    lowered); other fields keep their values. A non-owner (even one with
    the manage scope) gets 403; an unknown field 400; nothing changes on
    a refused PATCH."""
    srv, alice = rest_server(herald)
    alice.create("cfg", {"max_items": 10, "title": "Before"})
    for i in range(5):
        alice.publish("cfg", {"n": i})
    r = expect(alice.patch(node_path("cfg"), {"config": {"title": "After", "max_items": 2}}), 200)
    node = r.json()
    assert node["config"]["title"] == "After" and node["config"]["max_items"] == 2, node
    got = expect(alice.get(node_path("cfg")), 200).json()
    assert got["config"] == node["config"], (got, node)
    assert got["config"]["access_model"] == "open", got
    alice.publish("cfg", {"n": 5})
    items = alice.items("cfg")["items"]
    assert [i["json"]["n"] for i in items] == [5, 4], items
    bob = Rest(srv, new_token(srv, "bob@localhost"))
    assert_problem(bob.patch(node_path("cfg"), {"config": {"title": "Bob's"}}), 403, "forbidden")
    assert_problem(alice.patch(node_path("cfg"), {"config": {"no_such_field": 1}}), 400,
                   "bad-request")
    assert_problem(alice.patch(node_path("cfg"), {"config": {"max_items": "lots"}}), 400)
    assert_problem(alice.patch(node_path("cfg"), {"title": "no config"}), 400, "bad-request")
    assert_problem(alice.patch(node_path("nope"), {"config": {"title": "x"}}), 404,
                   "item-not-found")
    assert expect(alice.get(node_path("cfg")), 200).json()["config"]["title"] == "After"
    # The full pubsub# form is accepted on input too.
    node = expect(alice.patch(node_path("cfg"), {"config": {"pubsub#title": "Prefixed"}}),
                  200).json()
    assert node["config"]["title"] == "Prefixed", node


def test_delete_node(herald):
    """DELETE /v1/nodes/{node}: 204 without a body, then GET 404, items
    404, a second DELETE 404; the list no longer holds it; a non-owner gets
    403 and the node stays; the name can be created again, empty."""
    srv, alice = rest_server(herald)
    alice.create("doomed")
    alice.publish("doomed", {"v": 1})
    bob = Rest(srv, new_token(srv, "bob@localhost"))
    assert_problem(bob.delete(node_path("doomed")), 403, "forbidden")
    expect(alice.get(node_path("doomed")), 200)
    r = expect(alice.delete(node_path("doomed")), 204)
    assert r.body == b"" and r.header("Content-Length") is None, r
    p = assert_problem(alice.get(node_path("doomed")), 404, "item-not-found")
    assert p["detail"] == "no such node", p
    assert_problem(alice.get(items_path("doomed")), 404, "item-not-found")
    assert_problem(alice.delete(node_path("doomed")), 404, "item-not-found")
    assert "doomed" not in [n["node"] for n in alice.get("/v1/nodes").json()["nodes"]]
    alice.create("doomed")
    assert alice.items("doomed")["items"] == []


def test_purge_node(herald):
    """POST /v1/nodes/{node}/purge: 204, every item gone (empty list, item
    count 0); a non-owner gets 403 and the items stay; publishing goes on
    afterwards."""
    srv, alice = rest_server(herald)
    alice.create("p")
    ids = [alice.publish("p", {"n": i}) for i in range(3)]
    bob = Rest(srv, new_token(srv, "bob@localhost"))
    assert_problem(bob.post(node_path("p", "purge")), 403, "forbidden")
    assert len(alice.items("p")["items"]) == 3
    r = expect(alice.post(node_path("p", "purge")), 204)
    assert r.body == b""
    assert alice.items("p") == {"items": [], "next": None}
    assert expect(alice.get(node_path("p")), 200).json()["items"] == 0
    for i in ids:
        assert_problem(alice.get(node_path("p", "items", i)), 404, "item-not-found")
    new = alice.publish("p", {"n": "after"})
    assert [i["id"] for i in alice.items("p")["items"]] == [new]


def test_node_list_visibility(herald):
    """GET /v1/nodes lists the nodes the token's JID may see: a whitelist
    node of alice is not listed for bob, an open one is; bob cannot GET
    the whitelist node (403 not-allowed / closed-node)."""
    srv, alice = rest_server(herald)
    alice.create("public")
    alice.create("private", {"access_model": "whitelist"})
    bob = Rest(srv, new_token(srv, "bob@localhost", scope="read"))
    mine = sorted(n["node"] for n in alice.get("/v1/nodes").json()["nodes"])
    assert mine == ["private", "public"], mine
    body = expect(bob.get("/v1/nodes"), 200).json()
    assert [n["node"] for n in body["nodes"]] == ["public"], body
    assert_problem(bob.get(node_path("private")), 403, "not-allowed", "closed-node")
    assert_problem(bob.get(items_path("private")), 403, "not-allowed", "closed-node")
    got = expect(bob.get(node_path("public")), 200).json()
    assert got["affiliation"] == "none", got


def test_create_conflict(herald):
    """Creating an existing node is 409 conflict (also for another JID);
    the existing node is unchanged."""
    srv, alice = rest_server(herald)
    alice.create("taken", {"title": "First"})
    p = assert_problem(alice.post("/v1/nodes", {"node": "taken", "config": {"title": "Second"}}),
                       409, "conflict")
    assert p["status"] == 409
    bob = Rest(srv, new_token(srv, "bob@localhost"))
    assert_problem(bob.post("/v1/nodes", {"node": "taken"}), 409, "conflict")
    got = expect(alice.get(node_path("taken")), 200).json()
    assert got["config"]["title"] == "First" and got["affiliation"] == "owner", got
