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

Users: alice and bob on Herald; ed and eva on ejabberd; pat on Prosody. The
scenarios shared with test_95 (Prosody) live in fed_helpers.
"""
import pytest

from e2e_helpers import run, show
from fed_helpers import (PW, T, EjabberdPeer, ProsodyPeer, assert_mutual, bare_of, disco_both_ways,
                         goes_offline, herald_factory, is_push_for, item_title, message_both_ways,
                         peer_client, pubsub_round, run_clients, running_peer, subscribe)


@pytest.fixture(scope="module")
def ejabberd(tmp_path_factory):
    root = tmp_path_factory.mktemp("s2s-ejabberd")
    yield from running_peer(EjabberdPeer(root / "ejabberd"), ["ed", "eva"])


@pytest.fixture
def fed(request, tmp_path, ejabberd):
    """Factory: fed() starts Herald as herald.test with alice and bob. Herald
    must exit 0 at the end. No static routes: ejabberd.test resolves through
    /etc/hosts."""
    yield from herald_factory(request, tmp_path, ejabberd)


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
            await message_both_ways(await peer_client(p, "pat"), await peer_client(ejabberd, "ed"),
                                    strict=False)
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
    run_clients(h, ejabberd, "ed", message_both_ways, 40)
    log = h.log_text()
    assert "ejabberd.test" in log, "Herald's log does not name ejabberd.test:\n" + log[-3000:]


def test_s2s_ejabberd_iq_disco_both_ways(fed, ejabberd):
    run_clients(fed(), ejabberd, "ed", disco_both_ways, 40)


# --------------------------------------------------------------------------
# (2) presence subscriptions both ways
# --------------------------------------------------------------------------

def test_s2s_ejabberd_presence_subscription_both_ways(fed, ejabberd):
    async def scenario(alice, eva):
        # eva -> alice first this time
        await subscribe(eva, alice)
        # alice -> eva
        await subscribe(alice, eva, approved=lambda: alice.pushes.expect(
            is_push_for("eva@ejabberd.test", "both"), timeout=T, what="push 'both'"))
        await assert_mutual(alice, eva)
        await goes_offline(eva, alice)
    run_clients(fed(), ejabberd, "eva", scenario)


# --------------------------------------------------------------------------
# (3) an ejabberd user subscribes to a node on pubsub.herald.test
# --------------------------------------------------------------------------

def test_s2s_ejabberd_user_subscribes_to_herald_pubsub(fed, ejabberd):
    async def scenario(alice, ed):
        node, word, sub, payload, items = await pubsub_round(alice, ed, "pubsub.herald.test")
        assert bare_of(sub.get("jid")) == "ed@ejabberd.test", show(sub)
        assert item_title(items[0]) == word, show(items[0])
    run_clients(fed(), ejabberd, "ed", scenario)
