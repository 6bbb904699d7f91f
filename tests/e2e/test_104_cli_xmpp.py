"""`herald sub NODE --jid JID` (docs/cli.md): the subscriber over XMPP, run
as a real process against a real server (STARTTLS verified with --cacert,
SASL PLAIN, bind, presence, a XEP-0060 subscription of the full JID).

What it shows: items published by `herald pub` over REST and by slixmpp
over XMPP, JSON and XML payloads, are printed in the REST item shape (no
"seq": live XMPP notifications carry none); a retract, purge and delete are
printed as events (delete ends the command); --count exits 0, --timeout
exits 4, a wrong password exits 1, an unknown node exits 1, --since with
--jid exits 2; and whatever way it ends (--count, --timeout, SIGTERM, the
node deleted) no subscription of the client's JID is left on the node (the
owner's REST GET /v1/nodes/{node}/subscriptions)."""
import json
import os
import queue
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from slixmpp.exceptions import IqError

from e2e_helpers import HERALD_BIN, run
from pubsub_helpers import must_publish, ps_client
from rest_helpers import expect, item_path, rest_server

NS_JSON = "urn:xmpp:json:0"
SLOWDOWN = float(os.environ.get("HERALD_E2E_SLOWDOWN", "1"))
WAIT = 20.0 * SLOWDOWN


class XSub:
    """A running `herald sub NODE --jid bob@localhost -v`; stdout and stderr
    lines are read by threads into queues (bounded waits)."""

    def __init__(self, srv, node, *args, password="builder"):
        cacert = os.path.join(srv.data_dir, "tls", "cert.pem")
        argv = [HERALD_BIN, "sub", node, "-v", "--jid", "bob@localhost", "--host", "127.0.0.1",
                "--port", str(srv.port), "--cacert", cacert] + list(args)
        env = dict(os.environ, HERALD_PASSWORD=password)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, stdin=subprocess.DEVNULL, env=env)
        self.out, self.err = queue.Queue(), queue.Queue()
        self.err_lines = []
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, q), daemon=True).start()

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    def subscribed(self):
        """Waits for -v's "subscribed as JID"; returns the full JID."""
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "herald sub never subscribed; stderr: %s" % self.err_lines
            try:
                line = self.err.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, "herald sub ended: %s" % self.err_lines
            self.err_lines.append(line)
            if "subscribed as " in line:
                return line.split("subscribed as ", 1)[1]

    def line(self):
        try:
            line = self.out.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("herald sub printed no line; stderr: %s" % self.err_lines)
        assert line is not None, "herald sub's stdout ended; stderr: %s" % self.err_lines
        return json.loads(line)

    def finish(self):
        rc = self.proc.wait(timeout=WAIT)
        while True:
            line = self.err.get(timeout=WAIT)
            if line is None:
                break
            self.err_lines.append(line)
        rest = []
        while True:
            line = self.out.get(timeout=WAIT)
            if line is None:
                break
            rest.append(line)
        return rc, rest

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start(subs, *args, **kw):
    s = XSub(*args, **kw)
    subs.append(s)
    return s


def subscribers(alice, node):
    r = expect(alice.get("/v1/nodes/%s/subscriptions" % node), 200)
    return [s["jid"] for s in r.json()["subscriptions"]]


def cli(srv, alice, *args):
    argv = [HERALD_BIN] + list(args) + ["--url", "http://127.0.0.1:%d" % srv.http_port,
                                        "--token", alice.tok]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r


def xsub_run(srv, *args, password="builder"):
    cacert = os.path.join(srv.data_dir, "tls", "cert.pem")
    argv = [HERALD_BIN, "sub"] + list(args) + [
        "--jid", "bob@localhost", "--host", "127.0.0.1", "--port", str(srv.port),
        "--cacert", cacert]
    return subprocess.run(argv, capture_output=True, text=True, timeout=WAIT,
                          env=dict(os.environ, HERALD_PASSWORD=password))


def test_sub_over_xmpp_items_events_and_cleanup(herald):
    """Items from `herald pub` (REST) and slixmpp (XMPP), JSON and XML, and a
    retract, in order; --count 4 then exits 0 and the subscription is
    gone."""
    srv, alice = rest_server(herald)
    cli(srv, alice, "node", "create", "feed")
    subs = []
    try:
        s = start(subs, srv, "feed", "--count", "4")
        full = s.subscribed()
        assert full.startswith("bob@localhost/"), full
        assert subscribers(alice, "feed") == [full]

        cli(srv, alice, "pub", "feed", '{"a": [1, "x"]}', "--id", "r-1")
        xml = "<t xmlns='urn:example:t'>a &amp; b</t>"
        cli(srv, alice, "pub", "feed", xml, "--id", "r-2")
        expect(alice.delete(item_path("feed", "r-1")), 204)
        value = {"level": "high", "n": 7}
        atom = "<entry xmlns='http://www.w3.org/2005/Atom'><title>Breaker</title></entry>"

        async def body():
            xalice = await ps_client(srv, "alice", "wonderland")
            await must_publish(xalice, "feed", "x-1",
                               "<json xmlns='%s'>%s</json>" % (NS_JSON, escape(json.dumps(value))))
            await must_publish(xalice, "feed", "x-2", atom)
        run(body)

        got = [s.line() for _ in range(5)]
        rc, rest = s.finish()
        assert rc == 0, s.err_lines
        assert rest == [], rest  # --count 4: nothing after the fourth item
        r1, r2, retract, x1, x2 = got
        assert r1["id"] == "r-1" and r1["json"] == {"a": [1, "x"]}, r1
        assert r2["id"] == "r-2" and r2["xml"] == xml, r2
        assert retract == {"event": "retract", "id": "r-1"}, retract
        assert x1["id"] == "x-1" and x1["json"] == value, x1
        assert x2["id"] == "x-2" and x2["xml"] == atom, x2
        for item in (r1, r2, x1, x2):
            assert "seq" not in item, item  # live notifications carry no seq
            assert item["publisher"] == "alice@localhost", item
        assert subscribers(alice, "feed") == []
    finally:
        for s in subs:
            s.kill()


def test_sub_over_xmpp_exit_codes_and_cleanup(herald):
    """--timeout without items exits 4, a wrong password 1, an unknown node
    1, --since with --jid 2; a ping to the client is answered, another
    request refused with service-unavailable; SIGTERM ends it with 0; a purge and the node's
    deletion are printed, the deletion before --count items exits 1; none
    of them leaves a subscription behind."""
    srv, alice = rest_server(herald)
    cli(srv, alice, "node", "create", "n")

    r = xsub_run(srv, "n", "--timeout", "1")
    assert r.returncode == 4 and "no item arrived" in r.stderr, r
    assert subscribers(alice, "n") == []
    r = xsub_run(srv, "n", "--count", "1", password="wrong")
    assert r.returncode == 1 and "not-authorized" in r.stderr, r
    r = xsub_run(srv, "missing", "--count", "1")
    assert r.returncode == 1 and "item-not-found" in r.stderr, r
    r = xsub_run(srv, "n", "--since", "0")
    assert r.returncode == 2 and "REST only" in r.stderr, r

    subs = []
    try:
        s = start(subs, srv, "n")
        full = s.subscribed()
        assert subscribers(alice, "n") == [full]
        cli(srv, alice, "pub", "n", "{}", "--id", "one")
        assert s.line()["id"] == "one"

        async def requests():
            # A ping gets its result; another request service-unavailable.
            xalice = await ps_client(srv, "alice", "wonderland")
            iq = xalice.xmpp.Iq()
            iq["type"], iq["to"] = "get", full
            iq.xml.append(ET.Element("{urn:xmpp:ping}ping"))
            answer = await iq.send(timeout=WAIT)
            assert answer["type"] == "result", answer
            iq = xalice.xmpp.make_iq_get(queryxmlns="http://jabber.org/protocol/disco#info",
                                         ito=full)
            try:
                await iq.send(timeout=WAIT)
                raise AssertionError("disco#info to herald sub was answered")
            except IqError as e:
                assert e.iq["error"]["condition"] == "service-unavailable", e.iq
        run(requests)
        s.proc.send_signal(signal.SIGTERM)
        rc, rest = s.finish()
        assert rc == 0 and rest == [], (rc, rest, s.err_lines)
        assert subscribers(alice, "n") == []

        s = start(subs, srv, "n", "--count", "5")
        s.subscribed()
        cli(srv, alice, "node", "purge", "n")
        assert s.line() == {"event": "purge"}
        cli(srv, alice, "node", "delete", "n")
        assert s.line() == {"event": "delete"}
        rc, rest = s.finish()
        assert rc == 1 and "deleted after 0 of 5" in " ".join(s.err_lines), (rc, s.err_lines)
        assert "left behind" not in " ".join(s.err_lines), s.err_lines
    finally:
        for s in subs:
            s.kill()
