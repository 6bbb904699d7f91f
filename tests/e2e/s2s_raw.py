"""Raw-socket helpers for Herald's s2s bad-input and EXTERNAL tests
(test_97_s2s_bad_input.py, test_98_s2s_external.py).

* ``PeerStream``: a RawStream (e2e_helpers) speaking jabber:server to
  Herald's s2s port, as an originating server (dialback <db:result/>) or as a
  receiving server (<db:verify/> questions).
* ``FakeServer``: a threaded TCP listener that plays the peer's side for
  Herald's outgoing streams: it answers the header (with an id), offers
  dialback, and answers Herald's <db:verify/> questions by comparing the key
  with ``keys[domain]`` (the keys its "own" originating streams used) — so it
  is the authoritative server of those domains. Herald's own <db:result/> is
  answered by ``result_verdict`` ('valid', 'invalid' or None = not yet; see
  answer_result()). mode='silent' accepts and never sends a byte.
* ``C2S``: a raw client login (PLAIN, no TLS: servers run with
  --allow-plaintext) to a Herald on any address, for delivery checks.

No thread outlives close(); every wait is bounded.
"""
import socket
import threading
import time
import xml.etree.ElementTree as ET

from e2e_helpers import NS_SASL, NS_STREAM, NS_STREAM_ERR, RawStream, local, q, show
from fed_helpers import uid

NS_SERVER = "jabber:server"
NS_DB = "jabber:server:dialback"
NS_DB_FEATURE = "urn:xmpp:features:dialback"
NS_C = "jabber:client"


class PeerStream(RawStream):
    """A fake remote server's stream to Herald's s2s listener."""

    def __init__(self, host, port=5269, timeout=10.0):
        super().__init__(port, host=host, timeout=timeout)

    def open_s2s(self, frm, to, xmlns=NS_SERVER, wait=True):
        extra = "xmlns:db='%s'" % NS_DB
        if frm:
            extra += " from='%s'" % frm
        return self.open(to=to, xmlns=xmlns, extra=extra, wait=wait)

    @property
    def stream_id(self):
        return None if self.header is None else self.header.get("id")

    def db_result(self, frm, to, key, timeout=None):
        """Sends <db:result>key</db:result>; returns Herald's verdict element
        (or a stream error, or None)."""
        self.send("<db:result from='%s' to='%s'>%s</db:result>" % (frm, to, key))
        return self.wait_element(lambda e: e.tag in (q(NS_DB, "result"), q(NS_STREAM, "error")),
                                 timeout)

    def db_verify(self, frm, to, sid, key, timeout=None):
        self.send("<db:verify from='%s' to='%s' id='%s'>%s</db:verify>" % (frm, to, sid, key))
        return self.wait_element(lambda e: e.tag in (q(NS_DB, "verify"), q(NS_STREAM, "error")),
                                 timeout)

    def closed_after_error(self, timeout=5.0):
        """Reads until Herald closes TCP; True if it did in time."""
        self.read_until_closed(timeout)
        return self.closed


def features_of(el):
    """{'starttls', 'dialback', 'mechanisms:EXTERNAL', ...} of <stream:features/>."""
    out = set()
    for c in el:
        if c.tag == q("urn:ietf:params:xml:ns:xmpp-tls", "starttls"):
            out.add("starttls")
        elif c.tag == q(NS_DB_FEATURE, "dialback"):
            out.add("dialback")
        elif c.tag == q(NS_SASL, "mechanisms"):
            for m in c:
                out.add("mechanisms:%s" % (m.text or ""))
        else:
            out.add(c.tag)
    return out


# --------------------------------------------------------------------------
# A fake peer server for Herald's outgoing streams
# --------------------------------------------------------------------------

class _Conn:
    def __init__(self, sock, addr):
        self.sock = sock
        self.addr = addr
        self.header = None       # Herald's stream header (attributes)
        self.stream_id = uid("fake")
        self.elements = []       # every top-level element received
        self.lock = threading.Lock()

    def send(self, data):
        with self.lock:
            try:
                self.sock.sendall(data.encode() if isinstance(data, str) else data)
            except OSError:
                pass


class FakeServer:
    def __init__(self, ip, port=5269, domains=(), keys=None, result_verdict="valid",
                 mode="dialback"):
        self.ip, self.port = ip, port
        self.keys = dict(keys or {})
        self.result_verdict = result_verdict
        self.hold_results_for = set()  # domains whose <db:result/> waits for answer_result()
        self.mode = mode
        self.conns = []
        self.verifies = []   # (from, to, id, key, verdict) Herald asked about
        self.results = []    # (conn, from, to, key) Herald's own dialback keys
        self.cond = threading.Condition()
        self.stop = False
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self.threads[0].start()

    # -- waiting --------------------------------------------------------------
    def wait(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return pred()
                self.cond.wait(left)
            return True

    def stanzas(self):
        """Every message/presence/iq Herald sent us, on any connection."""
        with self.cond:
            return [e for c in self.conns for e in c.elements
                    if local(e.tag) in ("message", "presence", "iq")]

    def answer_result(self, index, verdict):
        c, frm, to, _ = self.results[index]
        c.send("<db:result from='%s' to='%s' type='%s'/>" % (to, frm, verdict))

    # -- threads --------------------------------------------------------------
    def _accept_loop(self):
        while not self.stop:
            try:
                s, addr = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            c = _Conn(s, addr)
            with self.cond:
                self.conns.append(c)
                self.cond.notify_all()
            if self.mode == "silent":
                continue
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, c):
        parser = ET.XMLPullParser(events=("start", "end"))
        depth = 0
        c.sock.settimeout(0.2)
        while not self.stop:
            try:
                data = c.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                break
            if not data:
                break
            try:
                parser.feed(data)
                events = list(parser.read_events())
            except ET.ParseError:
                break
            for ev, el in events:
                if ev == "start":
                    if depth == 0:
                        self._on_header(c, el)
                    depth += 1
                    continue
                depth -= 1
                if depth == 0:        # Herald closed its stream
                    c.send("</stream:stream>")
                    break
                if depth == 1:
                    self._on_element(c, el)
        try:
            c.sock.close()
        except OSError:
            pass

    def _on_header(self, c, el):
        c.header = dict(el.attrib)
        frm, to = el.get("from", ""), el.get("to", "")
        c.send("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' xmlns:db='%s' "
               "version='1.0' from='%s' to='%s' id='%s'><stream:features>"
               "<dialback xmlns='%s'><errors/></dialback></stream:features>"
               % (NS_SERVER, NS_STREAM, NS_DB, to, frm, c.stream_id, NS_DB_FEATURE))
        with self.cond:
            self.cond.notify_all()

    def _on_element(self, c, el):
        if el.tag == q(NS_DB, "verify"):
            frm, to, sid, key = el.get("from"), el.get("to"), el.get("id"), (el.text or "")
            verdict = "valid" if self.keys.get(to) == key and key else "invalid"
            with self.cond:  # recorded before the answer: the test may look right after it
                self.verifies.append((frm, to, sid, key, verdict))
            c.send("<db:verify from='%s' to='%s' id='%s' type='%s'/>" % (to, frm, sid, verdict))
        elif el.tag == q(NS_DB, "result"):
            frm, to, key = el.get("from"), el.get("to"), (el.text or "")
            with self.cond:
                self.results.append((c, frm, to, key))
            if self.result_verdict and to not in self.hold_results_for:
                c.send("<db:result from='%s' to='%s' type='%s'/>"
                       % (to, frm, self.result_verdict))
        with self.cond:
            c.elements.append(el)
            self.cond.notify_all()

    def close(self):
        self.stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        for c in self.conns:
            try:
                c.sock.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(timeout=2)


# --------------------------------------------------------------------------
# A raw c2s client
# --------------------------------------------------------------------------

class C2S(RawStream):
    """A logged-in raw client of a Herald on host:port (no TLS)."""

    def __init__(self, host, port, domain, user, password, resource="r", timeout=10.0):
        super().__init__(port, host=host, timeout=timeout)
        self.domain = domain
        assert self.open(to=domain) is not None, "no c2s stream header from %s:%d" % (host, port)
        self.features()
        resp = self.auth_plain(user, password)
        assert resp is not None and resp.tag == q(NS_SASL, "success"), \
            "PLAIN login of %s@%s failed: %s" % (user, domain, show(resp))
        assert self.open(to=domain) is not None
        self.features()
        self.jid = self.bind(resource)
        self.send("<presence/>")
        self.ping()

    def ping(self, timeout=None):
        r = self.iq("<ping xmlns='urn:xmpp:ping'/>", to=self.domain, timeout=timeout)
        assert r is not None and r.get("type") == "result", "ping failed: %s" % show(r)

    def messages(self, wait=0.0, pred=None):
        """Consumes and returns the messages received (after reading for up
        to ``wait`` seconds)."""
        if wait:
            self.wait_for(lambda: False, wait)
        out = [e for e in self.elements if e.tag == q(NS_C, "message") and (pred is None or pred(e))]
        for e in out:
            self.elements.remove(e)
        return out

    def expect_message(self, pred, timeout=10.0, what="a message"):
        el = self.wait_element(lambda e: e.tag == q(NS_C, "message") and pred(e), timeout)
        assert el is not None, "%s: no %s within %.0f s; received: %s" % (
            self.jid, what, timeout, self.text()[-1500:])
        return el


def body_of(el):
    for c in el:
        if local(c.tag) == "body":
            return c.text
    return None


def stream_error_text(s):
    for el in s.seen:
        if el.tag == q(NS_STREAM, "error"):
            t = el.find(q(NS_STREAM_ERR, "text"))
            return None if t is None else t.text
    return None
