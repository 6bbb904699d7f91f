"""Leased items (docs/leases.md): an item published with a lease is
retracted, with notification, when the lease ends; a session lease ends with
the publisher's session (a cut TCP connection); renewals over REST; leases
survive a restart with the clock running.

Clients: curl (REST, the event stream), raw XMPP streams (stream_helpers)
for the session lease, whose TCP connection is cut without a closing tag."""
import time

from e2e_helpers import NS_CLIENT, q, show
from pubsub_helpers import (NS_EVENT, NS_PUBLISH_OPTIONS, NS_PUBSUB, PUBSUB, form_xml,
                            kill_hard, restart_after_kill)
from rest_helpers import (EventStream, Rest, assert_problem, expect, item_path, items_path,
                          new_token, node_path)
from rest_helpers import _rest_streams  # noqa: F401 (autouse: ends curl -N streams)
from stream_helpers import USERS, config, cut, login, resume_stream, wait_log

import os

SLOWDOWN = float(os.environ.get("HERALD_E2E_SLOWDOWN", "1"))
# The contract: a leased item is gone within one second of its lease's end.
# Sanitizer builds run several times slower; the harness stretches its own
# polling margin by HERALD_E2E_SLOWDOWN, never the server's bound.
GRACE = 1.0 * SLOWDOWN


def server(herald):
    srv = herald(users=USERS, allow_plaintext=True)
    return srv, Rest(srv, new_token(srv, "alice@localhost"))


def lease_url(node, item_id, secs=None):
    url = item_path(node, item_id) + "/lease"
    return url + ("?lease=%d" % secs if secs else "")


def wait_gone(rest, node, item_id, deadline):
    """Polls GET of the item until 404 or the deadline; returns when it went."""
    while True:
        r = rest.get(item_path(node, item_id))
        if r.status == 404:
            return time.monotonic()
        assert r.status == 200, r
        assert time.monotonic() < deadline, \
            "item %r of %r still there after its lease ended: %s" % (item_id, node, r.text)
        time.sleep(0.05)


def subscriber(srv, node, user="bob", resource="sub", bare=False):
    s = login(srv, user, resource, enable=False)
    jid = "%s@localhost" % user + ("" if bare else "/" + resource)
    r = s.iq("<pubsub xmlns='%s'><subscribe node='%s' jid='%s'/></pubsub>"
             % (NS_PUBSUB, node, jid), itype="set", to=PUBSUB)
    assert r is not None and r.get("type") == "result", show(r)
    return s


def retract_of(s, node, timeout=10.0):
    """The id in the next <retract/> event of node on stream s."""
    def is_retract(e):
        if e.tag != q(NS_CLIENT, "message"):
            return False
        items = e.find("%s/%s" % (q(NS_EVENT, "event"), q(NS_EVENT, "items")))
        return items is not None and items.get("node") == node and \
            items.find(q(NS_EVENT, "retract")) is not None
    m = s.wait_element(is_retract, timeout)
    assert m is not None, "no retract event of %r" % node
    return m.find(".//" + q(NS_EVENT, "retract")).get("id")


def publish_xmpp(s, node, item_id, lease):
    opts = form_xml(NS_PUBLISH_OPTIONS, {"herald#lease": lease})
    return s.iq("<pubsub xmlns='%s'><publish node='%s'><item id='%s'><v xmlns='urn:t'/></item>"
                "</publish><publish-options>%s</publish-options></pubsub>"
                % (NS_PUBSUB, node, item_id, opts), itype="set", to=PUBSUB)


def test_rest_lease_ends_with_retract_over_xmpp_and_sse(herald):
    """PUT ?lease=2: the item reads back with its lease; it stays until the
    lease ends and is gone within a second after, with a retract event to
    an XMPP subscriber and to an event stream."""
    srv, alice = server(herald)
    alice.create("svc", {"notify_retract": True})
    sub = subscriber(srv, "svc")
    sse = EventStream(srv, "svc", alice.tok).wait_ready()
    r = expect(alice.put(item_path("svc", "node-1") + "?lease=2", {"addr": "10.0.0.1"}), 201)
    t0 = time.monotonic()
    it = alice.item("svc", "node-1")
    assert it["lease"]["seconds"] == 2 and 1 <= it["lease"]["remaining"] <= 2, it
    assert it["lease"]["expires"].endswith("Z"), it
    ev = sse.next()
    assert ev.type == "item" and ev.json()["lease"]["seconds"] == 2, ev
    # Not before its end ...
    time.sleep(max(0.0, 1.5 - (time.monotonic() - t0)))
    if time.monotonic() - t0 < 1.9:
        expect(alice.get(item_path("svc", "node-1")), 200, "item before its lease ended")
    # ... and within a second after.
    gone = wait_gone(alice, "svc", "node-1", t0 + 2.0 + GRACE + 0.5)
    assert gone - t0 >= 1.9, "the item went %.2f s after a 2 s lease" % (gone - t0)
    assert retract_of(sub, "svc") == "node-1"
    ev = sse.next()
    assert ev.type == "retract" and ev.json()["id"] == "node-1", ev
    assert r.json()["id"] == "node-1"


def test_renew_and_its_errors(herald):
    """POST .../lease renews from now (query, body, or the previous length);
    404 once the item is gone, 403 for someone who neither published it nor
    owns the node, 400 for a bad length; an item without a timed lease
    needs a length."""
    srv, alice = server(herald)
    bob = Rest(srv, new_token(srv, "bob@localhost"))
    alice.create("r", {"publish_model": "open"})
    expect(alice.put(item_path("r", "a") + "?lease=2", {"n": 1}), 201)
    t0 = time.monotonic()
    time.sleep(1.0)
    r = expect(alice.post(lease_url("r", "a", 4)), 200, "renew by query")
    assert r.json()["id"] == "a" and r.json()["expires"].endswith("Z"), r
    assert alice.item("r", "a")["lease"]["seconds"] == 4
    time.sleep(max(0.0, 2.5 - (time.monotonic() - t0)))
    expect(alice.get(item_path("r", "a")), 200, "renewed item after its first lease")
    expect(alice.post(lease_url("r", "a"), {"lease": 3}), 200, "renew by body")
    expect(alice.post(lease_url("r", "a")), 200, "renew with the previous length")
    assert alice.item("r", "a")["lease"]["seconds"] == 3
    assert_problem(bob.post(lease_url("r", "a", 5)), 403)
    for bad in ("0", "-1", "x", "315360001", "session"):
        assert_problem(alice.put(item_path("r", "b") + "?lease=" + bad, {"n": 2}), 400)
    assert_problem(alice.post(lease_url("r", "a"), {"lease": "soon"}), 400)
    expect(alice.put(item_path("r", "plain"), {"n": 3}), 201)
    assert "lease" not in alice.item("r", "plain")
    assert_problem(alice.post(lease_url("r", "plain")), 400)
    # Republishing without a lease ends the lease: the item stays.
    expect(alice.put(item_path("r", "c") + "?lease=1", {"n": 4}), 201)
    expect(alice.put(item_path("r", "c"), {"n": 5}), 200)
    # A renewed lease given to an item that had none.
    expect(alice.post(lease_url("r", "plain", 1)), 200)
    gone = wait_gone(alice, "r", "plain", time.monotonic() + 1.0 + GRACE + 0.5)
    assert gone
    assert_problem(alice.post(lease_url("r", "plain", 5)), 404)
    time.sleep(0.5)
    assert alice.item("r", "c")["json"] == {"n": 5}
    assert "lease" not in alice.item("r", "c")


def test_xmpp_lease_option_and_session_lease_on_a_cut_connection(herald):
    """publish-options herald#lease: seconds, or 'session' (the item lives
    as long as the publisher's session: cutting its TCP connection retracts
    it, with notification); a bad value is bad-request."""
    srv, alice = server(herald)
    alice.create("presence", {"notify_retract": True})
    sub = subscriber(srv, "presence")
    pub = login(srv, "alice", "worker", enable=False)
    r = publish_xmpp(pub, "presence", "timed", "1")
    assert r.get("type") == "result", show(r)
    r = publish_xmpp(pub, "presence", "mine", "session")
    assert r.get("type") == "result", show(r)
    r = publish_xmpp(pub, "presence", "bad", "forever")
    assert r.get("type") == "error" and r.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}"
                                               "bad-request") is not None, show(r)
    assert retract_of(sub, "presence", 1.0 + GRACE + 2) == "timed"
    assert alice.item("presence", "mine")["lease"] == {"session": True}
    cut(pub)
    assert retract_of(sub, "presence", 5.0 * SLOWDOWN) == "mine"
    expect(alice.get(item_path("presence", "mine")), 404, "session-leased item after the cut")
    assert alice.items("presence")["items"] == []


def test_leases_survive_restart_and_kill(herald):
    """The clock keeps running: a lease that ended while the server was
    down is retracted at start (a subscriber of a 'normal' node finds the
    retract in its offline storage); a longer one survives a kill -9 and
    ends on time; session leases end with the process."""
    srv, alice = server(herald)
    alice.create("fleet", {"notify_retract": True, "notification_type": "normal"})
    sub = subscriber(srv, "fleet", bare=True)
    sub.send("</stream:stream>")
    sub.close()
    expect(alice.put(item_path("fleet", "short") + "?lease=1", {"n": 1}), 201)
    expect(alice.put(item_path("fleet", "long") + "?lease=%d" % int(3 + SLOWDOWN),
                     {"n": 2}), 201)
    pub = login(srv, "alice", "w", enable=False)
    assert publish_xmpp(pub, "fleet", "sess", "session").get("type") == "result"
    t0 = time.monotonic()
    kill_hard(srv)
    time.sleep(1.5)
    restart_after_kill(srv)
    expect(alice.get(item_path("fleet", "short")), 404, "lease ended while down")
    expect(alice.get(item_path("fleet", "sess")), 404, "session of the previous run")
    assert alice.item("fleet", "long")["lease"]["remaining"] >= 1
    bob = login(srv, "bob", "back", enable=False)
    got = set()
    for _ in range(2):
        got.add(retract_of(bob, "fleet", 5.0 * SLOWDOWN))
    assert got == {"short", "sess"}, got
    wait_gone(alice, "fleet", "long", t0 + 3 + SLOWDOWN + GRACE + 1.0)
    assert retract_of(bob, "fleet", 5.0) == "long"
    bob.send("</stream:stream>")
    bob.close()
    srv.restart()
    assert alice.items("fleet")["items"] == []


def test_many_leases_end_together(herald):
    """2,000 items whose leases end together are all retracted (in slices
    of the loop: the server answers meanwhile), and /metrics counts them."""
    srv, alice = server(herald)
    alice.create("bulk", {"max_items": 10000})
    pub = login(srv, "alice", "bulk", enable=False)
    n = 2000
    opts = form_xml(NS_PUBLISH_OPTIONS, {"herald#lease": "2"})
    for i in range(n):
        pub.send("<iq type='set' id='p%d' to='%s'><pubsub xmlns='%s'><publish node='bulk'>"
                 "<item id='i%d'><v xmlns='urn:t'/></item></publish><publish-options>%s"
                 "</publish-options></pubsub></iq>" % (i, PUBSUB, NS_PUBSUB, i, opts))
    last = pub.wait_element(lambda e: e.get("id") == "p%d" % (n - 1), 30.0 * SLOWDOWN)
    assert last is not None and last.get("type") == "result", show(last)
    assert expect(alice.get(node_path("bulk")), 200).json()["items"] == n
    deadline = time.monotonic() + 30.0 * SLOWDOWN
    while expect(alice.get(node_path("bulk")), 200).json()["items"]:
        assert time.monotonic() < deadline, "leased items left"
        r = pub.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
        assert r is not None and r.get("type") == "result"
        time.sleep(0.1)
    m = expect(alice.get("/metrics"), 200).text
    line = [x for x in m.splitlines() if x.startswith("herald_leases_expired_total ")]
    assert line and int(float(line[0].split()[1])) >= n, line


def test_session_lease_with_stream_management(herald):
    """With XEP-0198 the session outlives its connection: a cut that is
    resumed keeps the session-leased item; one that is not resumed within
    c2s.resume_timeout ends the session, and the item goes with it."""
    srv = herald(users=USERS, config=config(resume_timeout=2))
    alice = Rest(srv, new_token(srv, "alice@localhost"))
    alice.create("sm")
    pub = login(srv, "alice", "w")
    assert publish_xmpp(pub, "sm", "kept", "session").get("type") == "result"
    previd = pub.enabled.get("id")
    cut(pub)
    assert wait_log(srv, "kept for resumption"), "the server noticed the cut"
    pub2, r = resume_stream(srv, "alice", previd, pub.h)
    assert r is not None and r.get("previd") == previd, show(r)
    time.sleep(2.5)  # past resume_timeout: the resumed session is the same one
    assert alice.item("sm", "kept")["lease"] == {"session": True}
    cut(pub2)
    deadline = time.monotonic() + 10
    while srv.log_text().count("kept for resumption") < 2:  # the second cut noticed
        assert time.monotonic() < deadline, "the server did not notice the second cut"
        time.sleep(0.05)
    t0 = time.monotonic()
    wait_gone(alice, "sm", "kept", t0 + 2 + 2 * SLOWDOWN + 3)
    assert time.monotonic() - t0 >= 1.0, "the item went before resume_timeout"
