"""Signed webhooks (docs/webhooks.md): a node's events POSTed to a receiver.

The receiver is a real HTTP server in the test (http.server in a thread on
127.0.0.1, reachable because the server's config says
``[webhooks] allow = 127.0.0.0/8``). It checks EVERY request's
Herald-Signature with hmac (a bad one fails the test), and can answer 500
for a while before it recovers. Items are published over REST (curl) and
over XMPP (slixmpp), so both front ends feed the outbox.
"""
import hashlib
import hmac
import http.server
import json
import os
import re
import threading
import time

from e2e_helpers import run, write_config
from pubsub_helpers import must_publish, ps_client
from rest_helpers import (Rest, assert_problem, expect, in_thread, items_path, new_token,
                          node_path, rest_server)

SECRET = "whsec-9f2c71d0a4"
FAST = {"allow": "127.0.0.0/8", "backoff_initial_ms": 20, "backoff_max_ms": 100}
SIG_RE = re.compile(r"^t=(\d+),v1=([0-9a-f]{64})$")
SLOW = int(os.environ.get("HERALD_E2E_SLOWDOWN", "1"))


class Receiver:
    """Records every POST: (status answered, headers, parsed body). fail(n)
    makes the next n requests get 500; fail_always() until recover()."""

    def __init__(self, secret=SECRET):
        self.secret = secret.encode()
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.requests = []
        self.bad = []
        self.to_fail = 0
        self.always_fail = False
        self.ok_budget = None  # n: answer 200 n times, then 500
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                status = rec.record(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def verify(self, headers, body):
        m = SIG_RE.match(headers.get("Herald-Signature", ""))
        if not m:
            return "no or malformed Herald-Signature: %r" % headers.get("Herald-Signature")
        want = hmac.new(self.secret, m.group(1).encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, m.group(2)):
            return "signature mismatch"
        if abs(int(m.group(1)) - time.time()) > 300:
            return "timestamp too far off"
        if headers.get("Content-Type") != "application/json":
            return "Content-Type %r" % headers.get("Content-Type")
        try:
            doc = json.loads(body)
        except ValueError:
            return "body is not JSON"
        if headers.get("Herald-Event") != doc.get("event"):
            return "Herald-Event %r vs body %r" % (headers.get("Herald-Event"), doc.get("event"))
        if not headers.get("Herald-Delivery"):
            return "no Herald-Delivery"
        return None

    def record(self, path, headers, body):
        with self.cond:
            problem = self.verify(headers, body)
            if problem:
                self.bad.append(problem)
            if self.ok_budget is not None:
                status = 200 if self.ok_budget > 0 else 500
                self.ok_budget = max(0, self.ok_budget - 1)
            elif self.always_fail:
                status = 500
            elif self.to_fail > 0:
                self.to_fail -= 1
                status = 500
            else:
                status = 200
            doc = json.loads(body) if not problem or problem.startswith("sig") else None
            self.requests.append((status, headers, doc))
            self.cond.notify_all()
            return status

    def fail(self, n):
        with self.lock:
            self.to_fail = n

    def fail_always(self, on=True):
        with self.lock:
            self.always_fail = on

    def accepted(self):
        with self.lock:
            return [(h, d) for s, h, d in self.requests if s == 200]

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout * SLOW
        with self.cond:
            while not pred(self.requests):
                left = deadline - time.monotonic()
                assert left > 0, "timed out waiting for %s; got %d requests: %s" % (
                    what, len(self.requests), [(s, d) for s, _, d in self.requests][-10:])
                self.cond.wait(left)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def ok_events(reqs):
    return [d for s, _, d in reqs if s == 200]


def make_webhook(rest, node, url, **extra):
    body = {"url": url, "secret": SECRET}
    body.update(extra)
    r = expect(rest.post(node_path(node, "webhooks"), body), 201, "create webhook")
    hook = r.json()
    assert hook["id"] and hook["url"] == url and "secret" not in hook, hook
    return hook


def webhooks_of(rest, node):
    r = expect(rest.get(node_path(node, "webhooks")), 200, "list webhooks")
    assert SECRET not in r.text, "the list shows the secret: %s" % r.text
    return r.json()["webhooks"]


def wait_until(fn, timeout, what):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out waiting for %s" % what
        time.sleep(0.05)


def metric(rest, line_prefix):
    r = rest.get("/metrics")
    for line in r.text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.split()[-1])
    raise AssertionError("no %r in /metrics" % line_prefix)


def test_every_event_arrives_signed_and_in_order_through_retries(herald):
    """Publishes over REST and over XMPP, a retract and a purge: the receiver
    answers 500 to the first six requests, then 200. Every request's
    signature verifies; the accepted events are exactly the changes, in
    the order they were made; a retried event keeps its Herald-Delivery
    id; the list API and /metrics count what happened."""
    recv = Receiver()
    try:
        srv, alice = rest_server(herald, config={"webhooks": dict(FAST, max_attempts=50)})
        alice.create("feed")
        recv.fail(6)
        hook = make_webhook(alice, "feed", recv.url())
        assert hook["events"] == ["publish", "retract", "purge", "delete"], hook
        assert hook["dead_letter"] == "feed/dead-letter", hook
        expected = []
        for i in range(8):
            item_id = alice.publish("feed", {"n": i, "via": "rest"}, item_id="r%d" % i)
            expected.append(("publish", item_id))

        async def xmpp():
            c = await ps_client(srv, "alice", "wonderland")
            for i in range(4):
                await must_publish(c, "feed", "x%d" % i,
                                   "<entry xmlns='urn:example'>x%d</entry>" % i)
        run(xmpp)
        expected += [("publish", "x%d" % i) for i in range(4)]
        expect(alice.delete(node_path("feed", "items", "r3")), 204)
        expected.append(("retract", "r3"))
        expect(alice.post(node_path("feed", "purge")), 204)
        expected.append(("purge", None))

        recv.wait(lambda reqs: len(ok_events(reqs)) >= len(expected), 30, "every event")
        assert not recv.bad, recv.bad
        got = [(d["event"], d.get("id")) for d in ok_events(recv.requests)]
        assert got == expected, got
        oks = ok_events(recv.requests)
        assert oks[0]["json"] == {"n": 0, "via": "rest"} and oks[0]["node"] == "feed", oks[0]
        assert oks[0]["seq"] >= 1 and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                                                oks[0]["timestamp"]), oks[0]
        assert oks[8]["xml"] == "<entry xmlns='urn:example'>x0</entry>" or \
            "x0</entry>" in oks[8]["xml"], oks[8]
        # The six 500s were for the first event (one webhook: one in flight,
        # in order): all seven requests carry the same delivery id.
        first = [h["Herald-Delivery"] for s, h, d in recv.requests[:7]]
        assert len(set(first)) == 1, first
        ids = [h["Herald-Delivery"] for s, h, d in recv.requests if s == 200]
        assert len(set(ids)) == len(ids), ids
        hooks = wait_until(lambda: [w for w in webhooks_of(alice, "feed")
                                    if w["pending"] == 0 and w["delivered"] == len(expected)],
                           10, "the counters")
        assert hooks[0]["failures"] == 0 and hooks[0]["id"] == hook["id"], hooks
        assert metric(alice, 'herald_webhook_deliveries_total{result="retry"}') >= 6
        assert metric(alice, 'herald_webhook_deliveries_total{result="ok"}') >= len(expected)
        assert metric(alice, "herald_webhook_outbox_pending") == 0
    finally:
        recv.close()


def test_kill9_during_publishing_loses_no_acknowledged_event(herald):
    """Items are published over REST while deliveries run; the receiver
    takes the first ten and then answers 500, so when the server is killed
    with SIGKILL in the middle of the publish run some events are
    delivered and others wait in the outbox (retrying). After a restart
    (receiver recovered) every item acknowledged (201) before the kill
    reaches the receiver, first deliveries in publish order (duplicates
    are allowed: at least once)."""
    recv = Receiver()
    try:
        srv, alice = rest_server(herald, config={"webhooks": dict(FAST, backoff_max_ms=200)})
        alice.create("meter")
        # Enough attempts that nothing is dead-lettered while the receiver fails.
        make_webhook(alice, "meter", recv.url(), events=["publish"], max_attempts=100)
        recv.ok_budget = 10
        acked, stop = [], threading.Event()

        def publisher():
            for i in range(400):
                if stop.is_set():
                    return
                try:
                    r = alice.post(items_path("meter"), {"i": i}, timeout=5)
                except AssertionError:
                    return  # the server is gone
                if r.status != 201:
                    return
                acked.append(r.json()["id"])

        t = threading.Thread(target=publisher, daemon=True)
        t.start()
        wait_until(lambda: len(acked) >= 40 and len(ok_events(recv.requests)) == 10, 30,
                   "40 acknowledged publishes and 10 deliveries")
        srv.proc.kill()
        srv.proc.wait(timeout=10)
        stop.set()
        t.join(timeout=20)
        assert not t.is_alive()
        done = list(acked)
        delivered_before = {d["id"] for d in ok_events(recv.requests)}
        assert delivered_before and not set(done) <= delivered_before, \
            "the kill did not come in the middle: the test proves nothing"
        with recv.lock:
            recv.ok_budget = None
        srv.proc = None
        srv.returncode = None
        srv.start()

        def all_there(reqs):
            return set(done) <= {d["id"] for d in ok_events(reqs)}
        recv.wait(all_there, 60, "every acknowledged item after the restart")
        assert not recv.bad, recv.bad
        seen, first_order = set(), []
        for d in ok_events(recv.requests):
            if d["id"] not in seen:
                seen.add(d["id"])
                first_order.append(d["id"])
        order = {d["id"]: d["json"]["i"] for d in ok_events(recv.requests)}
        nums = [order[i] for i in first_order]
        assert nums == sorted(nums), nums
        assert alice.items("meter/dead-letter")["items"] == []
    finally:
        recv.close()


def test_receiver_that_never_recovers_fills_the_dead_letter_node(herald):
    """max_attempts 3: each event is tried three times (same delivery id,
    every signature valid), then published to feed/dead-letter as a JSON
    item holding the event, the attempts and the last status. The failure
    count shows in the list API and /metrics."""
    recv = Receiver()
    try:
        srv, alice = rest_server(herald, config={"webhooks": FAST})
        alice.create("alerts")
        recv.fail_always()
        make_webhook(alice, "alerts", recv.url(), max_attempts=3)
        ids = [alice.publish("alerts", {"alarm": i}) for i in range(2)]
        dead = wait_until(lambda: (lambda items: items if len(items) == 2 else None)(
            alice.items("alerts/dead-letter")["items"]), 30, "two dead letters")
        events = sorted((it["json"] for it in dead), key=lambda j: j["event"]["json"]["alarm"])
        for i, dl in enumerate(events):
            assert dl["event"]["event"] == "publish" and dl["event"]["id"] == ids[i], dl
            assert dl["attempts"] == 3 and dl["last_status"] == 500, dl
            assert "500" in dl["last_error"], dl
        assert not recv.bad, recv.bad
        assert len(recv.requests) == 6, [(s, d) for s, _, d in recv.requests]
        per_event = {}
        for s, h, d in recv.requests:
            per_event.setdefault(d["id"], set()).add(h["Herald-Delivery"])
        assert all(len(v) == 1 for v in per_event.values()), per_event
        hooks = wait_until(lambda: [w for w in webhooks_of(alice, "alerts")
                                    if w["failures"] == 2 and w["pending"] == 0],
                           10, "the failure count")
        assert hooks[0]["delivered"] == 0, hooks
        assert metric(alice, "herald_webhook_failures_total") == 2
        assert metric(alice, 'herald_webhook_deliveries_total{result="dead_letter"}') == 2
    finally:
        recv.close()


def test_refused_destinations_are_rejected_at_creation(herald):
    """The SSRF guard: loopback (without the allow list), private,
    link-local and IPv6 loopback addresses are refused with 422 when the
    webhook is made, also behind a host name; malformed requests get 400."""
    recv = Receiver()
    try:
        srv, alice = rest_server(herald)  # no [webhooks] allow
        alice.create("n")
        for url in (recv.url(), "http://localhost:%d/" % recv.port, "http://10.1.2.3/",
                    "http://169.254.169.254/latest/meta-data", "http://[::1]:8080/",
                    "http://0.0.0.0/", "http://192.168.1.1/", "https://[fe80::1]/"):
            r = alice.post(node_path("n", "webhooks"), {"url": url, "secret": SECRET})
            assert_problem(r, 422, what=url)
            assert "refused" in r.json()["detail"], r
        for body in ({"url": "ftp://example.org/", "secret": SECRET},
                     {"url": "not a url", "secret": SECRET},
                     {"url": "http://example.org/"},
                     {"url": "http://example.org/", "secret": ""},
                     {"url": "http://example.org/", "secret": SECRET, "events": ["nope"]},
                     {"url": "http://example.org/", "secret": SECRET, "max_attempts": 0},
                     {"url": "http://example.org/", "secret": SECRET, "dead_letter": "n"}):
            assert_problem(alice.post(node_path("n", "webhooks"), body), 400, what=body)
        assert webhooks_of(alice, "n") == []
        assert not recv.requests
        # With the allow list, loopback is allowed and the rest still refused.
        srv2 = herald(config={"webhooks": {"allow": "127.0.0.0/8"}}, users={"alice": "w"})
        alice2 = Rest(srv2, new_token(srv2, "alice@localhost"))
        alice2.create("n")
        make_webhook(alice2, "n", recv.url())
        for url in ("http://10.0.0.1/", "http://169.254.1.1/", "http://[::1]/"):
            assert_problem(alice2.post(node_path("n", "webhooks"),
                                       {"url": url, "secret": SECRET}), 422, what=url)
    finally:
        recv.close()


def test_list_delete_owner_only_and_node_deletion(herald):
    """Only the node's owner manages its webhooks (403 for another account,
    404 for a missing node); list and delete; deleting the node delivers
    its "delete" event, then its webhooks are gone."""
    recv = Receiver()
    try:
        srv, alice = rest_server(herald, config={"webhooks": FAST})
        bob = Rest(srv, new_token(srv, "bob@localhost"))
        alice.create("plant")
        for r in (bob.post(node_path("plant", "webhooks"), {"url": recv.url(), "secret": SECRET}),
                  bob.get(node_path("plant", "webhooks")),
                  bob.delete(node_path("plant", "webhooks", "1"))):
            assert_problem(r, 403)
        assert_problem(alice.get(node_path("nowhere", "webhooks")), 404)
        h1 = make_webhook(alice, "plant", recv.url("/one"), events=["retract"])
        h2 = make_webhook(alice, "plant", recv.url("/two"), events=["publish", "delete"],
                          dead_letter="plant-dlq")
        assert expect(alice.get(node_path("plant-dlq")), 200).json()["node"] == "plant-dlq"
        listed = webhooks_of(alice, "plant")
        assert [w["id"] for w in listed] == [h1["id"], h2["id"]], listed
        assert listed[0]["events"] == ["retract"] and listed[1]["dead_letter"] == "plant-dlq"
        expect(alice.delete(node_path("plant", "webhooks", h1["id"])), 204)
        assert_problem(alice.delete(node_path("plant", "webhooks", h1["id"])), 404)
        assert [w["id"] for w in webhooks_of(alice, "plant")] == [h2["id"]]
        alice.publish("plant", {"p": 1}, item_id="a")
        expect(alice.delete(node_path("plant", "items", "a")), 204)  # h2 does not want it
        expect(alice.delete(node_path("plant")), 204)
        recv.wait(lambda reqs: len(ok_events(reqs)) >= 2, 20, "publish and delete events")
        got = [(h.get("Herald-Event"), d["event"]) for s, h, d in recv.requests if s == 200]
        assert got == [("publish", "publish"), ("delete", "delete")], got
        assert not recv.bad, recv.bad
        assert_problem(alice.get(node_path("plant", "webhooks")), 404)
        # A new node of the same name starts without webhooks.
        alice.create("plant")
        assert webhooks_of(alice, "plant") == []
        srv.restart()
        assert webhooks_of(alice, "plant") == []
    finally:
        recv.close()


def test_guard_is_checked_again_when_connecting(herald):
    """A webhook made while [webhooks] allow let loopback in is refused at
    connect time once the server runs without that allow list (the check
    a DNS rebinding would meet): no request reaches the receiver, and the
    event goes to the dead-letter node with the refusal as its error."""
    recv = Receiver()
    try:
        srv, alice = rest_server(herald, config={"webhooks": FAST})
        alice.create("guarded")
        make_webhook(alice, "guarded", recv.url(), max_attempts=2)
        srv.stop()
        write_config(srv.config_path, {"webhooks": {"backoff_initial_ms": 20,
                                                    "backoff_max_ms": 100}})
        srv.proc = None
        srv.returncode = None
        srv.start()
        alice.publish("guarded", {"secret": "plans"}, item_id="p1")
        dead = wait_until(lambda: alice.items("guarded/dead-letter")["items"], 30,
                          "the dead letter")
        dl = dead[0]["json"]
        assert dl["event"]["id"] == "p1" and dl["attempts"] == 2, dl
        assert "destination refused (loopback" in dl["last_error"], dl
        assert dl["last_status"] is None, dl
        assert not recv.requests, "a refused address was reached"
    finally:
        recv.close()


def test_outbox_bound_drops_newest_and_counts(herald):
    """[webhooks] max_outbox = 2 with a receiver that keeps failing (long
    backoff): of five events two wait in the outbox, three are dropped and
    counted; the publishes themselves all succeed."""
    recv = Receiver()
    try:
        srv, alice = rest_server(herald, config={"webhooks": {
            "allow": "127.0.0.0/8", "max_outbox": 2, "backoff_initial_ms": 600000,
            "backoff_max_ms": 600000}})
        alice.create("bounded")
        recv.fail_always()
        make_webhook(alice, "bounded", recv.url())
        for i in range(5):
            alice.publish("bounded", {"i": i})
        hooks = wait_until(lambda: [w for w in webhooks_of(alice, "bounded")
                                    if w["state"] == "retrying"], 10, "the first attempt")
        assert hooks[0]["pending"] == 2 and hooks[0]["dropped"] == 3, hooks
        assert "500" in hooks[0]["last_error"] and hooks[0]["last_status"] == 500, hooks
        assert metric(alice, 'herald_webhook_deliveries_total{result="dropped"}') == 3
        assert metric(alice, "herald_webhook_outbox_pending") == 2
        # The pending events and the counters survive a restart.
        srv.restart()
        hooks = webhooks_of(alice, "bounded")
        assert hooks[0]["pending"] == 2 and hooks[0]["dropped"] == 3, hooks
    finally:
        recv.close()


def test_request_timeout_and_concurrency_bound(herald):
    """[webhooks] max_concurrent = 1, timeout = 1: the receiver holds the
    request of webhook A until webhook B's request has arrived (at most 5
    s). With one request in flight at most, B can only be sent once A's
    request has ended, so A's request times out (a failed attempt: with
    max_attempts 1 it is dead-lettered, no HTTP status) and then B is
    delivered. Were two requests in flight, B's arrival would release A,
    which would then be delivered instead."""
    recv = Receiver()
    b_arrived = threading.Event()
    orig = recv.record

    def record(path, headers, body):
        if path == "/b":
            b_arrived.set()
        elif path == "/a":
            b_arrived.wait(5 * SLOW)
        return orig(path, headers, body)
    recv.record = record
    try:
        srv, alice = rest_server(herald, config={"webhooks": dict(
            FAST, max_concurrent=1, timeout=1, connect_timeout=1)})
        alice.create("a")
        alice.create("b")
        make_webhook(alice, "a", recv.url("/a"), max_attempts=1)
        make_webhook(alice, "b", recv.url("/b"))
        alice.publish("a", {"x": 1}, item_id="slow")
        alice.publish("b", {"x": 2}, item_id="fast")
        dead = wait_until(lambda: alice.items("a/dead-letter")["items"], 30, "A's dead letter")
        dl = dead[0]["json"]
        assert dl["event"]["id"] == "slow" and dl["attempts"] == 1, dl
        assert dl["last_status"] is None, dl
        assert "imeout" in dl["last_error"] or "timed out" in dl["last_error"], dl
        recv.wait(lambda reqs: any(d and d.get("id") == "fast" and s == 200 for s, _, d in reqs),
                  10, "B's delivery")
        assert not recv.bad, recv.bad
    finally:
        recv.close()


def test_lease_end_reaches_the_webhook_as_a_retract(herald):
    """An item whose lease ends (docs/leases.md) is retracted through the
    same journal as any change: the webhook gets the publish, then a signed
    retract of that item."""
    recv = Receiver()
    try:
        srv, alice = rest_server(herald, config={"webhooks": FAST})
        alice.create("svc")
        make_webhook(alice, "svc", recv.url())
        expect(alice.put(node_path("svc", "items", "api-1") + "?lease=1", {"port": 8080}), 201)
        recv.wait(lambda reqs: len(ok_events(reqs)) >= 2, 10, "publish and retract")
        assert not recv.bad, recv.bad
        got = [(d["event"], d.get("id")) for d in ok_events(recv.requests)]
        assert got == [("publish", "api-1"), ("retract", "api-1")], got
        expect(alice.get(node_path("svc", "items", "api-1")), 404, "the item after its lease")
    finally:
        recv.close()


def test_dead_letters_are_not_lost_to_quotas(herald):
    """The dead-letter node made for a webhook has no quota from the
    owner's [quotas] defaults (five events given up on in a burst all land
    there); a quota its owner sets later makes a dead letter wait in the
    outbox (counted, tried again), and it arrives once the quota is lifted."""
    recv = Receiver()
    try:
        srv, alice = rest_server(herald, config={"webhooks": FAST,
                                                 "quotas": {"max_publish_rate": 1}})
        alice.create("alerts", {"herald#max_publish_rate": 0})
        recv.fail_always()
        make_webhook(alice, "alerts", recv.url(), max_attempts=1)
        for i in range(5):
            alice.publish("alerts", {"alarm": i})
        wait_until(lambda: len(alice.items("alerts/dead-letter")["items"]) == 5, 30,
                   "five dead letters")
        dl = node_path("alerts/dead-letter")
        expect(alice.patch(dl, {"config": {"herald#max_node_bytes": 1}}), 200, "a quota")
        alice.publish("alerts", {"alarm": 5})
        wait_until(lambda: metric(alice, 'herald_webhook_deliveries_total'
                                         '{result="dead_letter_failed"}') >= 2, 30,
                   "the refused move tried again")
        assert [w["pending"] for w in webhooks_of(alice, "alerts")] == [1]
        expect(alice.patch(dl, {"config": {"herald#max_node_bytes": 0}}), 200, "lifted")
        wait_until(lambda: len(alice.items("alerts/dead-letter")["items"]) == 6, 30,
                   "the waiting dead letter")
        assert metric(alice, "herald_webhook_failures_total") == 6
    finally:
        recv.close()


def test_outbox_byte_bound(herald):
    """[webhooks] max_outbox_bytes bounds the bytes waiting per webhook too:
    with room for about two 1 KB events, the rest are dropped and counted."""
    recv = Receiver()
    try:
        srv, alice = rest_server(herald, config={"webhooks": {
            "allow": "127.0.0.0/8", "max_outbox_bytes": 2500, "backoff_initial_ms": 600000,
            "backoff_max_ms": 600000}})
        alice.create("big")
        recv.fail_always()
        make_webhook(alice, "big", recv.url())
        for i in range(5):
            alice.publish("big", {"i": i, "pad": "x" * 1000})
        hooks = wait_until(lambda: [w for w in webhooks_of(alice, "big")
                                    if w["state"] == "retrying"], 10, "the first attempt")
        assert hooks[0]["pending"] == 2 and hooks[0]["dropped"] == 3, hooks
    finally:
        recv.close()
