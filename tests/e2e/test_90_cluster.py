"""The cluster on NATS JetStream, phase 1 (issue 13, docs/cluster.md sections
2-4, 8 and 10): three nats-servers (R3) and three Herald instances A, B, C
sharing one replicated log (cluster_helpers.py starts them all on loopback).

1. accounts made with `herald user add --config` log in on every instance
   (and tokens made with `herald token create --config` work on every one);
2. items published through each instance (XMPP with slixmpp on A, REST with
   http.client on B, XMPP with aioxmpp on C) are listed by every instance
   with the same ids and sequences, retrieved over XMPP (aioxmpp) on C, and
   notified to subscribers on every instance (slixmpp on A and C, aioxmpp on
   B) in the stream's order;
3. `kill -9` of one instance during sustained publishing (window 16): every
   acknowledged item is on every survivor, once, with the same sequence;
   the restarted instance serves them all as soon as it listens;
4. `kill -9` of a nats-server during sustained publishing (the log's leader,
   then the server leading most consumers, each restarted): every publish
   is answered within 10 s, with a result or `wait` / `resource-constraint`
   (XMPP) or 503 with Retry-After (REST), and no acknowledged item is lost
   on any instance;
5. a durable subscriber (herald#durable with XEP-0198, test_77_catchup.py's
   Subscriber) on the instance that gets killed moves to another instance
   and receives every acknowledged item (at least once: cursors are per
   instance in phase 1, duplicates are counted, not refused).

Sustained tests publish CLUSTER_ITEMS items (HERALD_CLUSTER_ITEMS: 1200 by
default, 600 under a sanitizer); test 4 publishes at full speed until both
servers are back, so the elections' length adds to that. A long run raises
HERALD_CLUSTER_ITEMS together with HERALD_E2E_TEST_TIMEOUT (conftest's
per-test bound, 90 s by default; the whole file takes about a minute).
"""
import asyncio
import collections
import time

import aioxmpp
import aioxmpp.pubsub
import aioxmpp.xso
import pytest

import test_77_catchup as catchup
from aioxmpp_helpers import AioClient
from cluster_helpers import (CLUSTER_ITEMS, NATS_BIN, NS_TEST, HttpApi, Publisher,
                             RestPublisher, check_same_items, cluster_fixture,
                             describe_difference, item_list, join_all, login_eventually, scaled,
                             wait_acked, wait_node_everywhere, wait_until)
from e2e_helpers import DOMAIN, XClient, run
from im_helpers import PASSWORDS
from pubsub_helpers import (PUBSUB, event_kind, items_event_children, must_create, must_publish,
                            must_subscribe, payload_xml, ps_client)
from rest_helpers import expect, in_thread, item_path
from stream_helpers import login

pytestmark = pytest.mark.skipif(
    NATS_BIN is None,
    reason="nats-server is not installed (not on PATH nor in /usr/sbin): the cluster tests "
           "need it (Debian package nats-server)")

PUBSUB_JID = aioxmpp.JID.fromstr(PUBSUB)


@pytest.fixture
def cluster(request, tmp_path):
    """3 nats-servers and 3 Herald instances (cluster_helpers.Cluster)."""
    yield from cluster_fixture(request, tmp_path)


@aioxmpp.pubsub.xso.as_payload_class
class Entry(aioxmpp.xso.XSO):
    """<entry xmlns='urn:example:cluster'>text</entry>, the payload every
    XMPP publisher here uses (aioxmpp publishes only registered classes)."""
    TAG = (NS_TEST, "entry")
    text = aioxmpp.xso.Text(default="")


def users(*names):
    return {n: PASSWORDS[n] for n in names}


def bare(user):
    return "%s@%s" % (user, DOMAIN)


# --------------------------------------------------------------------------
# 1. Accounts
# --------------------------------------------------------------------------

def test_accounts_log_in_on_every_instance(cluster):
    """`herald user add --config` through one instance's data directory:
    the account logs in on that instance as soon as the CLI returns (it
    waits for that instance's apply), and on the two others within 5 s;
    SCRAM works everywhere (the keys are replicated, not only a password
    check); a wrong password is refused everywhere. A token made with
    `herald token create --config` is accepted by every instance's REST API."""
    a, b, c = cluster.heralds
    made = {"alice": a, "bob": b, "carol": c}
    for user, via in made.items():
        via.add_user(user, PASSWORDS[user])
        ok, why = login_eventually(via, user, PASSWORDS[user], timeout=0)
        assert ok, "%s cannot log in on %s right after `herald user add` through its data " \
            "directory returned: %s" % (user, via.name, why)
        for h in cluster.heralds:
            ok, why = login_eventually(h, user, PASSWORDS[user], timeout=5.0)
            assert ok, "%s (made through %s) cannot log in on %s within 5 s: %s" % (
                user, via.name, h.name, why)

    async def body():
        for user in made:
            for h in cluster.heralds:
                x = XClient(h, "%s/scram-%s" % (bare(user), h.name), PASSWORDS[user])
                kind = await x.connect()
                assert kind == "session", "SCRAM login of %s on %s: %s (SASL failures %s)" % (
                    user, h.name, kind, x.auth_failures)
                assert (x.mech_used or "").startswith("SCRAM"), \
                    "%s logged in on %s with %s, not SCRAM" % (user, h.name, x.mech_used)
                await x.close()
        for h in cluster.heralds:
            x = XClient(h, "%s/wrong" % bare("alice"), "not-the-password")
            kind = await x.connect()
            assert kind in ("auth_failed", "disconnected"), \
                "a wrong password on %s gave %s" % (h.name, kind)
            assert x.auth_failures, "no SASL failure for a wrong password on %s" % h.name
            await x.close()
    run(body)

    tok = cluster.token(bare("alice"), via=0)
    for h in cluster.heralds:
        api = HttpApi(h, tok)
        try:
            ok = wait_until(lambda: api.request("GET", "/v1/nodes").status == 200, 5.0)
            assert ok, "the token made through %s is not accepted by %s within 5 s: %r" % (
                a.name, h.name, api.request("GET", "/v1/nodes"))
            bad = HttpApi(h, tok[:-4] + ("AAAA" if not tok.endswith("AAAA") else "BBBB"))
            r = bad.request("GET", "/v1/nodes")
            bad.close()
            assert r.status == 401, "a forged token on %s: %r" % (h.name, r)
        finally:
            api.close()


# --------------------------------------------------------------------------
# 2. Items through every instance
# --------------------------------------------------------------------------

def _slix_items(c, node):
    """Item ids of every items notification for node that slixmpp client c
    (a ps_client) received so far, in arrival order."""
    seen = c.__dict__.setdefault("all_events", [])
    while not c.events.empty():
        seen.append(c.events.get_nowait())
    out = []
    for m in seen:
        if event_kind(m) == ("items", node):
            out += [i.get("id") for i in items_event_children(m) if i.tag.endswith("}item")]
    return out


def test_items_same_on_every_instance(cluster):
    """Nodes made over XMPP on A and over REST on B; items published in turn
    through A (slixmpp), B (REST, http.client) and C (aioxmpp), each after
    the previous one's answer, then a concurrent burst through all three.
    Every instance lists each node identically (ids, sequences, order), the
    sequential part in publication order; aioxmpp's items retrieval on C
    returns the same items; the subscribers on A (slixmpp), B (aioxmpp) and
    C (slixmpp) are each notified of every item once, in the stream's order."""
    a, b, c = cluster.heralds
    cluster.add_users(users("alice", "bob", "carol", "dave"))
    tok = cluster.token(bare("alice"), via=1)
    nodes = ("cl-xmpp", "cl-rest")
    rounds, burst = 6, 8
    sequential = {n: [] for n in nodes}
    published = {n: set() for n in nodes}
    result = {}

    async def body():
        aio = []
        try:
            alice_a = await ps_client(a, "alice", PASSWORDS["alice"], resource="pa")
            await must_create(alice_a, nodes[0], {"pubsub#max_items": "max"})
            api_b = HttpApi(b, tok)
            try:
                await in_thread(api_b.create, nodes[1], {"max_items": 1000})
            finally:
                api_b.close()
            for n in nodes:
                await in_thread(wait_node_everywhere, cluster.heralds, tok, n)

            bob_a = await ps_client(a, "bob", PASSWORDS["bob"], resource="sa")
            dave_c = await ps_client(c, "dave", PASSWORDS["dave"], resource="sc")
            carol_b = await AioClient(b, "carol", "sb").login()
            aio.append(carol_b)
            await carol_b.presence()
            carol_ps = carol_b.client.summon(aioxmpp.PubSubClient)
            carol_got = collections.defaultdict(list)
            carol_ps.on_item_published.connect(
                lambda jid, node, item, message=None: carol_got[node].append(item.id_))
            alice_c = await AioClient(c, "alice", "pc").login()
            aio.append(alice_c)
            alice_c_ps = alice_c.client.summon(aioxmpp.PubSubClient)
            for n in nodes:
                await must_subscribe(bob_a, n, bare("bob"))
                await must_subscribe(dave_c, n, bare("dave"))
                await carol_ps.subscribe(PUBSUB_JID, n,
                                         subscription_jid=aioxmpp.JID.fromstr(bare("carol")))

            async def via_a(n, iid):
                await must_publish(alice_a, n, iid, payload_xml(NS_TEST, "entry", iid))

            def put_b(n, iid):
                api = HttpApi(b, tok)  # one connection per request: the burst runs them at once
                try:
                    return api.put_item(n, iid, {"id": iid})
                finally:
                    api.close()

            async def via_b(n, iid):
                r = await in_thread(put_b, n, iid)
                expect(r, 201, "PUT %s on %s" % (item_path(n, iid), b.name))

            async def via_c(n, iid):
                await alice_c_ps.publish(PUBSUB_JID, n, Entry(), id_=iid)

            for r in range(rounds):
                for n in nodes:
                    for tag, pub in (("a", via_a), ("b", via_b), ("c", via_c)):
                        iid = "%s-%d" % (tag, r)
                        await pub(n, iid)
                        sequential[n].append(iid)
                        published[n].add(iid)
            # A concurrent burst: the stream decides the order, the same everywhere.
            jobs = []
            for n in nodes:
                for k in range(burst):
                    for tag, pub in (("a", via_a), ("b", via_b), ("c", via_c)):
                        iid = "burst-%s-%d" % (tag, k)
                        published[n].add(iid)
                        jobs.append(pub(n, iid))
            await asyncio.gather(*jobs)

            for n in nodes:
                lst = await in_thread(check_same_items, cluster.heralds, tok, n, published[n],
                                      published[n])
                result[n] = lst
                ids = [i for i, _ in lst]
                assert set(ids) == published[n], (n, sorted(set(ids) ^ published[n]))
                assert ids[:len(sequential[n])] == sequential[n], \
                    "items published one after the other are not in publication order on " \
                    "%s: %s vs %s" % (n, ids[:len(sequential[n])], sequential[n])
                resp = await alice_c_ps.get_items(PUBSUB_JID, n)
                xmpp_ids = [it.id_ for it in resp.payload.items]
                assert len(xmpp_ids) == len(set(xmpp_ids)) and set(xmpp_ids) == published[n], \
                    "XMPP items retrieval (aioxmpp) on %s for %s: %d ids, differing %s" % (
                        c.name, n, len(xmpp_ids), sorted(set(xmpp_ids) ^ published[n])[:10])

            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if all(len(_slix_items(x, n)) >= len(published[n]) and
                       len(carol_got[n]) >= len(published[n])
                       for x in (bob_a, dave_c) for n in nodes):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)  # anything extra (a duplicate) would have come by now
            for n in nodes:
                want = [i for i, _ in result[n]]
                for name, got in (("bob (slixmpp) on %s" % a.name, _slix_items(bob_a, n)),
                                  ("carol (aioxmpp) on %s" % b.name, list(carol_got[n])),
                                  ("dave (slixmpp) on %s" % c.name, _slix_items(dave_c, n))):
                    assert got == want, \
                        "%s was notified of %d items of %s, expected the %d in stream order; " \
                        "missing %s, extra/duplicate %s, first difference at %s" % (
                            name, len(got), n, len(want), sorted(set(want) - set(got))[:10],
                            sorted(i for i, k in collections.Counter(got).items()
                                   if k > 1 or i not in want)[:10],
                            next((k for k, (x, y) in enumerate(zip(got, want)) if x != y),
                                 None))
        finally:
            for x in aio:
                await x.close()
    run(body, timeout=80)


# --------------------------------------------------------------------------
# 3. kill -9 of an instance
# --------------------------------------------------------------------------

def _create_open_node(srv, user, node):
    """A node any account may publish to, keeping every item."""
    s = login(srv, user, "setup", enable=False, password=PASSWORDS[user])
    try:
        cfg = catchup.form(catchup.NS_PUBSUB + "#node_config",
                           {"pubsub#max_items": "max", "pubsub#publish_model": "open"})
        catchup.iq_ok(s, "<pubsub xmlns='%s'><create node='%s'/><configure>%s</configure>"
                         "</pubsub>" % (catchup.NS_PUBSUB, node, cfg))
    finally:
        s.close()


PUBLISHERS = users("alice", "bob", "carol")


@pytest.mark.slow
def test_kill_instance_during_publishing(cluster):
    """Publishers on A and B (window 16, distinct ids) and one on C; C gets
    SIGKILL after a third of the items. A and B's publishers are unaffected
    (every publish acknowledged, none refused); every item acknowledged by
    any instance, C included, ends up on A and B once, with the same
    sequence, in the same order; C, restarted on its data directory, lists
    exactly the same as soon as it accepts connections (it catches up with
    the log before it listens)."""
    a, b, c = cluster.heralds
    cluster.add_users(PUBLISHERS)
    tok = cluster.token(bare("alice"))
    node = "sustained"
    _create_open_node(a, "alice", node)
    wait_node_everywhere(cluster.heralds, tok, node)
    n = CLUSTER_ITEMS
    # Counts are caps: A and B publish until n items were acknowledged in all.
    pa = Publisher(a, "alice", PUBLISHERS["alice"], node, "a", n)
    pb = Publisher(b, "bob", PUBLISHERS["bob"], node, "b", n)
    pc = Publisher(c, "carol", PUBLISHERS["carol"], node, "c", n)
    pubs = [pa, pb, pc]

    def total():
        return sum(len(p.acked) for p in pubs)
    for p in pubs:
        p.start()
    wait_acked(pubs, n // 3, scaled(60))
    assert not any(p.done.is_set() for p in pubs), \
        "a publisher ended before the kill: %s" % [p.summary() for p in pubs]
    killed_at = time.monotonic()
    cluster.kill_herald(c)
    at_kill = total()
    wait_until(lambda: total() >= n or pa.done.is_set() or pb.done.is_set(), scaled(40))
    for p in pubs:
        p.stop()
    join_all(pubs, scaled(30))
    summary = " | ".join(p.summary() for p in pubs)
    print("kill instance %s: %d acked at the kill; %s" % (c.name, at_kill, summary))
    for p in (pa, pb):
        assert p.failure is None and not p.connection_lost, summary
        assert not p.hung and not p.errors and not p.unanswered, \
            "publishes on a surviving instance refused or unanswered: %s" % summary
        assert [i for i in p.acked if p.sent_at[i] > killed_at], \
            "%s acknowledged nothing sent after %s died: %s" % (p.srv.name, c.name, summary)
    assert pc.connection_lost or pc.failure, "C's publisher did not see C die: %s" % summary
    assert not pc.errors, "C refused publishes before it died: %s" % summary
    acked = pa.acked + pb.acked + pc.acked
    sent = [p.item_id(i) for p in pubs for i in range(p.sent)]
    survivors = check_same_items([a, b], tok, node, acked, sent)
    cluster.restart_herald(c)
    on_c = item_list(c, tok, node)
    assert on_c == survivors, "%s (first) and the restarted %s (second) list %s " \
        "differently: %s" % (a.name, c.name, node, describe_difference(survivors, on_c))


# --------------------------------------------------------------------------
# 4. kill -9 of a nats-server
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_kill_nats_server_during_publishing(cluster):
    """XMPP publishers on A and B (window 16) and a REST publisher on C
    (PUT by id, one at a time) publish to one node while, one after the
    other, two nats-servers get SIGKILL and are restarted: first the leader
    of the log stream (publishes meet its election), then the server leading
    most of the instances' consumers (deliveries in flight are lost with it;
    it may be the same server). Every publish is answered within 10 s: a
    result, or <error type='wait'><resource-constraint/> (XMPP), or 503 with
    a Retry-After header (REST), never silence; while each server is down
    and after it is back publishes are acknowledged again; every
    acknowledged item is on every instance once, with the same sequence, in
    the same order."""
    a, b, c = cluster.heralds
    cluster.add_users(users("alice", "bob"))
    tok = cluster.token(bare("alice"), via=2)
    node = "through-nats-loss"
    _create_open_node(a, "alice", node)
    wait_node_everywhere(cluster.heralds, tok, node)
    n = CLUSTER_ITEMS
    # Publishing goes on at full speed (deliveries in flight when a server
    # dies are what this test is after) until both servers are back and at
    # least n items were acknowledged in all: the elections' length decides
    # how many items that is, the counts are only a safety bound.
    pa = Publisher(a, "alice", PASSWORDS["alice"], node, "a", 50 * n)
    pb = Publisher(b, "bob", PASSWORDS["bob"], node, "b", 50 * n)
    rc = RestPublisher(c, tok, node, "r", 50 * n)
    pubs = [pa, pb, rc]

    def total():
        return sum(len(p.acked) for p in pubs)

    def acked_between(t0, t1=float("inf")):
        return [i for p in pubs for i in p.acked if t0 < p.sent_at[i] < t1]
    for p in pubs:
        p.start()
    wait_acked(pubs, n // 4, scaled(60))
    rounds = []
    for what, choose in (("stream leader", cluster.nats.stream_leader),
                         ("busiest consumer leader", cluster.nats.busiest_consumer_leader)):
        assert not any(p.done.is_set() for p in pubs), \
            "a publisher ended before the kill of the %s: %s" % (what, [p.summary() for p in pubs])
        victim = choose()
        clients = cluster.nats.clients()
        before = total()
        killed_at = time.monotonic()
        victim.kill_hard()
        # Restart once publishing has gone on (or after 20 s at most).
        wait_until(lambda: total() >= before + 32, scaled(20))
        cluster.nats.restart(victim)
        restarted_at = time.monotonic()
        wait_until(lambda: len(acked_between(restarted_at)) >= 48
                   or all(p.done.is_set() for p in pubs), scaled(20))
        rounds.append((what, victim.name, clients, killed_at, restarted_at))
    wait_until(lambda: total() >= n or all(p.done.is_set() for p in pubs), scaled(40))
    for p in pubs:
        p.stop()
    join_all(pubs, scaled(30))
    summary = " | ".join(p.summary() for p in pubs)
    report = ["%s %s killed (nats clients then: %s): %d acked while it was down (%.1f s), %d "
              "after its restart" % (what, name, clients, len(acked_between(k, r)), r - k,
                                     len(acked_between(r)))
              for what, name, clients, k, r in rounds]
    summary = "; ".join(report) + " | " + summary
    print("kill nats-servers: %s" % summary)
    for p in pubs:
        assert p.failure is None and not p.connection_lost, summary
        assert not p.hung, "publishes unanswered for more than 10 s after a nats-server " \
            "was killed: %s" % summary
        assert not p.unanswered, summary
    for p in (pa, pb):
        bad = [e for e in p.errors if (e[1], e[2]) != ("wait", "resource-constraint")]
        assert not bad, "XMPP publish errors other than wait/resource-constraint: %s" % bad[:5]
    bad = [e for e in rc.errors if e[1] != 503 or not e[2]]
    assert not bad, "REST publish errors other than 503 with Retry-After: %s" % bad[:5]
    for what, name, clients, killed_at, restarted_at in rounds:
        assert acked_between(killed_at, restarted_at), \
            "nothing sent while %s (%s) was down was acknowledged: %s" % (name, what, summary)
        assert acked_between(restarted_at), \
            "nothing sent after %s (%s) was restarted was acknowledged: %s" % (name, what,
                                                                                 summary)
    acked = pa.acked + pb.acked + rc.acked
    sent = [p.item_id(i) for p in pubs for i in range(p.sent)]
    check_same_items(cluster.heralds, tok, node, acked, sent)


# --------------------------------------------------------------------------
# 5. A durable subscriber moves to another instance
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_durable_subscriber_moves_to_another_instance(cluster):
    """test_77_catchup.py's durable subscriber (herald#durable, XEP-0198
    acknowledgements every 7 stanzas) is connected to C; a publisher on A
    keeps 16 publishes in flight; C gets SIGKILL after a third of the items
    and the subscriber logs in on B instead. Every item the publisher got a
    result for reaches the subscriber (cursors are per instance in phase 1:
    B may send again what C had sent, at least once; the count of such
    duplicates is reported); each session gets its items once and in
    sequence order (docs/pubsub.md "Catch-up")."""
    a, b, c = cluster.heralds
    cluster.add_users({"pub": catchup.USERS["pub"], "sub": catchup.USERS["sub"]})
    tok = cluster.token(bare("pub"))
    node = "feed"
    p = catchup.connect(a, "pub", "setup", enable=False)
    catchup.create(p, node, max_items="max")
    p.close()
    wait_node_everywhere(cluster.heralds, tok, node)
    s = catchup.connect(c, "sub", "setup", enable=False)
    catchup.subscribe(s, node, bare("sub"), durable=True)
    s.send("</stream:stream>")
    s.read_until_closed(timeout=5)
    sub = catchup.Subscriber(c)
    sub.thread.start()
    try:
        assert wait_until(lambda: sub.sessions, 10), "the durable subscriber did not log in on C"
        n = CLUSTER_ITEMS
        pub = Publisher(a, "pub", catchup.USERS["pub"], node, "d", n)
        pub.start()
        wait_acked([pub], n // 3, scaled(60))
        assert wait_until(lambda: sub.sessions[0], 10), \
            "the subscriber on %s was notified of nothing in 10 s" % c.name
        before_kill = len(sub.sessions[0])
        assert not pub.done.is_set(), "publishing ended before the kill: %s" % pub.summary()
        sub.srv = b  # its next login goes to B
        killed_at = time.monotonic()
        cluster.kill_herald(c)
        join_all([pub], scaled(70))
        assert pub.failure is None and not pub.errors and not pub.hung and \
            len(pub.acked) == pub.count, pub.summary()
        assert [i for i in pub.acked if pub.sent_at[i] > killed_at], \
            "nothing was published after the kill: %s" % pub.summary()
        want = set(pub.acked)
        wait_until(lambda: want <= sub.ids, scaled(30), 0.2)
    finally:
        sub.stop.set()
        sub.thread.join(timeout=5)
    seqs = [x for sess in sub.sessions for x in sess]
    dups = len(seqs) - len(set(seqs))
    missing = sorted(want - sub.ids)
    assert not missing, "%d acknowledged items never reached the durable subscriber after it " \
        "moved from %s to %s, e.g. %s (sessions %s, %d notifications on C before the kill, " \
        "%d duplicates)" % (len(missing), c.name, b.name, missing[:10],
                            [len(x) for x in sub.sessions], before_kill, dups)
    assert len(sub.sessions) >= 2, "the subscriber never logged in again: %s" % (
        [len(x) for x in sub.sessions])
    for k, sess in enumerate(sub.sessions):
        assert sess == sorted(set(sess)), \
            "session %d got items twice or out of sequence order (%d notifications, %d " \
            "distinct): %s" % (k, len(sess), len(set(sess)),
                               [(x, y) for x, y in zip(sess, sess[1:]) if y <= x][:5])
    print("durable subscriber: %d acked, %d notifications in %d sessions, %d duplicates "
          "(%d confirmed on C then sent again)" % (len(want), len(seqs), len(sub.sessions), dups,
                                                   len(sub.redelivered)))
    cluster.restart_herald(c)
