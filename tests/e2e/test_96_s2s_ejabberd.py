"""Federation (s2s) between Herald and Debian's ejabberd 23.01 on loopback
(/tmp/contract-15.md, issue 15), and the harness check Prosody <-> ejabberd.

  herald.test    127.0.0.1  Herald, pubsub.herald.test     (a fresh one per test)
  prosody.test   127.0.0.2  Prosody (harness check only)
  ejabberd.test  127.0.0.3  ejabberd, pubsub.ejabberd.test  (one per module)

No static routes here: Herald finds ejabberd.test through /etc/hosts (its
DNS SRV lookup fails at once on this machine), as ejabberd finds herald.test.
ejabberd: STARTTLS required on s2s, mod_s2s_dialback, self-signed
certificates. ejabberd offers SASL EXTERNAL on s2s even when it will refuse
the certificate (the failure is `not-authorized`, "self signed
certificate"); a peer must then fall back to dialback (Prosody does).

Users: alice and bob on Herald; ed and eva on ejabberd; pat on Prosody.
"""
import time

import pytest

from e2e_helpers import run, show
from fed_helpers import (EJABBERD_DOMAIN, HERALD_DOMAIN, HERALD_IP, NS_PUBSUB, EjabberdPeer,
                         ProsodyPeer, bare_of, event_items, fclient, hosts_mapped, iq_ok,
                         is_event, is_msg, is_presence, is_push_for, pubsub_iq, roster_items,
                         start_herald, uid)

PW = {"alice": "alice-pw", "bob": "bob-pw", "ed": "ed-pw", "eva": "eva-pw", "pat": "pat-pw"}
T = 12.0  # bound for one s2s round trip (connection set-up included)


@pytest.fixture(scope="module")
def ejabberd(tmp_path_factory):
    root = tmp_path_factory.mktemp("s2s-ejabberd")
    with hosts_mapped():
        e = EjabberdPeer(root / "ejabberd")
        try:
            e.start()
            print("ejabberd started in %.2f s" % e.startup_seconds)
            e.add_user("ed", PW["ed"])
            e.add_user("eva", PW["eva"])
            yield e
        finally:
            e.stop()


@pytest.fixture
def fed(request, tmp_path, ejabberd):
    """Factory: fed() starts Herald as herald.test with alice and bob. Herald
    must exit 0 at the end."""
    servers = [ejabberd]
    request.node._herald_servers = servers  # conftest prints their logs on failure

    def start(s2s=None, name="herald"):
        srv = start_herald(tmp_path / name, name=name, routes=None, s2s=s2s,
                           users={"alice": PW["alice"], "bob": PW["bob"]})
        servers.insert(0, srv)
        return srv

    yield start
    problems = []
    for srv in servers:
        if srv is ejabberd:
            continue
        rc = srv.stop()
        if rc != 0:
            problems.append("%s exited with %r after SIGTERM, expected 0" % (srv.name, rc))
    assert not problems, "; ".join(problems)


def herald_client(h, user, resource="r"):
    return fclient(HERALD_IP, h.port, "%s@%s" % (user, HERALD_DOMAIN), PW[user], resource)


def ejabberd_client(e, user, resource="r"):
    return fclient(e.ip, e.port, e.jid(user), PW[user], resource)


# --------------------------------------------------------------------------
# Harness check: Prosody <-> ejabberd, no Herald involved
# --------------------------------------------------------------------------

def test_s2s_harness_check_prosody_ejabberd(request, tmp_path, ejabberd):
    """HARNESS CHECK (no Herald): the peer configurations federate with each
    other: a message from a Prosody user to an ejabberd user and back, over
    STARTTLS + dialback with self-signed certificates. If this fails, the
    harness (not Herald) is broken."""
    p = ProsodyPeer(tmp_path / "prosody")
    request.node._herald_servers = [p, ejabberd]
    try:
        p.start()
        print("prosody started in %.2f s, ejabberd in %.2f s"
              % (p.startup_seconds, ejabberd.startup_seconds))
        p.add_user("pat", PW["pat"])

        async def main():
            pat = await fclient(p.ip, p.port, p.jid("pat"), PW["pat"])
            ed = await ejabberd_client(ejabberd, "ed")
            mid, body = uid("m"), "from prosody " + uid()
            pat.send_raw("<message to='ed@ejabberd.test' type='chat' id='%s'><body>%s</body>"
                         "</message>" % (mid, body))
            m = (await ed.msgs.expect(is_msg(body=body), timeout=T, what="pat's message")).xml
            assert m.get("from") == pat.jid and m.get("id") == mid, show(m)
            mid2, body2 = uid("m"), "from ejabberd " + uid()
            ed.send_raw("<message to='%s' type='chat' id='%s'><body>%s</body></message>"
                        % (pat.jid, mid2, body2))
            r = (await pat.msgs.expect(is_msg(body=body2), timeout=T, what="ed's reply")).xml
            assert r.get("from") == ed.jid and r.get("id") == mid2 and r.get("to") == pat.jid, \
                show(r)
        run(main, 40)
        log = p.log_text(400000)
        assert "Outgoing s2s connection prosody.test->ejabberd.test complete" in log
        assert "Incoming s2s connection ejabberd.test->prosody.test complete" in log
    finally:
        p.stop()


# --------------------------------------------------------------------------
# (1) messages both ways, and an iq
# --------------------------------------------------------------------------

def test_s2s_ejabberd_message_both_ways(fed, ejabberd):
    h = fed()

    async def main():
        alice = await herald_client(h, "alice")
        ed = await ejabberd_client(ejabberd, "ed")
        mid, body = uid("m"), "hello ejabberd " + uid()
        alice.send_raw("<message to='ed@ejabberd.test' type='chat' id='%s'><body>%s</body></message>"
                       % (mid, body))
        m = (await ed.msgs.expect(is_msg(body=body), timeout=T, what="alice's message")).xml
        assert m.get("from") == alice.jid, show(m)
        assert bare_of(m.get("to")) == "ed@ejabberd.test", show(m)
        assert m.get("id") == mid and m.get("type") == "chat", show(m)
        mid2, body2 = uid("m"), "hello herald " + uid()
        ed.send_raw("<message to='%s' type='chat' id='%s'><body>%s</body></message>"
                    % (alice.jid, mid2, body2))
        r = (await alice.msgs.expect(is_msg(body=body2), timeout=T, what="ed's reply")).xml
        assert r.get("from") == ed.jid and r.get("to") == alice.jid, show(r)
        assert r.get("id") == mid2 and r.get("type") == "chat", show(r)
        await alice.msgs.expect_none(lambda el: el.get("type") == "error", wait=0.5,
                                     what="an error")
        await ed.msgs.expect_none(lambda el: el.get("type") == "error", wait=0.1,
                                  what="an error")
    run(main, 40)
    log = h.log_text()
    assert "ejabberd.test" in log, "Herald's log does not name ejabberd.test:\n" + log[-3000:]


def test_s2s_ejabberd_iq_disco_both_ways(fed, ejabberd):
    h = fed()

    async def main():
        alice = await herald_client(h, "alice")
        ed = await ejabberd_client(ejabberd, "ed")
        r = await alice.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>",
                           to=EJABBERD_DOMAIN, timeout=T)
        assert r["type"] == "result" and r["from"].full == EJABBERD_DOMAIN, show(r.xml)
        r = await ed.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>",
                        to=HERALD_DOMAIN, timeout=T)
        assert r["type"] == "result" and r["from"].full == HERALD_DOMAIN, show(r.xml)
        ids = list(r.xml.iter("{http://jabber.org/protocol/disco#info}identity"))
        assert ids and ids[0].get("category") == "server", show(r.xml)
    run(main, 40)


# --------------------------------------------------------------------------
# (2) presence subscriptions both ways
# --------------------------------------------------------------------------

def test_s2s_ejabberd_presence_subscription_both_ways(fed, ejabberd):
    h = fed()

    async def main():
        alice = await herald_client(h, "alice")
        eva = await ejabberd_client(ejabberd, "eva")
        a_bare, e_bare = "alice@herald.test", "eva@ejabberd.test"

        # eva -> alice first this time
        eva.send_raw("<presence to='%s' type='subscribe'/>" % a_bare)
        await alice.presences.expect(is_presence("subscribe", e_bare), timeout=T,
                                     what="eva's subscription request")
        alice.send_raw("<presence to='%s' type='subscribed'/>" % e_bare)
        await eva.presences.expect(is_presence("subscribed", a_bare), timeout=T,
                                   what="alice's approval")
        av = (await eva.presences.expect(is_presence("available", a_bare), timeout=T,
                                         what="alice's available presence")).xml
        assert av.get("from") == alice.jid, show(av)

        # alice -> eva
        alice.send_raw("<presence to='%s' type='subscribe'/>" % e_bare)
        await eva.presences.expect(is_presence("subscribe", a_bare), timeout=T,
                                   what="alice's subscription request")
        eva.send_raw("<presence to='%s' type='subscribed'/>" % a_bare)
        await alice.presences.expect(is_presence("subscribed", e_bare), timeout=T,
                                     what="eva's approval")
        await alice.pushes.expect(is_push_for(e_bare, "both"), timeout=T, what="push 'both'")
        av = (await alice.presences.expect(is_presence("available", e_bare), timeout=T,
                                           what="eva's available presence")).xml
        assert av.get("from") == eva.jid, show(av)

        ra, re_ = await roster_items(alice), await roster_items(eva)
        assert ra.get(e_bare, (None,))[0] == "both", "alice's roster: %s" % ra
        assert re_.get(a_bare, (None,))[0] == "both", "eva's roster: %s" % re_

        await eva.close()
        await alice.presences.expect(is_presence("unavailable", e_bare), timeout=T,
                                     what="eva's unavailable presence")
    run(main, 60)


# --------------------------------------------------------------------------
# (3) an ejabberd user subscribes to a node on pubsub.herald.test
# --------------------------------------------------------------------------

def test_s2s_ejabberd_user_subscribes_to_herald_pubsub(fed, ejabberd):
    h = fed()
    service = "pubsub.herald.test"

    async def main():
        alice = await herald_client(h, "alice")
        ed = await ejabberd_client(ejabberd, "ed")
        node = uid("fed-node")
        iq_ok(await pubsub_iq(alice, service, "<create node='%s'/>" % node), "create")
        r = iq_ok(await pubsub_iq(ed, service, "<subscribe node='%s' jid='ed@ejabberd.test'/>"
                                  % node, timeout=T), "remote subscribe")
        assert r["from"].full == service, show(r.xml)
        sub = r.xml.find(".//{%s}subscription" % NS_PUBSUB)
        assert sub is not None and sub.get("subscription") == "subscribed" \
            and bare_of(sub.get("jid")) == "ed@ejabberd.test", show(r.xml)

        item_id, word = uid("item"), uid("w")
        iq_ok(await pubsub_iq(alice, service,
                              "<publish node='%s'><item id='%s'><entry xmlns='urn:example:fed'>"
                              "<title>%s</title></entry></item></publish>" % (node, item_id, word)),
              "publish")
        ev = (await ed.msgs.expect(is_event(service, node, item_id), timeout=T,
                                   what="the notification")).xml
        assert bare_of(ev.get("to")) == "ed@ejabberd.test", show(ev)
        (iid, payload), = event_items(ev, node)
        assert payload is not None and payload.findtext("{urn:example:fed}title") == word, show(ev)

        r = iq_ok(await pubsub_iq(ed, service, "<items node='%s'/>" % node, itype="get",
                                  timeout=T), "remote items")
        items = r.xml.findall(".//{%s}item" % NS_PUBSUB)
        assert [i.get("id") for i in items] == [item_id], show(r.xml)
        assert items[0].findtext("{urn:example:fed}entry/{urn:example:fed}title") == word, \
            show(r.xml)
    run(main, 60)
