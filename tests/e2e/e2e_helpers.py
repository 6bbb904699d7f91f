"""Helpers for Herald's end-to-end tests.

Three tools live here:

* ``HeraldServer``: runs the real ``herald serve`` binary on a free loopback
  port with its own data directory (and optional INI config), waits until the
  c2s port accepts TCP connections, and stops it with SIGTERM.
* ``XClient``: a slixmpp ``ClientXMPP`` driven from a coroutine (no threads):
  connect to 127.0.0.1:<port>, wait for a bounded outcome (session started,
  authentication failed, disconnected), send and await stanzas.
* ``RawStream``: a blocking socket speaking XMPP by hand (optionally upgraded
  to TLS after <proceed/>), for malformed input and for checking exact
  protocol elements. It parses what the server sends with an incremental XML
  parser and also keeps every received byte.

Everything waits with explicit, bounded timeouts.
"""
import asyncio
import base64
import collections
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatcherId

HERALD_BIN = os.environ.get("HERALD_BIN", "/work/main/build/herald")
DOMAIN = "localhost"
LOG_LEVEL = os.environ.get("HERALD_LOG_LEVEL", "debug")

NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAM_ERR = "urn:ietf:params:xml:ns:xmpp-streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_CLIENT = "jabber:client"
NS_PING = "urn:xmpp:ping"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


def q(ns, tag):
    """Clark notation: {ns}tag."""
    return "{%s}%s" % (ns, tag)


def local(tag):
    return tag.rsplit("}", 1)[-1]


def ns_of(tag):
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def show(el):
    """Readable serialisation of an element (or None) for assertion messages."""
    if el is None:
        return "<nothing>"
    try:
        return ET.tostring(el, encoding="unicode")
    except Exception:  # pragma: no cover - diagnostics only
        return repr(el)


_ports_given = set()


def free_port():
    """A loopback port free now and not handed out before in this test run
    (the kernel may give a just-closed port again: a server's c2s and HTTP
    ports once came out equal)."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise AssertionError("no fresh loopback port in 100 tries")


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def write_config(path, sections):
    """Writes {'section': {'key': value}} as an INI file."""
    lines = []
    for sec, kv in sections.items():
        lines.append("[%s]" % sec)
        for k, v in kv.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            lines.append("%s = %s" % (k, v))
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


# --------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------

def terminate(proc, timeout=15.0):
    """SIGTERM, bounded wait, SIGKILL (and reap) as a last resort. True when
    the process exited by itself in time (or had already exited), False when
    it had to be killed; proc.returncode holds its status either way."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            return False
    return True


class HeraldServer:
    def __init__(self, workdir, name="herald", config=None, allow_plaintext=False,
                 extra_args=(), env=None, domain=DOMAIN, s2s_port=0, bind="127.0.0.1"):
        self.name = name
        # Federation tests serve another domain on another loopback address;
        # s2s is off (--s2s-port 0) unless a test asks for a port.
        self.domain = domain
        self.s2s_port = s2s_port
        self.bind = bind
        self.workdir = str(workdir)
        self.data_dir = os.path.join(self.workdir, "data")
        self.log_path = os.path.join(self.workdir, "%s.log" % name)
        self.stdout_path = os.path.join(self.workdir, "%s.stdout" % name)
        self.config_path = None
        if config is not None:
            self.config_path = os.path.join(self.workdir, "%s.ini" % name)
            write_config(self.config_path, config)
        self.allow_plaintext = allow_plaintext
        self.extra_args = list(extra_args)
        # Added to the server's environment at every start (restart() reads
        # it again, so a test may change it in between); {} adds nothing.
        self.env = dict(env or {})
        self.port = free_port()
        self.http_port = free_port()
        self.https_port = free_port()
        self.proc = None
        self.returncode = None
        self._log = None

    # -- lifecycle ---------------------------------------------------------
    def argv(self):
        argv = [HERALD_BIN, "serve"]
        if self.config_path:
            argv += ["--config", self.config_path]
        argv += ["--domain", self.domain, "--data-dir", self.data_dir,
                 "--c2s-port", str(self.port), "--http-port", str(self.http_port),
                 "--https-port", str(self.https_port), "--s2s-port", str(self.s2s_port),
                 "--bind", self.bind, "--log-level", LOG_LEVEL]
        if self.allow_plaintext:
            argv.append("--allow-plaintext")
        return argv + self.extra_args

    def start(self, timeout=10.0):
        self._log = open(self.log_path, "ab")
        env_words = ["%s=%s" % kv for kv in sorted(self.env.items())]
        self._log.write(("$ %s\n" % " ".join(env_words + self.argv())).encode())
        self._log.flush()
        proc_env = dict(os.environ, **self.env) if self.env else None
        with open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=self._log, cwd=self.workdir,
                                         env=proc_env)
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                raise AssertionError("herald exited with status %s before accepting "
                                     "connections on port %d" % (rc, self.port))
            try:
                s = socket.create_connection((self.bind, self.port), timeout=0.5)
                s.close()
                return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("herald did not accept connections on port %d "
                                     "within %.0f s" % (self.port, timeout))
            time.sleep(0.05)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=10.0):
        """Waits for exit; returns the status, or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout=15.0):
        """SIGTERM, bounded wait, SIGKILL as a last resort. Returns the exit
        status (negative for a signal, as subprocess reports it)."""
        if self.proc is None:
            return None
        if not terminate(self.proc, timeout):
            self.returncode = "hung after SIGTERM (killed)"
            return self.returncode
        if self.returncode is None:
            self.returncode = self.proc.returncode
        if self._log:
            self._log.close()
            self._log = None
        return self.returncode

    def restart(self, timeout=10.0):
        """Stops (must exit 0) and starts again on the same port and data."""
        rc = self.stop()
        assert rc == 0, "herald exited with %r on SIGTERM before the restart" % rc
        self.proc = None
        self.returncode = None
        return self.start(timeout)

    def stdout_text(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_text(self, max_chars=40000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return "<no log>"
        text = data.decode("utf-8", "replace")
        out = self.stdout_text()
        if out:
            text += "\n[stdout]\n" + out
        if len(text) > max_chars:
            text = "[... %d earlier characters cut ...]\n" % (len(text) - max_chars) + \
                text[-max_chars:]
        return text

    # -- the user CLI -------------------------------------------------------
    def cli(self, *args, timeout=30):
        argv = [HERALD_BIN] + list(args) + ["--data-dir", self.data_dir]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, cwd=self.workdir)
        with open(self.log_path, "ab") as f:
            f.write(("$ %s -> %d\n%s%s" % (" ".join(argv), r.returncode,
                                          r.stdout.decode("utf-8", "replace"),
                                          r.stderr.decode("utf-8", "replace"))).encode())
        return r

    def add_user(self, user, password):
        jid = user if "@" in user else "%s@%s" % (user, self.domain)
        r = self.cli("user", "add", jid, "--password", password, "--domain", self.domain)
        assert r.returncode == 0, "herald user add %s failed (%d): %s %s" % (
            jid, r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
        return jid


# --------------------------------------------------------------------------
# Raw socket client
# --------------------------------------------------------------------------

def client_tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class RawStream:
    """A hand-driven XMPP client connection. ``raw`` holds every byte
    received; ``elements`` the complete top-level children of the current
    stream that the test has not consumed yet."""

    def __init__(self, port, host="127.0.0.1", source=None, timeout=10.0):
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.raw = bytearray()
        self.closed = False  # the server closed the TCP connection (EOF/reset)
        self.tls = False
        self.seen = []  # every top-level element of every stream, in order
        self._new_parser()

    # -- parsing -------------------------------------------------------------
    def _new_parser(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.header = None
        self.stream_ended = False
        self.parse_error = None
        self.elements = collections.deque()

    def _feed(self, data):
        self.raw += data
        if self.parse_error is not None:
            return
        try:
            self.parser.feed(data)
            for ev, el in self.parser.read_events():
                if ev == "start":
                    if self.depth == 0:
                        self.header = el
                    self.depth += 1
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        self.elements.append(el)
                        self.seen.append(el)
                    elif self.depth == 0:
                        self.stream_ended = True
        except ET.ParseError as e:
            self.parse_error = e

    def _recv_once(self, deadline):
        """Reads once. False on timeout or when the peer closed."""
        if self.closed:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except (ssl.SSLError, OSError):
            data = b""
        if not data:
            self.closed = True
            return False
        self._feed(data)
        return True

    def wait_for(self, pred, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not pred():
            if not self._recv_once(deadline):
                return pred()
        return True

    # -- sending -------------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        try:
            self.sock.sendall(data)
            return True
        except (ssl.SSLError, OSError):
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- reading -------------------------------------------------------------
    def next_element(self, timeout=None):
        self.wait_for(lambda: bool(self.elements), timeout)
        return self.elements.popleft() if self.elements else None

    def wait_element(self, pred, timeout=None):
        """Returns the first (unconsumed) element matching pred, consuming it
        and leaving the others in place; None if none came in time."""
        found = []

        def check():
            for el in self.elements:
                if pred(el):
                    found.append(el)
                    return True
            return False

        self.wait_for(check, timeout)
        if found:
            self.elements.remove(found[0])
            return found[0]
        return None

    def read_until_closed(self, timeout=10.0, reply_close=True):
        """Reads until the server closes the TCP connection (or timeout).
        If reply_close, answers the server's </stream:stream> with ours, as
        RFC 6120 section 4.4 expects. Returns every byte received."""
        deadline = time.monotonic() + timeout
        replied = False
        while not self.closed and time.monotonic() < deadline:
            if reply_close and self.stream_ended and not replied:
                self.send("</stream:stream>")
                replied = True
            self._recv_once(deadline)
        return bytes(self.raw)

    def stream_error(self):
        """The condition of the stream error received (e.g. 'not-well-formed'),
        or None. Falls back to a textual search when the server's own output
        could not be parsed."""
        for el in self.seen:
            if el.tag == q(NS_STREAM, "error"):
                for child in el:
                    if ns_of(child.tag) == NS_STREAM_ERR and local(child.tag) != "text":
                        return local(child.tag)
                return "<stream:error without condition>"
        text = self.raw.decode("utf-8", "replace")
        m = re.search(r"<(?:\w+:)?error[^>]*>(.*?)</(?:\w+:)?error>", text, re.S)
        if m and NS_STREAM_ERR in m.group(0):
            c = re.search(r"<([a-z-]+)[^>]*xmlns=['\"]%s['\"]" % re.escape(NS_STREAM_ERR),
                          m.group(1))
            if c:
                return c.group(1)
        return None

    def text(self):
        return self.raw.decode("utf-8", "replace")

    # -- protocol steps -------------------------------------------------------
    def open(self, to=DOMAIN, xmlns=NS_CLIENT, stream_ns=NS_STREAM, version="1.0",
             decl=True, wait=True, extra=""):
        """Sends a stream header; with wait, waits for the server's header and
        returns it (None if none came)."""
        self._new_parser()
        hdr = "<?xml version='1.0'?>" if decl else ""
        attrs = ""
        if to is not None:
            attrs += " to='%s'" % to
        if version is not None:
            attrs += " version='%s'" % version
        hdr += ("<stream:stream xmlns='%s' xmlns:stream='%s'%s %s>"
                % (xmlns, stream_ns, attrs, extra))
        self.send(hdr)
        if not wait:
            return None
        self.wait_for(lambda: self.header is not None)
        return self.header

    def features(self, timeout=None):
        el = self.next_element(timeout)
        assert el is not None and el.tag == q(NS_STREAM, "features"), \
            "expected <stream:features/>, got %s (raw: %r)" % (show(el), self.text()[-2000:])
        return el

    def starttls(self):
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        el = self.next_element()
        assert el is not None and el.tag == q(NS_TLS, "proceed"), \
            "expected <proceed/>, got %s" % show(el)
        self.sock.settimeout(self.timeout)
        self.sock = client_tls_context().wrap_socket(self.sock, server_hostname=DOMAIN)
        self.tls = True
        self._new_parser()

    def auth(self, mechanism, initial=None, timeout=None):
        """Sends <auth/>; returns the server's answer (success, failure,
        challenge) or None."""
        body = "" if initial is None else initial
        self.send("<auth xmlns='%s' mechanism='%s'>%s</auth>" % (NS_SASL, mechanism, body))
        return self.wait_element(lambda e: ns_of(e.tag) == NS_SASL
                                 or e.tag == q(NS_STREAM, "error"), timeout)

    def auth_plain(self, user, password, timeout=None):
        return self.auth("PLAIN", b64("\0%s\0%s" % (user, password)), timeout)

    def iq(self, payload, itype="get", to=None, iq_id=None, timeout=None):
        iq_id = iq_id or "iq%d" % (len(self.raw) + int(time.monotonic() * 1000) % 100000)
        to_attr = " to='%s'" % to if to else ""
        self.send("<iq type='%s' id='%s'%s>%s</iq>" % (itype, iq_id, to_attr, payload))
        return self.wait_element(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == iq_id,
                                 timeout)

    def bind(self, resource=None):
        res = "" if resource is None else "<resource>%s</resource>" % resource
        resp = self.iq("<bind xmlns='%s'>%s</bind>" % (NS_BIND, res), itype="set")
        assert resp is not None and resp.get("type") == "result", \
            "bind failed: %s" % show(resp)
        jid = resp.find("%s/%s" % (q(NS_BIND, "bind"), q(NS_BIND, "jid")))
        assert jid is not None and jid.text, "bind result without <jid/>: %s" % show(resp)
        return jid.text

    def login(self, user, password, resource=None, tls=True):
        """Full login: stream, STARTTLS (if tls), PLAIN, restart, bind.
        Returns the bound JID."""
        assert self.open() is not None, "no stream header from server"
        self.features()
        if tls:
            self.starttls()
            assert self.open() is not None, "no stream header after TLS"
            self.features()
        resp = self.auth_plain(user, password)
        assert resp is not None and resp.tag == q(NS_SASL, "success"), \
            "PLAIN login of %s failed: %s" % (user, show(resp))
        assert self.open() is not None, "no stream header after SASL"
        feats = self.features()
        assert feats.find(q(NS_BIND, "bind")) is not None, \
            "no bind feature after SASL: %s" % show(feats)
        return self.bind(resource)


def sasl_condition(el):
    """The condition of a SASL <failure/> element ('not-authorized', ...)."""
    assert el is not None, "no SASL answer"
    assert el.tag == q(NS_SASL, "failure"), "expected SASL <failure/>, got %s" % show(el)
    for child in el:
        if ns_of(child.tag) == NS_SASL and local(child.tag) != "text":
            return local(child.tag)
    return None


def stanza_error_condition(el):
    """The defined condition inside a stanza's <error/> child."""
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None
    for child in err:
        if ns_of(child.tag) == NS_STANZAS and local(child.tag) != "text":
            return local(child.tag)
    return None


# --------------------------------------------------------------------------
# slixmpp client driven from a coroutine
# --------------------------------------------------------------------------

_clients = []


class XClient:
    """A slixmpp ClientXMPP connected to 127.0.0.1:<port> with certificate
    verification off (the server's certificate is self-signed). ``host``:
    the address it connects to (a subclass may set another one)."""
    host = "127.0.0.1"

    def __init__(self, server, jid, password, mech=None):
        self.server = server
        self.port = server.port if hasattr(server, "port") else int(server)
        self.xmpp = slixmpp.ClientXMPP(jid, password, sasl_mech=mech)
        self.xmpp.loop = asyncio.get_running_loop()
        ctx = self.xmpp.ssl_context
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.xmpp.whitespace_keepalive = False
        self.xmpp.default_domain = DOMAIN
        # No DNS at all: always the server's loopback port.
        port = self.port

        async def dns(domain, port_=None):
            return [(DOMAIN, "127.0.0.1", port)]
        self.xmpp.get_dns_records = dns

        self.messages = asyncio.Queue()
        self.message_errors = asyncio.Queue()
        self.stream_errors = []
        self.auth_failures = []
        self.mech_used = None
        self.mutual_auth = None
        self.offered_mechs = None
        self.session_started = False
        self.disconnected = asyncio.get_running_loop().create_future()
        self._outcome = None

        x = self.xmpp
        x.add_event_handler("session_start", self._on_session)
        x.add_event_handler("failed_auth", self._on_failed_auth)
        x.add_event_handler("failed_all_auth", lambda e: self._done("auth_failed"))
        x.add_event_handler("no_auth", lambda e: self._done("no_auth"))
        x.add_event_handler("auth_success", self._on_auth_success)
        x.add_event_handler("disconnected", self._on_disconnected)
        x.add_event_handler("connection_failed", self._on_conn_failed)
        x.add_event_handler("stream_error", lambda e: self.stream_errors.append(e["condition"]))
        x.add_event_handler("message", self._on_message)
        x.add_event_handler("message_error", lambda m: self.message_errors.put_nowait(m))
        _clients.append(self)

    # -- events ----------------------------------------------------------------
    def _done(self, kind):
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(kind)

    def _on_session(self, _):
        self.session_started = True
        self._done("session")

    def _on_failed_auth(self, stanza):
        self.auth_failures.append(stanza["condition"])

    def _on_auth_success(self, _):
        mech = self.xmpp["feature_mechanisms"].mech
        self.mech_used = mech.name
        self.mutual_auth = getattr(mech, "_mutual_auth", None)

    def _on_disconnected(self, _):
        if not self.disconnected.done():
            self.disconnected.set_result(True)
        self._done("disconnected")

    def _on_conn_failed(self, _):
        self.xmpp.cancel_connection_attempt()
        self._done("connection_failed")

    def _on_message(self, msg):
        if msg["type"] != "error":
            self.messages.put_nowait(msg)

    # -- connecting ------------------------------------------------------------
    async def connect(self, timeout=15.0):
        """Connects; returns 'session', 'auth_failed', 'disconnected', ... ."""
        self._outcome = asyncio.get_running_loop().create_future()
        self.xmpp.connect((self.host, self.port))
        try:
            kind = await asyncio.wait_for(asyncio.shield(self._outcome), timeout)
        except asyncio.TimeoutError:
            kind = "timeout"
        self.offered_mechs = set(self.xmpp["feature_mechanisms"].mech_list)
        return kind

    async def login(self, timeout=15.0):
        kind = await self.connect(timeout)
        assert kind == "session", (
            "login of %s did not reach session_start: %s (SASL failures %s, stream errors %s)"
            % (self.xmpp.requested_jid, kind, self.auth_failures, self.stream_errors))
        return self

    @property
    def jid(self):
        return self.xmpp.boundjid.full

    async def close(self, timeout=3.0):
        if self.xmpp.transport is None:
            self.xmpp.cancel_connection_attempt()
            return
        self.xmpp.disconnect(wait=1.0)
        try:
            await asyncio.wait_for(asyncio.shield(self.disconnected), timeout)
        except asyncio.TimeoutError:
            self.xmpp.abort()

    async def wait_disconnected(self, timeout=10.0):
        try:
            await asyncio.wait_for(asyncio.shield(self.disconnected), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    # -- stanzas ----------------------------------------------------------------
    async def iq(self, payload=None, to=None, itype="get", timeout=10.0):
        """Sends an iq with an XML payload (string or Element); returns the
        answer (any type) or raises AssertionError on timeout."""
        iq = self.xmpp.Iq()
        iq["type"] = itype
        iq_id = self.xmpp.new_id()
        iq["id"] = iq_id
        if to:
            iq["to"] = to
        if payload is not None:
            iq.xml.append(ET.fromstring(payload) if isinstance(payload, str) else payload)
        fut = asyncio.get_running_loop().create_future()
        name = "e2e-iq-%s" % iq_id

        def cb(stanza):
            if not fut.done():
                fut.set_result(stanza)
        self.xmpp.register_handler(Callback(name, MatcherId(iq_id), cb, once=True))
        try:
            self.xmpp.send(iq)
            try:
                return await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                raise AssertionError("no answer within %.0f s to %s" % (timeout, iq))
        finally:
            self.xmpp.remove_handler(name)

    async def sync(self):
        """Round trip to the server: once it has answered, it has processed
        everything this client sent before."""
        await self.iq("<ping xmlns='%s'/>" % NS_PING, to=DOMAIN)

    async def presence(self, priority=None):
        if priority is None:
            self.xmpp.send_presence()
        else:
            self.xmpp.send_presence(ppriority=priority)
        await self.sync()

    def send_message(self, to, body, mtype="chat", mfrom=None):
        msg = self.xmpp.make_message(mto=to, mbody=body, mtype=mtype)
        if mfrom:
            msg["from"] = mfrom
        msg.send()

    async def expect_message(self, timeout=5.0):
        try:
            return await asyncio.wait_for(self.messages.get(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("%s received no message within %.0f s" % (self.jid, timeout))

    async def expect_message_error(self, timeout=5.0):
        try:
            return await asyncio.wait_for(self.message_errors.get(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("%s received no message error within %.0f s"
                                 % (self.jid, timeout))

    async def assert_no_message(self, wait=1.0):
        """Short wait to prove that nothing arrives."""
        await asyncio.sleep(wait)
        assert self.messages.empty(), "%s unexpectedly received: %s" % (
            self.jid, self.messages.get_nowait())


def run(fn, timeout=60.0):
    """Runs the coroutine function fn() on a fresh event loop, bounded by
    timeout; closes every XClient created meanwhile."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    del _clients[:]

    async def main():
        try:
            return await asyncio.wait_for(fn(), timeout)
        finally:
            for c in list(_clients):
                try:
                    await c.close()
                except Exception:
                    pass
            del _clients[:]

    try:
        return loop.run_until_complete(main())
    finally:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()
        asyncio.set_event_loop(None)
