"""Node quotas (docs/pubsub.md "Quotas"): herald#max_publish_rate,
herald#max_subscribers and herald#max_node_bytes, set through REST and
XEP-0004 forms, enforced for XMPP (policy-violation, type wait, with
<too-many-subscriptions/> where XEP-0060 §6.1.3.9 defines it) and REST (429
with Retry-After), recovering when the bucket refills, a subscriber leaves
or items go; kept across a restart; [quotas] defaults and [quota:JID]
overrides for new nodes; bad values refused; /metrics counters.

Timing: the only wait is the Retry-After the server itself announced, after
which the refused publish must succeed (a token bucket refills with time);
the limit is found by publishing until the first refusal, so a slow run
(sanitizers) changes how many publishes pass, never the outcome."""
import re
import time

from e2e_helpers import run
from pubsub_helpers import (NS_DISCO_INFO, NS_META_DATA, assert_ps_error, assert_result,
                            configure_node, create_node, disco, disco_features, error_parts,
                            find_path, my_subscriptions, parse_form, ps_client, publish,
                            subscribe, unsubscribe)
from rest_helpers import (USERS, EventStream, Rest, assert_problem, expect, item_path,
                          items_path, new_token, node_path, rest_server)
from rest_helpers import _rest_streams  # noqa: F401 (autouse: ends curl -N streams)

RATE = "herald#max_publish_rate"
SUBS = "herald#max_subscribers"
BYTES = "herald#max_node_bytes"


def retry_after(resp):
    """The Retry-After of a 429: whole seconds, at least 1."""
    v = resp.header("Retry-After")
    assert v is not None and re.fullmatch(r"[0-9]+", v), "429 without Retry-After: %r" % resp
    assert int(v) >= 1, resp
    return int(v)


def publish_until_refused(alice, node, limit=50):
    """POSTs items until one is refused; returns (published, the refusal)."""
    for i in range(limit):
        r = alice.post(items_path(node), {"n": i})
        if r.status != 201:
            return i, r
    raise AssertionError("no refusal in %d publishes to %r" % (limit, node))


def metric(srv, node, quota):
    """herald_quota_refusals_total{node, quota} from /metrics (0 if absent)."""
    r = Rest(srv).get("/metrics")
    expect(r, 200)
    pat = r'^herald_quota_refusals_total\{node="%s",quota="%s"\} ([0-9]+)$' % (
        re.escape(node), quota)
    m = re.search(pat, r.text, re.M)
    return int(m.group(1)) if m else 0


def test_rate_limit_rest_and_xmpp(herald):
    """herald#max_publish_rate = 1 (a bucket of one token, one per second):
    REST publishes beyond it get 429 policy-violation with a Retry-After in
    whole seconds; after waiting that long a publish succeeds. XMPP publishes
    get <policy-violation/> of type wait. /metrics counts both refusals on
    the node; the field reads back by its full name and in the meta-data."""
    srv, alice = rest_server(herald)
    node = alice.create("rated", {RATE: 1})
    assert node["config"][RATE] == 1, node
    n, refused = publish_until_refused(alice, "rated")
    assert n >= 1, "the first publish of a full bucket must pass: %r" % refused
    p = assert_problem(refused, 429, "policy-violation")
    assert "max_publish_rate" in p["detail"], p
    time.sleep(retry_after(refused))
    expect(alice.post(items_path("rated"), {"after": "wait"}), 201, "publish after Retry-After")
    assert metric(srv, "rated", "rate") >= 1

    async def body():
        c = await ps_client(srv, "alice", "wonderland")
        for i in range(50):
            resp = await publish(c, "rated", "x%d" % i, "<e xmlns='urn:t'/>")
            if resp.xml.get("type") == "error":
                break
        else:
            raise AssertionError("no XMPP refusal in 50 publishes")
        assert_ps_error(resp, "policy-violation", what="publish over the rate")
        assert error_parts(resp)[2] == "wait", resp
        # The meta-data form carries the field (XEP-0060 §5.4).
        info = assert_result(await disco(c, NS_DISCO_INFO, node="rated"))
        form = parse_form(find_path(info, (NS_DISCO_INFO, "query"),
                                    ("jabber:x:data", "x")))
        assert form[RATE] == ["1"] and form["FORM_TYPE"] == [NS_META_DATA], form
        feats = disco_features(await disco(c, NS_DISCO_INFO))
        assert "herald#quotas" in feats, feats
    run(body)
    assert metric(srv, "rated", "rate") >= 2


def test_max_subscribers(herald):
    """herald#max_subscribers = 1, set by an XEP-0004 form at creation: a
    second subscription is refused with <policy-violation/> and
    <too-many-subscriptions/> (type wait, XEP-0060 §6.1.3.9); once the first
    subscriber leaves, it succeeds. An SSE stream is no subscription."""
    srv = herald(users=USERS)
    bob_tok = new_token(srv, "bob@localhost")

    async def body():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        carol = await ps_client(srv, "carol", "singer")
        assert_result(await create_node(alice, "club", {SUBS: "1"}))
        # An SSE reader (docs/pubsub.md: not a subscription) takes no place.
        sse = EventStream(srv, "club", bob_tok)
        sse.wait_ready()
        assert sse.status == 200, sse.raw
        assert_result(await subscribe(bob, "club"), "first subscription")
        resp = await subscribe(carol, "club")
        assert_ps_error(resp, "policy-violation", "too-many-subscriptions",
                        what="second subscription")
        assert error_parts(resp)[2] == "wait", resp
        assert_result(await unsubscribe(bob, "club"), "unsubscribe")
        assert_result(await subscribe(carol, "club"), "subscription after one left")
        # Lowering the quota under the count removes nobody: with two
        # subscribers and a quota of one, both stay and a third is refused.
        assert_result(await configure_node(alice, "club", {SUBS: "2"}))
        assert_result(await subscribe(bob, "club"), "second subscription under 2")
        assert_result(await configure_node(alice, "club", {SUBS: "1"}))
        resp = await subscribe(alice, "club")
        assert_ps_error(resp, "policy-violation", "too-many-subscriptions")
        subs = await my_subscriptions(bob, "club") + await my_subscriptions(carol, "club")
        assert sorted(s[2] for s in subs) == ["subscribed", "subscribed"], subs
    run(body)
    assert metric(srv, "club", "subscribers") == 2


def test_max_node_bytes_and_restart(herald):
    """herald#max_node_bytes: a publish that would take the node's stored
    payload bytes over it gets 429 with Retry-After; a retract makes room, a
    purge too. The node's payload_bytes and its quotas are the same after a
    restart, and still enforced."""
    srv, alice = rest_server(herald)
    alice.create("tank", {BYTES: 300, RATE: 1000})
    n, refused = publish_until_refused(alice, "tank")
    assert n >= 1, refused
    p = assert_problem(refused, 429, "policy-violation")
    assert "max_node_bytes" in p["detail"], p
    retry_after(refused)
    got = expect(alice.get(node_path("tank")), 200).json()
    assert 0 < got["payload_bytes"] <= 300 and got["items"] == n, got
    # A retract makes room for one more.
    first = alice.items("tank", max=500)["items"][-1]["id"]
    expect(alice.delete(item_path("tank", first)), 204)
    expect(alice.post(items_path("tank"), {"n": "again"}), 201, "publish after a retract")
    assert_problem(alice.post(items_path("tank"), {"n": "over"}), 429, "policy-violation")
    before = expect(alice.get(node_path("tank")), 200).json()

    srv.restart()
    after = expect(alice.get(node_path("tank")), 200).json()
    assert after["payload_bytes"] == before["payload_bytes"], (before, after)
    assert after["config"][BYTES] == 300 and after["config"][RATE] == 1000, after
    assert_problem(alice.post(items_path("tank"), {"n": "over"}), 429, "policy-violation")
    expect(alice.post(node_path("tank", "purge")), 204)
    assert expect(alice.get(node_path("tank")), 200).json()["payload_bytes"] == 0
    expect(alice.post(items_path("tank"), {"n": "after purge"}), 201)


def test_defaults_and_account_overrides(herald):
    """[quotas] gives new nodes their quota fields, [quota:bob@localhost]
    overrides some of them for bob's nodes, and a creator's own value wins
    (0 lifts the quota). A bad [quota:...] section is refused with its
    file and line."""
    cfg = {"quotas": {"max_publish_rate": 3, "max_node_bytes": 5000},
           "quota:bob@localhost": {"max_publish_rate": 7, "max_subscribers": 2}}
    srv, alice = rest_server(herald, config=cfg)
    bob = Rest(srv, new_token(srv, "bob@localhost"))
    a = alice.create("a-node")["config"]
    assert (a[RATE], a[SUBS], a[BYTES]) == (3, 0, 5000), a
    b = bob.create("b-node")["config"]
    assert (b[RATE], b[SUBS], b[BYTES]) == (7, 2, 5000), b
    own = alice.create("own", {RATE: 0, BYTES: 10})["config"]
    assert (own[RATE], own[SUBS], own[BYTES]) == (0, 0, 10), own

    async def body():  # XMPP creation applies the same defaults
        c = await ps_client(srv, "bob", "builder")
        assert_result(await create_node(c, "b-xmpp"))
    run(body)
    x = expect(bob.get(node_path("b-xmpp")), 200).json()["config"]
    assert (x[RATE], x[SUBS], x[BYTES]) == (7, 2, 5000), x

    path = "%s/bad-quota.ini" % srv.workdir
    with open(path, "w") as f:
        f.write("[server]\ndomain = localhost\n\n[quota:Bob@localhost/res]\n"
                "max_publish_rate = 1\n")
    r = srv.cli("check-config", "--config", path)
    out = (r.stdout + r.stderr).decode()
    assert r.returncode != 0 and "bad-quota.ini:5" in out and "quota:" in out, out
    with open(path, "w") as f:
        f.write("[quota:bob@localhost]\nmax_publish_rate = -2\n")
    r = srv.cli("check-config", "--config", path)
    out = (r.stdout + r.stderr).decode()
    assert r.returncode != 0 and "bad-quota.ini:2" in out, out


def test_invalid_values(herald):
    """Negative, fractional, textual and too large quota values are refused
    (REST 400 on create and PATCH, XMPP <not-acceptable/> as XEP-0060
    §8.2.5.2 says for a form it cannot process), and nothing changes."""
    srv, alice = rest_server(herald)
    for bad in (-1, 1.5, "five", 4294967295, ""):
        for field in (RATE, SUBS, BYTES):
            assert_problem(alice.post("/v1/nodes", {"node": "bad", "config": {field: bad}}),
                           400, what="create with %s = %r" % (field, bad))
    expect(alice.get(node_path("bad")), 404)
    alice.create("good", {RATE: 2})
    assert_problem(alice.patch(node_path("good"), {"config": {RATE: -5}}), 400)
    assert expect(alice.get(node_path("good")), 200).json()["config"][RATE] == 2

    async def body():
        c = await ps_client(srv, "alice", "wonderland")
        resp = await configure_node(c, "good", {BYTES: "lots"})
        assert_ps_error(resp, "not-acceptable", what="configure with text")
    run(body)
    assert expect(alice.get(node_path("good")), 200).json()["config"][BYTES] == 0
