"""Messages and iqs between users on different instances of a cluster
(issue 13; docs/cluster.md section 5): three nats-servers and three Herald
instances A, B, C (cluster_helpers.Cluster), clients of two libraries
(slixmpp and aioxmpp) on different instances.

1. chat messages to a full JID and to a bare JID reach a user connected to
   another instance, in the order sent, with the sender's full JID stamped;
2. an iq to a full JID on another instance reaches it and its answer comes
   back (XEP-0199 ping, answered by each library's own ping support); an iq
   to a resource bound nowhere is answered service-unavailable;
3. a chat message to an account with no session anywhere is kept offline
   on the sender's instance (single mode's rule for an absent recipient,
   after the other instances declined it) and delivered at its next login
   there;
4. rosters, presence subscriptions, presence and PEP across instances.
"""
import asyncio
import time
import urllib.request

import aioxmpp
import aioxmpp.ping
import pytest

from aioxmpp_helpers import AioClient
from cluster_helpers import NATS_BIN, cluster_fixture
from e2e_helpers import DOMAIN, XClient, local, run, show
from im_helpers import (PASSWORDS, im_client, is_presence, mutual, presence_child_text,
                        roster_items, send_presence, sub_of)

pytestmark = pytest.mark.skipif(
    NATS_BIN is None,
    reason="nats-server is not installed (not on PATH nor in /usr/sbin): the cluster tests "
           "need it (Debian package nats-server)")

NS_PING = "urn:xmpp:ping"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DELAY = "urn:xmpp:delay"
ALICE = "alice@%s" % DOMAIN
BOB = "bob@%s" % DOMAIN


@pytest.fixture
def cluster(request, tmp_path):
    yield from cluster_fixture(request, tmp_path)


def users(*names):
    return {n: PASSWORDS[n] for n in names}


async def slix(srv, user, resource, ping=False):
    c = XClient(srv, "%s@%s/%s" % (user, DOMAIN, resource), PASSWORDS[user])
    if ping:
        c.xmpp.register_plugin("xep_0199")  # answers pings (XEP-0199 §4.2)
    await c.login()
    await c.presence()
    return c


def body_of(el):
    for child in el:
        if local(child.tag) == "body":
            return child.text
    return None


def test_messages_between_instances(cluster):
    cluster.add_users(users("alice", "bob", "carol"))
    a, b, c = cluster.heralds

    async def main():
        alice = await slix(a, "alice", "home")
        bob = AioClient(b, "bob", "desk")
        await bob.login()
        await bob.presence()
        carol = await slix(c, "carol", "phone")

        # A -> B, to the full JID, 20 in a row: all arrive, in order.
        for i in range(20):
            alice.send_message("bob@%s/desk" % DOMAIN, "full %d" % i)
        for i in range(20):
            st = await bob.msgs.expect(lambda el: body_of(el) is not None, timeout=10,
                                       what="chat message %d from alice on A" % i)
            assert body_of(st.xml) == "full %d" % i, (
                "message %d from A arrived on B out of order: %r" % (i, body_of(st.xml)))
            assert st.xml.get("from") == alice.jid, st.xml.get("from")

        # C -> B, to the bare JID (bob's only resource is on B).
        carol.send_message("bob@%s" % DOMAIN, "bare from C")
        st = await bob.msgs.expect(lambda el: body_of(el) == "bare from C", timeout=10,
                                   what="carol's message to the bare JID")
        assert st.xml.get("from") == carol.jid

        # B -> A (aioxmpp sends), to the bare JID.
        msg = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT,
                              to=aioxmpp.JID.fromstr("alice@%s" % DOMAIN))
        msg.body[None] = "reply from B"
        await bob.client.send(msg)
        got = await alice.expect_message(timeout=10)
        assert got["body"] == "reply from B", got
        assert str(got["from"]) == bob.jid, got["from"]
        await bob.close()
    run(main, timeout=90)


def test_iq_between_instances(cluster):
    cluster.add_users(users("alice", "bob"))
    a, b, _ = cluster.heralds

    async def main():
        alice = await slix(a, "alice", "home", ping=True)
        bob = AioClient(b, "bob", "desk")
        await bob.login()
        bob.client.summon(aioxmpp.PingService)  # answers pings from A
        await bob.presence()

        # B -> A: slixmpp on A answers the ping; the result comes back to B.
        t0 = time.monotonic()
        await asyncio.wait_for(
            aioxmpp.ping.ping(bob.client, aioxmpp.JID.fromstr(alice.jid)), 10)
        assert time.monotonic() - t0 < 5, "a ping between instances took %.1f s" % (
            time.monotonic() - t0)

        # A -> B: aioxmpp's ping service on B answers.
        res = await alice.iq("<ping xmlns='%s'/>" % NS_PING, to=bob.jid, timeout=10)
        assert res["type"] == "result", "ping A -> B: %s" % res

        # A resource bound nowhere: after the other instances declined it,
        # single mode's answer, service-unavailable (RFC 6121 §8.5.3.2.1).
        res = await alice.iq("<ping xmlns='%s'/>" % NS_PING,
                             to="bob@%s/nowhere" % DOMAIN, timeout=15)
        assert res["type"] == "error", "ping to an unbound resource: %s" % res
        conds = [local(e.tag) for e in res.xml.iter() if e.tag.startswith("{%s}" % NS_STANZAS)]
        assert "service-unavailable" in conds, res
        await bob.close()
    run(main, timeout=90)


def metric(srv, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % srv.http_port, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError("%s has no metric %s" % (srv.name, name))


def test_message_to_user_offline_everywhere(cluster):
    cluster.add_users(users("alice", "dave"))
    a = cluster.heralds[0]

    async def main():
        alice = await slix(a, "alice", "home")
        before = metric(a, "herald_cluster_route_fallbacks_total")
        alice.send_message("dave@%s" % DOMAIN, "while you were out")
        # The other instances decline it (within 2-3 s); then A keeps it.
        deadline = time.monotonic() + 15
        while metric(a, "herald_cluster_route_fallbacks_total") < before + 1:
            assert time.monotonic() < deadline, "A never fell back for the message to dave"
            await asyncio.sleep(0.2)
        dave = XClient(a, "dave@%s/laptop" % DOMAIN, PASSWORDS["dave"])
        await dave.login()
        await dave.presence()
        got = await dave.expect_message(timeout=10)
        assert got["body"] == "while you were out", got
        assert got.xml.find("{%s}delay" % NS_DELAY) is not None, (
            "the message came from offline storage, so it carries a delay stamp: %s" % got)
    run(main, timeout=60)


def test_presence_and_rosters_between_instances(cluster):
    """Rosters and presence subscriptions go through the log, presence is
    offered to the other instances (docs/cluster.md section 5): alice on A
    and bob on B subscribe to each other (RFC 6121 §3.1, pushes and all);
    bob's second resource on C sees alice online at its login (probe) and
    alice sees it arrive (broadcast); alice's roster read through C holds
    bob with 'both'; alice's unavailable reaches both of bob's resources;
    a PEP item bob publishes on B (presence access model) is readable by
    alice through C; when B dies (kill -9), bob/b1 turns unavailable for
    the sessions on the other instances."""
    cluster.add_users(users("alice", "bob"))
    a, b, c = cluster.heralds

    async def main():
        a1 = await im_client(a, "alice", "a1", status="on A")
        b1 = await im_client(b, "bob", "b1", status="on B")
        await mutual(a1, b1)
        a1.presences.clear()
        b1.presences.clear()

        # C applies the subscriptions a moment after A and B answered them.
        a3 = await im_client(c, "alice", "a3", presence=False)
        deadline = time.monotonic() + 10
        while True:
            items = await roster_items(a3)
            if BOB in items and sub_of(items[BOB]) == "both":
                break
            assert time.monotonic() < deadline, "alice's roster on C: %s" % items
            await asyncio.sleep(0.1)

        b2 = await im_client(c, "bob", "b2", status="on C", priority=2)
        p = await a1.presences.expect(is_presence("available", frm=BOB + "/b2"), timeout=10,
                                      what="bob/b2's initial presence, from instance C")
        assert presence_child_text(p.xml, "status") == "on C", show(p.xml)
        p = await b2.presences.expect(is_presence("available", frm=ALICE + "/a1"), timeout=10,
                                      what="alice/a1's presence answering the probe")
        assert presence_child_text(p.xml, "status") == "on A", show(p.xml)
        await b1.presences.expect(is_presence("available", frm=BOB + "/b2"), timeout=10,
                                  what="its own other resource's presence")

        await send_presence(a1, ptype="unavailable")
        for who in (b1, b2):
            await who.presences.expect(is_presence("unavailable", frm=ALICE + "/a1"),
                                       timeout=10, what="alice/a1's unavailable")

        res = await b1.iq("<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                          "<publish node='urn:xmpp:tune'><item id='current'>"
                          "<tune xmlns='http://jabber.org/protocol/tune'><artist>B</artist>"
                          "</tune></item></publish></pubsub>", itype="set", timeout=10)
        assert res["type"] == "result", res
        res = await a3.iq("<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                          "<items node='urn:xmpp:tune'/></pubsub>", to=BOB, timeout=10)
        assert res["type"] == "result", "alice reads bob's PEP node through C: %s" % res
        artists = [e.text for e in res.xml.iter("{http://jabber.org/protocol/tune}artist")]
        assert artists == ["B"], show(res.xml)

        # B dies: after three missed heartbeats (6 s) the other instances
        # tell their sessions that bob/b1 went unavailable, as for a broken
        # connection (RFC 6121 §4.5.4).
        a4 = await im_client(c, "alice", "a4")
        await a4.presences.expect(is_presence("available", frm=BOB + "/b1"), timeout=10,
                                  what="bob/b1's presence, answering a4's probe")
        cluster.kill_herald(b)
        await a4.presences.expect(is_presence("unavailable", frm=BOB + "/b1"), timeout=20,
                                  what="bob/b1 unavailable after instance B died")
        await b2.presences.expect(is_presence("unavailable", frm=BOB + "/b1"), timeout=20,
                                  what="its own other resource on B unavailable")
    run(main, timeout=120)
