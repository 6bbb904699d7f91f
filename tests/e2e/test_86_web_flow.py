"""The slow-consumer policy holds for web sessions too (docs/web.md: "the
same limits and write queues as a TCP client"; docs/architecture.md,
"Back-pressure").

- A WebSocket client that stops reading while a TCP client floods it is
  closed once its queue made no write progress for c2s.write_timeout; the
  sender is paced meanwhile, not closed, and goes on afterwards; a witness
  session is answered throughout.
- A BOSH client that stops polling while messages for it are queued is
  closed the same way (a virtual connection's queue makes no progress when
  no request takes it); its sid is then unknown.
"""
import socket
import time

import pytest
from e2e_helpers import RawStream
from hardening_helpers import SLOWDOWN, Witness, sender
from web_helpers import Bosh, WsXmpp, metric, metrics

USERS = {"alice": "wonderland", "bob": "builder", "carol": "lewis", "wit": "ness"}
TIMEOUT_S = 3


def _gone(carol, jid, deadline):
    """Pings jid until the server answers with an error (its session is
    gone); returns when, or None."""
    k = 0
    while time.monotonic() < deadline:
        k += 1
        resp = carol.iq("<ping xmlns='urn:xmpp:ping'/>", to=jid, iq_id="probe%d" % k,
                        timeout=0.25)
        if resp is not None and resp.get("type") == "error":
            return time.monotonic()
    return None


def _tcp(srv, user, resource):
    s = RawStream(srv.port, timeout=30.0)
    s.login(user, USERS[user], resource, tls=False)
    return s


@pytest.mark.once
def test_websocket_reader_that_stops_is_closed_after_write_timeout(herald):
    srv = herald(users=USERS, allow_plaintext=True,
                 config={"c2s": {"write_timeout": TIMEOUT_S}})
    with Witness(srv, "wit", USERS["wit"], tls=False) as w:
        ws = WsXmpp.connect(srv)
        ws.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        ws.login("bob", USERS["bob"], "PLAIN", resource="stalled")
        alice = _tcp(srv, "alice", "a")
        carol = _tcp(srv, "carol", "probe")
        flood = "".join("<message to='bob@localhost/stalled' type='chat' id='s%d'><body>%s"
                        "</body></message>" % (i, "s" * 2000) for i in range(4000)).encode()
        t0 = time.monotonic()
        t, state = sender(alice, flood)
        gone_at = _gone(carol, "bob@localhost/stalled", t0 + (TIMEOUT_S + 15) * SLOWDOWN)
        assert gone_at is not None, "the WebSocket client that stopped reading was never closed"
        took = gone_at - t0
        assert took >= TIMEOUT_S - 0.5, \
            "closed %.2f s in, before c2s.write_timeout (%d s) passed" % (took, TIMEOUT_S)
        m = metrics(srv)
        assert metric(m, "herald_slow_reader_disconnects_total") >= 1, m
        assert metric(m, "herald_sessions", transport="websocket") == 0, m
        # alice was paced, not closed: her flood goes through once bob is gone.
        t.join(30 * SLOWDOWN)
        assert "done" in state, "the paced sender's flood did not go through (closed?): %r" % state
        w.check()
    for s in (alice, carol):
        s.close()
    ws.close()


@pytest.mark.once
def test_bosh_client_that_stops_polling_is_closed(herald):
    srv = herald(users=USERS, allow_plaintext=True,
                 config={"c2s": {"write_timeout": TIMEOUT_S},
                         "http": {"bosh_inactivity": "30"}})
    bo = Bosh(srv, wait=2)
    bo.create()
    bo.login("bob", USERS["bob"], "SCRAM-SHA-1", resource="poller")
    alice = _tcp(srv, "alice", "a")
    carol = _tcp(srv, "carol", "probe")
    # bob sends no further request: what alice sends waits in his queue.
    t0 = time.monotonic()
    for i in range(20):
        alice.send("<message to='bob@localhost/poller' type='chat'><body>m%d</body></message>" % i)
    gone_at = _gone(carol, "bob@localhost/poller", t0 + (TIMEOUT_S + 15) * SLOWDOWN)
    assert gone_at is not None, "the BOSH session that stopped polling was never closed"
    took = gone_at - t0
    assert took >= TIMEOUT_S - 0.5, \
        "closed %.2f s in: before c2s.write_timeout (%d s), and long before " \
        "http.bosh_inactivity (30 s)" % (took, TIMEOUT_S)
    assert took < 25 * SLOWDOWN, "closed by inactivity (30 s), not by the write timeout"
    m = metrics(srv)
    assert metric(m, "herald_sessions", transport="bosh") == 0, m
    el = bo.req()
    assert el.get("type") == "terminate" and el.get("condition") == "item-not-found", \
        "the ended session's sid still answers: %s" % el.attrib
    for s in (alice, carol):
        s.close()
