"""Raw-socket helpers for stream management (XEP-0198) tests: a RawStream
that counts the stanzas it received since <enable/> (the client's h), login
with stream management, cutting a connection without closing the stream,
resuming, and small waits on the server's log."""
import socket
import struct
import time

from e2e_helpers import NS_CLIENT, RawStream, local, ns_of, q, show

NS_SM = "urn:xmpp:sm:3"
NS_CSI = "urn:xmpp:csi:0"
USERS = {"alice": "wonderland", "bob": "builder"}
STANZAS = {q(NS_CLIENT, n) for n in ("message", "presence", "iq")}
PLAIN = {"c2s": {"allow_plaintext": "true"}}


def config(**c2s):
    c = {"c2s": {"allow_plaintext": "true"}}
    c["c2s"].update({k: str(v) for k, v in c2s.items()})
    return c


class Stream(RawStream):
    """A RawStream that counts the stanzas it has taken off the wire since
    stream management was enabled (the client's h)."""

    def __init__(self, port):
        super().__init__(port, timeout=10.0)
        self.h = 0
        self.counting = False
        self.counted = set()

    def _feed(self, data):
        before = len(self.seen)
        super()._feed(data)
        for el in self.seen[before:]:
            if el.tag == q(NS_SM, "enabled") or el.tag == q(NS_SM, "resumed"):
                self.counting = True
            elif self.counting and el.tag in STANZAS:
                self.h = (self.h + 1) % 2**32

    def sm(self, tag, timeout=None):
        return self.wait_element(lambda e: e.tag == q(NS_SM, tag), timeout)

    def sm_any(self, timeout=None):
        return self.wait_element(lambda e: ns_of(e.tag) == NS_SM, timeout)

    def messages(self, timeout=3.0, want=None):
        """Bodies of <message/>s received (consumed), waiting until `want`
        have come or timeout."""
        out = []
        deadline = time.monotonic() + timeout
        while want is None or len(out) < want:
            el = self.wait_element(lambda e: e.tag == q(NS_CLIENT, "message"),
                                   max(0.05, deadline - time.monotonic()))
            if el is None:
                break
            b = el.find(q(NS_CLIENT, "body"))
            out.append(b.text if b is not None else None)
        return out


def login(srv, user, resource, enable=True, resume=True, presence=True, password=None):
    s = Stream(srv.port)
    s.login(user, password or USERS[user], resource, tls=False)
    if enable:
        s.send("<enable xmlns='%s'%s/>" % (NS_SM, " resume='true'" if resume else ""))
        en = s.sm_any()
        assert en is not None and en.tag == q(NS_SM, "enabled"), "no <enabled/>: %s" % show(en)
        s.enabled = en
    if presence:
        s.send("<presence/>")
        # Our own available presence comes back (RFC 6121 4.2.2).
        assert s.wait_element(lambda e: e.tag == q(NS_CLIENT, "presence")) is not None
    return s


def cut(s):
    """Ends the TCP connection without </stream:stream>: a reset, as when a
    network path dies (the server sees an error, not a closed stream)."""
    s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.sock.close()
    s.closed = True


def resume_stream(srv, user, previd, h):
    """A new connection that authenticates and sends <resume/>; returns the
    stream and the server's answer (resumed or failed)."""
    s = Stream(srv.port)
    assert s.open() is not None
    s.features()
    resp = s.auth_plain(user, USERS[user])
    assert resp is not None and local(resp.tag) == "success", show(resp)
    assert s.open() is not None
    feats = s.features()
    assert feats.find(q(NS_SM, "sm")) is not None, "no <sm/> feature after SASL: %s" % show(feats)
    s.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, h))
    return s, s.sm_any()


def chat(s, to, body, mid=None):
    s.send("<message type='chat' to='%s'%s><body>%s</body></message>"
           % (to, " id='%s'" % mid if mid else "", body))


def ack_round(s):
    """<r/> answered by <a h/>; returns h."""
    s.send("<r xmlns='%s'/>" % NS_SM)
    a = s.sm("a")
    assert a is not None, "no <a/> for <r/>: %r" % s.text()[-500:]
    return int(a.get("h"))


def wait_log(srv, needle, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in srv.log_text():
            return True
        time.sleep(0.05)
    return False
