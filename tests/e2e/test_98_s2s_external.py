"""Federation between two Heralds authenticated with certificates (SASL
EXTERNAL on s2s, XEP-0178) and [s2s] secure_auth = true (docs:
/tmp/contract-15.md, issue 15).

  a.test  127.0.0.21:5269  Herald, certificate from the test CA (SAN a.test, pubsub.a.test)
  b.test  127.0.0.22:5269  Herald, certificate from the test CA (SAN b.test, pubsub.b.test)
  c.test  127.0.0.27:5269  Herald, self-signed certificate (secure_auth = false: it tries dialback)

Both a and b: [tls] cert/key, [s2s] ca_file = the CA, secure_auth = true;
each reaches the others through static routes (no /etc/hosts change).
Clients log in with PLAIN on raw c2s streams (s2s_raw.C2S).
"""
import os
import re
import time

import pytest

from certs import CA
from e2e_helpers import show
from fed_helpers import error_condition, make_cert, start_s2s_herald, uid
from s2s_raw import C2S, body_of

A_IP, B_IP, C_IP = "127.0.0.21", "127.0.0.22", "127.0.0.27"
S2S_PORT = 5269
PW = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
T = 12.0
CONNECT_TIMEOUT = 5
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_EVENT = "http://jabber.org/protocol/pubsub#event"


def routes(**peers):
    cfg = {}
    for dom, ip in peers.items():
        dom = dom.replace("_", ".")
        for name in (dom, "pubsub." + dom):
            cfg["s2s:%s" % name] = {"host": ip, "port": S2S_PORT}
    return cfg


def start(workdir, domain, ip, cert, key, ca, secure_auth, peer_routes, users):
    cfg = {"tls": {"cert": cert, "key": key},
           "s2s": {"ca_file": ca, "secure_auth": secure_auth,
                   "connect_timeout": CONNECT_TIMEOUT}}
    cfg.update(peer_routes)
    return start_s2s_herald(workdir, domain, ip, cfg, {u: PW[u] for u in users}, name=domain)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("s2s-external"))
    ca = CA(root, "ca", "Herald s2s Test CA")
    certs = {}
    for dom in ("a.test", "b.test"):
        certs[dom] = ca.issue(root, dom, "/CN=%s" % dom,
                              san="DNS:%s, DNS:pubsub.%s" % (dom, dom),
                              eku="serverAuth, clientAuth")
    c_cert, c_key = make_cert(os.path.join(root, "self"), "c.test")
    servers = []
    try:
        servers.append(start(os.path.join(root, "a"), "a.test", A_IP, *certs["a.test"], ca.cert,
                             True, routes(b_test=B_IP, c_test=C_IP), ["alice"]))
        servers.append(start(os.path.join(root, "b"), "b.test", B_IP, *certs["b.test"], ca.cert,
                             True, routes(a_test=A_IP), ["bob"]))
        servers.append(start(os.path.join(root, "c"), "c.test", C_IP, c_cert, c_key, ca.cert,
                             False, routes(a_test=A_IP), ["carol"]))
        yield dict(zip(("a", "b", "c"), servers))
    finally:
        bad = []
        for s in servers:
            rc = s.stop()
            if rc != 0:
                bad.append("%s exited with %r" % (s.name, rc))
        assert not bad, bad


@pytest.fixture
def w(request, world):
    request.node._herald_servers = list(world.values())
    for s in world.values():
        assert s.running(), "%s died" % s.name
    return world


def login(srv, user, resource="r"):
    return C2S(srv.bind, srv.port, srv.domain, user, PW[user], resource)


def pubsub_iq(c, service, inner, itype="set", timeout=T):
    r = c.iq("<pubsub xmlns='%s'>%s</pubsub>" % (NS_PUBSUB, inner), itype=itype, to=service,
             timeout=timeout)
    assert r is not None, "no answer from %s to %s" % (service, inner)
    return r


def s2s_lines(srv):
    return [ln for ln in srv.log_text(200000).splitlines() if " s2s: " in ln]


def test_s2s_external_message_both_ways(w):
    a, b = w["a"], w["b"]
    alice, bob = login(a, "alice"), login(b, "bob")
    try:
        mid, body = uid("m"), uid("a-to-b")
        alice.send("<message to='bob@b.test' type='chat' id='%s'><body>%s</body></message>"
                   % (mid, body))
        m = bob.expect_message(lambda e: body_of(e) == body, timeout=T, what="alice's message")
        assert m.get("from") == alice.jid and m.get("id") == mid and m.get("type") == "chat", show(m)
        mid2, body2 = uid("m"), uid("b-to-a")
        bob.send("<message to='%s' type='chat' id='%s'><body>%s</body></message>"
                 % (alice.jid, mid2, body2))
        r = alice.expect_message(lambda e: body_of(e) == body2, timeout=T, what="bob's reply")
        assert r.get("from") == bob.jid and r.get("to") == alice.jid and r.get("id") == mid2, show(r)
        assert alice.messages(wait=0.3, pred=lambda e: e.get("type") == "error") == []
        assert bob.messages(pred=lambda e: e.get("type") == "error") == []
    finally:
        alice.close()
        bob.close()
    la, lb = a.log_text(200000), b.log_text(200000)
    for log, me, peer in ((la, "a.test", "b.test"), (lb, "b.test", "a.test")):
        assert "%s authenticated (EXTERNAL), outbound %s -> %s" % (peer, me, peer) in log, \
            "%s: no outbound EXTERNAL:\n%s" % (me, "\n".join(s2s_lines(a if me == "a.test" else b)))
        assert re.search(r"%s authenticated \(EXTERNAL\), inbound %s -> %s"
                         % (re.escape(peer), re.escape(peer), re.escape(me)), log), \
            "%s: no inbound EXTERNAL:\n%s" % (me, log[-3000:])
        assert "dialback" not in log.lower(), \
            "%s's log mentions dialback:\n%s" % (me, "\n".join(
                ln for ln in log.splitlines() if "dialback" in ln.lower()))


def test_s2s_external_remote_pubsub_subscription(w):
    a, b = w["a"], w["b"]
    service = "pubsub.a.test"
    alice, bob = login(a, "alice", uid("r")), login(b, "bob", uid("r"))
    try:
        node = uid("node")
        r = pubsub_iq(alice, service, "<create node='%s'/>" % node)
        assert r.get("type") == "result", show(r)
        r = pubsub_iq(bob, service, "<subscribe node='%s' jid='bob@b.test'/>" % node)
        assert r.get("type") == "result" and r.get("from") == service, show(r)
        sub = r.find(".//{%s}subscription" % NS_PUBSUB)
        assert sub is not None and sub.get("subscription") == "subscribed" \
            and sub.get("jid", "").split("/")[0] == "bob@b.test", show(r)
        item, word = uid("item"), uid("w")
        r = pubsub_iq(alice, service, "<publish node='%s'><item id='%s'><entry xmlns='urn:ex:fed'>"
                      "<title>%s</title></entry></item></publish>" % (node, item, word))
        assert r.get("type") == "result", show(r)

        def is_event(e):
            items = e.find("{%s}event/{%s}items" % (NS_EVENT, NS_EVENT))
            return e.get("from") == service and items is not None and items.get("node") == node \
                and [i.get("id") for i in items] == [item]
        ev = bob.expect_message(is_event, timeout=T, what="the pubsub notification")
        t = ev.find(".//{urn:ex:fed}title")
        assert t is not None and t.text == word, show(ev)
        assert ev.get("to", "").split("/")[0] == "bob@b.test", show(ev)
    finally:
        alice.close()
        bob.close()
    la, lb = a.log_text(200000), b.log_text(200000)
    # "<peer> authenticated (EXTERNAL), outbound|inbound <from> -> <to>"
    for log, line, srv in ((la, "b.test authenticated (EXTERNAL), outbound pubsub.a.test -> b.test", a),
                           (la, "b.test authenticated (EXTERNAL), inbound b.test -> pubsub.a.test", a),
                           (lb, "pubsub.a.test authenticated (EXTERNAL), outbound b.test -> "
                                "pubsub.a.test", b),
                           (lb, "pubsub.a.test authenticated (EXTERNAL), inbound pubsub.a.test -> "
                                "b.test", b)):
        assert line in log, "%s: no '%s':\n%s" % (srv.name, line, "\n".join(s2s_lines(srv)))
    assert "dialback" not in la.lower() and "dialback" not in lb.lower()


def bounce(c, to, body, what):
    """c's chat message to ``to`` comes back as an error within connect_timeout
    + 4 s, with its id, from ``to``, remote-server-not-found or -timeout.
    Returns (condition, seconds)."""
    mid = uid("m")
    t0 = time.monotonic()
    c.send("<message to='%s' type='chat' id='%s'><body>%s</body></message>" % (to, mid, body))
    err = c.expect_message(lambda e: e.get("type") == "error", timeout=CONNECT_TIMEOUT + 4,
                           what=what)
    dt = time.monotonic() - t0
    assert err.get("id") == mid and err.get("from") == to, show(err)
    cond = error_condition(err)
    assert cond in ("remote-server-not-found", "remote-server-timeout"), show(err)
    return cond, dt


def test_s2s_secure_auth_refuses_self_signed_peer(w):
    a, c = w["a"], w["c"]
    alice, carol = login(a, "alice", uid("r")), login(c, "carol", uid("r"))
    try:
        # a -> c: c's self-signed certificate does not verify, dialback is off
        cond_a, dt_a = bounce(alice, "carol@c.test", "hi c", "a bounce for c.test")
        # c -> a: c tries dialback, a refuses it (secure_auth)
        cond_c, dt_c = bounce(carol, alice.jid, "let me in", "c's bounce")
        assert carol.messages(pred=lambda e: body_of(e) == "hi c") == []
        assert alice.messages(wait=0.5, pred=lambda e: body_of(e) == "let me in") == []
    finally:
        alice.close()
        carol.close()
    print("a->c bounced %s after %.2f s; c->a bounced %s after %.2f s" % (cond_a, dt_a, cond_c,
                                                                          dt_c))
    la = "\n".join(s2s_lines(a))
    lc = "\n".join(s2s_lines(c))
    print("---- a.test s2s ----\n%s\n---- c.test s2s ----\n%s" % (la, lc))
    assert "c.test authenticated" not in la, la
    # a says why: secure_auth, outbound (no verifiable certificate) and inbound (dialback refused)
    assert re.search(r"a\.test -> c\.test failed: .*secure_auth", la), la
    assert re.search(r"dialback from c\.test refused: s2s\.secure_auth", la), la
    assert "a.test authenticated" not in lc, lc
