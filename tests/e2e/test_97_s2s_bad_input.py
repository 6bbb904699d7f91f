"""Federation (s2s) with bad and hostile input: raw-socket fake peers speak
jabber:server to Herald's s2s port (docs: /tmp/contract-15.md, issue 15).

  herald.test   127.0.0.20:5269  Herald (one per module; [s2s] require_tls = false,
                                  connect_timeout = 3, [c2s] max_stanza_size = 4096)
  127.0.0.23:5269  FakeServer: the authoritative server of honest.test and
                   liar.test, and the receiving server of x.test (static routes)
  127.0.0.24:5269  nothing listens (dead.test)
  127.0.0.25:5269  accepts TCP, never answers (silent.test)
  127.0.0.26:5269  a second Herald with secure_auth = true and STARTTLS required

No /etc/hosts changes: every peer domain has a static route [s2s:DOMAIN].
After each abuse the module's Herald must still serve: a c2s login works and
an honest dialback peer still delivers a message to a local user.
"""
import contextlib
import time

import pytest

from e2e_helpers import q, show
from fed_helpers import error_condition, start_s2s_herald, uid
from s2s_raw import C2S, NS_DB, FakeServer, PeerStream, body_of, features_of

HERALD_DOMAIN = "herald.test"
HERALD_IP = "127.0.0.20"
FAKE_IP = "127.0.0.23"
DEAD_IP = "127.0.0.24"
SILENT_IP = "127.0.0.25"
SECURE_IP = "127.0.0.26"
S2S_PORT = 5269
CONNECT_TIMEOUT = 3
MARGIN = 3.0
MAX_STANZA = 4096
PW = {"alice": "alice-pw", "bob": "bob-pw"}
ROUTES = {"honest.test": FAKE_IP, "liar.test": FAKE_IP, "x.test": FAKE_IP,
          "dead.test": DEAD_IP, "silent.test": SILENT_IP}


def herald_config(extra_s2s=None, routes=ROUTES):
    cfg = {"s2s": dict({"require_tls": False, "connect_timeout": CONNECT_TIMEOUT},
                       **(extra_s2s or {})),
           "c2s": {"max_stanza_size": MAX_STANZA}}
    for dom, ip in routes.items():
        cfg["s2s:%s" % dom] = {"host": ip, "port": S2S_PORT}
    return cfg


def start_herald(workdir, ip, config, name="herald"):
    return start_s2s_herald(workdir, HERALD_DOMAIN, ip, config, PW, name)


@pytest.fixture(scope="module")
def fake():
    f = FakeServer(FAKE_IP, S2S_PORT)
    silent = FakeServer(SILENT_IP, S2S_PORT, mode="silent")
    f.silent = silent
    try:
        yield f
    finally:
        f.close()
        silent.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, fake):
    srv = start_herald(tmp_path_factory.mktemp("s2s-bad"), HERALD_IP, herald_config())
    yield srv
    rc = srv.stop()
    assert rc == 0, "herald exited with %r after SIGTERM\n%s" % (rc, srv.log_text(4000))


@pytest.fixture
def h(request, server):
    request.node._herald_servers = [server]  # conftest prints the log on failure
    assert server.running(), "herald is not running any more"
    return server


def login(srv, user, resource="r"):
    return C2S(srv.bind, srv.port, HERALD_DOMAIN, user, PW[user], resource)


def honest_peer(fake, domain="honest.test", ip=HERALD_IP):
    """A stream to Herald authenticated for ``domain`` by dialback; the fake
    authoritative server confirms the key."""
    key = uid("key")
    fake.keys[domain] = key
    s = PeerStream(ip, S2S_PORT)
    hdr = s.open_s2s(domain, HERALD_DOMAIN)
    assert hdr is not None and hdr.get("id") and hdr.get("from") == HERALD_DOMAIN, s.text()
    feats = features_of(s.features())
    assert "dialback" in feats, feats
    r = s.db_result(domain, HERALD_DOMAIN, key)
    assert r is not None and r.tag == q(NS_DB, "result") and r.get("type") == "valid" \
        and r.get("from") == HERALD_DOMAIN and r.get("to") == domain, \
        "honest dialback for %s: %s (raw %r)" % (domain, show(r), s.text()[-800:])
    assert ("herald.test", domain, s.stream_id, key, "valid") in fake.verifies, fake.verifies
    return s


def peer_message(frm, to, body, mid=None):
    return ("<message from='%s' to='%s' type='chat' id='%s'><body>%s</body></message>"
            % (frm, to, mid or uid("m"), body))


def assert_serving(srv, fake):
    """Herald still runs, a c2s login works, an honest peer's message is
    delivered to a local user."""
    assert srv.running(), "herald died"
    bob = login(srv, "bob", uid("res"))
    try:
        s = honest_peer(fake)
        body = uid("still-serving")
        s.send(peer_message("pat@honest.test/p", bob.jid, body))
        m = bob.expect_message(lambda e: body_of(e) == body, what="the honest peer's message")
        assert m.get("from") == "pat@honest.test/p", show(m)
        s.close()
    finally:
        bob.close()


@contextlib.contextmanager
def abused(srv, fake, user="alice", resource="r", serving=True):
    """A logged-in local user for the body (closed afterwards); when the body
    passes and ``serving``, assert_serving() then checks that Herald came
    through the abuse."""
    c = login(srv, user, resource)
    try:
        yield c
    finally:
        c.close()
    if serving:
        assert_serving(srv, fake)


def assert_stream_error(s, condition, timeout=5.0):
    s.read_until_closed(timeout)
    assert s.stream_error() == condition, \
        "expected stream error <%s/>, got %r; raw: %r" % (condition, s.stream_error(),
                                                          s.text()[-1200:])
    assert s.closed, "Herald did not close the TCP connection after <%s/>" % condition


# --------------------------------------------------------------------------
# dialback: a liar, an honest peer, a spoofed 'from'
# --------------------------------------------------------------------------

def test_s2s_dialback_liar_gets_invalid(h, fake):
    with abused(h, fake) as alice:
        s = PeerStream(HERALD_IP, S2S_PORT)
        assert s.open_s2s("liar.test", HERALD_DOMAIN) is not None, s.text()
        sid = s.stream_id
        assert "dialback" in features_of(s.features())
        r = s.db_result("liar.test", HERALD_DOMAIN, "forged-key-0123")
        assert r is not None and r.tag == q(NS_DB, "result"), \
            "no <db:result/> verdict: %s; raw %r" % (show(r), s.text()[-800:])
        assert r.get("type") == "invalid" and r.get("from") == HERALD_DOMAIN \
            and r.get("to") == "liar.test", show(r)
        # Herald asked liar.test's authoritative server about that key and stream.
        assert ("herald.test", "liar.test", sid, "forged-key-0123", "invalid") in fake.verifies, \
            fake.verifies
        s.send(peer_message("mallory@liar.test/m", alice.jid, "from the liar"))
        s.read_until_closed(5)
        assert s.closed and s.stream_ended, "the liar's stream stays open: %r" % s.text()[-500:]

        # A liar that sends a stanza right behind its <db:result/> (before the verdict).
        s2 = PeerStream(HERALD_IP, S2S_PORT)
        assert s2.open_s2s("liar.test", HERALD_DOMAIN) is not None
        s2.features()
        s2.send("<db:result from='liar.test' to='herald.test'>forged-key-4567</db:result>"
                + peer_message("mallory@liar.test/m", alice.jid, "pipelined from the liar"))
        s2.read_until_closed(5)
        assert s2.closed, "the pipelining liar's stream stays open"
        assert s2.stream_error() == "not-authorized", \
            "stanza before the dialback verdict: %r; raw %r" % (s2.stream_error(), s2.text())

        got = alice.messages(wait=1.0)
        assert got == [], "the liar's stanzas were delivered: %s" % [show(m) for m in got]


def test_s2s_dialback_honest_peer_delivers(h, fake):
    with abused(h, fake, serving=False) as alice:
        s = honest_peer(fake)
        mid, body = uid("m"), uid("hello")
        s.send(peer_message("pat@honest.test/p", alice.jid, body, mid))
        m = alice.expect_message(lambda e: body_of(e) == body, what="the honest message")
        assert m.get("from") == "pat@honest.test/p" and m.get("to") == alice.jid \
            and m.get("id") == mid and m.get("type") == "chat", show(m)
        # to the bare JID as well
        body2 = uid("bare")
        s.send(peer_message("pat@honest.test/p", "alice@herald.test", body2))
        alice.expect_message(lambda e: body_of(e) == body2, what="the message to the bare JID")
        s.close()
    assert "honest.test authenticated (dialback), inbound" in h.log_text(), \
        h.log_text()[-3000:]


def abuse_honest_stream(h, fake, abuse, condition, first=None, what="the authenticated message",
                        wait=1.0):
    """On an honest peer's authenticated stream: the message ``first`` (if
    any) reaches alice; then ``abuse`` (the stream's bytes, given alice's
    JID) gets the stream error <condition/>, and nothing more reaches alice
    within ``wait``."""
    with abused(h, fake) as alice:
        s = honest_peer(fake)
        if first is not None:
            s.send(peer_message("pat@honest.test/p", alice.jid, first))
            alice.expect_message(lambda e: body_of(e) == first, what=what)
        s.send(abuse(alice.jid))
        assert_stream_error(s, condition)
        got = alice.messages(wait=wait)
        assert got == [], "delivered after the abuse: %s" % [show(m) for m in got]


@pytest.mark.parametrize("spoof", ["eve@liar.test/e", "bob@herald.test/b", "pubsub.herald.test"])
def test_s2s_spoofed_from_invalid_from(h, fake, spoof):
    abuse_honest_stream(h, fake, lambda jid: peer_message(spoof, jid, uid("spoofed")),
                        "invalid-from", first=uid("good"))
    log = h.log_text()
    assert "invalid-from" in log and spoof in log, log[-3000:]


def test_s2s_stanza_before_authentication(h, fake):
    with abused(h, fake) as alice:
        for stanza in (peer_message("pat@honest.test/p", alice.jid, "too early"),
                       "<iq from='honest.test' to='herald.test' type='get' id='i1'>"
                       "<ping xmlns='urn:xmpp:ping'/></iq>",
                       "<presence from='pat@honest.test/p' to='alice@herald.test'/>"):
            s = PeerStream(HERALD_IP, S2S_PORT)
            assert s.open_s2s("honest.test", HERALD_DOMAIN) is not None
            s.features()
            s.send(stanza)
            assert_stream_error(s, "not-authorized")
            assert not any(e.tag.endswith("}iq") for e in s.seen), s.text()
        got = alice.messages(wait=1.0)
        assert got == [], [show(m) for m in got]


# --------------------------------------------------------------------------
# broken streams
# --------------------------------------------------------------------------

def test_s2s_oversize_stanza_policy_violation(h, fake):
    """A 2 KB message fits [c2s] max_stanza_size; one larger than it is a
    policy-violation, and not delivered."""
    abuse_honest_stream(h, fake, lambda jid: peer_message("pat@honest.test/p", jid,
                                                          uid("big") + "b" * (MAX_STANZA + 1000)),
                        "policy-violation", first=uid("fits") + "a" * 2000,
                        what="the 2 KB message")


def test_s2s_malformed_xml_not_well_formed(h, fake):
    abuse_honest_stream(h, fake, lambda jid: "<message from='pat@honest.test/p' to='%s'>"
                                             "<body>broken</bodyx></message>" % jid,
                        "not-well-formed", wait=0.5)


def test_s2s_wrong_namespace_and_unknown_host(h, fake):
    s = PeerStream(HERALD_IP, S2S_PORT)
    s.open_s2s("honest.test", HERALD_DOMAIN, xmlns="jabber:client", wait=False)
    assert_stream_error(s, "invalid-namespace")

    s = PeerStream(HERALD_IP, S2S_PORT)
    s.open_s2s("honest.test", "nowhere.test", wait=False)
    assert_stream_error(s, "host-unknown")

    # the pubsub service's domain is hosted: a normal header and features
    s = PeerStream(HERALD_IP, S2S_PORT)
    hdr = s.open_s2s("honest.test", "pubsub.herald.test")
    assert hdr is not None and hdr.get("from") == "pubsub.herald.test", s.text()
    assert "dialback" in features_of(s.features())
    assert s.stream_error() is None, s.text()
    s.close()
    assert_serving(h, fake)


# --------------------------------------------------------------------------
# Herald as the authoritative server
# --------------------------------------------------------------------------

def test_s2s_herald_answers_db_verify(h, fake):
    fake.hold_results_for.add("x.test")
    n0 = len(fake.results)
    try:
        with abused(h, fake) as alice:
            mid, body = uid("m"), uid("to-x")
            alice.send("<message to='bob@x.test' type='chat' id='%s'><body>%s</body></message>"
                       % (mid, body))
            assert fake.wait(lambda: any(r[2] == "x.test" for r in fake.results[n0:]), 10), \
                "Herald sent no <db:result/> to x.test's server"
            conn, frm, to, key = [r for r in fake.results[n0:] if r[2] == "x.test"][0]
            assert frm == HERALD_DOMAIN and len(key) == 64, (frm, key)
            sid = conn.stream_id

            # x.test (the receiving server) asks Herald about keys on a new stream
            v = PeerStream(HERALD_IP, S2S_PORT)
            assert v.open_s2s("x.test", HERALD_DOMAIN) is not None
            v.features()
            for k, i, want in (("wrongkey", sid, "invalid"), (key, "other-id", "invalid"),
                               (key, sid, "valid"), (key[:-1] + ("0" if key[-1] != "0" else "1"),
                                                     sid, "invalid")):
                r = v.db_verify("x.test", HERALD_DOMAIN, i, k)
                assert r is not None and r.tag == q(NS_DB, "verify"), \
                    "no <db:verify/> answer: %s; raw %r" % (show(r), v.text()[-600:])
                assert r.get("type") == want and r.get("id") == i \
                    and r.get("from") == HERALD_DOMAIN and r.get("to") == "x.test", \
                    "key %r id %r: %s (want %s)" % (k, i, show(r), want)
            v.close()

            # x.test accepts Herald's key: the queued message goes out
            fake.answer_result(fake.results.index((conn, frm, to, key)), "valid")
            assert fake.wait(lambda: any(body_of(e) == body for e in fake.stanzas()), 10), \
                "the queued message never reached x.test"
            m = [e for e in fake.stanzas() if body_of(e) == body][0]
            assert m.get("from") == alice.jid and m.get("to") == "bob@x.test" \
                and m.get("id") == mid, show(m)
            assert alice.messages(wait=0.3, pred=lambda e: e.get("type") == "error") == []
    finally:
        fake.hold_results_for.discard("x.test")
    assert "x.test authenticated (dialback), outbound" in h.log_text()


# --------------------------------------------------------------------------
# unreachable and silent peers
# --------------------------------------------------------------------------

def _bounce(srv, to):
    with abused(srv, None, resource=uid("r"), serving=False) as alice:
        mid = uid("m")
        t0 = time.monotonic()
        alice.send("<message to='%s' type='chat' id='%s'><body>anyone?</body></message>"
                   % (to, mid))
        err = alice.expect_message(lambda e: e.get("type") == "error",
                                   timeout=CONNECT_TIMEOUT + MARGIN, what="a bounce")
        dt = time.monotonic() - t0
        assert err.get("id") == mid and err.get("from") == to, show(err)
        return error_condition(err), dt


def test_s2s_unreachable_peer_remote_server_not_found(h, fake):
    cond, dt = _bounce(h, "bob@dead.test")
    assert cond == "remote-server-not-found", cond
    assert dt <= CONNECT_TIMEOUT + MARGIN
    print("remote-server-not-found after %.2f s" % dt)
    assert_serving(h, fake)


def test_s2s_silent_peer_remote_server_timeout(h, fake):
    n0 = len(fake.silent.conns)
    cond, dt = _bounce(h, "bob@silent.test")
    assert len(fake.silent.conns) > n0, "Herald never connected to silent.test's route"
    assert cond == "remote-server-timeout", cond
    assert CONNECT_TIMEOUT - 1.0 <= dt <= CONNECT_TIMEOUT + MARGIN, dt
    print("remote-server-timeout after %.2f s" % dt)
    assert_serving(h, fake)


# --------------------------------------------------------------------------
# secure_auth: no dialback at all
# --------------------------------------------------------------------------

def test_s2s_secure_auth_refuses_dialback(request, tmp_path, server, fake):
    srv = start_herald(tmp_path / "secure", SECURE_IP,
                       {"s2s": {"secure_auth": True, "connect_timeout": CONNECT_TIMEOUT},
                        "s2s:honest.test": {"host": FAKE_IP, "port": S2S_PORT}},
                       name="herald-secure")
    request.node._herald_servers = [srv, server]
    try:
        nverify = len(fake.verifies)
        s = PeerStream(SECURE_IP, S2S_PORT)
        assert s.open_s2s("honest.test", HERALD_DOMAIN) is not None, s.text()
        feats = features_of(s.features())
        assert "starttls" in feats and "dialback" not in feats, feats
        s.starttls()
        assert s.open_s2s("honest.test", HERALD_DOMAIN) is not None, s.text()
        feats = features_of(s.features())
        assert "dialback" not in feats and "mechanisms:EXTERNAL" not in feats, feats
        fake.keys["honest.test"] = key = uid("key")
        s.send("<db:result from='honest.test' to='herald.test'>%s</db:result>" % key)
        assert_stream_error(s, "not-authorized")
        assert not any(e.tag == q(NS_DB, "result") for e in s.seen), s.text()
        assert len(fake.verifies) == nverify, "secure_auth Herald still asked: %s" % \
            fake.verifies[nverify:]
        # still serving
        c = login(srv, "alice")
        c.close()
        log = srv.log_text()
        assert "secure_auth" in log, log[-2000:]
    finally:
        rc = srv.stop()
    assert rc == 0, "secure Herald exited with %r" % rc
