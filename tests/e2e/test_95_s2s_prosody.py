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
admins create pubsub nodes), pia and pim on Prosody (Prosody lives for the
module: pim's roster is untouched by the other tests). The scenarios shared with
test_96 (ejabberd) live in fed_helpers.
"""
import asyncio
import time

import pytest

from e2e_helpers import run, show
from fed_helpers import (PROSODY_DOMAIN, PROSODY_IP, T, ProsodyPeer, SilentPeer, assert_mutual,
                         bare_of, body_of, bounce, disco_both_ways, error_condition, error_text,
                         goes_offline, herald_client, herald_factory, is_msg, is_push_for,
                         item_title, message_both_ways, peer_client, pubsub_round, run_clients,
                         running_peer, subscribe, uid)

ROUTES = {PROSODY_DOMAIN: PROSODY_IP, "pubsub." + PROSODY_DOMAIN: PROSODY_IP,
          # a reachable peer that never answers (test_stopped_peer_timeout)
          "silent.test": "127.0.0.4"}
CONNECT_TIMEOUT = 5
MARGIN = 4.0      # seconds on top of connect_timeout for a bounce to arrive


@pytest.fixture(scope="module")
def prosody(tmp_path_factory):
    root = tmp_path_factory.mktemp("s2s-prosody")
    yield from running_peer(ProsodyPeer(root / "prosody", admins=["pat"]), ["pat", "pia", "pim"])


@pytest.fixture
def fed(request, tmp_path, prosody):
    """Factory: fed(s2s={...}) starts Herald as herald.test with alice and
    bob; Prosody is (re)started if a test stopped it. Herald must exit 0."""
    yield from herald_factory(request, tmp_path, prosody, ROUTES)


# --------------------------------------------------------------------------
# (1) messages both ways, and an iq
# --------------------------------------------------------------------------

def test_s2s_prosody_message_both_ways(fed, prosody):
    h = fed()
    run_clients(h, prosody, "pat", message_both_ways, 40)
    log = h.log_text()
    assert "prosody.test" in log and "dialback" in log, \
        "Herald's log names neither the peer nor dialback:\n" + log[-3000:]


def test_s2s_prosody_iq_disco_both_ways(fed, prosody):
    """disco#info from a Herald user to prosody.test and from a Prosody user
    to herald.test: results with the right from/id."""
    run_clients(fed(), prosody, "pat",
                lambda alice, pat: disco_both_ways(alice, pat, ["urn:xmpp:ping"]), 40)


# --------------------------------------------------------------------------
# (2) presence subscriptions both ways
# --------------------------------------------------------------------------

def test_s2s_prosody_presence_subscription_both_ways(fed, prosody):
    async def scenario(alice, pia):
        a_bare, p_bare = "alice@herald.test", "pia@prosody.test"
        # alice -> pia, with alice's roster pushes (ask, then 'to')
        await subscribe(alice, pia, sent=lambda: alice.pushes.expect(
            is_push_for(p_bare), timeout=5, what="roster push (ask)"),
            approved=lambda: alice.pushes.expect(is_push_for(p_bare, "to"), timeout=T,
                                                 what="push 'to'"))
        # pia -> alice
        await subscribe(pia, alice)
        await alice.pushes.expect(is_push_for(p_bare, "both"), timeout=T, what="push 'both'")
        await assert_mutual(alice, pia)

        # presence updates now flow both ways
        alice.send_raw("<presence><status>busy-%s</status></presence>" % alice.bare)
        st = (await pia.presences.expect(
            lambda el: bare_of(el.get("from")) == a_bare and el.findtext(
                "{jabber:client}status") == "busy-%s" % a_bare, timeout=T,
            what="alice's status update")).xml
        assert st.get("from") == alice.jid, show(st)
        # unavailable on logout reaches the contact
        await goes_offline(alice, pia)
    run_clients(fed(), prosody, "pia", scenario)


# --------------------------------------------------------------------------
# (3) a Prosody user subscribes to a node on pubsub.herald.test
# --------------------------------------------------------------------------

def test_s2s_prosody_user_subscribes_to_herald_pubsub(fed, prosody):
    async def scenario(alice, pat):
        node, word, sub, payload, items = await pubsub_round(alice, pat, "pubsub.herald.test")
        assert bare_of(sub.get("jid")) == "pat@prosody.test" and sub.get("node") == node, \
            show(sub)
        assert payload.tag == "{urn:example:fed}entry", show(payload)
        assert item_title(items[0]) == word, show(items[0])
    run_clients(fed(), prosody, "pat", scenario)


# --------------------------------------------------------------------------
# (4) a Herald user subscribes to a node on pubsub.prosody.test
# --------------------------------------------------------------------------

def test_s2s_herald_user_subscribes_to_prosody_pubsub(fed, prosody):
    """pat (a Prosody admin) creates the node on Prosody; alice subscribes
    from Herald."""
    run_clients(fed(), prosody, "pat",
                lambda alice, pat: pubsub_round(pat, alice, "pubsub.prosody.test"))


# --------------------------------------------------------------------------
# (5) a peer that is down, or reachable but silent
# --------------------------------------------------------------------------

def test_s2s_stopped_peer_bounces(fed, prosody):
    h = fed()
    prosody.stop()  # the fixture starts it again for the next test

    async def main():
        alice = await herald_client(h, "alice")
        err, dt = await bounce(alice, "pat@prosody.test", "anyone?", CONNECT_TIMEOUT + MARGIN)
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
        pat = await peer_client(prosody, "pat")
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
        err2, dt = await bounce(alice, "pat@prosody.test", "hello?", CONNECT_TIMEOUT + MARGIN)
        assert error_condition(err2) is not None, show(err2)
        print("herald bounced with %s after %.2f s" % (error_condition(err2), dt))
        await pat.msgs.expect_none(is_msg(body="hello?"), wait=0.5, what="Herald's message")
    run(main, 60)
    log = h.log_text()
    assert "prosody.test" in log, "Herald's log does not name prosody.test:\n" + log[-3000:]
    assert "authenticated (dialback" not in log, "dialback used under secure_auth:\n" + log[-3000:]


# --------------------------------------------------------------------------
# (7) remote contacts and what an account allows them
# --------------------------------------------------------------------------

def test_s2s_blocked_remote_sender(fed, prosody):
    """XEP-0191 §3.6 across servers: alice blocks pat@prosody.test; pat's
    message is not delivered and pat gets service-unavailable, as if alice's
    account did not exist; after unblocking, the next one arrives."""
    async def scenario(alice, pat):
        r = await alice.iq("<block xmlns='urn:xmpp:blocking'><item jid='pat@prosody.test'/>"
                           "</block>", itype="set")
        assert r.get("type") == "result", show(r)
        err, _ = await bounce(pat, "alice@herald.test", "blocked?", T)
        assert error_condition(err) == "service-unavailable", show(err)
        await alice.msgs.expect_none(is_msg(body="blocked?"), wait=1.0,
                                     what="a message from a blocked JID")
        r = await alice.iq("<unblock xmlns='urn:xmpp:blocking'><item jid='pat@prosody.test'/>"
                           "</unblock>", itype="set")
        assert r.get("type") == "result", show(r)
        pat.send_raw("<message to='alice@herald.test' type='chat' id='ub1'><body>again</body>"
                     "</message>")
        m = (await alice.msgs.expect(is_msg(body="again"), timeout=T, what="after unblock")).xml
        assert bare_of(m.get("from")) == "pat@prosody.test", show(m)
    run_clients(fed(), prosody, "pat", scenario)


def test_s2s_presence_access_model_with_remote_contact(fed, prosody):
    """XEP-0060 §4.5 presence access model with a remote entity: pim may not
    subscribe to alice's presence-model node until he is subscribed to
    alice's presence (a subscription made across servers), then he may."""
    async def scenario(alice, pia):
        node = uid("presence-node")
        r = await alice.iq(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><create node='%s'/><configure>"
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            "<value>http://jabber.org/protocol/pubsub#node_config</value></field>"
            "<field var='pubsub#access_model'><value>presence</value></field></x></configure>"
            "</pubsub>" % node, to="pubsub.herald.test", itype="set")
        assert r.get("type") == "result", show(r)
        sub = ("<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='%s' jid='%s'/>"
               "</pubsub>" % (node, pia.bare))
        r = (await pia.iq(sub, to="pubsub.herald.test", itype="set", timeout=T)).xml
        assert r.get("type") == "error", show(r)
        assert error_condition(r) == "not-authorized", show(r)
        assert r.find(".//{http://jabber.org/protocol/pubsub#errors}presence-subscription-required") \
            is not None, show(r)
        await subscribe(pia, alice)   # pia -> alice, approved by alice
        r = (await pia.iq(sub, to="pubsub.herald.test", itype="set", timeout=T)).xml
        assert r.get("type") == "result", show(r)
        s = r.find(".//{http://jabber.org/protocol/pubsub}subscription")
        assert s is not None and s.get("subscription") == "subscribed", show(r)
    run_clients(fed(), prosody, "pim", scenario)
