"""REST bridge, transport and durability (docs/rest-api.md "Listeners" and
"Durability"): the same routes over HTTPS (curl -k), keep-alive (curl
reuses one connection for several requests), pipelining (answers in
request order, a read pipelined after a write sees it), chunked request
bodies, HEAD; and answers sent only after the commit: an item acknowledged
with 201 survives kill -9, and seqs go on increasing across restarts so
that Last-Event-ID resumes stay exact."""
import json
import re
import subprocess

from pubsub_helpers import kill_hard, restart_after_kill
from rest_helpers import (EventStream, Rest, assert_problem, base_url,
                          build_request, curl_many, expect, healthy, item_path, items_path,
                          new_token, node_path, pipeline, rest_server)
from rest_helpers import _rest_streams  # noqa: F401 (autouse: ends curl -N streams)


def test_https_same_routes(herald):
    """HTTPS on the tls_port with the server's certificate: create, publish,
    read, page, stream, errors as problem+json, all as over plain HTTP."""
    srv, plain = rest_server(herald)
    alice = Rest(srv, plain.tok, https=True)
    node = alice.create("grid/tls", {"max_items": 4, "title": "over TLS"})
    assert node["config"]["title"] == "over TLS"
    s = EventStream(srv, "grid/tls", alice.tok, https=True).wait_ready()
    ids = [alice.publish("grid/tls", {"n": i}) for i in range(3)]
    assert [e.json()["id"] for e in s.take(3)] == ids
    expect(alice.put(item_path("grid/tls", "x"), "<x xmlns='urn:x'/>", ctype="application/xml"),
           201)
    assert s.next().json()["id"] == "x"
    assert [i["id"] for i in alice.all_items("grid/tls", page=2)] == ["x"] + ids[::-1]
    # The same data is seen over plain HTTP.
    assert plain.items("grid/tls") == alice.items("grid/tls")
    assert_problem(alice.get(node_path("ghost")), 404, "item-not-found")
    assert_problem(Rest(srv, https=True).get("/v1/nodes"), 401, "not-authorized")
    expect(alice.delete(node_path("grid/tls")), 204)
    assert s.next().type == "delete"
    assert s.wait_ended(10)
    healthy(srv, https=True)


def test_keep_alive_with_curl(herald):
    """curl given several URLs reuses one connection (HTTP and HTTPS); with
    --next a POST and then GETs go over one connection too."""
    srv, alice = rest_server(herald)
    alice.create("k")
    item = alice.publish("k", {"v": 1})
    for https in (False, True):
        out, err = curl_many(srv, [items_path("k"), item_path("k", item), "/v1/nodes"],
                             tok=alice.tok, https=https)
        reuse = err.count("Re-using existing connection") + err.count("Reusing existing connection")
        assert reuse == 2, "curl did not reuse the connection (https=%s):\n%s" % (https, err)
        assert err.count("HTTP/1.1 200") == 3 or err.count("< HTTP/1.1 200 OK") == 3, err
        text = out.decode()
        # Both lists (items, then nodes) are paged: each carries "next".
        assert text.count('"next":') == 2 and text.count('"nodes":') == 1, text
    auth = "Authorization: Bearer %s" % alice.tok
    argv = ["curl", "-sS", "-v", "--max-time", "10",
            "-H", auth, "-H", "Content-Type: application/json", "--data-binary", '{"v": 2}',
            base_url(srv) + items_path("k"), "--next",
            "-H", auth, base_url(srv) + items_path("k")]
    r = subprocess.run(argv, capture_output=True, timeout=20)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "Re-using existing connection" in err or "Reusing existing connection" in err, err
    assert "HTTP/1.1 201" in err and "HTTP/1.1 200" in err, err
    out = r.stdout.decode()
    posted = json.loads(out[:out.index("}") + 1])["id"]
    listed = json.loads(out[out.index("}") + 2:])
    assert listed["items"][0]["id"] == posted, out


def test_pipelined_posts_answered_in_order(herald):
    """Two POSTs written in one go on one connection get two 201 answers in
    order: the first answer names the item published first (lower seq).
    Also over TLS, and with reads pipelined after writes (a GET after a PUT
    on the same connection sees the PUT)."""
    srv, alice = rest_server(herald)
    alice.create("pipe", {"max_items": 100})
    for https in (False, True):
        answers = pipeline(srv, [
            build_request("POST", items_path("pipe"), alice.tok, {"order": 1}),
            build_request("POST", items_path("pipe"), alice.tok, {"order": 2}),
        ], https=https)
        assert [a.status for a in answers] == [201, 201], answers
        first, second = (json.loads(a.body)["id"] for a in answers)
        assert alice.item("pipe", first)["json"] == {"order": 1}
        assert alice.item("pipe", second)["json"] == {"order": 2}
        assert alice.item("pipe", first)["seq"] < alice.item("pipe", second)["seq"]
        assert answers[0].header("Location") == item_path("pipe", first)
    answers = pipeline(srv, [
        build_request("PUT", item_path("pipe", "rw"), alice.tok, {"v": "written"}),
        build_request("GET", item_path("pipe", "rw"), alice.tok),
        build_request("PUT", item_path("pipe", "rw"), alice.tok, {"v": "rewritten"}),
        build_request("GET", item_path("pipe", "rw"), alice.tok),
        build_request("DELETE", item_path("pipe", "rw"), alice.tok),
        build_request("GET", item_path("pipe", "rw"), alice.tok, close=True),
    ])
    assert [a.status for a in answers] == [201, 200, 200, 200, 204, 404], answers
    assert json.loads(answers[1].body)["json"] == {"v": "written"}
    assert json.loads(answers[3].body)["json"] == {"v": "rewritten"}
    # Many in one go.
    n = 40
    answers = pipeline(srv, [build_request("PUT", item_path("pipe", "m%02d" % i), alice.tok,
                                           {"i": i}) for i in range(n)])
    assert [json.loads(a.body)["id"] for a in answers] == ["m%02d" % i for i in range(n)]
    assert all(a.status == 201 for a in answers), answers
    seqs = [alice.item("pipe", "m%02d" % i)["seq"] for i in range(n)]
    assert seqs == sorted(seqs), seqs


def test_chunked_body_and_head(herald):
    """A chunked request body is read like a sized one (201); HEAD of a
    node or of items answers 200 with the GET's headers and no body."""
    srv, alice = rest_server(herald)
    alice.create("c")
    r = alice.post(items_path("c"), {"chunked": True}, headers=["Transfer-Encoding: chunked"])
    expect(r, 201)
    assert alice.item("c", r.json()["id"])["json"] == {"chunked": True}
    for path in (node_path("c"), items_path("c")):
        get = expect(alice.get(path), 200)
        head = expect(alice.req("HEAD", path), 200)
        assert head.body == b"", head
        assert head.header("Content-Length") == get.header("Content-Length"), (head, get)
        assert head.ctype == "application/json", head


def test_acknowledged_items_survive_kill(herald):
    """201 is sent only after the commit: items acknowledged over HTTP (one
    at a time and a pipelined burst), a node created over HTTP and a token
    all survive kill -9; after the restart the items read back the same, a
    PUT of an existing id answers 200 (idempotent retry), and new items
    get higher seqs."""
    srv, alice = rest_server(herald)
    alice.create("durable", {"max_items": 200, "title": "kept"})
    one = alice.publish("durable", {"first": True})
    expect(alice.put(item_path("durable", "fixed"), {"fixed": 1}), 201)
    burst = pipeline(srv, [build_request("POST", items_path("durable"), alice.tok, {"b": i})
                           for i in range(50)])
    assert [a.status for a in burst] == [201] * 50, burst
    burst_ids = [json.loads(a.body)["id"] for a in burst]
    last = alice.publish("durable", {"last": True})
    before = alice.items("durable", max=500)
    kill_hard(srv)
    restart_after_kill(srv)
    after = alice.items("durable", max=500)
    assert after == before, "items changed across kill -9"
    ids = [i["id"] for i in after["items"]]
    assert ids[0] == last and ids[-1] == one and set(burst_ids) <= set(ids), ids
    assert len(ids) == 53
    node = expect(alice.get(node_path("durable")), 200).json()
    assert node["config"]["title"] == "kept" and node["items"] == 53, node
    r = expect(alice.put(item_path("durable", "fixed"), {"fixed": 1}), 200, "PUT retry")
    assert r.json() == {"node": "durable", "id": "fixed",
                        "seq": alice.item("durable", "fixed")["seq"]}
    assert len(alice.items("durable", max=500)["items"]) == 53
    newer = alice.publish("durable", {"after": True})
    assert alice.item("durable", newer)["seq"] > max(i["seq"] for i in after["items"])
    healthy(srv)


def test_resume_across_restart(herald):
    """A consumer that saw events before a restart (clean, then kill -9)
    resumes after it with Last-Event-ID and gets exactly the items
    published since, in order: seqs are not reused after a restart."""
    srv, alice = rest_server(herald)
    alice.create("r", {"max_items": 100})
    s = EventStream(srv, "r", alice.tok).wait_ready()
    alice.publish("r", {"n": 0})
    alice.publish("r", {"n": 1})
    last = s.take(2)[-1].id
    s.close()
    srv.restart()
    after_restart = alice.publish("r", {"n": 2})
    kill_hard(srv)
    restart_after_kill(srv)
    after_kill = alice.publish("r", {"n": 3})
    s2 = EventStream(srv, "r", alice.tok, last_event_id=last).wait_ready()
    evs = s2.take(2)
    assert [e.json()["id"] for e in evs] == [after_restart, after_kill], evs
    assert int(evs[0].id) > int(last) and int(evs[1].id) > int(evs[0].id), evs
    # The token made before both restarts still works; a revoked one stays revoked.
    ro = new_token(srv, "alice@localhost", scope="read")
    r = srv.cli("token", "revoke", ro.split(".")[0])
    assert r.returncode == 0
    srv.restart()
    assert_problem(Rest(srv, ro).get(items_path("r")), 401, "not-authorized")
    expect(alice.get(items_path("r")), 200)


def test_seq_not_reused_after_retract_purge_restart(herald):
    """seq is the position in the node's publication order, so a consumer's
    Last-Event-ID stays meaningful: retracting the newest item, purging, and
    restarting (cleanly or with kill -9) never make a later item reuse a
    seq already handed out."""
    srv, alice = rest_server(herald)
    alice.create("s", {"max_items": 100})
    ids = [alice.publish("s", {"n": i}) for i in range(3)]
    top = alice.item("s", ids[-1])["seq"]
    expect(alice.delete(item_path("s", ids[-1])), 204)
    srv.restart()
    d = alice.publish("s", {"n": "d"})
    seq_d = alice.item("s", d)["seq"]
    assert seq_d > top, "seq %d reused after retract + restart (had %d)" % (seq_d, top)
    expect(alice.post(node_path("s", "purge")), 204)
    kill_hard(srv)
    restart_after_kill(srv)
    e = alice.publish("s", {"n": "e"})
    seq_e = alice.item("s", e)["seq"]
    assert seq_e > seq_d, "seq %d reused after purge + kill -9 (had %d)" % (seq_e, seq_d)
    s = EventStream(srv, "s", alice.tok, last_event_id=top).wait_ready()
    assert [ev.json()["id"] for ev in s.take(1)] == [e]


def test_storage_full_is_507_and_not_notified(herald):
    """docs "Durability": if the change cannot be stored the answer is 507
    (resource-constraint) and nothing is notified. With a 1 MiB store,
    publishing 60 KB items ends in 507; that item is not readable and no
    event carries it; after a purge frees the space publishing works again,
    and the server never stopped serving."""
    srv, alice = rest_server(herald, config={"storage": {"map_size_mb": 1, "max_map_size_mb": 1}})
    alice.create("fill", {"max_items": 1000})
    s = EventStream(srv, "fill", alice.tok).wait_ready()
    ok, failed = [], None
    for i in range(60):
        r = alice.put(item_path("fill", "i%02d" % i), {"blob": "z" * 60000})
        if r.status != 201:
            failed = ("i%02d" % i, r)
            break
        ok.append("i%02d" % i)
    assert failed is not None, "a 1 MiB store took %d items of 60 KB" % len(ok)
    assert_problem(failed[1], 507, "resource-constraint")
    assert ok, "not even one item fitted"
    assert_problem(alice.get(item_path("fill", failed[0])), 404, "item-not-found")
    assert [i["id"] for i in alice.all_items("fill", page=100)] == ok[::-1]
    assert [e.json()["id"] for e in s.take(len(ok))] == ok
    expect(alice.post(node_path("fill", "purge")), 204)
    after = alice.publish("fill", {"small": True})
    # The next events are the purge and the new item: none for the failed publish.
    evs = s.take(2)
    assert [e.type for e in evs] == ["purge", "item"], evs
    assert evs[1].json()["id"] == after
    healthy(srv, allow_errors=[r"storage full", r"full at the ceiling", r"full down to its reserve"])
    # Refused at the reserve kept for removals (docs/security.md), or by LMDB itself.
    log = srv.log_text(max_chars=10 ** 7)
    assert ("full down to its reserve (storage.reserve_mb)" in log
            or "full at the ceiling storage.max_map_size_mb" in log), log[-2000:]


def test_storage_map_grows_up_to_the_ceiling(herald):
    """storage.max_map_size_mb: the map starts at 1 MiB and doubles after a
    commit when it is nearly full, so 60 items of 60 KB (3.6 MB) all get 201;
    the log says how it grew; with a 4 MiB ceiling a 507 comes once the
    ceiling is reached."""
    srv, alice = rest_server(herald, config={"storage": {"map_size_mb": 1, "max_map_size_mb": 64}})
    alice.create("grow", {"max_items": 1000})
    for i in range(60):
        expect(alice.put(item_path("grow", "i%02d" % i), {"blob": "z" * 60000}), 201)
    assert len(alice.all_items("grow", page=100)) == 60
    log = srv.log_text(max_chars=10 ** 7)
    assert re.search(r"map of .* grown from 1 to 2 MiB", log), log[-2000:]
    healthy(srv)

    srv2, alice2 = rest_server(herald, config={"storage": {"map_size_mb": 1, "max_map_size_mb": 4}})
    alice2.create("cap", {"max_items": 1000})
    statuses = [alice2.put(item_path("cap", "i%03d" % i), {"blob": "z" * 60000}).status
                for i in range(120)]
    assert 201 in statuses and 507 in statuses, statuses
    assert statuses.index(507) > 20, "the map did not grow before refusing: %s" % statuses
    healthy(srv2, allow_errors=[r"storage full", r"full at the ceiling", r"full down to its reserve"])
