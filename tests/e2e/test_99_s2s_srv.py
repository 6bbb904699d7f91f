"""Federation peers found through DNS SRV records (RFC 6120 3.2, XEP-0368),
broker/net/resolve.c.

A fake authoritative DNS server (fake_dns.FakeDNS) answers on 127.0.0.53:53
with SRV records and the A records of these names; /etc/resolv.conf points
at it for the module (original bytes restored afterwards, also on failure):

  a.test       127.0.0.30  Herald, s2s on the default port 5269 (no SRV record)
  b.test       127.0.0.31  Herald, s2s on 5299 only: a.test can find it through SRV
  xmpp.b.test  127.0.0.31  the SRV target
  dead.b.test  127.0.0.32  an SRV target where nothing listens
  tls.b.test   127.0.0.33  a TLS-terminating proxy (direct TLS, XEP-0368) to b's 5299

b.test is mapped to 127.0.0.31 as well, where nothing listens on 5269: a
Herald that ignored the SRV records would reach the right host on the wrong
port and fail. No [s2s:DOMAIN] static routes. Every test starts its own
pair (a fresh outgoing stream means a fresh lookup); clients log in over c2s
with PLAIN (--allow-plaintext, s2s_raw.C2S). Dialback with self-signed
certificates.

/etc/hosts is left alone (the names are not in it, so glibc asks DNS):
fed_helpers.hosts_mapped() drops any block with its mark on entry and puts
its own snapshot back on exit, so it clobbers (and is clobbered by) a
concurrent test_95/test_96 run in the same sandbox.
"""
import base64
import contextlib
import os
import re
import selectors
import socket
import ssl
import threading
import time

import pytest

from e2e_helpers import HeraldServer, show
from fake_dns import FakeDNS
from fed_helpers import make_cert
from s2s_raw import C2S, body_of, uid

A, B = "a.test", "b.test"
A_IP, B_IP, DEAD_IP, PROXY_IP = "127.0.0.30", "127.0.0.31", "127.0.0.32", "127.0.0.33"
DNS_IP = "127.0.0.53"
A_S2S, B_S2S = 5269, 5299     # b's s2s port is not the default: only SRV tells
DEAD_PORT = 5298              # nothing listens there
PROXY_PORT = 5270
ADDRESSES = {A: A_IP, B: B_IP, "xmpp." + B: B_IP, "dead." + B: DEAD_IP, "tls." + B: PROXY_IP}
PW = {"alice": "alice-pw", "bob": "bob-pw"}
T = 10.0
SRV_B = "_xmpp-server._tcp." + B
SRVS_B = "_xmpps-server._tcp." + B

RESOLV = "/etc/resolv.conf"
RESOLV_MARK = "# herald s2s SRV tests (tests/e2e/test_99_s2s_srv.py), original: "


# --------------------------------------------------------------------------
# The DNS world
# --------------------------------------------------------------------------

@contextlib.contextmanager
def resolv_conf(text, path=RESOLV):
    """/etc/resolv.conf replaced by ``text`` for the body; the original bytes
    are put back afterwards, whatever happens. They are also kept (base64) in
    a comment, so that a run killed with SIGKILL is repaired by the next."""
    with open(path, "rb") as f:
        original = f.read()
    for line in original.decode("latin-1").splitlines():
        if line.startswith(RESOLV_MARK):
            original = base64.b64decode(line[len(RESOLV_MARK):])
    try:
        with open(path, "wb") as f:
            f.write((RESOLV_MARK + base64.b64encode(original).decode() + "\n" + text).encode())
        yield
    finally:
        with open(path, "wb") as f:
            f.write(original)


@pytest.fixture(scope="module")
def dns():
    if os.geteuid() != 0:
        pytest.skip("needs root: a DNS server on port 53 and /etc/resolv.conf")
    try:
        server = FakeDNS(DNS_IP, 53, a=ADDRESSES)
    except OSError as e:
        pytest.fail("cannot serve DNS on %s:53: %s" % (DNS_IP, e))
    try:
        with resolv_conf("nameserver %s\noptions timeout:1 attempts:1\n" % DNS_IP):
            for name, ip in ADDRESSES.items():  # through glibc, as Herald will ask
                got = {ai[4][0] for ai in socket.getaddrinfo(name, 1, socket.AF_INET)}
                assert got == {ip}, "%s resolves to %s, expected %s" % (name, got, ip)
            yield server
    finally:
        server.close()


def refused(ip, port):
    try:
        socket.create_connection((ip, port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


@pytest.fixture
def pair(request, tmp_path, dns):
    """Factory: pair(srv_records, b_s2s=None) serves srv_records from the fake
    DNS, starts a.test (alice) and b.test (bob) and returns (a, b). Both must
    exit 0 on SIGTERM."""
    servers = []
    request.node._herald_servers = servers

    def start(records, b_s2s=None):
        dns.srv = dict(records)
        dns.clear()
        # the controls behind "fails if SRV were ignored"
        assert refused(B_IP, 5269) and refused(DEAD_IP, DEAD_PORT)
        for dom, ip, port, user, s2s in ((A, A_IP, A_S2S, "alice", None),
                                         (B, B_IP, B_S2S, "bob", b_s2s)):
            work = str(tmp_path / dom)
            cert, key = make_cert(os.path.join(work, "certs"), dom)
            cfg = {"tls": {"cert": cert, "key": key},
                   "s2s": dict({"connect_timeout": 5}, **(s2s or {}))}
            srv = HeraldServer(work, name=dom, domain=dom, s2s_port=port, bind=ip,
                               allow_plaintext=True, config=cfg)
            servers.append(srv)
            srv.start(timeout=10)
            srv.add_user(user, PW[user])
        return servers[0], servers[1]

    yield start
    bad = ["%s exited with %r after SIGTERM" % (s.name, rc)
           for s, rc in ((s, s.stop()) for s in servers) if rc != 0]
    assert not bad, "; ".join(bad)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def login(srv, user):
    return C2S(srv.bind, srv.port, srv.domain, user, PW[user], uid("r"))


def s2s_lines(srv):
    return [ln for ln in srv.log_text(400000).splitlines() if " s2s: " in ln]


def s2s_log(srv):
    return "\n".join(s2s_lines(srv))


def message_both_ways(a, b):
    """alice@a.test -> bob@b.test and back to alice's full JID; returns the
    seconds the first message took (connection set-up included)."""
    alice, bob = login(a, "alice"), login(b, "bob")
    try:
        mid, body = uid("m"), uid("a-to-b")
        t0 = time.monotonic()
        alice.send("<message to='bob@%s' type='chat' id='%s'><body>%s</body></message>"
                   % (B, mid, body))
        m = bob.expect_message(lambda e: body_of(e) == body, timeout=T, what="alice's message")
        dt = time.monotonic() - t0
        assert m.get("from") == alice.jid and m.get("id") == mid, show(m)
        mid2, body2 = uid("m"), uid("b-to-a")
        bob.send("<message to='%s' type='chat' id='%s'><body>%s</body></message>"
                 % (alice.jid, mid2, body2))
        r = alice.expect_message(lambda e: body_of(e) == body2, timeout=T, what="bob's reply")
        assert r.get("from") == bob.jid and r.get("id") == mid2, show(r)
        assert alice.messages(wait=0.3, pred=lambda e: e.get("type") == "error") == []
        assert bob.messages(pred=lambda e: e.get("type") == "error") == []
        return dt
    finally:
        alice.close()
        bob.close()


def lookup(srv, remote):
    """(count, how) of every "<remote>: N addresses by HOW" line."""
    return re.findall(r"\b%s: (\d+) addresses by (.+)$" % re.escape(remote), s2s_log(srv), re.M)


def connects(srv, remote):
    """The "<remote>: connecting to IP[ (direct TLS)]" lines, in order."""
    return re.findall(r"\b%s: connecting to (\S+.*)$" % re.escape(remote), s2s_log(srv), re.M)


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

def test_srv_non_default_port(pair, dns):
    a, b = pair({SRV_B: [(0, 5, B_S2S, "xmpp.b.test.")]})
    dt = message_both_ways(a, b)
    print("a -> b took %.2f s\n---- a ----\n%s\n---- b ----\n%s" % (dt, s2s_log(a), s2s_log(b)))
    assert dns.asked(SRVS_B) and dns.asked(SRV_B), dns.queries
    assert dns.asked("_xmpp-server._tcp." + A), dns.queries
    la = s2s_log(a)
    assert lookup(a, B) == [("1", "SRV (1 targets)")], la
    assert connects(a, B) == [B_IP], la
    assert "%s authenticated (dialback), outbound %s -> %s" % (B, A, B) in la, la
    # b -> a: no SRV record, the A record on 5269
    lb = s2s_log(b)
    assert lookup(b, A) == [("1", "A/AAAA, port 5269")], lb
    assert connects(b, A) == [A_IP], lb


def test_srv_priority_fallback(pair, dns):
    # listed in the wrong order on purpose: Herald sorts by priority
    a, b = pair({SRV_B: [(10, 5, B_S2S, "xmpp.b.test."), (0, 5, DEAD_PORT, "dead.b.test.")]})
    dt = message_both_ways(a, b)
    print("a -> b took %.2f s\n---- a ----\n%s" % (dt, s2s_log(a)))
    la = s2s_log(a)
    assert lookup(a, B) == [("2", "SRV (2 targets)")], la
    assert connects(a, B) == [DEAD_IP, B_IP], la
    assert "%s authenticated (dialback), outbound %s -> %s" % (B, A, B) in la, la
    assert dt < 5, "the refused first target cost %.2f s" % dt


def test_xmpps_srv_on_a_starttls_port_falls_back(pair, dns):
    """_xmpps-server points at b's s2s port, which only speaks STARTTLS: the
    direct TLS handshake fails there and Herald goes on with the next address
    (the _xmpp-server record, same host and port, plain + STARTTLS)."""
    a, b = pair({SRVS_B: [(0, 5, B_S2S, "xmpp.b.test.")],
                 SRV_B: [(5, 5, B_S2S, "xmpp.b.test.")]})
    dt = message_both_ways(a, b)
    print("a -> b took %.2f s\n---- a ----\n%s\n---- b ----\n%s" % (dt, s2s_log(a), s2s_log(b)))
    la = s2s_log(a)
    assert lookup(a, B) == [("2", "SRV (2 targets)")], la
    assert connects(a, B) == [B_IP + " (direct TLS)", B_IP], la
    assert "%s authenticated (dialback), outbound %s -> %s" % (B, A, B) in la, la
    assert dt < 5, "the failed direct TLS attempt cost %.2f s" % dt


class TLSProxy:
    """Direct TLS on ip:port (b's certificate), relayed in clear to
    upstream: an XEP-0368 endpoint in front of a STARTTLS-only server.
    ``handshakes`` counts the TLS sessions set up; ``client_bytes`` is what
    the clients sent inside TLS."""

    def __init__(self, ip, port, upstream, cert, key):
        self.upstream = upstream
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.handshakes = 0
        self.client_bytes = b""
        self.stop = False
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stop:
            try:
                s, _ = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            t = threading.Thread(target=self._relay, args=(s,), daemon=True)
            self.threads.append(t)
            t.start()

    def _relay(self, raw):
        up = None
        try:
            raw.settimeout(5)
            tls = self.ctx.wrap_socket(raw, server_side=True)
            with self.lock:
                self.handshakes += 1
            up = socket.create_connection(self.upstream, timeout=5)
            tls.setblocking(False)
            up.setblocking(False)
            sel = selectors.DefaultSelector()
            sel.register(tls, selectors.EVENT_READ)
            sel.register(up, selectors.EVENT_READ)
            while not self.stop:
                ready = [k.fileobj for k, _ in sel.select(0.2)]
                if tls.pending() and tls not in ready:
                    ready.append(tls)
                for s in ready:
                    try:
                        data = s.recv(65536)
                    except (ssl.SSLWantReadError, BlockingIOError):
                        continue
                    if not data:
                        return
                    if s is tls:
                        with self.lock:
                            self.client_bytes += data
                        up.setblocking(True)
                        up.sendall(data)
                        up.setblocking(False)
                    else:
                        tls.setblocking(True)
                        tls.sendall(data)
                        tls.setblocking(False)
        except (OSError, ssl.SSLError):
            return
        finally:
            for s in (raw, up):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def close(self):
        self.stop = True
        self.sock.close()
        for t in self.threads:
            t.join(timeout=2)


def test_xmpps_direct_tls_through_proxy(pair, dns, tmp_path):
    """The only record is _xmpps-server -> tls.b.test:5270, a TLS-terminating
    proxy to b's s2s port: a must speak TLS from the first byte (and not ask
    for STARTTLS inside it). b accepts the proxied stream in clear
    (require_tls = false; it cannot see the TLS)."""
    cert, key = make_cert(str(tmp_path / "proxy"), B)
    proxy = TLSProxy(PROXY_IP, PROXY_PORT, (B_IP, B_S2S), cert, key)
    try:
        a, b = pair({SRVS_B: [(0, 5, PROXY_PORT, "tls.b.test.")]},
                    b_s2s={"require_tls": False})
        dt = message_both_ways(a, b)
    finally:
        proxy.close()
    print("a -> b took %.2f s, %d TLS sessions\n---- a ----\n%s\n---- b ----\n%s"
          % (dt, proxy.handshakes, s2s_log(a), s2s_log(b)))
    la = s2s_log(a)
    assert lookup(a, B) == [("1", "SRV (1 targets)")], la
    assert connects(a, B) == [PROXY_IP + " (direct TLS)"], la
    assert "%s authenticated (dialback), outbound %s -> %s" % (B, A, B) in la, la
    assert proxy.handshakes >= 1
    sent = proxy.client_bytes.decode("utf-8", "replace")
    assert "<stream:stream" in sent and "starttls" not in sent, sent[:2000]


def test_srv_dot_means_no_service(pair, dns):
    """RFC 2782 (RFC 6120 §3.2.1): a single SRV record with the target "."
    says the domain offers no XMPP server-to-server service: the message
    bounces with remote-server-not-found and Herald does not fall back to
    b.test's own address (no connection is even tried)."""
    a, b = pair({SRV_B: [(0, 0, 0, ".")]})
    alice = login(a, "alice")
    try:
        body = uid("nowhere")
        alice.send("<message to='bob@%s' type='chat' id='dot1'><body>%s</body></message>"
                   % (B, body))
        err = alice.expect_message(lambda e: e.get("type") == "error", timeout=T,
                                   what="the bounce")
        assert err.get("id") == "dot1" and err.get("from") == "bob@" + B, show(err)
        cond = [c.tag.split("}")[1] for c in err.find("{jabber:client}error")]
        assert "remote-server-not-found" in cond, show(err)
    finally:
        alice.close()
    la = s2s_log(a)
    assert dns.asked(SRV_B), dns.queries
    assert "offers no XMPP service" in la, la
    assert connects(a, B) == [], la
