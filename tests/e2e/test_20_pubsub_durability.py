"""XEP-0060 publish-subscribe, durability: nodes, configuration, items,
subscriptions and affiliations survive a restart (persistent-items,
XEP-0060 §7.1.2 and §6.5); and the crash test: a publisher keeps many
publishes in flight, the server is killed with SIGKILL mid-stream and
restarted on the same data directory; every item whose publish was
acknowledged must be there, byte-for-byte the same XML, and nothing that was
never sent may appear."""
import os
import xml.etree.ElementTree as ET

from e2e_helpers import NS_CLIENT, RawStream, q, run, show
from pubsub_helpers import (NS_DISCO_ITEMS, NS_OWNER, NS_PUBSUB, PUBSUB, assert_ps_error,
                            assert_result, canon, disco, find_path, get_config,
                            item_payloads, items_event_children, items_of, kill_hard,
                            must_create, must_publish, must_subscribe, my_subscriptions,
                            next_event, payload_xml, ps_client, ps_iq, publish, pubsub_xml,
                            restart_after_kill, set_affiliation, subscribe)

USERS = {"alice": "wonderland", "bob": "builder", "carol": "singer", "dave": "diver"}


def pl(text):
    return payload_xml("urn:example:e2e", "entry", text)


async def owner_affiliations(c, node):
    resp = await ps_iq(c, pubsub_xml("<affiliations node='%s'/>" % node, NS_OWNER))
    affs = find_path(assert_result(resp), (NS_OWNER, "pubsub"), (NS_OWNER, "affiliations"))
    return {a.get("jid"): a.get("affiliation") for a in affs.findall(q(NS_OWNER, "affiliation"))}


def test_state_survives_restart(herald):
    """XEP-0060 persistent-items (§7.1.2, §6.5) and the service's state: after
    SIGTERM and a start on the same data directory, nodes (disco#items,
    §5.2), their configuration (§8.2), items with identical payloads (a
    retracted one stays gone, §7.2), subscriptions with their SubIDs (§5.6)
    including a pending one (§6.1.4) and affiliations (§8.9.1) are all still
    there and in force: the subscriber is notified, the publisher may
    publish, the outcast is still blocked."""
    srv = herald(users=USERS)
    before = {}

    async def phase1():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        await must_create(alice, "durable", {"pubsub#title": "Kept", "pubsub#max_items": "20",
                                             "pubsub#notify_retract": "0"})
        await must_create(alice, "club", {"pubsub#access_model": "authorize"})
        for i in range(1, 5):
            await must_publish(alice, "durable", "d%d" % i, pl("durable %d" % i))
        resp = await ps_iq(alice, pubsub_xml("<retract node='durable'><item id='d2'/></retract>"),
                           "set")
        assert_result(resp, "retract d2")
        sub = await must_subscribe(bob, "durable", "bob@localhost")
        await must_subscribe(bob, "club", "bob@localhost", state="pending")
        await set_affiliation(alice, "durable", "carol@localhost", "publisher")
        await set_affiliation(alice, "durable", "dave@localhost", "outcast")
        before["subid"] = sub.get("subid")
        before["items"] = {k: canon(v) for k, v in (await items_of(alice, "durable")).items()}
        before["affs"] = await owner_affiliations(alice, "durable")
        _, before["config"] = await get_config(alice, "durable")
    run(phase1)
    assert sorted(before["items"]) == ["d1", "d3", "d4"], before["items"]

    srv.restart()

    async def phase2():
        alice = await ps_client(srv, "alice", "wonderland")
        bob = await ps_client(srv, "bob", "builder")
        carol = await ps_client(srv, "carol", "singer")
        dave = await ps_client(srv, "dave", "diver")
        resp = await disco(alice, NS_DISCO_ITEMS)
        nodes = {i.get("node") for i in assert_result(resp).find(
            q(NS_DISCO_ITEMS, "query")).findall(q(NS_DISCO_ITEMS, "item"))}
        assert {"durable", "club"} <= nodes, show(resp.xml)
        _, config = await get_config(alice, "durable")
        assert config == before["config"], "configuration changed across the restart: %s vs %s" % (
            config, before["config"])
        after = {k: canon(v) for k, v in (await items_of(bob, "durable")).items()}
        assert after == before["items"], "items changed across the restart"
        assert await owner_affiliations(alice, "durable") == before["affs"]
        subs = await my_subscriptions(bob)
        assert ("durable", "bob@localhost", "subscribed", before["subid"]) in subs, subs
        assert ("club", "pending") in [(s[0], s[2]) for s in subs], subs
        await must_publish(carol, "durable", "c1", pl("carol after restart"))
        msg = await next_event(bob, "items", "durable")
        assert [i.get("id") for i in items_event_children(msg)] == ["c1"], show(msg.xml)
        assert_ps_error(await subscribe(dave, "durable", "dave@localhost"), "forbidden",
                        what="outcast after restart")
        assert_ps_error(await publish(dave, "durable", "x", pl("x")), "forbidden",
                        what="outcast publishes after restart")
    run(phase2)


# --------------------------------------------------------------------------
# Crash test
# --------------------------------------------------------------------------

WINDOW = 24                  # publishes in flight at once
ROUNDS = (150, 400, 250)     # acknowledgements received before each SIGKILL
PER_ROUND = 1000             # at most this many publishes per round


def _iq_xml(iq_id, itype, payload):
    return "<iq type='%s' id='%s' to='%s'>%s</iq>" % (itype, iq_id, PUBSUB, payload)


def _publish_until_killed(srv, round_no, first, kill_after, sent, acked):
    """One round: logs in, keeps WINDOW publishes in flight and SIGKILLs the
    server after kill_after results of this round (reading on until the
    connection closes, so that results already sent are counted). Records
    every item sent in ``sent`` and every acknowledged one in ``acked``;
    returns the number of publishes in flight at the kill."""
    s = RawStream(srv.port, timeout=20)
    failures = []
    try:
        s.login("alice", "wonderland", "crash%d" % round_no)
        outstanding = {}  # iq id -> item id
        n, got, in_flight_at_kill = first, 0, None
        while True:
            while in_flight_at_kill is None and n < first + PER_ROUND and \
                    len(outstanding) < WINDOW:
                item_id = "crash-%05d" % n
                payload = ("<entry xmlns='urn:example:crash' seq='%d'><title>item %d</title>"
                           "<data>%s</data></entry>" % (n, n, os.urandom(48).hex()))
                sent[item_id] = payload
                outstanding["pub%d" % n] = item_id
                s.send(_iq_xml("pub%d" % n, "set", pubsub_xml(
                    "<publish node='crash'><item id='%s'>%s</item></publish>"
                    % (item_id, payload))))
                n += 1
            el = s.next_element(timeout=3 if in_flight_at_kill is not None else 20)
            if el is None:
                assert in_flight_at_kill is not None, (
                    "round %d: no publish result within 20 s (%d acked, %d in flight)"
                    % (round_no, got, len(outstanding)))
                break  # the killed server's connection is closed and drained
            if el.tag != q(NS_CLIENT, "iq") or el.get("id") not in outstanding:
                continue
            item_id = outstanding.pop(el.get("id"))
            if el.get("type") == "result":
                acked.add(item_id)
                got += 1
            else:
                failures.append((item_id, show(el)))
            if in_flight_at_kill is None and got >= kill_after:
                kill_hard(srv)
                in_flight_at_kill = len(outstanding)
            assert in_flight_at_kill is not None or n < first + PER_ROUND or outstanding, \
                "round %d: all publishes answered before the kill" % round_no
    finally:
        s.close()
    assert not failures, "round %d: publishes refused: %s" % (round_no, failures[:3])
    return in_flight_at_kill


async def _check_crash_node(alice, sent, acked):
    """Every acknowledged item is there with the payload sent; every stored
    item (all-items retrieval and disco#items) was sent, with that payload.
    Returns the number of stored items."""
    stored = await items_of(alice, "crash")
    resp = await disco(alice, NS_DISCO_ITEMS, node="crash")
    listed = {i.get("name") for i in assert_result(resp).find(
        q(NS_DISCO_ITEMS, "query")).findall(q(NS_DISCO_ITEMS, "item"))}
    never_sent = sorted((set(stored) | listed) - set(sent))
    assert not never_sent, "items that were never sent: %s" % never_sent[:10]
    # Asked for by ItemID in batches, so that a truncated all-items answer
    # cannot hide an item.
    ids = sorted(acked | set(stored) | listed)
    got = {}
    for i in range(0, len(ids), 100):
        resp = await ps_iq(alice, pubsub_xml("<items node='crash'>%s</items>" % "".join(
            "<item id='%s'/>" % x for x in ids[i:i + 100])))
        items = find_path(assert_result(resp, "items by id"), (NS_PUBSUB, "pubsub"),
                          (NS_PUBSUB, "items"))
        got.update(item_payloads(items))
    lost = sorted(acked - set(got))
    assert not lost, "%d acknowledged items lost after SIGKILL (of %d acked): %s" % (
        len(lost), len(acked), lost[:10])
    wrong = [x for x, p in got.items() if p is None or canon(p) != canon(ET.fromstring(sent[x]))]
    assert not wrong, "items whose payload differs from what was sent: %s" % [
        (x, show(got[x])) for x in wrong[:3]]
    return len(got)


def test_sigkill_mid_stream_keeps_every_acked_item(herald):
    """XEP-0060 §7.1.2 (the publish result means success; with
    persistent-items the item is stored): a publisher keeps WINDOW publishes
    in flight (distinct ItemIDs and random payloads); after a number of
    results the server gets SIGKILL while publishes are still in flight, and
    starts again on the same data directory; three such rounds, killed at
    different points. After each restart every item whose iq result the
    client received is retrievable (§6.5.8) with an identical payload; every
    stored item (§6.5.2, and §5.5 disco#items) is one that was sent, with
    the payload sent; nothing else appears."""
    srv = herald(users=USERS)
    sent, acked = {}, set()

    async def setup():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_create(alice, "crash", {"pubsub#max_items": "max"})
    run(setup)

    for round_no, kill_after in enumerate(ROUNDS):
        in_flight = _publish_until_killed(srv, round_no, round_no * PER_ROUND, kill_after,
                                          sent, acked)
        assert in_flight > 0, "round %d: nothing was in flight at the kill" % round_no
        restart_after_kill(srv)

        async def check():
            alice = await ps_client(srv, "alice", "wonderland")
            stored = await _check_crash_node(alice, sent, acked)
            print("crash round %d: %d sent, %d acked, %d in flight at SIGKILL, %d stored"
                  % (round_no, len(sent), len(acked), in_flight, stored))
        run(check)

    async def after():
        alice = await ps_client(srv, "alice", "wonderland")
        await must_publish(alice, "crash", "after-restart", pl("the service works on"))
    run(after)
