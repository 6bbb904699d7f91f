"""Herald from a web browser: Debian's headless Chromium, driven by
puppeteer-core (pinned in tests/browser/package-lock.json; `npm ci --prefix
tests/browser`) through tests/browser/run.js.

1. Converse.js (pinned, same package) logs in over WebSocket (RFC 7395,
   ws://…/xmpp-websocket), shows a chat message from a slixmpp client and
   answers it through its chat box; the slixmpp client receives the answer.
2. The same over BOSH (XEP-0124/0206, http://…/http-bind).
   Converse's page (tests/browser/converse.html with the package's dist
   files) is served by a static HTTP server that the test starts on another
   loopback port, so it is a cross-origin page: Herald's `[http]
   allowed_origins` names that origin (WebSocket's Origin check, BOSH's
   CORS).
3. The web console at /console/: a bearer token (`herald token create`)
   logs in, the node list shows a node created over XMPP beforehand, the
   node opens, an item published over XMPP by slixmpp appears live, and an
   item published from the page reaches a slixmpp subscriber.

Each scenario writes a screenshot under HERALD_SCREENSHOT_DIR (default: the
test's tmp dir); docs/img/console.png is a copy of the console's.

Without tests/browser/node_modules or /usr/bin/chromium the tests are
skipped, unless HERALD_REQUIRE_NODE is set (CI, scripts/test), in which case
they fail."""
import asyncio
import functools
import http.server
import json
import os
import shutil
import threading
import urllib.request
import uuid
from xml.sax.saxutils import escape

import pytest

from e2e_helpers import DOMAIN, XClient, q, run, show
from pubsub_helpers import (NS_EVENT, items_event_children, must_create, must_publish,
                            must_subscribe, next_event, ps_client)
from rest_helpers import new_token

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
RUN_JS = os.path.join(BROWSER_DIR, "run.js")
CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
USERS = {"alice": "wonderland", "bob": "builder"}
NS_JSON = "urn:xmpp:json:0"
# Per step inside run.js (login, a message to show, ...), scaled for the
# sanitizer build; the whole scenario is bounded by SCENARIO_TIMEOUT, under
# conftest's hard per-test bound (90 s), so that a hang still ends with the
# browser's diagnostics.
STEP_TIMEOUT = 10.0 * float(os.environ.get("HERALD_E2E_SLOWDOWN", "1"))
SCENARIO_TIMEOUT = 60.0

CONVERSE_CHECKS = ["page-loaded", "login-over-%s", "roster-and-presence", "message-received",
                   "message-shown-in-chat", "reply-typed-and-sent", "screenshot",
                   "still-connected"]
CONSOLE_CHECKS = ["console-loaded", "token-login-lists-node", "node-opened", "live-item-shown",
                  "item-published-from-page", "published-item-streamed-back", "screenshot"]


def require_node():
    return os.environ.get("HERALD_REQUIRE_NODE", "") not in ("", "0")


def node_binary():
    """node, or a skip/failure when puppeteer-core, Converse.js or Chromium
    is missing (failure when HERALD_REQUIRE_NODE is set)."""
    missing = [p for p in ("puppeteer-core", "converse.js")
               if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", p))]
    if missing:
        why = ("tests/browser/node_modules lacks %s (run: npm ci --prefix tests/browser)"
               % ", ".join(missing))
    elif not os.access(CHROMIUM, os.X_OK):
        why = "%s is not installed (Debian package chromium; scripts/install-deps)" % CHROMIUM
    else:
        why = None
    if why:
        if require_node():
            pytest.fail("HERALD_REQUIRE_NODE is set but " + why)
        pytest.skip(why)
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is not installed but tests/browser/node_modules exists"
    return node


def screenshot_path(tmp_path, name):
    d = os.environ.get("HERALD_SCREENSHOT_DIR") or str(tmp_path / "screenshots")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, name)


# --------------------------------------------------------------------------
# The page's origin: a static HTTP server on another loopback port
# --------------------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = dict(http.server.SimpleHTTPRequestHandler.extensions_map,
                          **{".js": "text/javascript", ".mjs": "text/javascript",
                             ".wasm": "application/wasm", ".json": "application/json"})

    def log_message(self, fmt, *args):
        pass


@pytest.fixture
def static_site():
    """Serves tests/browser (converse.html and node_modules/converse.js/dist)
    on a loopback port of its own; yields its origin."""
    handler = functools.partial(_QuietHandler, directory=BROWSER_DIR)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, name="static-site", daemon=True)
    t.start()
    try:
        yield "http://127.0.0.1:%d" % srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


# --------------------------------------------------------------------------
# run.js as a subprocess of the test's event loop
# --------------------------------------------------------------------------

class Browser:
    """run.js SCENARIO: its JSON lines on stdout, its diagnostics on
    stderr (kept for the failure message)."""

    def __init__(self, proc):
        self.proc = proc
        self.events = []
        self.stderr = bytearray()
        self._err_task = asyncio.ensure_future(self._drain_stderr())

    @classmethod
    async def start(cls, node, scenario, env):
        full = dict(os.environ)
        full.update({"NODE_NO_WARNINGS": "1", "STEP_TIMEOUT_MS": str(int(STEP_TIMEOUT * 1000)),
                     "OVERALL_TIMEOUT_MS": str(int(SCENARIO_TIMEOUT * 1000))})
        full.update(env)
        proc = await asyncio.create_subprocess_exec(
            node, RUN_JS, scenario, cwd=BROWSER_DIR, env=full, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def _drain_stderr(self):
        while True:
            chunk = await self.proc.stderr.read(65536)
            if not chunk:
                return
            self.stderr += chunk

    def diagnostics(self, limit=12000):
        text = self.stderr.decode("utf-8", "replace")
        if len(text) > limit:
            text = "[... %d earlier characters cut ...]\n%s" % (len(text) - limit, text[-limit:])
        return text

    async def next_event(self, want, timeout):
        """The next event named want; None if run.js ended (done/error) or
        printed nothing more within timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), remaining)
            except asyncio.TimeoutError:
                return None
            if not line:
                return None
            try:
                ev = json.loads(line)
            except ValueError:
                self.stderr += b"[stdout, not JSON] " + line
                continue
            self.events.append(ev)
            if ev.get("event") == want:
                return ev
            if ev.get("event") in ("done", "error"):
                return None

    def end_wait(self):
        """run.js waits for its stdin to close before it leaves the page."""
        if self.proc.stdin and not self.proc.stdin.is_closing():
            self.proc.stdin.close()

    async def finish(self, timeout=None):
        """The final report {"ok", "checks"}; kills run.js if it overruns."""
        self.end_wait()
        timeout = SCENARIO_TIMEOUT if timeout is None else timeout
        done = next((e for e in self.events if e.get("event") in ("done", "error")), None)
        if done is None:
            done = await self.next_event("done", timeout)
            if done is None:
                done = next((e for e in self.events if e.get("event") == "error"), None)
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except asyncio.TimeoutError:
            pass
        await self.stop()
        return done

    async def stop(self):
        """Ends run.js if it still runs (SIGTERM first: puppeteer then
        closes Chromium, which it started in a process group of its own);
        collects the rest of its stderr."""
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        try:
            await asyncio.wait_for(self._err_task, 5)
        except asyncio.TimeoutError:
            pass

    async def failed(self, err):
        """err with the browser's side added (run.js ended first)."""
        if "--- browser diagnostics ---" in str(err):
            return err
        await self.stop()
        return AssertionError(self.failure(str(err)))

    def failure(self, what, report=None):
        return "%s\nrun.js events: %s\nrun.js report: %s\n--- browser diagnostics ---\n%s" % (
            what, json.dumps(self.events)[:4000], json.dumps(report), self.diagnostics())


def assert_report(browser, report, expected):
    assert report is not None, browser.failure("run.js printed no final report "
                                               "(exit %r)" % browser.proc.returncode)
    assert report.get("event") == "done", browser.failure("run.js could not run: %s"
                                                          % report.get("error"), report)
    failed = ["%s: %s" % (c["name"], c["detail"]) for c in report["checks"] if not c["ok"]]
    assert not failed, browser.failure("browser checks failed:\n  " + "\n  ".join(failed),
                                       report)
    names = [c["name"] for c in report["checks"]]
    assert names == expected, browser.failure("run.js reported checks %s, expected %s"
                                              % (names, expected), report)
    assert report["ok"] is True and browser.proc.returncode == 0, browser.failure(
        "run.js exited %r" % browser.proc.returncode, report)
    # Shown by pytest -rP (or -s): each step and its time.
    print("run.js: " + "; ".join("%s %d ms (%s)" % (c["name"], c.get("ms", -1), c["detail"])
                                 for c in report["checks"]))


# --------------------------------------------------------------------------
# 1, 2: Converse.js over WebSocket and BOSH
# --------------------------------------------------------------------------

def converse_server(herald, origin):
    """Herald for Converse's page at origin. ws:// and http:// are not
    TLS, and Herald offers no SASL mechanism on a plaintext stream unless
    allowed (--allow-plaintext; the tests' loopback stands in for a TLS
    terminating proxy); Converse then picks a SCRAM mechanism itself."""
    return herald(config={"http": {"allowed_origins": origin}}, allow_plaintext=True,
                  users=USERS)


def list_sessions(srv, token):
    """GET /v1/sessions (scope manage): the sessions bound on the server."""
    req = urllib.request.Request("http://127.0.0.1:%d/v1/sessions?max=100" % srv.http_port,
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=STEP_TIMEOUT) as r:
        return json.load(r)["sessions"]


def converse_chat(herald, static_site, tmp_path, transport):
    """Converse (alice) in Chromium and slixmpp (bob) exchange one chat
    message each way over the given transport."""
    node = node_binary()
    srv = converse_server(herald, static_site)
    if transport == "websocket":
        service = "ws://127.0.0.1:%d/xmpp-websocket" % srv.http_port
    else:
        service = "http://127.0.0.1:%d/http-bind" % srv.http_port
    manage_token = new_token(srv, "bob@%s" % DOMAIN, scope="manage")
    tag = uuid.uuid4().hex[:8]
    to_alice = "Hello Converse over %s <%s> & co" % (transport, tag)
    to_bob = "Reply from the browser %s" % tag
    shot = screenshot_path(tmp_path, "converse-%s.png" % transport)
    expected = [c % transport if "%s" in c else c for c in CONVERSE_CHECKS]

    async def body():
        bob = await XClient(srv, "bob@%s/slix" % DOMAIN, USERS["bob"]).login()
        await bob.presence()
        browser = await Browser.start(node, "converse", {
            "CONVERSE_URL": static_site + "/converse.html",
            "TRANSPORT": transport,
            "SERVICE_URL": service,
            "JID": "alice@%s" % DOMAIN,
            "PASSWORD": USERS["alice"],
            "PEER": "bob@%s" % DOMAIN,
            "EXPECT_BODY": to_alice,
            "REPLY_BODY": to_bob,
            "SCREENSHOT": shot,
        })
        try:
            ready = await browser.next_event("ready", SCENARIO_TIMEOUT)
            if ready is None:
                report = await browser.finish()
                assert_report(browser, report, expected)
                raise AssertionError(browser.failure("run.js never got ready", report))
            assert ready["jid"].startswith("alice@%s/" % DOMAIN), ready
            # Herald's side: the browser's session is on the transport.
            sessions = await asyncio.get_running_loop().run_in_executor(
                None, list_sessions, srv, manage_token)
            mine = [x for x in sessions if x["jid"] == ready["jid"]]
            assert [x["transport"] for x in mine] == [transport], browser.failure(
                "GET /v1/sessions lists %s for %s" % (sessions, ready["jid"]))
            bob.send_message("alice@%s" % DOMAIN, to_alice)
            got = None
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2 * STEP_TIMEOUT
            while got is None and loop.time() < deadline:
                try:
                    msg = await bob.expect_message(timeout=max(0.1, deadline - loop.time()))
                except AssertionError:
                    break
                if msg["body"] == to_bob:
                    got = msg
            browser.end_wait()
            report = await browser.finish()
            assert_report(browser, report, expected)
            assert got is not None, browser.failure(
                "bob (slixmpp) did not receive the reply %r typed into Converse" % to_bob, report)
            assert got["from"].bare == "alice@%s" % DOMAIN, got
            assert got["type"] == "chat", got
        except AssertionError as e:
            raise await browser.failed(e) from None
        finally:
            await browser.stop()
    run(body, timeout=SCENARIO_TIMEOUT + 20)
    assert os.path.getsize(shot) > 1000


def test_converse_over_websocket(herald, static_site, tmp_path):
    """RFC 7395 from a browser: Converse.js on a page of another origin
    (allowed by `[http] allowed_origins`) logs in over ws://…/xmpp-websocket
    (subprotocol xmpp, SASL SCRAM, bind, roster, presence), GET
    /v1/sessions lists its session with transport "websocket", it shows a
    chat message that slixmpp sends to alice's bare JID, and the answer
    typed into its chat box (Enter) reaches slixmpp as a chat message from
    alice."""
    converse_chat(herald, static_site, tmp_path, "websocket")


def test_converse_over_bosh(herald, static_site, tmp_path):
    """XEP-0124/0206 from a browser: the same as above with Converse's
    bosh_service_url http://…/http-bind (CORS for the page's origin); the
    session's transport is "bosh"."""
    converse_chat(herald, static_site, tmp_path, "bosh")


# --------------------------------------------------------------------------
# 3: the web console
# --------------------------------------------------------------------------

def json_item(value):
    return "<json xmlns='%s'>%s</json>" % (NS_JSON, escape(json.dumps(value)))


def test_console_live_items_and_publish(herald, tmp_path):
    """The web console (/console/, same origin as the REST API; its
    Content-Security-Policy in force) in Chromium: a bearer token made with
    `herald token create` logs in; the node list shows the node alice
    created over XMPP; its link opens the node view, whose event stream
    connects; an item alice publishes over XMPP appears in #live-items; a
    JSON item typed into #publish-payload and published (#publish) gets an
    id back, reaches bob, a slixmpp subscriber, as an XEP-0335 JSON payload
    with that id, and comes back on the page's own stream, its history and
    its "Items stored" count.
    docs/img/console.png is a copy of the screenshot."""
    node = node_binary()
    srv = herald(users=USERS)
    token = new_token(srv, "alice@%s" % DOMAIN)
    # Fixed names and values (a fresh server each run): the screenshot is
    # the one in docs/img/console.png.
    node_name = "grid/feeder-7"
    live_id = "reading-1"
    live_value = {"kW": 3.5, "voltage": 229.8, "source": "slixmpp"}
    page_value = {"kW": 4.1, "voltage": 230.2, "source": "console"}
    shot = screenshot_path(tmp_path, "console.png")

    async def body():
        alice = await ps_client(srv, "alice", USERS["alice"])
        bob = await ps_client(srv, "bob", USERS["bob"])
        await must_create(alice, node_name)
        await must_subscribe(bob, node_name, "bob@%s" % DOMAIN)
        browser = await Browser.start(node, "console", {
            "CONSOLE_URL": "http://127.0.0.1:%d/console/" % srv.http_port,
            "TOKEN": token,
            "NODE_NAME": node_name,
            "EXPECT_LIVE_ID": live_id,
            "EXPECT_LIVE": '"source": "slixmpp"',
            "PUBLISH_PAYLOAD": json.dumps(page_value),
            "EXPECT_ITEMS": "2",
            "SCREENSHOT": shot,
        })
        try:
            ready = await browser.next_event("ready", SCENARIO_TIMEOUT)
            if ready is None:
                report = await browser.finish()
                assert_report(browser, report, CONSOLE_CHECKS)
                raise AssertionError(browser.failure("run.js never got ready", report))
            await must_publish(alice, node_name, live_id, json_item(live_value))
            first = await next_event(bob, "items", node_name, timeout=STEP_TIMEOUT)
            sent = await browser.next_event("sent", SCENARIO_TIMEOUT)
            msg = None
            if sent is not None:
                msg = await next_event(bob, "items", node_name, timeout=STEP_TIMEOUT)
            browser.end_wait()
            report = await browser.finish()
            assert_report(browser, report, CONSOLE_CHECKS)
            assert [c.get("id") for c in items_event_children(first)] == [live_id], \
                show(first.xml)
            items = [c for c in items_event_children(msg) if c.tag == q(NS_EVENT, "item")]
            assert [c.get("id") for c in items] == [sent["id"]], browser.failure(
                "bob's notification for the page's item %s: %s" % (sent["id"], show(msg.xml)),
                report)
            payload = list(items[0])
            assert len(payload) == 1 and payload[0].tag == q(NS_JSON, "json"), show(msg.xml)
            assert json.loads(payload[0].text) == page_value, show(msg.xml)
        except AssertionError as e:
            raise await browser.failed(e) from None
        finally:
            await browser.stop()
    run(body, timeout=SCENARIO_TIMEOUT + 20)
    assert os.path.getsize(shot) > 1000
