"""Login and idle timeouts ([c2s] login_timeout, idle_timeout), and
whitespace keepalives counting as traffic (RFC 6120 4.6.1, 4.9.3.4
<connection-timeout/>)."""
import time

import pytest
from e2e_helpers import RawStream

TIMEOUTS = {"c2s": {"login_timeout": 1, "idle_timeout": 2, "keepalive_interval": 0}}


@pytest.mark.once
def test_login_timeout(herald):
    """RFC 6120 4.9.3.4 <connection-timeout/> and 13.12 (resource exhaustion):
    a stream that does not authenticate within login_timeout (1 s) is closed
    with connection-timeout."""
    srv = herald(config=TIMEOUTS, users={"alice": "wonderland"})
    s = RawStream(srv.port)
    try:
        t0 = time.monotonic()
        s.open()
        s.features()
        s.read_until_closed(timeout=8)
        took = time.monotonic() - t0
        assert s.stream_error() == "connection-timeout", s.text()[-500:]
        assert s.stream_ended and s.closed
        assert 0.8 <= took <= 6, "closed after %.2f s with login_timeout = 1" % took
    finally:
        s.close()


@pytest.mark.once
def test_idle_timeout_and_whitespace_keepalive(herald):
    """RFC 6120 4.6.1 (whitespace keepalive keeps an idle stream alive) and
    4.9.3.4 <connection-timeout/>: with idle_timeout = 2 s, a logged-in
    stream that sends a space every 0.5 s survives 4 s; once it falls
    silent it is closed with connection-timeout."""
    srv = herald(config=TIMEOUTS, users={"alice": "wonderland"})
    s = RawStream(srv.port)
    try:
        s.login("alice", "wonderland", "idle")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.0:
            assert s.send(" "), "send failed: the server closed the stream"
            # Reading (with a timeout) doubles as the 0.5 s pacing.
            s.wait_for(lambda: s.closed or s.stream_error() is not None, 0.5)
            assert not s.closed and s.stream_error() is None, \
                "closed despite keepalives after %.1f s: %r" % (time.monotonic() - t0,
                                                               s.text()[-300:])
        pong = s.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
        assert pong is not None and pong.get("type") == "result"
        t1 = time.monotonic()
        s.read_until_closed(timeout=10)
        took = time.monotonic() - t1
        assert s.stream_error() == "connection-timeout", s.text()[-500:]
        assert s.closed
        assert 1.5 <= took <= 8, "idle close after %.2f s with idle_timeout = 2" % took
    finally:
        s.close()
