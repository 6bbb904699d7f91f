"""Federation (s2s, RFC 6120 / XEP-0220 dialback) between Herald and Debian's
Prosody 0.12, on loopback (docs: /tmp/contract-15.md, issue 15).

  herald.test   127.0.0.1  Herald, pubsub.herald.test         (a fresh one per test)
  prosody.test  127.0.0.2  Prosody, pubsub.prosody.test       (one per module)

Both names (and their pubsub services) are mapped in /etc/hosts for the
module (fed_helpers.hosts_mapped, restored afterwards). Herald reaches Prosody
through static routes ([s2s:prosody.test], [s2s:pubsub.prosody.test]);
Prosody reaches Herald through /etc/hosts on port 5269. Each server has its
own self-signed certificate: dialback over STARTTLS, except in the
secure_auth test where Herald must refuse Prosody.

Users: alice and bob on Herald; pat (a Prosody admin: Prosody lets only
admins create pubsub nodes) and pia on Prosody.
"""
import asyncio
import time

import pytest

from e2e_helpers import run, show
from fed_helpers import (HERALD_DOMAIN, HERALD_IP, PROSODY_DOMAIN, PROSODY_IP, NS_PUBSUB,
                         NS_ROSTER, ProsodyPeer, SilentPeer, body_of, bare_of, error_condition,
                         error_text, event_items, fclient, hosts_mapped, iq_ok, is_event, is_msg,
                         is_presence, is_push_for, pubsub_iq, roster_items, start_herald, uid)

PW = {"alice": "alice-pw", "bob": "bob-pw", "pat": "pat-pw", "pia": "pia-pw"}
ROUTES = {PROSODY_DOMAIN: PROSODY_IP, "pubsub." + PROSODY_DOMAIN: PROSODY_IP,
          # a reachable peer that never answers (test_stopped_peer_timeout)
          "silent.test": "127.0.0.4"}
CONNECT_TIMEOUT = 5
MARGIN = 4.0      # seconds on top of connect_timeout for a bounce to arrive
T = 12.0          # bound for one s2s round trip (connection set-up included)


@pytest.fixture(scope="module")
def prosody(tmp_path_factory):
    root = tmp_path_factory.mktemp("s2s-prosody")
    with hosts_mapped():
        p = ProsodyPeer(root / "prosody", admins=["pat"])
        try:
            p.start()
            print("prosody started in %.2f s" % p.startup_seconds)
            p.add_user("pat", PW["pat"])
            p.add_user("pia", PW["pia"])
            yield p
        finally:
            p.stop()


@pytest.fixture
def fed(request, tmp_path, prosody):
    """Factory: fed(s2s={...}) starts Herald as herald.test with alice and
    bob; Prosody is (re)started if a test stopped it. Herald must exit 0."""
    if not prosody.running():
        prosody.start()
    servers = [prosody]
    request.node._herald_servers = servers  # conftest prints their logs on failure

    def start(s2s=None, name="herald"):
        srv = start_herald(tmp_path / name, name=name, routes=ROUTES, s2s=s2s,
                           users={"alice": PW["alice"], "bob": PW["bob"]})
        servers.insert(0, srv)
        return srv

    yield start
    problems = []
    for srv in servers:
        if srv is prosody:
            continue
        rc = srv.stop()
        if rc != 0:
            problems.append("%s exited with %r after SIGTERM, expected 0" % (srv.name, rc))
    if not prosody.running():
        prosody.start()
    assert not problems, "; ".join(problems)


def herald_client(h, user, resource="r"):
    return fclient(HERALD_IP, h.port, "%s@%s" % (user, HERALD_DOMAIN), PW[user], resource)


def prosody_client(p, user, resource="r"):
    return fclient(p.ip, p.port, p.jid(user), PW[user], resource)


# --------------------------------------------------------------------------
# (1) messages both ways, and an iq
# --------------------------------------------------------------------------

def test_s2s_prosody_message_both_ways(fed, prosody):
    h = fed()

    async def main():
        alice = await herald_client(h, "alice")
        pat = await prosody_client(prosody, "pat")
        mid, body = uid("m"), "hello prosody " + uid()
        alice.send_raw("<message to='pat@prosody.test' type='chat' id='%s'><body>%s</body></message>"
                       % (mid, body))
        m = (await pat.msgs.expect(is_msg(body=body), timeout=T, what="alice's message")).xml
        assert m.get("from") == alice.jid, show(m)
        assert bare_of(m.get("to")) == "pat@prosody.test", show(m)
        assert m.get("id") == mid and m.get("type") == "chat", show(m)
        # and back, to alice's full JID
        mid2, body2 = uid("m"), "hello herald " + uid()
        pat.send_raw("<message to='%s' type='chat' id='%s'><body>%s</body></message>"
                     % (alice.jid, mid2, body2))
        r = (await alice.msgs.expect(is_msg(body=body2), timeout=T, what="pat's reply")).xml
        assert r.get("from") == pat.jid and r.get("to") == alice.jid, show(r)
        assert r.get("id") == mid2 and r.get("type") == "chat", show(r)
        # nothing bounced on either side
        await alice.msgs.expect_none(lambda el: el.get("type") == "error", wait=0.5,
                                     what="an error")
        await pat.msgs.expect_none(lambda el: el.get("type") == "error", wait=0.1,
                                   what="an error")
    run(main, 40)
    log = h.log_text()
    assert "prosody.test" in log and "dialback" in log, \
        "Herald's log names neither the peer nor dialback:\n" + log[-3000:]


def test_s2s_prosody_iq_disco_both_ways(fed, prosody):
    """disco#info from a Herald user to prosody.test and from a Prosody user
    to herald.test: results with the right from/id."""
    h = fed()

    async def main():
        alice = await herald_client(h, "alice")
        pat = await prosody_client(prosody, "pat")
        r = await alice.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>",
                           to=PROSODY_DOMAIN, timeout=T)
        assert r["type"] == "result" and r["from"].full == PROSODY_DOMAIN, show(r.xml)
        feats = {f.get("var") for f in r.xml.iter("{http://jabber.org/protocol/disco#info}feature")}
        assert "urn:xmpp:ping" in feats, show(r.xml)
        r = await pat.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>",
                         to=HERALD_DOMAIN, timeout=T)
        assert r["type"] == "result" and r["from"].full == HERALD_DOMAIN, show(r.xml)
        ids = [i for i in r.xml.iter("{http://jabber.org/protocol/disco#info}identity")]
        assert ids and ids[0].get("category") == "server", show(r.xml)
    run(main, 40)


# --------------------------------------------------------------------------
# (2) presence subscriptions both ways
# --------------------------------------------------------------------------

def test_s2s_prosody_presence_subscription_both_ways(fed, prosody):
    h = fed()

    async def main():
        alice = await herald_client(h, "alice")
        pia = await prosody_client(prosody, "pia")
        a_bare, p_bare = "alice@herald.test", "pia@prosody.test"

        # alice -> pia
        alice.send_raw("<presence to='%s' type='subscribe'/>" % p_bare)
        await alice.pushes.expect(is_push_for(p_bare), timeout=5, what="roster push (ask)")
        await pia.presences.expect(is_presence("subscribe", a_bare), timeout=T,
                                   what="alice's subscription request")
        pia.send_raw("<presence to='%s' type='subscribed'/>" % a_bare)
        await alice.presences.expect(is_presence("subscribed", p_bare), timeout=T,
                                     what="pia's approval")
        await alice.pushes.expect(is_push_for(p_bare, "to"), timeout=T, what="push 'to'")
        av = (await alice.presences.expect(is_presence("available", p_bare), timeout=T,
                                           what="pia's available presence")).xml
        assert av.get("from") == pia.jid, show(av)

        # pia -> alice
        pia.send_raw("<presence to='%s' type='subscribe'/>" % a_bare)
        await alice.presences.expect(is_presence("subscribe", p_bare), timeout=T,
                                     what="pia's subscription request")
        alice.send_raw("<presence to='%s' type='subscribed'/>" % p_bare)
        await pia.presences.expect(is_presence("subscribed", a_bare), timeout=T,
                                   what="alice's approval")
        av = (await pia.presences.expect(is_presence("available", a_bare), timeout=T,
                                         what="alice's available presence")).xml
        assert av.get("from") == alice.jid, show(av)
        await alice.pushes.expect(is_push_for(p_bare, "both"), timeout=T, what="push 'both'")

        ra, rp = await roster_items(alice), await roster_items(pia)
        assert ra.get(p_bare, (None,))[0] == "both", "alice's roster: %s" % ra
        assert rp.get(a_bare, (None,))[0] == "both", "pia's roster: %s" % rp

        # presence updates now flow both ways
        alice.send_raw("<presence><status>busy-%s</status></presence>" % alice.bare)
        st = (await pia.presences.expect(
            lambda el: bare_of(el.get("from")) == a_bare and el.findtext(
                "{jabber:client}status") == "busy-%s" % a_bare, timeout=T,
            what="alice's status update")).xml
        assert st.get("from") == alice.jid, show(st)
        # unavailable on logout reaches the contact
        await alice.close()
        await pia.presences.expect(is_presence("unavailable", a_bare), timeout=T,
                                   what="alice's unavailable presence")
    run(main, 60)


# --------------------------------------------------------------------------
# (3) a Prosody user subscribes to a node on pubsub.herald.test
# --------------------------------------------------------------------------

def test_s2s_prosody_user_subscribes_to_herald_pubsub(fed, prosody):
    h = fed()
    service = "pubsub.herald.test"

    async def main():
        alice = await herald_client(h, "alice")
        pat = await prosody_client(prosody, "pat")
        node = uid("fed-node")
        iq_ok(await pubsub_iq(alice, service, "<create node='%s'/>" % node), "create")
        r = iq_ok(await pubsub_iq(pat, service, "<subscribe node='%s' jid='pat@prosody.test'/>"
                                  % node, timeout=T), "remote subscribe")
        assert r["from"].full == service, show(r.xml)
        sub = r.xml.find(".//{%s}subscription" % NS_PUBSUB)
        assert sub is not None and sub.get("subscription") == "subscribed" \
            and bare_of(sub.get("jid")) == "pat@prosody.test" and sub.get("node") == node, \
            show(r.xml)

        item_id, word = uid("item"), uid("w")
        iq_ok(await pubsub_iq(alice, service,
                              "<publish node='%s'><item id='%s'><entry xmlns='urn:example:fed'>"
                              "<title>%s</title></entry></item></publish>" % (node, item_id, word)),
              "publish")
        ev = (await pat.msgs.expect(is_event(service, node, item_id), timeout=T,
                                    what="the notification")).xml
        assert bare_of(ev.get("to")) == "pat@prosody.test", show(ev)
        (iid, payload), = event_items(ev, node)
        assert payload is not None and payload.tag == "{urn:example:fed}entry" \
            and payload.findtext("{urn:example:fed}title") == word, show(ev)

        r = iq_ok(await pubsub_iq(pat, service, "<items node='%s'/>" % node, itype="get",
                                  timeout=T), "remote items")
        items = r.xml.findall(".//{%s}item" % NS_PUBSUB)
        assert [i.get("id") for i in items] == [item_id], show(r.xml)
        assert items[0].findtext("{urn:example:fed}entry/{urn:example:fed}title") == word, \
            show(r.xml)
    run(main, 60)


# --------------------------------------------------------------------------
# (4) a Herald user subscribes to a node on pubsub.prosody.test
# --------------------------------------------------------------------------

def test_s2s_herald_user_subscribes_to_prosody_pubsub(fed, prosody):
    h = fed()
    service = "pubsub.prosody.test"

    async def main():
        alice = await herald_client(h, "alice")
        pat = await prosody_client(prosody, "pat")
        node = uid("pnode")
        iq_ok(await pubsub_iq(pat, service, "<create node='%s'/>" % node),
              "create on Prosody (pat is an admin)")
        r = iq_ok(await pubsub_iq(alice, service, "<subscribe node='%s' jid='alice@herald.test'/>"
                                  % node, timeout=T), "subscribe to Prosody's node from Herald")
        assert r["from"].full == service, show(r.xml)
        sub = r.xml.find(".//{%s}subscription" % NS_PUBSUB)
        assert sub is not None and sub.get("subscription") == "subscribed", show(r.xml)

        item_id, word = uid("pi"), uid("w")
        iq_ok(await pubsub_iq(pat, service,
                              "<publish node='%s'><item id='%s'><entry xmlns='urn:example:fed'>"
                              "<title>%s</title></entry></item></publish>" % (node, item_id, word)),
              "publish on Prosody")
        ev = (await alice.msgs.expect(is_event(service, node, item_id), timeout=T,
                                      what="Prosody's notification")).xml
        assert bare_of(ev.get("to")) == "alice@herald.test", show(ev)
        (iid, payload), = event_items(ev, node)
        assert payload is not None and payload.findtext("{urn:example:fed}title") == word, show(ev)

        r = iq_ok(await pubsub_iq(alice, service, "<items node='%s'/>" % node, itype="get",
                                  timeout=T), "items from Prosody")
        assert [i.get("id") for i in r.xml.findall(".//{%s}item" % NS_PUBSUB)] == [item_id], \
            show(r.xml)
    run(main, 60)


# --------------------------------------------------------------------------
# (5) a peer that is down, or reachable but silent
# --------------------------------------------------------------------------

def test_s2s_stopped_peer_bounces(fed, prosody):
    h = fed()
    prosody.stop()  # the fixture starts it again for the next test

    async def main():
        alice = await herald_client(h, "alice")
        mid = uid("m")
        t0 = time.monotonic()
        alice.send_raw("<message to='pat@prosody.test' type='chat' id='%s'><body>anyone?</body>"
                       "</message>" % mid)
        err = (await alice.msgs.expect(lambda el: el.get("type") == "error",
                                       timeout=CONNECT_TIMEOUT + MARGIN,
                                       what="a bounce for the stopped peer")).xml
        dt = time.monotonic() - t0
        assert err.get("id") == mid and err.get("from") == "pat@prosody.test", show(err)
        assert error_condition(err) in ("remote-server-not-found", "remote-server-timeout"), \
            show(err)
        assert body_of(err) in (None, "anyone?"), show(err)
        return dt
    dt = run(main, 40)
    print("bounce after %.2f s" % dt)


def test_s2s_silent_peer_times_out(fed, prosody):
    """A peer that accepts TCP and never answers: remote-server-timeout after
    [s2s] connect_timeout (not much earlier, not much later)."""
    silent = SilentPeer("127.0.0.4")
    try:
        h = fed()

        async def main():
            alice = await herald_client(h, "alice")
            mid = uid("m")
            t0 = time.monotonic()
            alice.send_raw("<message to='x@silent.test' id='%s'><body>hi</body></message>" % mid)
            task = asyncio.ensure_future(alice.msgs.expect(
                lambda el: el.get("type") == "error", timeout=CONNECT_TIMEOUT + MARGIN,
                what="a bounce for the silent peer"))
            while not task.done():
                silent.poll()
                await asyncio.sleep(0.1)
            err = task.result().xml
            dt = time.monotonic() - t0
            assert silent.poll() >= 1, "Herald never connected to the static route 127.0.0.4:5269"
            assert b"jabber:server" in silent.received, silent.received[:300]
            assert err.get("id") == mid and err.get("from") == "x@silent.test", show(err)
            assert error_condition(err) == "remote-server-timeout", show(err)
            assert dt >= CONNECT_TIMEOUT - 1.0, "bounced after %.2f s, before connect_timeout" % dt
            return dt
        print("timeout bounce after %.2f s" % run(main, 40))
    finally:
        silent.close()


# --------------------------------------------------------------------------
# (6) secure_auth: Prosody's self-signed certificate is refused
# --------------------------------------------------------------------------

def test_s2s_secure_auth_refuses_self_signed_prosody(fed, prosody):
    h = fed(s2s={"secure_auth": True})

    async def main():
        alice = await herald_client(h, "alice")
        pat = await prosody_client(prosody, "pat")
        # Prosody -> Herald: Herald offers no dialback and cannot verify
        # Prosody's certificate, so Prosody cannot authenticate.
        mid = uid("m")
        pat.send_raw("<message to='alice@herald.test' type='chat' id='%s'><body>let me in</body>"
                     "</message>" % mid)
        err = (await pat.msgs.expect(lambda el: el.get("type") == "error" and el.get("id") == mid,
                                     timeout=25, what="Prosody's bounce")).xml
        assert bare_of(err.get("from")) == "alice@herald.test", show(err)
        print("prosody bounced with %s (%s)" % (error_condition(err), error_text(err)))
        await alice.msgs.expect_none(is_msg(body="let me in"), wait=1.0,
                                     what="the message from the unauthenticated peer")
        # Herald -> Prosody: no dialback, and Prosody's certificate does not
        # verify: bounce within connect_timeout + margin.
        mid2 = uid("m")
        t0 = time.monotonic()
        alice.send_raw("<message to='pat@prosody.test' type='chat' id='%s'><body>hello?</body>"
                       "</message>" % mid2)
        err2 = (await alice.msgs.expect(lambda el: el.get("type") == "error",
                                        timeout=CONNECT_TIMEOUT + MARGIN,
                                        what="Herald's bounce")).xml
        assert err2.get("id") == mid2 and err2.get("from") == "pat@prosody.test", show(err2)
        assert error_condition(err2) is not None, show(err2)
        print("herald bounced with %s after %.2f s" % (error_condition(err2),
                                                       time.monotonic() - t0))
        await pat.msgs.expect_none(is_msg(body="hello?"), wait=0.5, what="Herald's message")
    run(main, 60)
    log = h.log_text()
    assert "prosody.test" in log, "Herald's log does not name prosody.test:\n" + log[-3000:]
    assert "authenticated (dialback" not in log, "dialback used under secure_auth:\n" + log[-3000:]
